"""ElevenLabs streaming text-to-speech over the multi-stream-input WebSocket (protocols.md §3.3).

One socket carries several synthesis contexts (turns of any call), so a small pool of sockets is
kept warm and shared: a turn pays no TLS and WebSocket handshake. Each socket has a reader task
that routes the vendor's messages by ``contextId`` to the waiting turn.

A turn initialises a context (``text:" "`` with the voice settings), sends the text, ``flush``es
it and, once the first audio has arrived, closes the context. The vendor sends ``isFinal`` only
for a closed context, not after a bare flush (verified live in bolna-ai/bolna#790); it finishes
text already flushed when the context closes (``CloseContext`` in the SDK's API definition); and
a close sent before synthesis has begun can swallow the turn (pipecat-ai/pipecat#4681), hence
closing at the first audio rather than with the flush. The ``ulaw_8000`` audio goes to Twilio
unchanged.

The wire format (``parse_server_message``) is pure; the SDK is not used because its realtime
helper is sync-only and forces ``wss`` (sdks-and-pipecat.md §3).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from runtime.audio import duration_ms
from runtime.render_cache import RenderCache
from runtime.speech import SpeechChunk, SpeechEngineError, TextToSpeech

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api.elevenlabs.io"
#: Flash v2.5 is ElevenLabs' lowest-latency model, the one meant for conversational agents.
DEFAULT_MODEL_ID = "eleven_flash_v2_5"
#: Several times the vendor's p95 first byte (300 ms, field-survey.md §4) plus network: past
#: this the vendor is stalled, and a retry or the local fallback is quicker than waiting on.
DEFAULT_FIRST_BYTE_TIMEOUT_S = 2.0
#: The vendor's cap on open contexts per socket (exceeding it closes the socket with 1008,
#: livekit/agents-js#1985). One of them is the socket's keep-alive context.
DEFAULT_MAX_CONTEXTS_PER_CONNECTION = 5
#: Greetings, prompts and fillers per tenant, as for the local voice (runtime.tts).
DEFAULT_CACHE_SIZE = 256
#: The vendor's maximum (protocols.md §3.2): a warm socket needs a keep-alive only every minute.
MAX_INACTIVITY_TIMEOUT_S = 180
DEFAULT_INACTIVITY_TIMEOUT_S = MAX_INACTIVITY_TIMEOUT_S
#: The vendor's defaults (RealtimeVoiceSettings), sent so a change of default cannot change the voice.
VOICE_SETTINGS = {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.0}
#: A context closed before its ``isFinal`` holds its slot until then, or at most this long (a
#: close racing the synthesis can leave a context without one, pipecat-ai/pipecat#4681).
CLOSE_GRACE_S = 5.0
#: Rounds of looking for a free context before a turn gives up: the slots of a new socket can
#: be taken by turns arriving while its waiters wake, and then the turn opens another.
RESERVE_ROUNDS = 3


# --- wire format ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Alignment:
    """Which characters the audio of one message speaks, in ms from the start of that audio."""

    chars: tuple[str, ...]
    start_ms: tuple[int, ...]
    duration_ms: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioMessage:
    context_id: str | None
    audio: bytes
    alignment: Alignment | None
    kind: Literal["audio"] = "audio"


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalMessage:
    context_id: str | None
    kind: Literal["final"] = "final"


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorMessage:
    context_id: str | None
    error: str
    message: str
    kind: Literal["error"] = "error"


ServerMessage = AudioMessage | FinalMessage | ErrorMessage


def parse_alignment(data: Any) -> Alignment | None:
    """``alignment``/``normalizedAlignment``; the duration key is ``charDurationsMs`` in the SDK
    and ``charsDurationsMs`` in the AsyncAPI docs (protocols.md §3.2), so both are read."""
    if not isinstance(data, dict):
        return None
    durations = data.get("charDurationsMs", data.get("charsDurationsMs"))
    try:
        return Alignment(
            chars=tuple(str(c) for c in data.get("chars") or ()),
            start_ms=tuple(int(t) for t in data.get("charStartTimesMs") or ()),
            duration_ms=tuple(int(t) for t in durations or ()),
        )
    except TypeError as e:
        raise ValueError("alignment is not lists of characters and times") from e


def said_by(alignment: Alignment | None, skipped_ms: float = 0.0) -> tuple[tuple[str, float], ...]:
    """Each character with the ms by which it has been said, from the audio after ``skipped_ms``
    (characters said within the skipped part are left out); empty without an alignment."""
    if alignment is None or not len(alignment.chars) == len(alignment.start_ms) == len(alignment.duration_ms):
        return ()
    ends = (
        start + length - skipped_ms for start, length in zip(alignment.start_ms, alignment.duration_ms, strict=True)
    )
    return tuple((char, end) for char, end in zip(alignment.chars, ends, strict=True) if end > 0)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """One server frame; raises ``ValueError`` for anything that is not a vendor message."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    context_id = data.get("contextId")
    if data.get("audio"):
        try:
            audio = base64.b64decode(data["audio"], validate=True)
        except (binascii.Error, TypeError) as e:
            raise ValueError("audio is not base64") from e
        return AudioMessage(context_id=context_id, audio=audio, alignment=parse_alignment(data.get("alignment")))
    if data.get("isFinal") is True:
        return FinalMessage(context_id=context_id)
    if "error" in data or "message" in data:
        return ErrorMessage(context_id=context_id, error=str(data.get("error", "")), message=str(data.get("message")))
    if "audio" in data:  # an empty audio chunk, sent by some models at a context's end
        return AudioMessage(context_id=context_id, audio=b"", alignment=None)
    raise ValueError("unknown message")


