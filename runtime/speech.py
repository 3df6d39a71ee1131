"""Interfaces of the speech engines: voice activity detection, speech-to-text, text-to-speech.

Engines are loaded once per process and shared by every call; each call opens a cheap
per-call *stream* on them, which holds only that call's state (VAD recurrent state, the
utterance being buffered, a vendor socket later). The call pipeline only sees these types,
never a vendor SDK or a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
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
