"""Keeping a call alive when a vendor fails: a circuit breaker, and STT/TTS adapters that fall
back to the local engines.

A failing vendor costs one retry at most per turn; after ``failure_threshold`` failures in a row
the breaker opens and every call goes straight to the local engine until ``reset_after_s`` has
passed, when one call probes the vendor again (half-open). Degraded results are flagged
(``Transcript.degraded`` / ``SpeechChunk.degraded``) so the call records it.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Literal

from runtime.audio import Pcm
from runtime.speech import SpeechChunk, SpeechEngineError, SpeechToText, SttStream, TextToSpeech, Transcript

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


#: Every breaker alive in the process, so their states can be reported (Prometheus).
BREAKERS: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()


class CircuitBreaker:
    """Consecutive-failure breaker; time is injected so tests drive it."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self.trips = 0
        BREAKERS.add(self)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._clock() - self._opened_at >= self.reset_after_s else "open"

    def allows(self) -> bool:
        """May the vendor be tried now? (closed, or half-open for a probe)"""
        return self.state != "open"

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("vendor recovered, circuit closed", extra={"breaker": self.name})
        self._failures = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._failures += 1
        if self.state == "half_open" or (self._opened_at is None and self._failures >= self.failure_threshold):
            self._opened_at = self._clock()
            self.trips += 1
            log.warning("vendor failing, circuit open", extra={"breaker": self.name, "failures": self._failures})


class FallbackSttStream(SttStream):
    """Feeds both recognisers (the local one only buffers audio until needed) so either can
    produce the turn's transcript."""

    def __init__(self, primary: SttStream, fallback: SttStream, breaker: CircuitBreaker) -> None:
        self._primary = primary
        self._fallback = fallback
        self._breaker = breaker

    def push_audio(self, pcm: Pcm) -> None:
        self._primary.push_audio(pcm)
        self._fallback.push_audio(pcm)

    def speech_started(self) -> None:
        self._primary.speech_started()
        self._fallback.speech_started()

    def speech_continued(self) -> None:
        self._primary.speech_continued()
        self._fallback.speech_continued()

    def speech_paused(self) -> None:
        self._primary.speech_paused()

    def speech_resumed(self) -> None:
        self._primary.speech_resumed()

    async def finish_utterance(self) -> Transcript:
        reason = "circuit open"
        if self._breaker.allows():
            try:
                transcript = await self._primary.finish_utterance()
            except SpeechEngineError as e:
                self._breaker.record_failure()
                reason = f"vendor failed: {e}"
                log.warning("speech recognition fell back to the local engine", extra={"error": str(e)})
            else:
                self._breaker.record_success()
                self._fallback.discard_utterance()
                return transcript
        else:
            self._primary.discard_utterance()
        transcript = await self._fallback.finish_utterance()
        return Transcript(text=transcript.text, engine_ms=transcript.engine_ms, speculative=False, degraded=reason)

    def discard_utterance(self) -> None:
        self._primary.discard_utterance()
        self._fallback.discard_utterance()

    async def aclose(self) -> None:
        try:
            await self._primary.aclose()
        finally:
            await self._fallback.aclose()


class FallbackStt(SpeechToText):
    def __init__(self, primary: SpeechToText, fallback: SpeechToText, breaker: CircuitBreaker) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker

    def open_stream(self, call_sid: str) -> FallbackSttStream:
        return FallbackSttStream(self.primary.open_stream(call_sid), self.fallback.open_stream(call_sid), self.breaker)

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()


class FallbackTts(TextToSpeech):
    """Speaks with the vendor while it works; a sentence it fails on is spoken by the local
    engine instead. Audio is passed on as it comes (no holding back for safety): if the vendor
    dies part-way through a sentence, the caller hears that sentence again from its start."""

    def __init__(self, primary: TextToSpeech, fallback: TextToSpeech, breaker: CircuitBreaker) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        reason = "circuit open"
        if self.breaker.allows():
            try:
                async for chunk in self.primary.synthesize(text):
                    yield chunk
            except SpeechEngineError as e:
                self.breaker.record_failure()
                reason = f"vendor failed: {e}"
                log.warning("speech synthesis fell back to the local engine", extra={"error": str(e)})
            else:
                self.breaker.record_success()
                return
        async for chunk in self.fallback.synthesize(text):
            yield SpeechChunk(ulaw=chunk.ulaw, engine_ms=chunk.engine_ms, degraded=reason)

    async def render(self, text: str) -> bytes:
        if self.breaker.allows():
            try:
                audio = await self.primary.render(text)
            except SpeechEngineError as e:
                self.breaker.record_failure()
                log.warning("fixed phrase rendered by the local engine", extra={"error": str(e)})
            else:
                self.breaker.record_success()
                return audio
        return await self.fallback.render(text)

    async def aclose(self) -> None:
        try:
            await self.primary.aclose()
        finally:
            await self.fallback.aclose()
