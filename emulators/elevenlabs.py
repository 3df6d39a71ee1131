"""A local ElevenLabs text-to-speech service (protocols.md §3), speaking with a local synthesiser
(Piper for the demo and tests, the scripted voice for load).

Emulated: the ``multi-stream-input`` and ``stream-input`` WebSockets and ``POST .../stream``;
the three ways to authenticate; ``text:" "`` initialisation, text accumulating per context,
``flush``, ``auto_mode`` (a complete sentence is spoken without a flush) and otherwise the
``chunk_length_schedule``; ``close_context`` (unflushed text is dropped, flushed text is still
spoken, then ``isFinal``: the SDK's ``CloseContext`` definition, and a bare flush gets no
``isFinal``, bolna-ai/bolna#790); keep-alives; ``close_socket``; the inactivity timeout; the cap
of five open contexts per socket, a context being created by any message naming it
(pipecat-ai/pipecat#4126); alignment with ``charDurationsMs``; ``ulaw_8000`` and ``pcm_*`` output.
Faults, drawn per socket or request: STALL, DISCONNECT, MALFORMED, RATE_LIMIT, AUTH, OVERLOADED.

Not emulated: mp3, opus and a-law output, SSML, pronunciation dictionaries, voice settings
(accepted, not applied), text normalisation, per-context inactivity timeouts, ``sync_alignment``
and the close-before-synthesis race of pipecat-ai/pipecat#4681.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from emulators.control import EmulatorControl, Fault, LatencyProfile, add_control_routes
from runtime.audio import SAMPLE_RATE, ulaw_to_pcm
from runtime.audio import resample as resample_pcm
from runtime.speech import TextToSpeech

log = logging.getLogger(__name__)

#: ElevenLabs' published first byte, median 140 ms (field-survey.md §4, "Orbit" row), p95 300 ms.
DEFAULT_LATENCY = {"first_byte": LatencyProfile(median_ms=140, p95_ms=300)}
#: Audio per message: the vendor streams chunks of roughly 100-200 ms.
CHUNK_MS = 160
#: Open contexts per socket before the vendor closes it with 1008 (livekit/agents-js#1985).
MAX_CONTEXTS = 5
#: protocols.md §3.2: the query parameter's default and maximum, in seconds.
DEFAULT_INACTIVITY_TIMEOUT_S = 20.0
MAX_INACTIVITY_TIMEOUT_S = 180.0
#: protocols.md §3.2: characters buffered before each generation when ``auto_mode`` is off.
DEFAULT_CHUNK_SCHEDULE = (120, 160, 250, 290)
#: The API's default output format, which the emulator cannot produce (mp3).
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PCM_FORMAT = re.compile(r"pcm_(8000|16000|22050|24000|44100|48000)")


# --- pure parts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """An ``output_format`` the emulator can produce from 8 kHz mu-law."""

    name: str
    sample_rate: int

    @property
    def is_ulaw(self) -> bool:
        return self.name == "ulaw_8000"

    @property
    def bytes_per_ms(self) -> float:
        return (1 if self.is_ulaw else 2) * self.sample_rate / 1000

    @property
    def content_type(self) -> str:
        return "audio/basic" if self.is_ulaw else "audio/pcm"

    def encode(self, ulaw: bytes) -> bytes:
        """Mu-law as is; PCM as 16-bit little-endian at the format's rate."""
        if self.is_ulaw:
            return ulaw
        return resample_pcm(ulaw_to_pcm(ulaw), SAMPLE_RATE, self.sample_rate).astype("<i2").tobytes()


def parse_output_format(name: str) -> OutputFormat:
    if name == "ulaw_8000":
        return OutputFormat(name, SAMPLE_RATE)
    if match := _PCM_FORMAT.fullmatch(name):
        return OutputFormat(name, int(match.group(1)))
    raise ValueError(f"output format {name!r} is not emulated")


def alignment(text: str, start_ms: float, end_ms: float, total_ms: float) -> dict[str, list[Any]]:
    """The characters of ``text``, spread evenly over its ``total_ms`` of audio, that start within
    one message's audio ``[start_ms, end_ms)``; times are relative to that message, as the vendor's."""
    per_char = total_ms / len(text) if text else 0.0
    starts = [(i, i * per_char) for i in range(len(text)) if start_ms <= i * per_char < end_ms]
    return {
        "chars": [text[i] for i, _ in starts],
        "charStartTimesMs": [round(t - start_ms) for _, t in starts],
        "charDurationsMs": [round(per_char)] * len(starts),
    }


