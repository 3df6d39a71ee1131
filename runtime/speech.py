"""Interfaces of the speech engines: voice activity detection, speech-to-text, text-to-speech.

Engines are loaded once per process and shared by every call; each call opens a cheap
per-call *stream* on them, which holds only that call's state (VAD recurrent state, the
utterance being buffered, a vendor socket later). The call pipeline only sees these types,
never a vendor SDK or a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from runtime.audio import Pcm


class SpeechEngineError(Exception):
    """An engine failed to load or to process audio or text."""


# --- voice activity detection -------------------------------------------------------------


class VadStream(ABC):
    """One call's view of the shared VAD: feed 8 kHz PCM, get speech probabilities."""

    @abstractmethod
    async def process(self, pcm: Pcm) -> list[float]:
        """Feed any amount of 8 kHz int16 PCM (typically one 20 ms frame).

        Returns one speech probability in [0, 1] for each analysis window completed by this
        audio (possibly none). Windows are ``Vad.window_ms`` long.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the call's state; the stream must not be used afterwards."""


class Vad(ABC):
    """A process-wide voice activity detector."""

    #: length of one analysis window in milliseconds
    window_ms: float

    @abstractmethod
    def open_stream(self) -> VadStream:
        """Start a new, independent stream (one per call)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop the engine's tasks and threads (at server shutdown)."""


# --- speech to text -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    """What the caller said in one turn."""

    text: str
    #: time spent waiting for the engine after the turn ended (inference or vendor wait), in ms
    engine_ms: float
    #: recognition started at a pause before the turn ended, hiding part of the engine's time
    speculative: bool = False
    #: why the primary engine was not used for this transcript (a fallback served it), if so
    degraded: str = ""


class SttStream(ABC):
    """One call's speech recogniser.

    The pipeline pushes every inbound frame; the turn detector tells it when caller speech
    starts and when the turn ends.
    """

    @abstractmethod
    def push_audio(self, pcm: Pcm) -> None:
        """Every inbound 20 ms frame of 8 kHz PCM, in order, whether speech or not."""

    @abstractmethod
    def speech_started(self) -> None:
        """The VAD saw caller speech begin; an utterance starts (with some pre-roll)."""

    @abstractmethod
    async def finish_utterance(self) -> Transcript:
        """The caller's turn ended: return the transcript of the utterance and reset."""

    @abstractmethod
    def speech_paused(self) -> None:
        """The caller paused mid-turn; the turn may be over. An engine may start recognising
        what it has so far, so the transcript is ready sooner if the turn does end here."""

    @abstractmethod
    def speech_resumed(self) -> None:
        """The caller went on after a pause: anything started at the pause is void."""

    def speech_continued(self) -> None:
        """The caller went on after a pause whose draft reply already took the utterance so far
        (``finish_utterance`` was called at the pause): what follows is the rest of the same
        turn. An engine that recognises audio simply starts a new utterance here."""
        self.speech_started()

    @abstractmethod
    def discard_utterance(self) -> None:
        """Forget the current utterance (for example a noise burst that was not a turn)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the call's resources."""


class SpeechToText(ABC):
    """A process-wide speech recogniser."""

    @abstractmethod
    def open_stream(self, call_sid: str) -> SttStream:
        """Start a recogniser for one call."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop the engine's tasks and threads (at server shutdown)."""


# --- text to speech -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechChunk:
    """Synthesised audio ready for Twilio: 8 kHz mu-law."""

    ulaw: bytes
    #: time spent in the engine to produce this chunk, in milliseconds
    engine_ms: float
    #: why the primary engine was not used for this chunk (a fallback served it), if so
    degraded: str = ""
    #: the characters this audio speaks, each with the ms (from the chunk's start) at which it
    #: has been said; empty when the engine does not tell (then what a caller heard of a cut
    #: sentence is estimated from the time it played)
    said_by_ms: tuple[tuple[str, float], ...] = ()


class TextToSpeech(ABC):
    """A process-wide speech synthesiser with one voice."""

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """Speak ``text`` (one sentence or a few), yielding audio as soon as each part is ready."""

    @abstractmethod
    async def render(self, text: str) -> bytes:
        """The whole of ``text`` as mu-law, cached for fixed phrases (greeting, prompts)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop the engine's tasks and threads (at server shutdown)."""


class SpeechTiming:
    """When each character of one sentence was said, over the chunks of its audio, so that a
    barge-in knows which words the caller heard. Timing counts only while every chunk had it."""

    def __init__(self) -> None:
        self.audio_ms = 0.0
        self.said_by_ms: list[tuple[str, float]] = []
        self.complete = True

    def add(self, chunk_ms: float, said_by_ms: Sequence[tuple[str, float]]) -> None:
        """The next chunk: its length and its characters' times from its own start."""
        self.complete = self.complete and bool(said_by_ms)
        self.said_by_ms.extend((char, self.audio_ms + by_ms) for char, by_ms in said_by_ms)
        self.audio_ms += chunk_ms

    def heard_words(self, text: str, played_ms: float) -> list[str]:
        """The words of ``text`` heard in the first ``played_ms``: the whole words said by then
        when the engine timed every character, else the share of the words that the share of
        the audio played (speech is not that even, so it is only an estimate)."""
        timed = self.said_by_ms if self.complete else []
        if not timed:
            words = text.split()
            return words[: round(len(words) * played_ms / max(self.audio_ms, 1.0))]
        said = "".join(char for char, by_ms in timed if by_ms <= played_ms)
        heard = said.split()
        cut_inside_a_word = len(said) < len(timed) and not timed[len(said)][0].isspace()
        return heard[:-1] if cut_inside_a_word and not said[-1:].isspace() else heard