# --- one socket ----------------------------------------------------------------------------


class _Retryable(Exception):
    """A failure of the socket or the vendor that one more try on a fresh socket may cure."""


_Event = AudioMessage | FinalMessage | _Retryable


class _Connection:
    """One warm socket: routes server messages to open contexts and counts the slots in use."""

    def __init__(self, socket: ClientConnection, number: int) -> None:
        self._socket = socket
        self.number = number
        self.keepalive_id = f"keepalive-{uuid.uuid4().hex}"
        self._turns: dict[str, asyncio.Queue[_Event]] = {}
        self._closing: dict[str, asyncio.TimerHandle] = {}
        self.last_sent = time.monotonic()
        #: why the socket is unusable, once it is
        self.failure: str | None = None
        self._reader = asyncio.create_task(self._read(), name="elevenlabs-reader")

    @property
    def alive(self) -> bool:
        return self.failure is None

    @property
    def finished(self) -> bool:
        return self._reader.done()

    @property
    def contexts(self) -> int:
        """Contexts the vendor counts as open, apart from the keep-alive one."""
        return len(self._turns) + len(self._closing)

    def open_context(self) -> tuple[str, asyncio.Queue[_Event]]:
        # Unbounded: a context gets the audio of one flushed text, and a full queue would stall
        # the reader and with it every other context on the socket.
        queue: asyncio.Queue[_Event] = asyncio.Queue()
        context_id = uuid.uuid4().hex
        self._turns[context_id] = queue
        return context_id, queue

    async def send(self, message: dict[str, Any]) -> None:
        if self.failure is not None:
            raise _Retryable(self.failure)
        try:
            await self._socket.send(json.dumps(message))
        except ConnectionClosed as e:
            raise _Retryable("connection lost while sending") from e
        self.last_sent = time.monotonic()

    async def keep_alive(self) -> None:
        """Resets the vendor's inactivity timer (protocols.md §3.3)."""
        with contextlib.suppress(_Retryable):  # a lost socket is dropped from the pool anyway
            await self.send({"context_id": self.keepalive_id, "text": ""})

    def finish(self, context_id: str) -> None:
        """The context got its ``isFinal``: the vendor has closed it."""
        self._turns.pop(context_id, None)

    async def abandon(self, context_id: str, *, close_sent: bool) -> None:
        """The turn stopped early: close the context and drop its late messages until ``isFinal``."""
        if self._turns.pop(context_id, None) is None or not self.alive:
            return
        loop = asyncio.get_running_loop()
        self._closing[context_id] = loop.call_later(CLOSE_GRACE_S, self._closing.pop, context_id, None)
        if not close_sent:
            with contextlib.suppress(_Retryable):  # a lost socket has closed its contexts
                await self.send({"context_id": context_id, "close_context": True})

    def discard(self, reason: str) -> None:
        """Drop a socket that stopped answering; its turns retry elsewhere."""
        self._fail(reason)
        self._socket.transport.abort()

    async def aclose(self) -> None:
        self._fail("connection closed by the client")
        await self._socket.close()
        await self._reader

    async def _read(self) -> None:
        failure = "connection closed by the vendor"
        try:
            async for raw in self._socket:
                self._route(raw)
        except ConnectionClosed as e:
            failure = f"connection lost (code {e.rcvd.code if e.rcvd else 'none'})"
        self._fail(failure)

    def _route(self, raw: str | bytes) -> None:
        try:
            message = parse_server_message(raw)
        except ValueError:
            log.warning("malformed ElevenLabs message ignored", extra={"connection": self.number})
            return
        queue = self._turns.get(message.context_id or "")
        if isinstance(message, ErrorMessage):
            log.warning("ElevenLabs error", extra={"connection": self.number, "error": message.error})
            if queue is not None:
                queue.put_nowait(_Retryable(f"vendor error {message.error}"))
        elif queue is not None:
            queue.put_nowait(message)
        elif isinstance(message, FinalMessage) and message.context_id in self._closing:
            self._closing.pop(message.context_id).cancel()

    def _fail(self, failure: str) -> None:
        if self.failure is not None:
            return
        self.failure = failure
        for queue in self._turns.values():
            queue.put_nowait(_Retryable(failure))
        self._turns.clear()
        for timer in self._closing.values():
            timer.cancel()
        self._closing.clear()


