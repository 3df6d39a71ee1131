"""The aiohttp application: Twilio webhooks, the Media Streams socket, health and the call API.

Handlers only move bytes and check credentials; each call's work happens in its ``CallSession``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bots.base import BotFactory, CallContext
from bots.lead import LeadBotFactory
from runtime.clock import MonotonicClock
from runtime.config import Settings
from runtime.engines import EngineOptions, Engines, load_engines
from runtime.events import FanoutSink
from runtime.report import CallReport, ReportStore
from runtime.session import CallSession
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
from telephony.signature import WebhookValidator, public_url_for
from telephony.stream_token import StreamTokenError, issue_stream_token, verify_stream_token
from telephony.twiml import connect_stream_twiml, reject_twiml

log = logging.getLogger(__name__)

#: How long after the voice webhook the stream may start. Twilio connects within a second or
#: two of fetching the TwiML; minutes of slack cover slow networks without keeping tokens alive.
STREAM_TOKEN_TTL_S = 300.0
#: Twilio's media messages are ~250 bytes; anything near this is not Twilio.
MAX_WS_MESSAGE_BYTES = 64 * 1024


@dataclass
class ServerState:
    settings: Settings
    bots: BotFactory
    engines: Engines | None = None
    reports: ReportStore = field(default_factory=ReportStore)
    live: dict[str, CallSession] = field(default_factory=dict)
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
    protocol_errors: Counter[str] = field(default_factory=Counter)
    background: set[asyncio.Task[object]] = field(default_factory=set)
    load: Callable[[EngineOptions], Engines] = load_engines
    validator: WebhookValidator = field(init=False)

    def __post_init__(self) -> None:
        self.validator = WebhookValidator(self.settings.twilio_auth_token)

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run a background job the server owns (kept referenced until it finishes)."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


STATE = web.AppKey("state", ServerState)


def create_app(
    settings: Settings,
    engines: Engines | None = None,
    bots: BotFactory | None = None,
    load: Callable[[EngineOptions], Engines] = load_engines,
) -> web.Application:
    """The app; with ``engines`` given (tests, benchmarks) it is ready at once, otherwise it
    runs ``load`` in the background and reports 503 on /health until the engines are in.
    ``bots`` defaults to the Lead bot with the configured persona."""
    app = web.Application(client_max_size=256 * 1024)
    bots = bots or LeadBotFactory(settings.persona.business_name, settings.persona.bot_name)
    app[STATE] = ServerState(settings=settings, bots=bots, engines=engines, load=load)
    app.router.add_get("/health", health)
    app.router.add_post("/twilio/voice", voice_webhook)
    app.router.add_post("/twilio/status", status_callback)
    app.router.add_get("/twilio/media", media_stream)
    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_sid}", get_call)
    app.cleanup_ctx.append(_engines_ctx)
    app.on_shutdown.append(_close_calls)
    return app


async def _engines_ctx(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    owned = state.engines is None
    if owned:
        state.spawn(_load_engines(state))
    else:
        state.spawn(_render_fixed_phrases(state))
    yield
    if owned and state.engines is not None:
        await state.engines.aclose()


async def _load_engines(state: ServerState) -> None:
    """Load the models off the event loop; the server is ready once fixed phrases are rendered."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    engines = await loop.run_in_executor(None, state.load, state.settings.engines)
    await _render_fixed_phrases(state, engines)
    state.engines = engines
    log.info("ready for calls", extra={"seconds": round(time.monotonic() - started, 2)})


async def _render_fixed_phrases(state: ServerState, engines: Engines | None = None) -> None:
    """Greetings and silence prompts go into the TTS cache so no call waits for them."""
    engines = engines or state.engines
    assert engines is not None
    silence = state.settings.silence
    for phrase in [*state.bots.fixed_phrases(), silence.prompt_text, silence.goodbye_text]:
        await engines.tts.render(phrase)


async def _close_calls(app: web.Application) -> None:
    state = app[STATE]
    for session in list(state.live.values()):
        session.end("server_shutdown")
    for ws in list(state.sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


# --- health and API -------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = {
        "status": "ok" if state.engines is not None else "loading",
        "active_calls": len(state.live),
        "protocol_errors": dict(state.protocol_errors),
    }
    return web.json_response(body, status=200 if state.engines is not None else 503)


def _authorised(request: web.Request) -> bool:
    token = request.app[STATE].settings.api_token
    return bool(token) and request.headers.get("Authorization", "") == f"Bearer {token}"


async def list_calls(request: web.Request) -> web.Response:
    if not _authorised(request):
        raise web.HTTPUnauthorized(text="bearer token required")
    try:
        limit = min(1000, max(1, int(request.query.get("limit", "50"))))
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be an integer") from None
    reports = request.app[STATE].reports.recent(limit)
    calls = [{k: v for k, v in r.to_dict().items() if k != "events"} for r in reports]
    return web.json_response({"calls": calls})