def split_complete_sentences(buffer: str) -> tuple[str, str]:
    """(the complete sentences at the start of ``buffer``, the rest)."""
    ends = list(_SENTENCE_END.finditer(buffer))
    if not ends:
        return "", buffer
    return buffer[: ends[-1].end()], buffer[ends[-1].end() :]


def key_matches(offered: object, api_key: str) -> bool:
    """An ``xi-api-key`` value, or an ``authorization`` value with or without ``Bearer``."""
    return isinstance(offered, str) and offered.removeprefix("Bearer ").strip() == api_key


def _error(status: str, message: str, http_status: int, headers: dict[str, str] | None = None) -> web.Response:
    """The vendor's HTTP error body: ``{"detail": {"status": ..., "message": ...}}``."""
    return web.json_response({"detail": {"status": status, "message": message}}, status=http_status, headers=headers)


def _rejection(fault: Fault | None, offered_key: str | None, api_key: str) -> web.Response | None:
    """The HTTP answer refusing a handshake or request, if it is refused."""
    if fault is Fault.AUTH or (offered_key is not None and not key_matches(offered_key, api_key)):
        return _error("invalid_api_key", "Invalid API key", 401)
    if fault is Fault.RATE_LIMIT:
        return _error("too_many_concurrent_requests", "Too many concurrent requests", 429, {"retry-after": "1"})
    if fault is Fault.OVERLOADED:
        return _error("system_busy", "The system is experiencing heavy traffic", 503)
    return None


# --- the service ---------------------------------------------------------------------------


@dataclass
class _Service:
    api_key: str
    synthesiser: TextToSpeech
    control: EmulatorControl
    sessions: weakref.WeakSet[_Session] = field(default_factory=weakref.WeakSet)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def speak(self, text: str, output: OutputFormat) -> AsyncIterator[tuple[str, bytes]]:
        """Each sentence of ``text`` with its audio in ``output``'s encoding, as soon as it is made."""
        for sentence in _SENTENCE_END.split(text.strip()):
            ulaw = b"".join([chunk.ulaw async for chunk in self.synthesiser.synthesize(sentence)])
            yield sentence + " ", output.encode(ulaw)


SERVICE = web.AppKey("elevenlabs_service", _Service)


class _Context:
    """One synthesis context: buffered text, and a worker speaking the generated segments in order."""

    def __init__(self, session: _Session, context_id: str | None, schedule: tuple[int, ...]) -> None:
        self.session = session
        self.context_id = context_id
        self.schedule = schedule or DEFAULT_CHUNK_SCHEDULE
        self.buffer = ""
        self.closing = False
        self.spoke = False
        self._generations = 0
        self._segments: asyncio.Queue[str | None] = asyncio.Queue()
        self.worker = asyncio.create_task(self._speak(), name="elevenlabs-emulator-context")

    def add_text(self, text: str) -> None:
        self.buffer += text
        if self.session.auto_mode:
            complete, self.buffer = split_complete_sentences(self.buffer)
            self._generate(complete)
        elif len(self.buffer) >= self.schedule[min(self._generations, len(self.schedule) - 1)]:
            self.flush()

    def flush(self) -> None:
        text, self.buffer = self.buffer, ""
        self._generate(text)

    def close(self) -> None:
        """Unflushed text is dropped; what is already generating is still spoken, then ``isFinal``."""
        self.closing = True
        self.buffer = ""
        self._segments.put_nowait(None)

    def _generate(self, text: str) -> None:
        if text.strip():
            self._generations += 1
            self._segments.put_nowait(text)

    async def _speak(self) -> None:
        while (segment := await self._segments.get()) is not None:
            await self.session.speak(self, segment)
        await self.session.finished(self)