class _Turn:
    """One context on a connection, from the text sent to its ``isFinal``."""

    def __init__(self, connection: _Connection, context_id: str, queue: asyncio.Queue[_Event]) -> None:
        self._connection = connection
        self._context_id = context_id
        self._queue = queue
        self._done = False
        self._close_sent = False

    async def next_audio(self, timeout_s: float) -> AudioMessage | None:
        """The next audio of the turn, or None at its end; a silent vendor is a stall."""
        while True:
            try:
                async with asyncio.timeout(timeout_s):
                    event = await self._queue.get()
            except TimeoutError as e:
                self._connection.discard("stalled")
                raise _Retryable(f"no audio within {timeout_s} s") from e
            if isinstance(event, _Retryable):
                raise event
            if isinstance(event, FinalMessage):
                self._done = True
                self._connection.finish(self._context_id)
                return None
            if event.audio:
                await self._close_once_started()
                return event

    async def end(self) -> None:
        if not self._done:
            await self._connection.abandon(self._context_id, close_sent=self._close_sent)

    async def _close_once_started(self) -> None:
        if not self._close_sent:
            self._close_sent = True
            with contextlib.suppress(_Retryable):  # the audio in hand still counts; the loss shows next
                await self._connection.send({"context_id": self._context_id, "close_context": True})


# --- the engine ----------------------------------------------------------------------------


class _Progress:
    """What one synthesis has given its consumer, across a retry."""

    def __init__(self) -> None:
        self.delivered = 0
        self._waiting_since: float | None = time.perf_counter()

    def take(self, message: AudioMessage, received: int) -> SpeechChunk | None:
        """The part of the message's audio (which follows ``received`` bytes of this attempt) not
        yet given, with its alignment; ``engine_ms`` is the wait for it if nothing came since the
        start or the retry."""
        skipped = max(0, self.delivered - received)
        fresh = message.audio[skipped:]
        if not fresh:
            return None
        now = time.perf_counter()
        engine_ms = 0.0 if self._waiting_since is None else (now - self._waiting_since) * 1000
        self._waiting_since = None
        self.delivered += len(fresh)
        return SpeechChunk(ulaw=fresh, engine_ms=engine_ms, said_by_ms=said_by(message.alignment, duration_ms(skipped)))

    def retrying(self) -> None:
        if self._waiting_since is None:
            self._waiting_since = time.perf_counter()