async def get_call(request: web.Request) -> web.Response:
    if not _authorised(request):
        raise web.HTTPUnauthorized(text="bearer token required")
    report = request.app[STATE].reports.get(request.match_info["call_sid"])
    if report is None:
        raise web.HTTPNotFound(text="no such call")
    return web.json_response(report.to_dict())


# --- Twilio webhooks --------------------------------------------------------------------------


async def _verified_form(request: web.Request) -> dict[str, str]:
    """The webhook's form parameters, or 403 when ``X-Twilio-Signature`` does not match."""
    state = request.app[STATE]
    form = await request.post()
    url = public_url_for(state.settings.public_url, request.raw_path)
    if not state.validator.validate(url, form, request.headers.get("X-Twilio-Signature")):
        log.warning("webhook signature rejected", extra={"path": request.path})
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature")
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def voice_webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await _verified_form(request)
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise web.HTTPBadRequest(text="CallSid missing")
    if state.engines is None:
        raise web.HTTPServiceUnavailable(text="still loading speech models")
    if len(state.live) >= state.settings.max_calls:
        log.warning("at capacity, rejecting call", extra={"call_sid": call_sid})
        return web.Response(text=reject_twiml("busy"), content_type="text/xml")
    settings = state.settings
    context = CallContext(
        call_sid=call_sid,
        from_number=form.get("From", ""),
        to_number=form.get("To", ""),
        direction=form.get("Direction", "inbound"),
        tenant=settings.tenant,
        bot=settings.starting_bot,
    )
    report = state.reports.open(CallReport(context, CallLifecycle()))
    _apply_status(report, form)
    # Render the greeting now, while Twilio connects the stream, so it plays at once.
    state.spawn(state.engines.tts.render(state.bots.create(context).greeting()))
    parameters = {
        "from": context.from_number,
        "to": context.to_number,
        "direction": context.direction,
        "tenant": context.tenant,
        "bot": context.bot,
        "token": issue_stream_token(settings.stream_secret, call_sid, now=time.time(), ttl_s=STREAM_TOKEN_TTL_S),
    }
    log.info("call answered", extra={"call_sid": call_sid, "direction": context.direction})
    twiml = connect_stream_twiml(settings.stream_url, parameters, stream_name=f"leadline-{call_sid}")
    return web.Response(text=twiml, content_type="text/xml")


def _apply_status(report: CallReport, form: dict[str, str]) -> bool:
    status = form.get("CallStatus")
    if not status:
        return False
    sequence = form.get("SequenceNumber")
    try:
        return report.lifecycle.apply(status, sequence_number=int(sequence) if sequence else None)
    except IllegalTransition as e:
        log.warning(
            "illegal call status transition ignored",
            extra={"call_sid": report.context.call_sid, "error": str(e)},
        )
        return False


async def status_callback(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await _verified_form(request)
    call_sid = form.get("CallSid", "")
    if not call_sid:
        raise web.HTTPBadRequest(text="CallSid missing")
    report = state.reports.get(call_sid)
    if report is None:
        context = CallContext(
            call_sid=call_sid,
            from_number=form.get("From", ""),
            to_number=form.get("To", ""),
            direction=form.get("Direction", "inbound"),
            tenant=state.settings.tenant,
            bot=state.settings.starting_bot,
        )
        report = state.reports.open(CallReport(context, CallLifecycle()))
    try:
        _apply_status(report, form)
    except ValueError:
        raise web.HTTPBadRequest(text="unknown CallStatus") from None
    session = state.live.get(call_sid)
    if session is not None and report.lifecycle.status.is_terminal:
        session.end(f"call_{report.lifecycle.status}")
    return web.Response(status=204)


# --- Media Streams socket ---------------------------------------------------------------------


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
        self.session = CallSession(
            context=context,
            stream_sid=start.stream_sid,
            bot=state.bots.create(context),
            engines=state.engines,
            settings=state.settings,
            send=self.ws.send_str,
            sink=FanoutSink([state.reports]),
            clock=MonotonicClock(),
        )
        state.live[start.call_sid] = self.session
        self.task = asyncio.create_task(self._run_session(self.session), name=f"call-{start.call_sid}")
        log.info("stream started", extra={"call_sid": start.call_sid, "stream_sid": start.stream_sid})
        return True

    async def _run_session(self, session: CallSession) -> str:
        reason = await session.run()
        if not self.ws.closed:
            await self.ws.close()
        return reason

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
        report.protocol_errors = session.protocol_errors
        report.dropped_inbound_frames = session.dropped_frames
        report.bot_state = session.bot_state()
        log.info("call ended", extra={"call_sid": session.context.call_sid, "reason": session.end_reason})
