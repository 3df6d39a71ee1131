"""Run one simulated phone call against a Leadline server, playing Twilio and the caller.

Everything goes over the real Twilio protocols: the signed voice webhook, the Media Streams
socket (``connected``, ``start``, a ``media`` frame every 20 ms, ``dtmf``, mark echoes,
``stop``) and signed status callbacks. Used by ``leadline call``, the demo, integration tests
and the load benchmark (many calls in one process, sharing pre-rendered caller audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from runtime.audio import duration_ms
from runtime.speech import SpeechToText, TextToSpeech
from telephony.media_stream import connected_message, start_message
from telephony.simulator.events import BotSpoke, CallEnded, CallEvent, CallStarted, EndReason
from telephony.simulator.playout import Playout
from telephony.simulator.recording import StereoRecorder
from telephony.simulator.rendering import prerender_script
from telephony.simulator.result import BargeInRecord, BotUtterance, CallCounts, CallResult, build_turns
from telephony.simulator.script import HOME_BUYER_SCRIPT, CallerScript
from telephony.simulator.segments import BotSegment
from telephony.simulator.stream import CallerStream, StreamCounters, StreamIds
from telephony.simulator.transcribe import BotTranscriber
from telephony.simulator.turns import CallerTiming, ScriptRunner
from telephony.simulator.webhooks import (
    CallIdentity,
    CallSetupError,
    post_signed,
    request_stream,
    socket_signature,
    status_params,
)
from telephony.twiml import StreamInstruction

_log = logging.getLogger("telephony.simulator")

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")

#: How long ``close`` waits for the server's half of the WebSocket closing handshake.
WS_CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedCallOptions:
    public_url: str
    auth_token: str
    account_sid: str
    from_number: str
    to_number: str
    #: the demo caller, so ``leadline call`` works without a script
    script: CallerScript = HOME_BUYER_SCRIPT
    #: where ``<call_sid>.wav`` and ``<call_sid>.json`` go; None writes nothing (load runs)
    output_dir: Path | None = None
    #: a stuck call must end; two minutes is several times a scripted qualification call
    max_duration_s: float = 120.0
    #: transcribe the bot's utterances (needs an ``stt``); off by default as it costs CPU
    transcribe_bot: bool = False
    #: generated from ``seed`` when not given
    call_sid: str | None = None
    #: makes generated SIDs reproducible; None draws a fresh seed
    seed: int | None = None
    timing: CallerTiming = field(default_factory=CallerTiming)
    #: per webhook request and socket handshake; a healthy server answers in milliseconds
    http_timeout_s: float = 10.0
    #: how long transcripts still pending at the end of the call may take
    transcribe_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.public_url.startswith(("http://", "https://")) or self.public_url.endswith("/"):
            raise ValueError("public_url must be http(s)://host[:port][/path] with no trailing slash")
        if not _ACCOUNT_SID.fullmatch(self.account_sid):
            raise ValueError("account_sid must be AC followed by 32 hex digits")
        if self.call_sid is not None and not _CALL_SID.fullmatch(self.call_sid):
            raise ValueError("call_sid must be CA followed by 32 hex digits")
        if min(self.max_duration_s, self.http_timeout_s, self.transcribe_timeout_s) <= 0:
            raise ValueError("durations must be positive")


async def run_simulated_call(
    options: SimulatedCallOptions,
    *,
    tts: TextToSpeech,
    stt: SpeechToText | None = None,
    session: aiohttp.ClientSession | None = None,
    on_event: Callable[[CallEvent], None] | None = None,
    prerendered: Mapping[str, bytes] | None = None,
) -> CallResult:
    """Place one call and return what it measured.

    Caller lines missing from ``prerendered`` are rendered with ``tts`` before the call starts.
    The server refusing the call is reported in the result (``end_reason="error"``), not
    raised; malformed server messages are counted, not raised.
    """
    audio = await prerender_script(options.script, tts, prerendered)
    bot_stt = stt if options.transcribe_bot else None
    if session is not None:
        return await _Call(options, audio, session, bot_stt, on_event).run()
    async with aiohttp.ClientSession() as own_session:
        return await _Call(options, audio, own_session, bot_stt, on_event).run()


async def run_simulated_stream(
    instruction: StreamInstruction,
    options: SimulatedCallOptions,
    *,
    tts: TextToSpeech,
    session: aiohttp.ClientSession,
    stop: asyncio.Event | None = None,
    on_event: Callable[[CallEvent], None] | None = None,
    prerendered: Mapping[str, bytes] | None = None,
) -> CallResult:
    """Play only the Media Stream of a call whose webhooks and status callbacks someone else sends.

    The Twilio emulator uses it for outbound calls: it has fetched the TwiML itself and owns the
    call's status callbacks, so none are posted here. ``options.call_sid`` must be the sid the
    server was told in the voice webhook. Setting ``stop`` ends the stream the way Twilio does on
    a REST redirect or hang-up: ``stop``, then close (``end_reason="ended_by_twilio"``).
    """
    if options.call_sid is None:
        raise ValueError("a stream of an existing call needs options.call_sid")
    audio = await prerender_script(options.script, tts, prerendered)
    call = _Call(options, audio, session, None, on_event, stop=stop, status_callbacks=False)
    return await call.run_stream(instruction)


def _sid(prefix: str, rng: random.Random) -> str:
    return f"{prefix}{rng.getrandbits(128):032x}"


@dataclass(slots=True, kw_only=True)
class _Utterance:
    started_at: float
    ended_at: float
    interrupted: bool
    latency_ms: float | None
    text: str | None = None


class _Call:
    """One call's lifecycle: webhook, media stream, status callbacks, report."""

    def __init__(
        self,
        options: SimulatedCallOptions,
        audio: Mapping[str, bytes],
        http: aiohttp.ClientSession,
        stt: SpeechToText | None,
        on_event: Callable[[CallEvent], None] | None,
        *,
        stop: asyncio.Event | None = None,
        status_callbacks: bool = True,
    ) -> None:
        rng = random.Random(options.seed)
        call_sid = options.call_sid or _sid("CA", rng)
        self._options = options
        self._audio = audio
        self._http = http
        self._stt = stt
        self._on_event = on_event
        self._stop = stop
        self._status_callbacks = status_callbacks
        self._identity = CallIdentity(
            public_url=options.public_url,
            auth_token=options.auth_token,
            call_sid=call_sid,
            account_sid=options.account_sid,
            from_number=options.from_number,
            to_number=options.to_number,
        )
        self._ids = StreamIds(stream_sid=_sid("MZ", rng), call_sid=call_sid, account_sid=options.account_sid)
        self._loop = asyncio.get_running_loop()
        self._start = self._ended = self._loop.time()
        self._runner: ScriptRunner | None = None
        self._stream: CallerStream | None = None
        self._transcriber: BotTranscriber | None = None
        self._utterances: list[_Utterance] = []
        self._barge_ins: list[BargeInRecord] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._status_sequence = 0
        self._status_errors = 0

    async def run(self) -> CallResult:
        try:
            instruction = await request_stream(self._http, self._identity, self._options.http_timeout_s)
        except CallSetupError as e:
            return self._finish("error", str(e))
        return await self.run_stream(instruction)

    async def run_stream(self, instruction: StreamInstruction) -> CallResult:
        """The call from the moment Twilio has the ``<Connect><Stream>``: media, then hang-up."""
        answered_at = self._loop.time()
        error: str | None = None
        async with contextlib.AsyncExitStack() as cleanup:
            try:
                reason = await self._converse(instruction, cleanup)
            except CallSetupError as e:
                reason, error = "error", str(e)
            await self._drain_tasks()
            if self._status_callbacks:
                duration_s = round(self._loop.time() - answered_at)
                await self._post_status("completed", self._next_status_sequence(), duration_s)
        return self._finish(reason, error)

    async def _converse(self, instruction: StreamInstruction, cleanup: contextlib.AsyncExitStack) -> EndReason:
        ws = await self._connect(instruction.url)
        try:
            if not await self._handshake(ws, instruction):
                return "server_hung_up"
            stream = self._open_stream(ws, cleanup)
            reason = await stream.run()
            if reason != "server_hung_up":
                await stream.hang_up()
            return reason
        finally:
            self._ended = self._loop.time()
            await ws.close()

    async def _connect(self, url: str) -> aiohttp.ClientWebSocketResponse:
        try:
            async with asyncio.timeout(self._options.http_timeout_s):
                return await self._http.ws_connect(
                    url,
                    headers={"X-Twilio-Signature": socket_signature(self._identity, url)},
                    compress=0,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=WS_CLOSE_TIMEOUT_S),
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise CallSetupError(f"media stream socket refused: {e!r}") from e

    async def _handshake(self, ws: aiohttp.ClientWebSocketResponse, instruction: StreamInstruction) -> bool:
        start = start_message(
            stream_sid=self._ids.stream_sid,
            call_sid=self._ids.call_sid,
            account_sid=self._ids.account_sid,
            custom_parameters=instruction.parameters,
        )
        try:
            await ws.send_str(connected_message())
            await ws.send_str(start)
        except ConnectionError:
            return False
        return True

    def _open_stream(self, ws: aiohttp.ClientWebSocketResponse, cleanup: contextlib.AsyncExitStack) -> CallerStream:
        """Start the call clock and everything that runs alongside the stream."""
        self._start = self._loop.time()
        runner = self._runner = ScriptRunner(self._options.script, self._audio, self._options.timing, start=self._start)
        recorder = None
        if self._options.output_dir is not None:
            self._options.output_dir.mkdir(parents=True, exist_ok=True)
            recorder = StereoRecorder(self._options.output_dir / f"{self._ids.call_sid}.wav")
            cleanup.callback(recorder.close)
        if self._stt is not None:
            self._transcriber = BotTranscriber(self._stt, self._ids.call_sid, self._on_transcript)
            cleanup.push_async_callback(self._transcriber.aclose)
        # Registered last so it runs first: tasks stop before what they use is closed.
        cleanup.push_async_callback(self._cancel_tasks)
        if self._transcriber is not None:
            self._spawn(self._transcriber.run())
        self._stream = CallerStream(
            ws,
            self._ids,
            runner,
            start=self._start,
            bot_done_gap_s=self._options.timing.bot_done_gap_ms / 1000,
            max_duration_s=self._options.max_duration_s,
            recorder=recorder,
            on_segment=functools.partial(self._on_segment, runner),
            emit=self._emit,
            stop=self._stop,
        )
        self._emit(CallStarted(call_sid=self._ids.call_sid, stream_sid=self._ids.stream_sid))
        if self._status_callbacks:
            self._spawn(self._post_status("in-progress", self._next_status_sequence()))
        return self._stream

    def _on_segment(self, runner: ScriptRunner, segment: BotSegment) -> None:
        utterance = _Utterance(
            started_at=segment.started_at,
            ended_at=segment.ended_at,
            interrupted=segment.interrupted,
            latency_ms=self._latency_ms(runner, segment),
        )
        self._utterances.append(utterance)
        if self._transcriber is None:
            self._emit_bot(utterance)
        else:
            self._transcriber.submit(len(self._utterances) - 1, segment.audio)

    def _on_transcript(self, index: int, text: str | None) -> None:
        utterance = self._utterances[index]
        utterance.text = text
        self._emit_bot(utterance)

    @staticmethod
    def _latency_ms(runner: ScriptRunner, segment: BotSegment) -> float | None:
        """The caller-heard latency, if the segment holds the start of a reply to a caller action."""
        for action in reversed(runner.actions):
            reply = action.reply_started_at
            if reply is not None and action.ended_at is not None:
                if segment.started_at <= reply <= segment.ended_at:
                    return (reply - action.ended_at) * 1000
        return None

    def _emit_bot(self, u: _Utterance) -> None:
        self._emit(
            BotSpoke(
                text=u.text,
                at_s=u.started_at - self._start,
                duration_ms=(u.ended_at - u.started_at) * 1000,
                latency_ms=u.latency_ms,
                interrupted=u.interrupted,
            )
        )

    def _emit(self, event: CallEvent) -> None:
        if event.kind == "barge_in":
            self._barge_ins.append(BargeInRecord(at_s=event.at_s, clear_after_ms=event.clear_after_ms))
        if self._on_event is not None:
            self._on_event(event)

    async def _drain_tasks(self) -> None:
        """Let pending transcripts (bounded) and the in-progress callback finish."""
        if self._transcriber is not None:
            self._transcriber.finish()
        try:
            async with asyncio.timeout(self._options.transcribe_timeout_s):
                await asyncio.gather(*self._tasks)
        except TimeoutError:
            _log.warning("bot transcripts timed out", extra={"call_sid": self._ids.call_sid})

    async def _post_status(self, status: str, sequence: int, duration_s: int | None = None) -> None:
        params = status_params(self._identity, status, sequence=sequence, duration_s=duration_s, now=datetime.now(UTC))
        try:
            code, _ = await post_signed(
                self._http, self._identity, "/twilio/status", params, self._options.http_timeout_s
            )
        except (aiohttp.ClientError, TimeoutError):
            code = 0
        if not 200 <= code < 300:
            self._status_errors += 1
            _log.warning(
                "status callback failed",
                extra={"call_sid": self._ids.call_sid, "call_status": status, "http_status": code},
            )

    def _next_status_sequence(self) -> int:
        self._status_sequence += 1
        return self._status_sequence - 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coro))

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finish(self, reason: EndReason, error: str | None) -> CallResult:
        result = self._result(reason, error)
        if result.report_path is not None:
            result.report_path.parent.mkdir(parents=True, exist_ok=True)
            result.write_json(result.report_path)
        _log.info(
            "simulated call ended",
            extra={"call_sid": self._ids.call_sid, "reason": reason, "error": error},
        )
        self._emit(CallEnded(reason=reason, at_s=self._ended - self._start, error=error))
        return result

    def _result(self, reason: EndReason, error: str | None) -> CallResult:
        out = self._options.output_dir
        utterances = tuple(
            BotUtterance(
                started_s=u.started_at - self._start,
                ended_s=u.ended_at - self._start,
                text=u.text,
                interrupted=u.interrupted,
            )
            for u in self._utterances
        )
        runner, stream = self._runner, self._stream
        greeting = None if runner is None else runner.greeting_started_at
        return CallResult(
            call_sid=self._ids.call_sid,
            stream_sid=None if stream is None else self._ids.stream_sid,
            end_reason=reason,
            error=error,
            duration_s=self._ended - self._start,
            greeting_ms=None if greeting is None else (greeting - self._start) * 1000,
            turns=() if runner is None else build_turns(runner.actions, utterances, self._start),
            barge_ins=tuple(self._barge_ins),
            bot_utterances=utterances,
            counts=_counts(stream, self._status_errors),
            wav_path=None if out is None or stream is None else out / f"{self._ids.call_sid}.wav",
            report_path=None if out is None else out / f"{self._ids.call_sid}.json",
        )


def _counts(stream: CallerStream | None, status_errors: int) -> CallCounts:
    if stream is None:
        return CallCounts(status_callback_errors=status_errors)
    c: StreamCounters = stream.counters
    playout: Playout = stream.playout
    return CallCounts(
        media_sent=c.media_sent,
        media_received=c.media_received,
        marks_received=c.marks_received,
        marks_echoed=c.marks_echoed,
        clears=c.clears,
        dtmf_sent=c.dtmf_sent,
        underruns=playout.underruns,
        max_lead_ms=playout.max_lead_ms,
        dropped_audio_ms=duration_ms(playout.dropped_bytes),
        protocol_errors=c.protocol_errors,
        status_callback_errors=status_errors,
        max_tick_lag_ms=c.max_tick_lag_ms,
    )
