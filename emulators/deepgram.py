"""Deepgram live speech-to-text emulator: ``/v1/listen`` over a WebSocket (protocols.md §2, §9).

Speech is found with the runtime's Silero VAD and the words come from a pluggable
``Recogniser``. Results follow the service's timeline rules, which clients rely on: finals tile
the audio (each starts where the previous one ended), ``speech_final`` comes ``endpointing`` ms
into a pause, ``UtteranceEnd`` ``utterance_end_ms`` after the last word, a ``Finalize`` is
answered with a ``from_finalize`` final, and silent audio still gets (empty) finals every second
so a client can tell a working service from a stalled one. Interim results carry the
recogniser's cheap partial: the scripted one reveals its line word by word, Whisper's is empty,
because running Whisper on every interim would cost a core per call on a 2-core box.

Not emulated: multichannel, diarization, smart formatting, keyterms, languages, Flux
(``/v2/listen``), ``Sec-WebSocket-Protocol`` auth, and the service's own chunking of long
monologues into several finals (a segment here lasts until a pause or a Finalize).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import numpy as np
from aiohttp import WSMsgType, web

from emulators.control import CONTROL, EmulatorControl, Fault, LatencyProfile, add_control_routes
from runtime.audio import FRAME_SAMPLES, SAMPLE_RATE, Pcm, resample, ulaw_to_pcm
from runtime.stt import WhisperStt
from runtime.vad import WINDOW_SAMPLES, SileroVad, SileroVadStream

#: Deepgram's published final-result latency (field-survey.md §4, the "Orbit" row: STT final 45 ms).
DEFAULT_LATENCY = {"stt_final": LatencyProfile(median_ms=45, p95_ms=120)}
#: The service closes a stream that gets neither audio nor a text message for 10 s (NET-0001).
IDLE_TIMEOUT_S = 10.0
#: Interim cadence during speech: often enough that a client sees words before the endpoint.
INTERIM_EVERY_MS = 500
#: Empty finals while the caller is silent, so an idle but healthy stream is never quiet for long.
SILENT_FINAL_EVERY_MS = 1000
#: With ``endpointing=false`` a segment still ends after this much silence, without speech_final.
FINAL_WITHOUT_ENDPOINTING_MS = 1000
#: The spec's default ``endpointing`` (protocols.md §2).
DEFAULT_ENDPOINTING_MS = 10
#: Same hysteresis as the runtime's turn detector (runtime.config.TurnOptions).
SPEECH_THRESHOLD = 0.5
SILENCE_THRESHOLD = 0.35
#: The DISCONNECT fault drops the connection after this much audio: "a little after audio starts".
DISCONNECT_AFTER_S = 0.5
#: The scripted recogniser reveals one word of its line per this much speech in interims.
PARTIAL_WORD_S = 0.25
NET0001_REASON = "NET-0001: no audio or text message received within the timeout window"
MODEL_INFO = {"name": "general-nova-3", "version": "2026-01-01.0", "arch": "nova-3"}
_CHANNEL = [0, 1]

# --- recognisers ---------------------------------------------------------------------------


class RecogniserSession(Protocol):
    """One connection's recogniser."""

    def partial(self, speech_s: float) -> str:
        """A cheap guess of the words in the ``speech_s`` seconds of speech heard so far ("" is fine)."""

    async def final(self, pcm: Pcm) -> str:
        """The words of a finished segment of 8 kHz PCM."""

    def utterance_ended(self) -> None:
        """The speaker's utterance is over (an endpoint, a silence or an ``UtteranceEnd``); a
        segment cut by ``Finalize`` mid-utterance is followed by more of the same utterance."""


class Recogniser(Protocol):
    def session(self) -> RecogniserSession:
        """A new recogniser for one connection."""


class _ScriptedSession:
    """One line per utterance. A client's ``Finalize`` at a pause inside a line ("About four
    hundred thousand dollars, | we still need a lender") gets the whole line and the rest of
    the utterance gets no words: early, but the caller's words and their order are kept, where
    one line per segment would shift every later line by one."""

    def __init__(self, lines: tuple[str, ...]) -> None:
        self._lines = lines
        self._next = 0
        self._said: str | None = None  # the line given out in the utterance still going on

    def partial(self, speech_s: float) -> str:
        if self._said is not None:
            return self._said
        words = self._lines[self._next].split()
        return " ".join(words[: min(len(words), 1 + int(speech_s / PARTIAL_WORD_S))])

    async def final(self, pcm: Pcm) -> str:
        if self._said is not None:
            return ""
        self._said = self._lines[self._next]
        self._next = (self._next + 1) % len(self._lines)
        return self._said

    def utterance_ended(self) -> None:
        self._said = None


