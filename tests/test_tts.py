"""PiperTts sentence streaming and render cache, and ScriptedTts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import numpy as np
import pytest
from piper import AudioChunk

from runtime.audio import SAMPLE_RATE, ulaw_to_pcm
from runtime.speech import SpeechChunk
from runtime.tts import (
    DEFAULT_MS_PER_CHAR,
    KEPT_LEAD_SAMPLES,
    SILENCE_THRESHOLD,
    PiperTts,
    ScriptedTts,
    _phone_audio,
    split_sentences,
    trim_leading_silence,
)

THREE_SENTENCES = "Hi. I am looking to buy a three bedroom house in Austin with a big back yard. Thanks!"


@pytest.fixture(scope="module")
async def piper() -> AsyncIterator[PiperTts]:
    engine = PiperTts()
    yield engine
    await engine.aclose()


class SynthesisSpy:
    """Wraps ``PiperVoice.synthesize``: counts calls and the sentences produced so far."""

    def __init__(self, synthesize: Any) -> None:
        self._synthesize = synthesize
        self.calls = 0
        self.sentences = 0

    def __call__(self, text: str, **options: Any) -> Iterable[Any]:
        self.calls += 1
        return self._count(self._synthesize(text, **options))

    def _count(self, chunks: Iterable[Any]) -> Iterator[Any]:
        for chunk in chunks:
            self.sentences += 1
            yield chunk


@pytest.fixture
def spy(piper: PiperTts, monkeypatch: pytest.MonkeyPatch) -> SynthesisSpy:
    synthesis = SynthesisSpy(piper.voice.synthesize)
    monkeypatch.setattr(piper.voice, "synthesize", synthesis)
    return synthesis


def seconds(ulaw: bytes) -> float:
    return len(ulaw) / SAMPLE_RATE


def dbfs(ulaw: bytes) -> float:
    pcm = ulaw_to_pcm(ulaw).astype(np.float64)
    return float(20 * np.log10(np.sqrt(np.mean(pcm**2)) / 32768))


@pytest.mark.engines
async def test_each_sentence_is_yielded_before_the_next_is_synthesised(piper: PiperTts, spy: SynthesisSpy) -> None:
    sentences_made_at_each_chunk: list[int] = []
    chunks: list[SpeechChunk] = []
    async for chunk in piper.synthesize(THREE_SENTENCES):
        sentences_made_at_each_chunk.append(spy.sentences)
        chunks.append(chunk)
    assert sentences_made_at_each_chunk == [1, 2, 3]
    assert all(chunk.engine_ms > 0 for chunk in chunks)


@pytest.mark.engines
async def test_chunks_are_the_separate_sentences(piper: PiperTts) -> None:
    durations = [seconds(chunk.ulaw) async for chunk in piper.synthesize(THREE_SENTENCES)]
    short_hi, long_middle, short_thanks = durations
    assert long_middle > 3 * short_hi
    assert long_middle > 3 * short_thanks


@pytest.mark.engines
async def test_output_is_phone_audio_of_plausible_duration_starting_with_speech(piper: PiperTts) -> None:
    text = "I am looking to buy a three bedroom house in Austin."
    ulaw = await piper.render(text)
    assert 0.04 * len(text) < seconds(ulaw) < 0.1 * len(text)
    assert -35 < dbfs(ulaw) < -3
    first_20_ms = ulaw_to_pcm(ulaw[: SAMPLE_RATE // 50])
    assert np.max(np.abs(first_20_ms.astype(np.int32))) > SILENCE_THRESHOLD


@pytest.mark.engines
async def test_render_cache_returns_the_same_audio_without_synthesising_again(
    piper: PiperTts, spy: SynthesisSpy
) -> None:
    first = await piper.render("Thanks for calling Sunrise Realty.")
    second = await piper.render("Thanks for calling Sunrise Realty.")
    assert first == second
    assert spy.calls == 1


@pytest.mark.engines
async def test_concurrent_renders_of_one_text_share_one_synthesis(piper: PiperTts, spy: SynthesisSpy) -> None:
    renders = await asyncio.gather(*(piper.render("How can I help you today?") for _ in range(3)))
    assert renders[0] == renders[1] == renders[2]
    assert spy.calls == 1


@pytest.mark.engines
async def test_a_cancelled_waiter_does_not_cancel_the_shared_render(piper: PiperTts, spy: SynthesisSpy) -> None:
    impatient = asyncio.create_task(piper.render("Is now a good time to talk?"))
    patient = asyncio.create_task(piper.render("Is now a good time to talk?"))
    await asyncio.sleep(0)
    impatient.cancel()
    assert seconds(await patient) > 0.5
    assert impatient.cancelled()
    assert spy.calls == 1


@pytest.mark.engines
async def test_render_cache_evicts_the_least_recently_used(piper: PiperTts, spy: SynthesisSpy) -> None:
    small = PiperTts(cache_size=2)  # shares the loaded voice, so the spy sees its syntheses
    for text in ("One.", "Two.", "One.", "Three.", "One.", "Two."):
        await small.render(text)
    assert spy.calls == 4  # One, Two, Three, then Two again (evicted by Three)
    await small.aclose()


def test_trim_leading_silence_keeps_a_short_lead() -> None:
    pcm = np.concatenate((np.zeros(400, dtype=np.int16), np.full(100, 5000, dtype=np.int16)))
    trimmed = trim_leading_silence(pcm)
    assert trimmed.size == 100 + KEPT_LEAD_SAMPLES
    silent = np.zeros(50, dtype=np.int16)
    assert trim_leading_silence(silent) is silent


def test_piper_options_are_validated() -> None:
    with pytest.raises(ValueError):
        PiperTts(cache_size=0)


# --- ScriptedTts ---------------------------------------------------------------------------


def test_split_sentences() -> None:
    assert split_sentences(" Hi there. How are you?  Fine! ") == ["Hi there.", "How are you?", "Fine!"]
    assert split_sentences("   ") == []


async def test_scripted_yields_one_chunk_per_sentence_of_proportional_length() -> None:
    tts = ScriptedTts()
    chunks = [chunk async for chunk in tts.synthesize(THREE_SENTENCES)]
    expected = [round(len(sentence) * DEFAULT_MS_PER_CHAR * 8) for sentence in split_sentences(THREE_SENTENCES)]
    assert [len(chunk.ulaw) for chunk in chunks] == expected
    assert b"".join(chunk.ulaw for chunk in chunks) == await tts.render(THREE_SENTENCES)


async def test_scripted_audio_is_deterministic_speech_level() -> None:
    first = await ScriptedTts().render("I'd like to see the house on Saturday.")
    second = await ScriptedTts().render("I'd like to see the house on Saturday.")
    assert first == second
    assert -22 < dbfs(first) < -18


async def test_scripted_latency_is_per_sentence() -> None:
    tts = ScriptedTts(latency_s=0.03, ms_per_char=60)
    started = time.perf_counter()
    chunks = [chunk async for chunk in tts.synthesize("One. Two.")]
    assert time.perf_counter() - started >= 0.06
    assert all(chunk.engine_ms >= 30 for chunk in chunks)
    assert len(chunks[0].ulaw) == 4 * 60 * 8


def test_scripted_options_are_validated() -> None:
    with pytest.raises(ValueError):
        ScriptedTts(ms_per_char=0)


def dominant_pitch_hz(ulaw: bytes) -> float:
    """The median pitch of the voiced 40 ms frames (autocorrelation peak within 70-400 Hz)."""
    pcm = ulaw_to_pcm(ulaw).astype(np.float64)
    frame = SAMPLE_RATE // 25
    lags = np.arange(SAMPLE_RATE // 400, SAMPLE_RATE // 70)
    pitches = []
    for start in range(0, len(pcm) - frame, frame):
        window = pcm[start : start + frame] - pcm[start : start + frame].mean()
        if np.sqrt(np.mean(window**2)) < 1000:
            continue  # silence or a quiet consonant: no pitch to speak of
        correlation = np.correlate(window, window, mode="full")[frame - 1 :]
        pitches.append(SAMPLE_RATE / float(lags[np.argmax(correlation[lags])]))
    return float(np.median(pitches))


def voiced_chunk(f0_hz: float, seconds: float = 0.6, sample_rate: int = 22050) -> AudioChunk:
    """A steady vowel-like sound as Piper hands it over: ``f0_hz`` and its decaying harmonics."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 8))
    audio = (0.3 * wave / np.max(np.abs(wave))).astype(np.float32)
    return AudioChunk(
        sample_rate=sample_rate, sample_width=2, sample_channels=1, audio_float_array=audio, phonemes=[], phoneme_ids=[]
    )


