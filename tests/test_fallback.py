"""Circuit breaker and the STT/TTS fallback adapters, with fake engines and an injected clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from runtime.audio import Pcm
from runtime.fallback import CircuitBreaker, FallbackStt, FallbackTts
from runtime.speech import SpeechChunk, SpeechEngineError, SpeechToText, SttStream, TextToSpeech, Transcript
from runtime.stt import ScriptedStt


def state(breaker: CircuitBreaker) -> str:
    """Read through a call so mypy does not narrow the property between asserts."""
    return breaker.state


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_opens_after_consecutive_failures_and_probes_after_reset() -> None:
    clock = Clock()
    breaker = CircuitBreaker("stt", failure_threshold=3, reset_after_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert state(breaker) == "closed" and breaker.allows()
    breaker.record_success()  # a success resets the count
    for _ in range(3):
        breaker.record_failure()
    assert not breaker.allows() and breaker.trips == 1
    assert state(breaker) == "open"
    clock.t = 10.0
    assert state(breaker) == "half_open" and breaker.allows()
    breaker.record_failure()  # the probe failed: open again for another period
    assert state(breaker) == "open" and breaker.trips == 2
    clock.t = 20.0
    breaker.record_success()
    assert state(breaker) == "closed"


class BrokenStream(SttStream):
    def __init__(self) -> None:
        self.audio = 0

    def push_audio(self, pcm: Pcm) -> None:
        self.audio += 1

    def speech_started(self) -> None:
        """Nothing to do."""

    def speech_paused(self) -> None:
        """Nothing to do."""

    def speech_resumed(self) -> None:
        """Nothing to do."""

    async def finish_utterance(self) -> Transcript:
        raise SpeechEngineError("vendor stalled")

    def discard_utterance(self) -> None:
        """Nothing buffered."""

    async def aclose(self) -> None:
        """Nothing to release."""


class BrokenStt(SpeechToText):
    def __init__(self) -> None:
        self.streams: list[BrokenStream] = []

    def open_stream(self, call_sid: str) -> BrokenStream:
        self.streams.append(BrokenStream())
        return self.streams[-1]

    async def aclose(self) -> None:
        """Nothing to release."""


async def test_stt_falls_back_per_turn_then_skips_the_vendor_when_the_breaker_opens() -> None:
    broken = BrokenStt()
    stt = FallbackStt(
        broken, ScriptedStt(["local one", "local two", "local three"]), CircuitBreaker("stt", failure_threshold=2)
    )
    stream = stt.open_stream("CA1")
    stream.push_audio(np.zeros(160, dtype=np.int16))
    assert broken.streams[0].audio == 1  # the vendor gets the audio too
    first = await stream.finish_utterance()
    assert first.text == "local one" and first.degraded.startswith("vendor failed")
    second = await stream.finish_utterance()
    assert second.text == "local two" and state(stt.breaker) == "open"
    third = await stream.finish_utterance()
    assert third.text == "local three" and third.degraded == "circuit open"


async def test_stt_uses_the_vendor_when_it_works() -> None:
    stt = FallbackStt(ScriptedStt(["vendor"]), ScriptedStt(["local"]), CircuitBreaker("stt"))
    transcript = await stt.open_stream("CA1").finish_utterance()
    assert transcript.text == "vendor" and transcript.degraded == ""


class FlakyTts(TextToSpeech):
    """Yields ``good_chunks`` chunks, then fails (or never fails when None)."""

    def __init__(self, good_chunks: int | None) -> None:
        self.good_chunks = good_chunks

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        for i in range(self.good_chunks if self.good_chunks is not None else 2):
            yield SpeechChunk(ulaw=bytes([i]) * 160, engine_ms=1.0)
        if self.good_chunks is not None:
            raise SpeechEngineError("socket dropped")

    async def render(self, text: str) -> bytes:
        if self.good_chunks is not None:
            raise SpeechEngineError("socket dropped")
        return b"\x01" * 160

    async def aclose(self) -> None:
        """Nothing to release."""


class LocalTts(FlakyTts):
    def __init__(self) -> None:
        super().__init__(None)

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        yield SpeechChunk(ulaw=b"\x7e" * 320, engine_ms=2.0)

    async def render(self, text: str) -> bytes:
        return b"\x7e" * 320


@pytest.mark.parametrize("good_chunks", [0, 1])
async def test_tts_falls_back_for_the_sentence_the_vendor_failed_on(good_chunks: int) -> None:
    tts = FallbackTts(FlakyTts(good_chunks), LocalTts(), CircuitBreaker("tts"))
    chunks = [c async for c in tts.synthesize("Hello there.")]
    assert len(chunks) == good_chunks + 1
    assert chunks[-1].ulaw == b"\x7e" * 320 and chunks[-1].degraded.startswith("vendor failed")
    assert all(not c.degraded for c in chunks[:-1])


async def test_tts_render_falls_back_and_breaker_short_circuits() -> None:
    breaker = CircuitBreaker("tts", failure_threshold=1)
    tts = FallbackTts(FlakyTts(0), LocalTts(), breaker)
    assert await tts.render("Hi.") == b"\x7e" * 320  # the vendor failed: local audio
    assert state(breaker) == "open"
    [chunk] = [c async for c in tts.synthesize("Two.")]
    assert chunk.degraded == "circuit open"
