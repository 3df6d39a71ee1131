"""Deepgram live speech-to-text over ``/v1/listen`` (protocols.md §2).

Three layers, each testable alone:

- ``parse_message``: Deepgram's JSON text frames to frozen events (sans-IO).
- ``UtteranceTracker``: which final results belong to which of the caller's turns (sans-IO).
  Deepgram's results are ordered and tile the audio timeline (``start``/``duration`` in seconds
  of audio received on the connection), so every result is placed by *where its audio lies*:
  a turn ends at a cut (the audio position of its ``Finalize``), results whose audio lies before
  the cut belong to it, later ones to the next turn. Deepgram does not answer a ``Finalize`` when
  it has nothing buffered (docs: /docs/finalize), so completion is judged by position, never by
  counting answers.
- ``DeepgramSttStream``: one call's socket. ``push_audio`` only queues; a sender task sends
  audio and control frames in order (a ``Finalize`` must not overtake the audio before it), a
  reader task feeds the tracker and watches for a silent (stalled) service.

A connection lost mid-turn costs that turn (``finish_utterance`` raises, so the fallback
adapter transcribes it locally from its own copy of the audio) and one reconnect; a failed
reconnect fails the stream for the rest of the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
import weakref
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from runtime.audio import SAMPLE_RATE, Pcm, pcm_to_ulaw
from runtime.speech import SpeechEngineError, SpeechToText, SttStream, Transcript

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "wss://api.deepgram.com"
#: Deepgram asks for a KeepAlive every 3-5 s when no audio flows (docs: /docs/audio-keep-alive);
#: 3.5 s leaves margin for a busy event loop before its 10 s NET-0001 close.
KEEPALIVE_AFTER_S = 3.5
#: 5 s of 20 ms frames: a connect (``connect_timeout_s``) or a reconnect loses no audio.
OUTBOX_FRAMES = 250
#: Deepgram reports times to about 10 ms, and a cut lies inside the caller's pause, so a few
#: frames either side of it carry no words.
POSITION_TOLERANCE_S = 0.05
#: A 429's Retry-After is honoured up to this: a caller will not wait longer for a turn.
MAX_RETRY_AFTER_S = 2.0
#: Waiting for the service's close after CloseStream; it flushes within a round trip.
CLOSE_TIMEOUT_S = 1.0
#: Handshake statuses worth one retry: rate limiting and the service's own failures.
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# --- parsing (sans-IO) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Results:
    """A transcript of the audio span [start, start + duration), interim or final."""

    start: float
    duration: float
    is_final: bool
    speech_final: bool
    from_finalize: bool
    transcript: str
    confidence: float
    kind: Literal["results"] = "results"

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True, slots=True, kw_only=True)
class UtteranceEnd:
    """No word for ``utterance_end_ms`` after ``last_word_end``."""

    last_word_end: float
    kind: Literal["utterance_end"] = "utterance_end"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted:
    timestamp: float
    kind: Literal["speech_started"] = "speech_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class Metadata:
    """Sent once, after CloseStream."""

    request_id: str
    duration: float
    kind: Literal["metadata"] = "metadata"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerError:
    """Deepgram's own ``Error`` frame (for example a control message it could not parse)."""

    variant: str
    description: str
    kind: Literal["server_error"] = "server_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Unrecognised:
    """Anything else; ``reason`` never quotes the frame, which may hold caller words."""

    reason: str
    kind: Literal["unrecognised"] = "unrecognised"


DeepgramEvent = Results | UtteranceEnd | SpeechStarted | Metadata | ServerError | Unrecognised


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} is not a number")
    return float(value)