def test_the_phone_path_raises_the_pitch_by_the_persona_ratio() -> None:
    base = _phone_audio(voiced_chunk(110.0), 1.0)
    higher = _phone_audio(voiced_chunk(110.0), 1.12)
    assert dominant_pitch_hz(base) == pytest.approx(110.0, rel=0.02)
    assert dominant_pitch_hz(higher) == pytest.approx(110.0 * 1.12, rel=0.02)
    assert len(higher) == pytest.approx(len(base) / 1.12, rel=0.02)  # read faster: shorter by the ratio


async def test_a_higher_pitched_persona_voice_keeps_the_pace_of_speech() -> None:
    """Piper is slowed by the ratio the phone path speeds it up, so the words keep their pace.
    Duration noise is off: with it, two renders of one text differ by up to ~11 % in length, more
    than the ~8 % a length_scale of just 1.12 would leave."""
    text = "I will bring in Maya, who works with our buyers."
    steady, higher = PiperTts(rhythm_noise=0.0), PiperTts(pitch=1.12, rhythm_noise=0.0)
    try:
        assert len(await higher.render(text)) == pytest.approx(len(await steady.render(text)), rel=0.05)
    finally:
        await steady.aclose()
        await higher.aclose()
    with pytest.raises(ValueError, match="rhythm_noise"):
        PiperTts(rhythm_noise=-0.1)


async def test_scripted_voices_differ_in_pitch_not_length() -> None:
    base = await ScriptedTts().render("Hello there, this is Maya.")
    lower = await ScriptedTts(pitch=0.9).render("Hello there, this is Maya.")
    assert len(lower) == len(base)
    assert dominant_pitch_hz(lower) < 0.95 * dominant_pitch_hz(base)
    with pytest.raises(ValueError, match="pitch"):
        ScriptedTts(pitch=2.0)