class ScriptedRecogniser:
    """Each segment with speech "says" the next line; every connection starts at the first line."""

    def __init__(self, lines: Sequence[str]) -> None:
        if not lines:
            raise ValueError("a script needs at least one line")
        self._lines = tuple(lines)

    def session(self) -> RecogniserSession:
        return _ScriptedSession(self._lines)


class _WhisperSession:
    def __init__(self, stt: WhisperStt) -> None:
        self._stt = stt

    def partial(self, speech_s: float) -> str:
        return ""

    async def final(self, pcm: Pcm) -> str:
        return (await self._stt.transcribe(pcm)).text

    def utterance_ended(self) -> None:
        return


class WhisperRecogniser:
    """Real words from the runtime's shared Whisper model, on each finished segment."""

    def __init__(self, stt: WhisperStt) -> None:
        self._stt = stt

    def session(self) -> RecogniserSession:
        return _WhisperSession(self._stt)


# --- query parameters ----------------------------------------------------------------------


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise ValueError(f"{name} must be true or false")
    return value == "true"


def _ms_param(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    """A millisecond count, or None for ``false`` or when absent without a default."""
    value = query.get(name)
    if value is None:
        return default
    if value.lower() == "false":
        return None
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number of milliseconds or false")
    return int(value)


Encoding = Literal["mulaw", "linear16"]
_ENCODINGS: dict[str, Encoding] = {"mulaw": "mulaw", "linear16": "linear16"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenParams:
    """The query parameters the emulator acts on (protocols.md §2 table)."""

    model: str
    encoding: Encoding
    sample_rate: int
    interim_results: bool
    #: None: endpointing disabled (``endpointing=false``)
    endpointing_ms: int | None
    #: None: no UtteranceEnd (absent, or interim results off, which the service requires)
    utterance_end_ms: int | None
    vad_events: bool

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ListenParams:
        """Raises ValueError (a 400) for what the service would refuse."""
        encoding = _ENCODINGS.get(query.get("encoding", ""))
        if encoding is None:
            raise ValueError("encoding must be mulaw or linear16 (the emulator takes raw audio only)")
        rate = query.get("sample_rate", "")
        if not rate.isdigit() or int(rate) == 0:
            raise ValueError("sample_rate is required with encoding")
        interim = _bool_param(query, "interim_results")
        return cls(
            model=query.get("model", "nova-3"),
            encoding=encoding,
            sample_rate=int(rate),
            interim_results=interim,
            endpointing_ms=_ms_param(query, "endpointing", DEFAULT_ENDPOINTING_MS),
            utterance_end_ms=_ms_param(query, "utterance_end_ms", None) if interim else None,
            vad_events=_bool_param(query, "vad_events"),
        )


# --- where results fall on the timeline (sans-IO) ------------------------------------------


@dataclass(frozen=True, slots=True)
class Onset:
    at: float


@dataclass(frozen=True, slots=True)
class Interim:
    start: float
    end: float
    speech_s: float


@dataclass(frozen=True, slots=True, eq=False)
class Final:
    start: float
    end: float
    #: the segment's audio when it holds speech (to recognise), else None
    audio: Pcm | None
    speech_final: bool
    from_finalize: bool
    #: where the speech lies, for word timings
    speech_start: float
    speech_end: float


@dataclass(frozen=True, slots=True)
class EndOfUtterance:
    last_word_end: float


Action = Onset | Interim | Final | EndOfUtterance


def _samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


class Segmenter:
    """Turns VAD probabilities into the service's results, in samples received (sans-IO)."""

    def __init__(self, params: ListenParams) -> None:
        self._speech_final = params.endpointing_ms is not None
        self._endpoint = _samples(params.endpointing_ms or FINAL_WITHOUT_ENDPOINTING_MS)
        self._interim = _samples(INTERIM_EVERY_MS) if params.interim_results else None
        self._utterance_end = _samples(params.utterance_end_ms) if params.utterance_end_ms is not None else None
        self._vad_events = params.vad_events
        self.received = 0
        self._windows = 0
        self._region_start = 0
        self._region: list[Pcm] = []
        self._speech_start: int | None = None  # first speech window of the region
        self._speaking = False
        self._silent = 0
        self._since_interim = 0
        self._last_word_end = 0
        self._words_unended = False  # words finalized but not yet followed by an UtteranceEnd

    def feed(self, pcm: Pcm, probabilities: Sequence[float]) -> list[Action]:
        """``pcm`` and the VAD's probabilities for the windows it completed. Feed at most a
        window's worth at a time: decisions fall at window ends, results end at ``received``."""
        self._region.append(pcm)
        self.received += pcm.size
        actions: list[Action] = []
        for probability in probabilities:
            self._windows += 1
            self._classify(probability, self._windows * WINDOW_SAMPLES, actions)
            self._advance(self._windows * WINDOW_SAMPLES, actions)
        return actions

    def finalize(self) -> Final:
        """A Finalize: everything received so far, final now."""
        return self._flush(speech_final=False, from_finalize=True)

    def close(self) -> Final | None:
        """CloseStream: the rest, if any audio is unfinalized."""
        if self.received == self._region_start:
            return None
        return self._flush(speech_final=False, from_finalize=False)

    def _classify(self, probability: float, at: int, actions: list[Action]) -> None:
        if probability >= SPEECH_THRESHOLD:
            if not self._speaking:
                self._speaking = True
                if self._vad_events:
                    actions.append(Onset(at=(at - WINDOW_SAMPLES) / SAMPLE_RATE))
            if self._speech_start is None:
                self._speech_start = at - WINDOW_SAMPLES
            self._silent = 0
            self._last_word_end = at
        elif self._speaking and probability < SILENCE_THRESHOLD:
            self._silent += WINDOW_SAMPLES

    def _advance(self, at: int, actions: list[Action]) -> None:
        if self._speaking:
            self._advance_speaking(actions)
            return
        if self._utterance_end is not None and self._words_unended and at - self._last_word_end >= self._utterance_end:
            self._words_unended = False
            actions.append(EndOfUtterance(last_word_end=self._last_word_end / SAMPLE_RATE))
        if self.received - self._region_start >= _samples(SILENT_FINAL_EVERY_MS):
            actions.append(self._flush(speech_final=False, from_finalize=False))

    def _advance_speaking(self, actions: list[Action]) -> None:
        if self._silent >= self._endpoint:
            self._speaking = False
            actions.append(self._flush(speech_final=self._speech_final, from_finalize=False))
            return
        self._since_interim += WINDOW_SAMPLES
        if self._interim is not None and self._since_interim >= self._interim:
            self._since_interim = 0
            heard_from = self._last_word_end if self._speech_start is None else self._speech_start
            speech_s = (self._last_word_end - heard_from) / SAMPLE_RATE
            actions.append(
                Interim(start=self._region_start / SAMPLE_RATE, end=self.received / SAMPLE_RATE, speech_s=speech_s)
            )

    def _flush(self, *, speech_final: bool, from_finalize: bool) -> Final:
        speech_start = self._speech_start
        audio = np.concatenate(self._region) if speech_start is not None and self._region else None
        final = Final(
            start=self._region_start / SAMPLE_RATE,
            end=self.received / SAMPLE_RATE,
            audio=audio,
            speech_final=speech_final,
            from_finalize=from_finalize,
            speech_start=(speech_start if speech_start is not None else self._region_start) / SAMPLE_RATE,
            speech_end=max(self._last_word_end, self._region_start) / SAMPLE_RATE,
        )
        self._words_unended = self._words_unended or audio is not None
        self._region_start = self.received
        self._region = []
        self._speech_start = None
        self._since_interim = 0
        return final


# --- messages ------------------------------------------------------------------------------


def _seconds(value: float) -> float:
    return round(value, 3)


def _words(text: str, start: float, end: float) -> list[dict[str, Any]]:
    """Words spread evenly over the speech: the emulator has no alignment."""
    spoken = text.split()
    step = (end - start) / max(len(spoken), 1)
    return [
        {
            "word": word.strip(".,!?;:").lower(),
            "start": _seconds(start + i * step),
            "end": _seconds(start + (i + 1) * step),
            "confidence": 0.98,
            "punctuated_word": word,
        }
        for i, word in enumerate(spoken)
    ]


def results_message(
    *,
    request_id: str,
    start: float,
    end: float,
    text: str,
    is_final: bool,
    speech_final: bool = False,
    from_finalize: bool = False,
    words: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``Results`` message exactly as protocols.md §2 shows it."""
    return {
        "type": "Results",
        "channel_index": _CHANNEL,
        "duration": _seconds(end - start),
        "start": _seconds(start),
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": text, "confidence": 0.98 if text else 0.0, "words": words or []}]},
        "metadata": {"request_id": request_id, "model_info": MODEL_INFO, "model_uuid": request_id},
    }


def _error_body(status: int, code: str, message: str, request_id: str) -> web.Response:
    response = web.json_response({"err_code": code, "err_msg": message, "request_id": request_id}, status=status)
    response.headers["dg-request-id"] = request_id
    return response


# --- one connection ------------------------------------------------------------------------


class _Connection:
    """One live stream: audio in, results out, in order."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        params: ListenParams,
        recogniser: RecogniserSession,
        vad: SileroVadStream,
        fault: Fault | None,
    ) -> None:
        self._ws = ws
        self._transport = request.transport
        self._params = params
        self._recogniser = recogniser
        self._vad = vad
        self._fault = fault
        self._emulator = request.app[_EMULATOR]
        self._control = request.app[CONTROL]
        self._segmenter = Segmenter(params)
        self._request_id = str(uuid.uuid4())
        self._sha256 = hashlib.sha256()
        self._pending_byte = b""  # linear16 split across frames

    async def run(self) -> None:
        """Until CloseStream, the client going away, idleness (NET-0001) or an injected drop."""
        while True:
            try:
                message = await self._ws.receive(timeout=self._emulator.idle_timeout_s)
            except TimeoutError:
                await self._ws.close(code=1011, message=NET0001_REASON.encode())
                return
            if message.type is WSMsgType.BINARY:
                if not await self._on_audio(message.data):
                    return
            elif message.type is WSMsgType.TEXT:
                if not await self._on_text(message.data):
                    return
            else:
                return

    async def _on_audio(self, data: bytes) -> bool:
        self._sha256.update(data)
        self._control.stats["audio_bytes"] += len(data)
        pcm = self._decode(data)
        # Frame by frame, so a large send is segmented on the same 20 ms grid as Twilio's audio.
        for start in range(0, pcm.size, FRAME_SAMPLES):
            frame = pcm[start : start + FRAME_SAMPLES]
            for action in self._segmenter.feed(frame, await self._vad.process(frame)):
                await self._emit(action)
        if self._fault is Fault.DISCONNECT and self._segmenter.received >= DISCONNECT_AFTER_S * SAMPLE_RATE:
            if self._transport is not None:
                self._transport.abort()
            return False
        return True

    def _decode(self, data: bytes) -> Pcm:
        if self._params.encoding == "mulaw":
            pcm = ulaw_to_pcm(data)
        else:
            data, self._pending_byte = self._pending_byte + data, b""
            if len(data) % 2:
                data, self._pending_byte = data[:-1], data[-1:]
            pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
        return resample(pcm, self._params.sample_rate, SAMPLE_RATE)

    async def _on_text(self, text: str) -> bool:
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        known = kind in ("KeepAlive", "Finalize", "CloseStream")
        self._control.stats[f"control_{kind if known else 'unknown'}"] += 1
        if kind == "KeepAlive":
            return True
        if kind == "Finalize":
            await self._emit(self._segmenter.finalize())
            return True
        if kind == "CloseStream":
            await self._close_stream()
            return False
        await self._send(
            {"type": "Error", "variant": "SchemaError", "description": "unknown control message", "message": text}
        )
        return True

    async def _close_stream(self) -> None:
        rest = self._segmenter.close()
        if rest is not None:
            await self._emit(rest)
        await self._send(
            {
                "type": "Metadata",
                "transaction_key": "deprecated",
                "request_id": self._request_id,
                "sha256": self._sha256.hexdigest(),
                "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "duration": _seconds(self._segmenter.received / SAMPLE_RATE),
                "channels": 1,
                "models": [self._request_id],
                "model_info": {self._request_id: MODEL_INFO},
            }
        )
        await self._ws.close()

    async def _emit(self, action: Action) -> None:
        if isinstance(action, Onset):
            await self._send({"type": "SpeechStarted", "channel": _CHANNEL, "timestamp": _seconds(action.at)})
        elif isinstance(action, Interim):
            text = self._recogniser.partial(action.speech_s)
            await self._send(
                results_message(
                    request_id=self._request_id, start=action.start, end=action.end, text=text, is_final=False
                )
            )
        elif isinstance(action, Final):
            await self._emit_final(action)
        else:
            self._recogniser.utterance_ended()
            await self._send({"type": "UtteranceEnd", "channel": _CHANNEL, "last_word_end": action.last_word_end})

    async def _emit_final(self, final: Final) -> None:
        text = await self._recogniser.final(final.audio) if final.audio is not None else ""
        if not final.from_finalize:  # ended by silence: the utterance, if any, is over
            self._recogniser.utterance_ended()
        await self._control.delay("stt_final")
        message = results_message(
            request_id=self._request_id,
            start=final.start,
            end=final.end,
            text=text,
            is_final=True,
            speech_final=final.speech_final,
            from_finalize=final.from_finalize,
            words=_words(text, final.speech_start, final.speech_end),
        )
        await self._send(message)
        if self._fault is Fault.MALFORMED:
            self._fault = None
            await self._ws.send_str("{this is not json")

    async def _send(self, message: dict[str, Any]) -> None:
        self._control.stats[f"sent_{message['type']}"] += 1
        await self._ws.send_str(json.dumps(message))


# --- the application -----------------------------------------------------------------------


@dataclass(slots=True)
class _Emulator:
    api_key: str
    recogniser: Recogniser
    idle_timeout_s: float
    vad: SileroVad | None = None


_EMULATOR = web.AppKey("deepgram_emulator", _Emulator)


def _authorised(request: web.Request, api_key: str) -> bool:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return scheme in ("Token", "Bearer") and credential == api_key


def _refusal(request: web.Request, fault: Fault | None, request_id: str) -> web.Response | None:
    """The HTTP answer before the upgrade, when the stream is not to be opened."""
    if not _authorised(request, request.app[_EMULATOR].api_key) or fault is Fault.AUTH:
        return _error_body(401, "INVALID_AUTH", "Invalid credentials.", request_id)
    if fault is Fault.RATE_LIMIT:
        response = _error_body(429, "TOO_MANY_REQUESTS", "Too many requests. Please try again later.", request_id)
        response.headers["Retry-After"] = "1"
        return response
    if fault is Fault.OVERLOADED:
        return _error_body(503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable.", request_id)
    return None


async def _listen(request: web.Request) -> web.StreamResponse:
    emulator = request.app[_EMULATOR]
    control = request.app[CONTROL]
    request_id = str(uuid.uuid4())
    fault = control.faults.next_fault() if _authorised(request, emulator.api_key) else None
    refusal = _refusal(request, fault, request_id)
    if refusal is not None:
        control.stats[f"refused_{refusal.status}"] += 1
        return refusal
    try:
        params = ListenParams.from_query(request.query)
    except ValueError as e:
        return _error_body(400, "Bad Request", str(e), request_id)
    ws = web.WebSocketResponse(compress=False)
    ws.headers["dg-request-id"] = request_id
    await ws.prepare(request)
    control.stats["connections"] += 1
    assert emulator.vad is not None, "the VAD is loaded at start-up"
    vad = emulator.vad.open_stream()
    try:
        if fault is Fault.STALL:
            await _swallow(ws)
        else:
            await _Connection(ws, request, params, emulator.recogniser.session(), vad, fault).run()
    except ConnectionResetError:
        control.stats["client_gone"] += 1
    finally:
        vad.close()
    return ws


async def _swallow(ws: web.WebSocketResponse) -> None:
    """The STALL fault: take everything, answer nothing, until the client gives up."""
    while (await ws.receive()).type in (WSMsgType.BINARY, WSMsgType.TEXT):
        pass


async def _vad_context(app: web.Application) -> AsyncIterator[None]:
    vad = SileroVad()
    app[_EMULATOR].vad = vad
    yield
    await vad.aclose()


def build_app(
    *,
    api_key: str,
    recogniser: Recogniser,
    control: EmulatorControl | None = None,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> web.Application:
    """``/v1/listen`` plus the ``/_emulator/*`` control routes; latency stage ``stt_final``."""
    if not api_key or idle_timeout_s <= 0:
        raise ValueError("an API key and a positive idle timeout are required")
    app = web.Application()
    app[_EMULATOR] = _Emulator(api_key=api_key, recogniser=recogniser, idle_timeout_s=idle_timeout_s)
    add_control_routes(app, control or EmulatorControl(name="deepgram", latency=dict(DEFAULT_LATENCY)))
    app.cleanup_ctx.append(_vad_context)
    app.router.add_get("/v1/listen", _listen)
    return app