def _flag(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise TypeError(f"{key} is not a boolean")
    return value


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _parse_results(data: Mapping[str, Any]) -> Results:
    alternatives = data["channel"]["alternatives"]
    best: Mapping[str, Any] = alternatives[0] if alternatives else {}
    return Results(
        start=_number(data, "start"),
        duration=_number(data, "duration"),
        is_final=_flag(data, "is_final"),
        speech_final=_flag(data, "speech_final"),
        from_finalize=_flag(data, "from_finalize"),
        transcript=_text(best, "transcript").strip(),
        confidence=_number(best, "confidence") if "confidence" in best else 0.0,
    )


def _parse_metadata(data: Mapping[str, Any]) -> Metadata:
    return Metadata(request_id=_text(data, "request_id"), duration=_number(data, "duration"))


def _parse_error(data: Mapping[str, Any]) -> ServerError:
    return ServerError(variant=_text(data, "variant"), description=_text(data, "description"))


_PARSERS: dict[str, Any] = {
    "Results": _parse_results,
    "UtteranceEnd": lambda data: UtteranceEnd(last_word_end=_number(data, "last_word_end")),
    "SpeechStarted": lambda data: SpeechStarted(timestamp=_number(data, "timestamp")),
    "Metadata": _parse_metadata,
    "Error": _parse_error,
}


def parse_message(text: str) -> DeepgramEvent:
    """One server text frame as an event; malformed input is an ``Unrecognised``, never raised."""
    try:
        data = json.loads(text)
    except ValueError:
        return Unrecognised(reason="not JSON")
    if not isinstance(data, dict):
        return Unrecognised(reason="not a JSON object")
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        return Unrecognised(reason="unknown message type")
    try:
        event: DeepgramEvent = parser(data)
    except (KeyError, IndexError, TypeError) as e:
        return Unrecognised(reason=f"bad {kind}: {e!r}")
    return event


# --- which results belong to which turn (sans-IO) ------------------------------------------


@dataclass(slots=True)
class ClosedUtterance:
    """A turn the caller finished: complete once Deepgram has finalized the audio up to ``cut``."""

    cut: float
    finals: list[str]
    speculative: bool
    done: bool = False
    #: the connection died before Deepgram finalized the turn: its words are incomplete
    lost: bool = False

    @property
    def text(self) -> str:
        return " ".join(self.finals)


class UtteranceTracker:
    """Places Deepgram's results on the caller's turns by audio position.

    Positions are seconds of audio queued for Deepgram since the stream opened; the caller maps
    a connection's own times onto them with that connection's offset.
    """

    def __init__(self) -> None:
        self._finals: list[str] = []
        #: the local VAD heard speech in this turn (a turn that was never heard cannot be lost)
        self._active = False
        self._lost = False
        #: position of the last local speech signal (start or resume)
        self._mark = 0.0
        #: Deepgram has finalized everything up to here and heard no speech since (None: it has)
        self._settled_at: float | None = 0.0
        #: a Finalize sent since the last local speech signal, a ready-made cut
        self._finalize_at: float | None = None
        self._speculative = False
        self._closing: list[ClosedUtterance] = []
        #: results whose audio lies before this belong to a turn already returned
        self._horizon = 0.0
        #: final words that arrived after their turn was returned (dropped)
        self.late_finals = 0

    @property
    def settled(self) -> bool:
        """Deepgram has finalized everything heard in this turn."""
        return self._settled_at is not None and self._settled_at >= self._mark - POSITION_TOLERANCE_S

    def needs_finalize(self) -> bool:
        return not self.settled and self._finalize_at is None

    def speech(self, position: float) -> None:
        """The local VAD heard the caller start or go on: anything sent before is not the end."""
        self._active = True
        self._mark = position
        self._finalize_at = None
        self._speculative = False

    def finalize_sent(self, position: float, *, at_pause: bool) -> None:
        self._finalize_at = position
        self._speculative = self._speculative or at_pause

    def close(self, position: float) -> ClosedUtterance:
        """The turn is over; later results go to the next turn unless their audio lies before the cut."""
        cut = self._finalize_at if self._finalize_at is not None else position
        closed = ClosedUtterance(
            cut=cut, finals=self._finals, speculative=self._speculative, done=self.settled, lost=self._lost
        )
        self._reset()
        if closed.done:
            self._horizon = max(self._horizon, cut)
        else:
            self._closing.append(closed)
            self._settled_at = cut
        return closed

    def abandon(self, closed: ClosedUtterance) -> None:
        """Stop waiting for ``closed``; its late results are dropped rather than misplaced."""
        if closed in self._closing:
            self._closing.remove(closed)
        self._horizon = max(self._horizon, closed.cut)

    def discard(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._finals = []
        self._active = False
        self._lost = False
        self._finalize_at = None
        self._speculative = False

    def on_results(self, results: Results, offset: float) -> None:
        start = offset + results.start
        end = start + results.duration
        middle = start + results.duration / 2
        if middle < self._horizon:
            self.late_finals += results.is_final and bool(results.transcript)
            return
        owner = next((closed for closed in self._closing if middle < closed.cut), None)
        if results.is_final:
            finals = owner.finals if owner is not None else self._finals
            if results.transcript:
                finals.append(results.transcript)
            self._complete(end)
        if owner is None:
            self._update_settled(results, end)

    def _update_settled(self, results: Results, end: float) -> None:
        if results.is_final and (results.speech_final or results.from_finalize):
            self._settled_at = end
        elif results.transcript:
            self._settled_at = None

    def on_utterance_end(self, processed_to: float) -> None:
        """Deepgram heard no word between the last one and ``processed_to``."""
        self._complete(processed_to)
        if not self._closing:  # those left end after ``processed_to``: it says nothing of this turn
            settled_at = self._settled_at
            self._settled_at = processed_to if settled_at is None else max(settled_at, processed_to)

    def _complete(self, processed_to: float) -> None:
        for closed in [c for c in self._closing if processed_to >= c.cut - POSITION_TOLERANCE_S]:
            closed.done = True
            self.abandon(closed)

    def connection_lost(self, position: float) -> None:
        """Audio sent on a dead connection will never be finalized."""
        self._lost = self._lost or (self._active and not self.settled)
        for closed in list(self._closing):
            closed.lost = closed.done = True
            self.abandon(closed)
        self._finalize_at = None
        self._settled_at = position


# --- the client ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Audio:
    position: float  # stream position of the frame's first sample
    ulaw: bytes


_KEEPALIVE = json.dumps({"type": "KeepAlive"})
_FINALIZE = json.dumps({"type": "Finalize"})
_CLOSE_STREAM = json.dumps({"type": "CloseStream"})


class _Outbox:
    """What the sender sends, in order. Bounded in audio frames; control frames always fit."""

    def __init__(self, max_frames: int) -> None:
        self._items: deque[_Audio | str] = deque()
        self._frames = 0
        self._max_frames = max_frames
        self._ready = asyncio.Event()

    def put_audio(self, audio: _Audio) -> bool:
        """False (and the frame dropped) when full: the newest audio goes, the queue stays ordered."""
        if self._frames >= self._max_frames:
            return False
        self._frames += 1
        self._put(audio)
        return True

    def put_control(self, message: str) -> None:
        self._put(message)

    def _put(self, item: _Audio | str) -> None:
        self._items.append(item)
        self._ready.set()

    async def get(self, idle_s: float) -> _Audio | str | None:
        """The next item, or None after ``idle_s`` with nothing to send."""
        if not self._items:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(idle_s):
                    await self._ready.wait()
            if not self._items:
                return None
        item = self._items.popleft()
        self._frames -= isinstance(item, _Audio)
        return item

    def clear(self) -> None:
        self._items.clear()
        self._frames = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Options:
    api_key: str
    url: str
    stall_timeout_s: float
    connect_timeout_s: float
    finalize_timeout_s: float
    utterance_end_s: float
    reconnect_backoff_s: float


class _ConnectFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


def _retry_after(error: InvalidStatus) -> float:
    try:
        return min(float(error.response.headers.get("Retry-After", "0")), MAX_RETRY_AFTER_S)
    except ValueError:
        return 0.0


async def _open(options: _Options) -> ClientConnection:
    """One handshake; failures sorted into worth-retrying or not (protocols.md §2 auth)."""
    try:
        return await connect(
            options.url,
            additional_headers={"Authorization": f"Token {options.api_key}"},
            open_timeout=options.connect_timeout_s,
            # Audio does not compress, and the CPU is better spent on the call.
            compression=None,
        )
    except InvalidStatus as e:
        status = e.response.status_code
        raise _ConnectFailed(
            f"Deepgram refused the stream (HTTP {status})",
            retryable=status in _RETRYABLE_STATUSES,
            retry_after_s=_retry_after(e),
        ) from e
    except (OSError, TimeoutError, InvalidHandshake) as e:
        raise _ConnectFailed(f"cannot reach Deepgram ({type(e).__name__})", retryable=True) from e


class DeepgramSttStream(SttStream):
    """One call's live Deepgram stream. Create it on the event loop: it connects at once."""

    def __init__(self, options: _Options, call_sid: str) -> None:
        self._options = options
        self._call_sid = call_sid
        self._loop = asyncio.get_running_loop()
        self._tracker = UtteranceTracker()
        self._outbox = _Outbox(OUTBOX_FRAMES)
        self._changed = asyncio.Event()
        self._position = 0.0  # seconds of audio queued since the stream opened
        self._offset = 0.0  # stream position of the current connection's time 0
        self._unanswered_since: float | None = None
        self._unanswered_audio_s = 0.0
        self._connected = False
        self._closing = False
        self._failure: SpeechEngineError | None = None
        #: connections re-opened after a stall or a drop
        self.reconnects = 0
        #: audio frames dropped because the outbox was full
        self.dropped_frames = 0
        #: server frames that could not be parsed (skipped)
        self.unrecognised_messages = 0
        #: turns returned without Deepgram's final answer (after ``finalize_timeout_s``)
        self.finalize_timeouts = 0
        self._task = asyncio.create_task(self._run(), name=f"deepgram-{call_sid}")

    @property
    def failed(self) -> bool:
        """The stream gave up: every later turn raises ``SpeechEngineError``."""
        return self._failure is not None

    @property
    def late_finals(self) -> int:
        """Final results that arrived after their turn was returned (dropped)."""
        return self._tracker.late_finals

    # --- the SttStream interface ----------------------------------------------------------

    def push_audio(self, pcm: Pcm) -> None:
        if self.failed or self._closing:
            return
        # Twilio's mu-law decoded to PCM re-encodes to the same bytes: no loss, no resampling.
        if self._outbox.put_audio(_Audio(self._position, pcm_to_ulaw(pcm))):
            self._position += pcm.size / SAMPLE_RATE
        else:
            self._on_dropped_frame()

    def speech_started(self) -> None:
        self._tracker.speech(self._position)

    def speech_paused(self) -> None:
        if not self.failed and not self._tracker.settled:
            self._send_finalize(at_pause=True)

    def speech_resumed(self) -> None:
        self._tracker.speech(self._position)

    async def finish_utterance(self) -> Transcript:
        started = self._loop.time()
        if not self.failed and self._tracker.needs_finalize():
            self._send_finalize(at_pause=False)
        closed = self._tracker.close(self._position)
        if not closed.done and not self.failed:
            await self._wait_for(closed)
        if self._failure is not None:
            raise SpeechEngineError(f"the Deepgram stream failed: {self._failure}") from self._failure
        if closed.lost:
            raise SpeechEngineError("the Deepgram connection was lost during the turn")
        return Transcript(
            text=closed.text, engine_ms=(self._loop.time() - started) * 1000, speculative=closed.speculative
        )

    def discard_utterance(self) -> None:
        self._tracker.discard()

    async def aclose(self) -> None:
        """Flush with CloseStream and close (bounded); the stream's task is gone afterwards."""
        if self._closing:
            return
        self._closing = True
        if self._connected:
            self._outbox.put_control(_CLOSE_STREAM)
            await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT_S)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._outbox.clear()
        self._changed.set()

    # --- turn bookkeeping ------------------------------------------------------------------

    def _send_finalize(self, *, at_pause: bool) -> None:
        self._outbox.put_control(_FINALIZE)
        self._tracker.finalize_sent(self._position, at_pause=at_pause)

    async def _wait_for(self, closed: ClosedUtterance) -> None:
        try:
            async with asyncio.timeout(self._options.finalize_timeout_s):
                while not (closed.done or self.failed or self._closing):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            self.finalize_timeouts += 1
            self._tracker.abandon(closed)
            logger.warning(
                "no final transcript from Deepgram in time, returning what it sent",
                extra={"call_sid": self._call_sid, "timeout_s": self._options.finalize_timeout_s},
            )

    def _on_dropped_frame(self) -> None:
        if self.dropped_frames == 0:
            logger.warning(
                "Deepgram outbox full, dropping audio", extra={"call_sid": self._call_sid, "frames": OUTBOX_FRAMES}
            )
        self.dropped_frames += 1

    def _on_event(self, event: DeepgramEvent) -> None:
        if isinstance(event, Results):
            self._tracker.on_results(event, self._offset)
        elif isinstance(event, UtteranceEnd):
            self._tracker.on_utterance_end(self._offset + event.last_word_end + self._options.utterance_end_s)
        elif isinstance(event, ServerError):
            logger.warning("Deepgram reported an error", extra={"call_sid": self._call_sid, "variant": event.variant})
        elif isinstance(event, Unrecognised):
            self.unrecognised_messages += 1
            logger.warning(
                "unrecognised Deepgram message skipped", extra={"call_sid": self._call_sid, "reason": event.reason}
            )
        self._changed.set()

    # --- connection lifecycle --------------------------------------------------------------

    async def _run(self) -> None:
        """Connect; on a stall or a drop reconnect once; a failed (re)connect fails the stream."""
        try:
            ws = await self._connect(retries=1)
            while True:
                reason = await self._serve(ws)
                if self._closing:
                    return
                self.reconnects += 1
                self._tracker.connection_lost(self._position)
                self._changed.set()
                logger.warning(
                    "Deepgram connection lost, reconnecting", extra={"call_sid": self._call_sid, "reason": reason}
                )
                await asyncio.sleep(self._options.reconnect_backoff_s)
                ws = await self._connect(retries=0)
        except Exception as e:  # the stream's last line: a failure of any kind ends in the fallback
            self._fail(e)

    async def _connect(self, *, retries: int) -> ClientConnection:
        while True:
            try:
                return await _open(self._options)
            except _ConnectFailed as e:
                if not e.retryable or retries == 0:
                    raise
                retries -= 1
                logger.warning("Deepgram connect failed, retrying", extra={"call_sid": self._call_sid, "error": str(e)})
                await asyncio.sleep(max(self._options.reconnect_backoff_s, e.retry_after_s))

    def _fail(self, error: Exception) -> None:
        failure = SpeechEngineError(str(error))
        failure.__cause__ = error
        self._failure = failure
        self._outbox.clear()
        self._changed.set()
        logger.error("Deepgram stream failed", extra={"call_sid": self._call_sid, "error": str(error)})

    async def _serve(self, ws: ClientConnection) -> str:
        """Run one connection until it ends; returns why it ended."""
        self._connected = True
        self._unanswered_since, self._unanswered_audio_s = None, 0.0
        offset_set = asyncio.Event()
        tasks = {
            asyncio.create_task(self._send_loop(ws, offset_set), name="deepgram-send"),
            asyncio.create_task(self._read_loop(ws), name="deepgram-read"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            self._connected = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # No close handshake: the peer is gone, stalled, or has already closed.
            ws.transport.abort()

    async def _send_loop(self, ws: ClientConnection, offset_set: asyncio.Event) -> str:
        try:
            while True:
                item = await self._outbox.get(KEEPALIVE_AFTER_S)
                if item is None:
                    await ws.send(_KEEPALIVE)
                elif isinstance(item, str):
                    await ws.send(item)
                else:
                    if not offset_set.is_set():
                        self._offset = item.position
                        offset_set.set()
                    await ws.send(item.ulaw)
                    self._audio_sent(len(item.ulaw) / SAMPLE_RATE)
        except ConnectionClosed as e:
            return f"send failed: {e.rcvd.code if e.rcvd else 'no close frame'}"

    def _audio_sent(self, seconds: float) -> None:
        if self._unanswered_since is None:
            self._unanswered_since = self._loop.time()
        self._unanswered_audio_s += seconds

    def _stalled(self) -> bool:
        """Audio has been flowing for ``stall_timeout_s`` (of both audio and wall time) unanswered."""
        since = self._unanswered_since
        timeout = self._options.stall_timeout_s
        return since is not None and self._unanswered_audio_s >= timeout and self._loop.time() - since >= timeout

    async def _read_loop(self, ws: ClientConnection) -> str:
        check_every = self._options.stall_timeout_s / 4
        while True:
            try:
                async with asyncio.timeout(check_every):
                    message = await ws.recv()
            except TimeoutError:
                if self._stalled():
                    return "stall"
                continue
            except ConnectionClosed as e:
                return f"closed: {e.rcvd.code if e.rcvd else 'no close frame'}"
            self._unanswered_since, self._unanswered_audio_s = None, 0.0
            text = message if isinstance(message, str) else ""
            self._on_event(parse_message(text) if text else Unrecognised(reason="binary frame"))


class DeepgramStt(SpeechToText):
    """Deepgram's live recogniser; every call gets its own socket."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        # Deepgram's current general model; nova-3 is also the one priced for phone audio.
        model: str = "nova-3",
        # Deepgram's recommended value for conversational turn-taking (docs: endpointing).
        endpointing_ms: int = 300,
        # The documented example; UtteranceEnd still ends turns in noise where speech_final never fires.
        utterance_end_ms: int = 1000,
        # Deepgram answers every second or so while audio flows; 5 s of silence is a dead service.
        stall_timeout_s: float = 5.0,
        # A call's greeting covers a few seconds; longer and the local engine should take over.
        connect_timeout_s: float = 5.0,
        # Deepgram answers a Finalize in ~50-150 ms; past 1.5 s the caller already hears dead air.
        finalize_timeout_s: float = 1.5,
        # Long enough for a rate limiter or a restarting edge, short against a caller's patience.
        reconnect_backoff_s: float = 0.5,
    ) -> None:
        if not api_key:
            raise ValueError("a Deepgram API key is required")
        if min(stall_timeout_s, connect_timeout_s, finalize_timeout_s) <= 0 or reconnect_backoff_s < 0:
            raise ValueError("timeouts must be > 0 and reconnect_backoff_s >= 0")
        if endpointing_ms < 0 or utterance_end_ms <= 0:
            raise ValueError("endpointing_ms must be >= 0 and utterance_end_ms > 0")
        self._options = _Options(
            api_key=api_key,
            url=listen_url(base_url, model=model, endpointing_ms=endpointing_ms, utterance_end_ms=utterance_end_ms),
            stall_timeout_s=stall_timeout_s,
            connect_timeout_s=connect_timeout_s,
            finalize_timeout_s=finalize_timeout_s,
            utterance_end_s=utterance_end_ms / 1000,
            reconnect_backoff_s=reconnect_backoff_s,
        )
        self._streams: weakref.WeakSet[DeepgramSttStream] = weakref.WeakSet()

    def open_stream(self, call_sid: str) -> DeepgramSttStream:
        """Must be called on the event loop: the stream starts connecting at once."""
        stream = DeepgramSttStream(self._options, call_sid)
        self._streams.add(stream)
        return stream

    async def aclose(self) -> None:
        """Close the streams calls left open (at server shutdown)."""
        for stream in list(self._streams):
            await stream.aclose()


def listen_url(base_url: str, *, model: str, endpointing_ms: int, utterance_end_ms: int) -> str:
    """The ``/v1/listen`` URL for Twilio audio: 8 kHz mu-law, interim results, VAD events."""
    query = {
        "model": model,
        "encoding": "mulaw",
        "sample_rate": str(SAMPLE_RATE),
        "channels": "1",
        "interim_results": "true",
        "endpointing": str(endpointing_ms) if endpointing_ms else "false",
        "utterance_end_ms": str(utterance_end_ms),
        "vad_events": "true",
        "smart_format": "true",
    }
    return f"{base_url.rstrip('/')}/v1/listen?{urllib.parse.urlencode(query)}"