@dataclass(eq=False)
class _Opening:
    """A socket being opened, and how many turns wait for its slots."""

    task: asyncio.Task[_Connection]
    waiters: int = 0


class ElevenLabsTts(TextToSpeech):
    """ElevenLabs voices for every call, over a shared pool of warm sockets."""

    def __init__(
        self,
        *,
        api_key: str,
        voice_id: str,
        base_url: str = DEFAULT_BASE_URL,
        model_id: str = DEFAULT_MODEL_ID,
        first_byte_timeout_s: float = DEFAULT_FIRST_BYTE_TIMEOUT_S,
        max_contexts_per_connection: int = DEFAULT_MAX_CONTEXTS_PER_CONNECTION,
        cache_size: int = DEFAULT_CACHE_SIZE,
        inactivity_timeout_s: int = DEFAULT_INACTIVITY_TIMEOUT_S,
    ) -> None:
        if not api_key or not voice_id:
            raise ValueError("api_key and voice_id are required")
        if first_byte_timeout_s <= 0 or max_contexts_per_connection < 2:
            raise ValueError("need first_byte_timeout_s > 0 and max_contexts_per_connection >= 2")
        if not 1 <= inactivity_timeout_s <= MAX_INACTIVITY_TIMEOUT_S:
            raise ValueError(f"inactivity_timeout_s must be within 1..{MAX_INACTIVITY_TIMEOUT_S}")
        query = urlencode(
            {
                "model_id": model_id,
                "output_format": "ulaw_8000",
                "auto_mode": "true",  # whole sentences arrive: no chunk schedule to wait for
                "inactivity_timeout": inactivity_timeout_s,
            }
        )
        self._url = f"{base_url.rstrip('/')}/v1/text-to-speech/{voice_id}/multi-stream-input?{query}"
        self._headers = {"xi-api-key": api_key}
        self._timeout_s = first_byte_timeout_s
        self._turns_per_connection = max_contexts_per_connection - 1
        # A keep-alive every third of the timeout: even one sent a period late is in time.
        self._keepalive_s = inactivity_timeout_s / 3
        self._connections: list[_Connection] = []
        self._numbers = itertools.count(1)
        self._openings: list[_Opening] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._closed = False
        self._cache = RenderCache(self._render_uncached, size=cache_size, name="elevenlabs-render")

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Audio as the vendor streams it; ``engine_ms`` is the wait for the first chunk (and for
        the first after a retry). A retry after a dropped socket skips the audio already given."""
        text = text.strip()
        if not text:
            return
        progress = _Progress()
        for attempt in (1, 2):
            try:
                turn = await self._start_turn(text)
                received = 0
                try:
                    while (message := await turn.next_audio(self._timeout_s)) is not None:
                        if chunk := progress.take(message, received):
                            yield chunk
                        received += len(message.audio)
                    return
                finally:
                    await turn.end()
            except _Retryable as e:
                log.warning("ElevenLabs synthesis failed", extra={"reason": str(e), "attempt": attempt})
                if attempt == 2:
                    raise SpeechEngineError(f"ElevenLabs failed twice: {e}") from e
                progress.retrying()

    async def render(self, text: str) -> bytes:
        """The whole text, from the LRU cache; concurrent requests for one text share a synthesis."""
        return await self._cache.get(text)

    async def aclose(self) -> None:
        """Close every socket and stop the reader and keep-alive tasks."""
        self._closed = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        self._cache.cancel()
        openings = [opening.task for opening in self._openings]
        for opening in openings:
            opening.cancel()
        await asyncio.gather(*openings, return_exceptions=True)
        connections, self._connections = self._connections, []
        for connection in connections:
            await connection.aclose()

    async def _render_uncached(self, text: str) -> bytes:
        return b"".join([chunk.ulaw async for chunk in self.synthesize(text)])

    async def _start_turn(self, text: str) -> _Turn:
        connection, context_id, queue = await self._reserve()
        turn = _Turn(connection, context_id, queue)
        try:
            await connection.send({"text": " ", "context_id": context_id, "voice_settings": VOICE_SETTINGS})
            await connection.send({"text": text + " ", "context_id": context_id})
            await connection.send({"context_id": context_id, "flush": True})
        except BaseException:
            await turn.end()
            raise
        return turn

    async def _reserve(self) -> tuple[_Connection, str, asyncio.Queue[_Event]]:
        """A context on a warm socket with a free slot, or on one opened for it. Handshakes run
        concurrently, each shared by as many turns as the new socket has slots."""
        for _ in range(RESERVE_ROUNDS):
            if self._closed:
                raise SpeechEngineError("the ElevenLabs engine is closed")
            self._connections = [c for c in self._connections if not c.finished]
            free = (c for c in self._connections if c.alive and c.contexts < self._turns_per_connection)
            if (connection := next(free, None)) is not None:
                if self._maintenance is None:
                    self._maintenance = asyncio.create_task(self._maintain(), name="elevenlabs-keepalive")
                return connection, *connection.open_context()
            await self._new_socket()
        raise _Retryable("no free context on any socket")

    async def _new_socket(self) -> None:
        """Wait for a socket being opened that has a slot left for this turn, or open one."""
        opening = next((o for o in self._openings if o.waiters < self._turns_per_connection), None)
        if opening is None:
            opening = _Opening(asyncio.create_task(self._connect(), name="elevenlabs-connect"))
            self._openings.append(opening)
            opening.task.add_done_callback(functools.partial(self._opened, opening))
        opening.waiters += 1
        try:
            # Shielded: a turn given up must not cancel the handshake other turns wait for.
            await asyncio.shield(opening.task)
        finally:
            opening.waiters -= 1

    def _opened(self, opening: _Opening, task: asyncio.Task[_Connection]) -> None:
        self._openings.remove(opening)
        if not task.cancelled():
            task.exception()  # retrieved here, as every turn waiting for it may have given up

    async def _connect(self) -> _Connection:
        try:
            socket = await connect(
                self._url,
                additional_headers=self._headers,
                open_timeout=self._timeout_s,
                close_timeout=self._timeout_s,
                compression=None,  # base64 audio barely compresses; spare the CPU
            )
        except InvalidStatus as e:
            status = e.response.status_code
            if status in (401, 403):
                raise SpeechEngineError(f"ElevenLabs rejected the API key (HTTP {status})") from e
            raise _Retryable(f"handshake refused with HTTP {status}") from e
        except (OSError, TimeoutError, WebSocketException) as e:
            raise _Retryable(f"cannot connect: {e!r}") from e
        connection = _Connection(socket, next(self._numbers))
        self._connections.append(connection)
        log.info("ElevenLabs connection opened", extra={"connection": connection.number})
        await connection.send({"text": " ", "context_id": connection.keepalive_id, "voice_settings": VOICE_SETTINGS})
        return connection

    async def _maintain(self) -> None:
        """Keep-alives for quiet sockets; of the sockets idle for a whole period, one stays warm."""
        while True:
            await asyncio.sleep(self._keepalive_s)
            warm = False
            for connection in list(self._connections):
                if not connection.alive or time.monotonic() - connection.last_sent < self._keepalive_s:
                    continue
                if connection.contexts == 0 and warm:
                    self._connections.remove(connection)
                    log.info("idle ElevenLabs connection closed", extra={"connection": connection.number})
                    await connection.aclose()
                    continue
                warm = warm or connection.contexts == 0
                await connection.keep_alive()
