"""The Twilio Media Streams socket: waits for a valid ``start``, then feeds the call's session.

The handler only parses messages (sans-IO codec) and hands them on without waiting; malformed
input is counted per kind and skipped, never allowed to end the call or touch another one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiohttp import WSCloseCode, WSMsgType, web

from analytics.recording import StereoRecorder
from analytics.records import RecordingRecord
from bots.base import CallContext
from runtime.app_state import STATE, ServerState
from runtime.clock import MonotonicClock
from runtime.compliance import within_calling_hours
from runtime.events import ComplianceCheck, FanoutSink
from runtime.report import CallReport
from runtime.session import CallSession
from runtime.transfers import bot_outcome
from telephony.call_state import CallLifecycle, CallStatus, IllegalTransition
from telephony.media_stream import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaStreamProtocolError,
    Start,
    Stop,
    parse_inbound,
)
from telephony.rest import TwilioRestError
from telephony.stream_token import StreamTokenError, verify_stream_token
from telephony.transfer import OUTCOME_PARAMETER

log = logging.getLogger(__name__)

#: Twilio's media messages are ~250 bytes; anything near this is not Twilio.
MAX_WS_MESSAGE_BYTES = 64 * 1024


async def media_stream(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES)
    await ws.prepare(request)
    state.sockets.add(ws)
    connection = _MediaConnection(state, ws)
    try:
        await connection.serve()
    finally:
        await connection.finish()
    return ws


class _MediaConnection:
    """One Media Streams socket: waits for a valid ``start``, then feeds the call session."""

    def __init__(self, state: ServerState, ws: web.WebSocketResponse) -> None:
        self.state = state
        self.ws = ws
        self.session: CallSession | None = None
        self.report: CallReport | None = None
        self.task: asyncio.Task[str] | None = None
        self.recorder: StereoRecorder | None = None

    async def serve(self) -> None:
        try:
            async with asyncio.timeout(self.state.settings.stream_start_timeout_s) as waiting_for_start:
                while self.session is None:
                    if not await self._receive():
                        return
                waiting_for_start.reschedule(None)
                while await self._receive():
                    pass
        except TimeoutError:
            self.state.protocol_errors["no_start"] += 1
            log.warning("media socket sent no valid start in time")
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no start")

    async def _receive(self) -> bool:
        """Handle the next message; False when the connection is over."""
        message = await self.ws.receive()
        if message.type is WSMsgType.TEXT:
            return await self._handle(message.data)
        if message.type is WSMsgType.BINARY:
            self._protocol_error("binary_frame")
            return True
        if message.type is WSMsgType.ERROR:
            log.warning("media socket error", extra={"error": str(self.ws.exception())})
        return message.type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)

    async def _handle(self, text: str) -> bool:
        """Handle one message; False ends the connection."""
        try:
            event = parse_inbound(text)
        except MediaStreamProtocolError as e:
            self._protocol_error(e.kind, e.detail)
            return True
        session = self.session
        if isinstance(event, Media):
            if session is None:
                self._protocol_error("media_before_start")
            else:
                session.feed_media(event.payload)
        elif isinstance(event, Start):
            if session is not None:
                self._protocol_error("duplicate_start")
            else:
                return await self._start(event)
        elif isinstance(event, Mark) and session is not None:
            session.on_mark(event.name)
        elif isinstance(event, Dtmf) and session is not None:
            session.on_dtmf(event.digit)
        elif isinstance(event, Stop):
            if session is not None:
                session.end("stream_stopped")
            return False
        elif not isinstance(event, Connected):
            self._protocol_error("event_before_start")
        return True

    def _protocol_error(self, kind: str, detail: str = "") -> None:
        self.state.protocol_errors[kind] += 1
        call_sid = self.session.context.call_sid if self.session else None
        log.warning("media stream protocol error", extra={"kind": kind, "detail": detail[:100], "call_sid": call_sid})
        if self.session is not None:
            self.session.on_protocol_error(kind)

    async def _start(self, start: Start) -> bool:
        state = self.state
        params = start.custom_parameters
        try:
            verify_stream_token(state.settings.stream_secret, start.call_sid, params.get("token", ""), now=time.time())
        except StreamTokenError as e:
            state.protocol_errors["bad_stream_token"] += 1
            log.warning("stream start refused", extra={"call_sid": start.call_sid, "reason": e.reason})
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"invalid stream token")
            return False
        if state.engines is None:
            await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"not ready")
            return False
        if start.call_sid in state.live:
            state.protocol_errors["call_already_streaming"] += 1
            log.warning("second stream for a live call refused", extra={"call_sid": start.call_sid})
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"call already streaming")
            return False
        context = CallContext(
            call_sid=start.call_sid,
            from_number=params.get("from", ""),
            to_number=params.get("to", ""),
            direction=params.get("direction", "inbound"),
            tenant=params.get("tenant", state.settings.tenant),
            bot=params.get("bot", state.settings.starting_bot),
        )
        report = state.reports.get(start.call_sid) or state.reports.open(CallReport(context, CallLifecycle()))
        try:
            report.lifecycle.apply(CallStatus.IN_PROGRESS)
        except IllegalTransition:
            log.warning("stream started for a finished call", extra={"call_sid": start.call_sid})
        self.report = report
        returning = params.get(OUTCOME_PARAMETER)
        if state.archive is not None:
            state.archive.call_started(report)
        held = state.recordings_on_hold.pop(start.call_sid, None) if returning is not None else None
        self.recorder = held[0] if held else self._recorder(start.call_sid)
        sink = FanoutSink([state.reports, *([state.archive] if state.archive is not None else [])])
        self.session = session = CallSession(
            context=context,
            stream_sid=start.stream_sid,
            bot=state.shelf.take(start.call_sid) or await state.bots.create_for_caller(context),
            engines=state.engines,
            settings=state.settings,
            send=self.ws.send_str,
            sink=sink,
            clock=MonotonicClock(),
            transfer=lambda request: state.transfers.start(context, session.bot, request, at=session.elapsed),
            returning_from_transfer=bot_outcome(returning) if returning is not None else None,
            recorder=self.recorder,
            recording_started_at=held[1] if held else None,
        )
        if context.direction.startswith("outbound") and returning is None:
            ok, local = within_calling_hours(
                context.to_number, state.wall_clock(), default_tz=state.settings.bot_core.persona.timezone
            )
            sink.emit(start.call_sid, ComplianceCheck(at=0.0, rule="calling_hours", ok=ok, detail=local))
        state.live[start.call_sid] = session
        self.task = asyncio.create_task(self._run_session(self.session), name=f"call-{start.call_sid}")
        log.info("stream started", extra={"call_sid": start.call_sid, "stream_sid": start.stream_sid})
        return True

    def _recorder(self, call_sid: str) -> StereoRecorder | None:
        """The call's stereo recording, when calls are recorded."""
        storage = self.state.settings.storage
        if not (storage.keep_calls and storage.record_calls and self.state.archive is not None):
            return None
        try:
            return StereoRecorder(storage.recordings_dir / f"{call_sid}.wav")
        except OSError:
            log.exception("cannot open the call's recording; the call goes on unrecorded", extra={"call_sid": call_sid})
            return None

    async def _run_session(self, session: CallSession) -> str:
        reason = await session.run()
        if session.hung_up and self.state.rest is not None:
            await self._hang_up_call(session.context.call_sid)
        if not self.ws.closed:
            await self.ws.close()
        return reason

    async def _hang_up_call(self, call_sid: str) -> None:
        """End the phone call over REST: closing the stream alone would run whatever TwiML
        follows ``<Connect>``. Idempotent: an already ended call is fine."""
        assert self.state.rest is not None
        try:
            await self.state.rest.hang_up(call_sid)
        except TwilioRestError as e:
            log.warning(
                "REST hang-up failed; closing the stream instead", extra={"call_sid": call_sid, "error": str(e)}
            )

    async def finish(self) -> None:
        session, report = self.session, self.report
        if session is None or report is None:
            if not self.ws.closed:
                await self.ws.close()
            return
        session.end("socket_closed")
        if self.task is not None:
            await self.task
        self.state.live.pop(session.context.call_sid, None)
        report.end_reason = session.end_reason
        report.pacing = session.outbound.stats
        self.state.metrics.late_frames(session.outbound.stats.late_frames)
        report.protocol_errors = session.protocol_errors
        report.dropped_inbound_frames = session.dropped_frames
        report.bot_state = session.bot_state()
        log.info("call ended", extra={"call_sid": session.context.call_sid, "reason": session.end_reason})
        if not session.transferring:
            await finish_call(self.state, report, self.recorder)
        elif self.recorder is not None:  # the caller may come back; the recording waits for them
            self.state.recordings_on_hold[report.context.call_sid] = (self.recorder, session.started_at)


async def finish_call(state: ServerState, report: CallReport, recorder: StereoRecorder | None) -> None:
    """The call is over for good: close its recording and keep it all (when calls are kept)."""
    recording: RecordingRecord | None = None
    if recorder is not None:
        recorder.close()
        context = report.context
        recording = recorder.to_record(call_sid=context.call_sid, tenant=context.tenant, created_at=datetime.now(UTC))
    if state.archive is not None:
        await state.archive.call_ended(report, recording)


async def finish_transferred_call(state: ServerState, call_sid: str, outcome: str) -> None:
    """A transfer ended without the caller coming back to the bot (a person took the call, or
    the caller hung up on hold): the call is over for us, with that outcome."""
    held = state.recordings_on_hold.pop(call_sid, None)
    report = state.reports.get(call_sid)
    if report is not None:
        report.bot_state = {**report.bot_state, "transfer": {"outcome": outcome}}
        await finish_call(state, report, held[0] if held else None)
    elif held is not None:
        held[0].close()