class _Session:
    """One client socket of either WebSocket route."""

    def __init__(
        self,
        service: _Service,
        request: web.Request,
        ws: web.WebSocketResponse,
        *,
        multi: bool,
        output: OutputFormat,
        auto_mode: bool,
        inactivity_s: float,
        fault: Fault | None,
        authed: bool,
    ) -> None:
        self.service = service
        self.stats = service.control.stats
        self.request = request
        self.ws = ws
        self.multi = multi
        self.output = output
        self.auto_mode = auto_mode
        self.inactivity_s = inactivity_s
        self.fault = fault
        self.authed = authed
        self.contexts: dict[str | None, _Context] = {}

    async def run(self) -> None:
        try:
            await self._receive()
        finally:
            workers = [context.worker for context in self.contexts.values()]
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError):  # the client left: the worker is cancelled next
            await self.ws.send_json(message)

    async def fail(self, error: str, message: str) -> None:
        """An error message then a close frame, as the vendor reports errors (protocols.md §3.2)."""
        self.stats["errors"] += 1
        log.info("emulated ElevenLabs closed a socket on an error", extra={"error": error})
        await self.send({"message": message, "error": error, "code": WSCloseCode.POLICY_VIOLATION})
        await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=error.encode())

    async def speak(self, context: _Context, text: str) -> None:
        """One generated segment: first-byte latency, then ``CHUNK_MS`` audio messages."""
        if not context.spoke:
            await self.service.control.delay("first_byte")
        if self.fault is Fault.STALL:
            await asyncio.get_running_loop().create_future()  # never answered; cancelled with the socket
        self.stats["characters"] += len(text)
        piece_bytes = 2 * round(self.output.bytes_per_ms * CHUNK_MS / 2)
        async for sentence, audio in self.service.speak(text, self.output):
            total_ms = len(audio) / self.output.bytes_per_ms
            for offset in range(0, len(audio), piece_bytes):
                start_ms = offset / self.output.bytes_per_ms
                aligned = alignment(sentence, start_ms, start_ms + CHUNK_MS, total_ms)
                await self._send_audio(context, audio[offset : offset + piece_bytes], aligned)

    async def finished(self, context: _Context) -> None:
        """The context is closed and spoken: ``isFinal``; a single-context socket then ends."""
        del self.contexts[context.context_id]
        self.stats["contexts_closed"] += 1
        await self.send({"isFinal": True, "contextId": context.context_id} if self.multi else {"isFinal": True})
        if not self.multi:
            await self.ws.close()

    async def _send_audio(self, context: _Context, audio: bytes, aligned: dict[str, list[Any]]) -> None:
        if self.fault is Fault.MALFORMED and not context.spoke:
            await self.ws.send_str("<html><body>502 Bad Gateway</body></html>")
        message: dict[str, Any] = {"audio": base64.b64encode(audio).decode(), "alignment": aligned}
        message["normalizedAlignment"] = aligned
        message.update({"contextId": context.context_id} if self.multi else {"isFinal": False})
        await self.send(message)
        context.spoke = True
        self.stats["audio_messages"] += 1
        if self.fault is Fault.DISCONNECT and self.request.transport is not None:
            # No close frame: the TCP connection ends after what was sent (an abort would lose it).
            self.request.transport.close()

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.inactivity_s
        while not self.ws.closed:
            try:
                message = await self.ws.receive(timeout=max(deadline - loop.time(), 0.001))
            except TimeoutError:
                timeout = f"Have not received a new text input within the timeout of {self.inactivity_s:g} seconds."
                await self.fail("input_timeout_exceeded", timeout)
                return
            if message.type is WSMsgType.PING:
                await self.ws.pong(message.data)  # pings keep TCP alive, not the text timeout
            elif message.type is WSMsgType.TEXT:
                deadline = loop.time() + self.inactivity_s
                if not await self._handle(message.data):
                    return
            elif message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return

    async def _handle(self, raw: str) -> bool:
        """One client message; False once the socket is to end."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:
            await self.fail("invalid_message", "Messages must be JSON objects")
            return False
        if not self.authed:
            offered = data.get("xi-api-key") or data.get("xi_api_key") or data.get("authorization")
            if not key_matches(offered, self.service.api_key):
                self.stats["auth_failures"] += 1
                await self.fail("invalid_api_key", "Invalid API key")
                return False
            self.authed = True
        if self.multi and data.get("close_socket"):
            await self._close_socket()
            return False
        context = self.contexts.get(data.get("context_id") if self.multi else None)
        if context is None:
            return await self._open(data)
        self._apply(context, data)
        return True

    async def _open(self, data: dict[str, Any]) -> bool:
        if len(self.contexts) >= MAX_CONTEXTS:
            await self.fail(
                "max_active_conversations",
                f"Maximum simultaneous contexts per WebSocket connection exceeded ({MAX_CONTEXTS}).",
            )
            return False
        schedule = tuple((data.get("generation_config") or {}).get("chunk_length_schedule") or ())
        context = _Context(self, data.get("context_id") if self.multi else None, schedule)
        self.contexts[context.context_id] = context
        self.stats["contexts"] += 1
        if data.get("text") == " ":
            data = {key: value for key, value in data.items() if key != "text"}
        else:
            self.stats["contexts_implicit"] += 1  # the vendor creates one on any message naming it
        self._apply(context, data)
        return True

    def _apply(self, context: _Context, data: dict[str, Any]) -> None:
        if context.closing:
            return
        text = data.get("text")
        if text == "":
            if self.multi:
                self.stats["keepalives"] += 1
            else:  # the end of a single-context stream: speak the rest, then isFinal and close
                context.flush()
                context.close()
                return
        elif isinstance(text, str):
            context.add_text(text)
        if data.get("flush"):
            self.stats["flushes"] += 1
            context.flush()
        if data.get("close_context"):
            self.stats["close_context"] += 1
            context.close()

    async def _close_socket(self) -> None:
        """``close_socket``: every context finishes what was flushed, then the socket closes."""
        for context in list(self.contexts.values()):
            if not context.closing:
                context.close()
        await asyncio.gather(*(context.worker for context in list(self.contexts.values())))
        await self.ws.close()


# --- handlers ------------------------------------------------------------------------------


async def _websocket(request: web.Request, *, multi: bool) -> web.StreamResponse:
    service = request.app[SERVICE]
    stats = service.control.stats
    stats["handshakes"] += 1
    fault = service.control.faults.next_fault()
    offered = request.headers.get("xi-api-key") or request.query.get("authorization")
    rejection = _rejection(fault, offered, service.api_key)
    if rejection is not None:
        stats["rejected"] += 1
        return rejection
    try:
        output = parse_output_format(request.query.get("output_format", DEFAULT_OUTPUT_FORMAT))
        inactivity_s = float(request.query.get("inactivity_timeout", DEFAULT_INACTIVITY_TIMEOUT_S))
    except ValueError as e:
        return _error("invalid_parameters", str(e), 422)
    ws = web.WebSocketResponse(autoping=False)
    await ws.prepare(request)
    stats["connections"] += 1
    session = _Session(
        service,
        request,
        ws,
        multi=multi,
        output=output,
        auto_mode=request.query.get("auto_mode", "false").lower() == "true",
        inactivity_s=min(max(inactivity_s, 0.001), MAX_INACTIVITY_TIMEOUT_S),
        fault=fault,
        authed=offered is not None,
    )
    service.sessions.add(session)
    await session.run()
    return ws


async def _multi_stream_input(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, multi=True)


async def _stream_input(request: web.Request) -> web.StreamResponse:
    return await _websocket(request, multi=False)


async def _http_stream(request: web.Request) -> web.StreamResponse:
    """``POST /v1/text-to-speech/{voice_id}/stream``: the audio as a chunked body."""
    service = request.app[SERVICE]
    service.control.stats["http_requests"] += 1
    fault = service.control.faults.next_fault()
    rejection = _rejection(fault, request.headers.get("xi-api-key", ""), service.api_key)
    if rejection is not None:
        return rejection
    try:
        output = parse_output_format(request.query.get("output_format", DEFAULT_OUTPUT_FORMAT))
        text = (await request.json())["text"]
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
    except (ValueError, KeyError, TypeError) as e:
        return _error("invalid_parameters", str(e), 422)
    if fault is Fault.MALFORMED:
        return web.Response(status=500, text="<html><body>Internal Server Error</body></html>")
    response = web.StreamResponse(headers={"Content-Type": output.content_type})
    await response.prepare(request)
    await service.control.delay("first_byte")
    if fault is Fault.STALL:
        await service.stopping.wait()
        return response
    piece_bytes = 2 * round(output.bytes_per_ms * CHUNK_MS / 2)
    async for _, audio in service.speak(text, output):
        for offset in range(0, len(audio), piece_bytes):
            await response.write(audio[offset : offset + piece_bytes])
            if fault is Fault.DISCONNECT and request.transport is not None:
                request.transport.close()
                return response
    await response.write_eof()
    return response


async def _shutdown(app: web.Application) -> None:
    service = app[SERVICE]
    service.stopping.set()
    for session in list(service.sessions):
        await session.ws.close(code=WSCloseCode.GOING_AWAY)


def build_app(*, api_key: str, synthesiser: TextToSpeech, control: EmulatorControl | None = None) -> web.Application:
    """The emulator; ``control`` defaults to the vendor's published first-byte latency."""
    control = control or EmulatorControl("elevenlabs", dict(DEFAULT_LATENCY))
    app = web.Application()
    app[SERVICE] = _Service(api_key=api_key, synthesiser=synthesiser, control=control)
    app.router.add_get("/v1/text-to-speech/{voice_id}/multi-stream-input", _multi_stream_input)
    app.router.add_get("/v1/text-to-speech/{voice_id}/stream-input", _stream_input)
    app.router.add_post("/v1/text-to-speech/{voice_id}/stream", _http_stream)
    add_control_routes(app, control)
    app.on_shutdown.append(_shutdown)
    return app
