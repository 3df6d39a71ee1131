"""Choosing and loading the process-wide speech engines.

``load_engines`` is blocking (the server runs it in an executor at start-up): it loads each
model once and runs one tiny inference on each, so the first caller does not pay for ONNX
Runtime's and CTranslate2's first-run set-up. The VAD is always Silero; STT and TTS are either
the offline models or scripted stand-ins that need no model (benchmarks of the runtime itself).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from runtime.fallback import CircuitBreaker, FallbackStt, FallbackTts
from runtime.speech import SpeechToText, TextToSpeech, Vad
from runtime.stt import ScriptedStt, WhisperStt
from runtime.tts import PiperTts, ScriptedTts
from runtime.vad import DEFAULT_GATHER_MS, SileroVad
from runtime.vendors import VendorOptions

logger = logging.getLogger(__name__)

#: Typical answers of a caller being qualified as a buyer lead, in the order a bot asks.
DEFAULT_SCRIPTED_TRANSCRIPTS = (
    "Hi, I'm Sarah Jones and I want to buy a three bedroom house in Austin",
    "About four hundred thousand dollars, we still need a lender",
    "In the next two months, we're relocating for work",
    "A garage, ideally",
    "No, we don't need to sell first",
    "The first one works",
    "Yes, please book it",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceOptions:
    """A bot persona's own voice: an ElevenLabs voice, and the pitch the offline voices use
    (one Piper voice ships offline, so personas differ by pitch there)."""

    elevenlabs_voice_id: str = ""
    pitch: float = 1.0


#: The Buyer and Seller bots speak in voices of their own, so a hand-off is heard as one.
DEFAULT_VOICES: tuple[tuple[str, VoiceOptions], ...] = (
    ("buyer", VoiceOptions(pitch=1.12)),
    ("seller", VoiceOptions(pitch=0.9)),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineOptions:
    """Which speech engines to run and how many threads each may use."""

    stt: Literal["whisper", "scripted", "deepgram"]
    tts: Literal["piper", "scripted", "elevenlabs"]
    #: the local engines a vendor falls back to when it fails ("none": no fallback)
    stt_fallback: Literal["whisper", "scripted", "none"] = "whisper"
    tts_fallback: Literal["piper", "scripted", "none"] = "piper"
    vendors: VendorOptions = field(default_factory=VendorOptions)
    #: Whisper tiny.en with 2 threads was ~30 % faster than with 1 (offline-engines.md §2).
    stt_threads: int = 2
    #: One Piper thread leaves the second core of a 2-core box to Whisper (offline-engines.md §1).
    tts_threads: int = 1
    #: How long the VAD batcher waits to gather windows from other calls.
    vad_gather_ms: float = DEFAULT_GATHER_MS
    #: What the scripted STT "hears", turn after turn.
    scripted_transcripts: tuple[str, ...] = DEFAULT_SCRIPTED_TRANSCRIPTS
    #: Voices besides the default one (``tts``), by name (a bot persona's).
    voices: tuple[tuple[str, VoiceOptions], ...] = DEFAULT_VOICES

    def __post_init__(self) -> None:
        if self.stt not in ("whisper", "scripted", "deepgram"):
            raise ValueError(f"unknown stt engine {self.stt!r}")
        if self.tts not in ("piper", "scripted", "elevenlabs"):
            raise ValueError(f"unknown tts engine {self.tts!r}")
        if self.stt_threads < 1 or self.tts_threads < 1:
            raise ValueError("stt_threads and tts_threads must be >= 1")
        if self.vad_gather_ms < 0:
            raise ValueError("vad_gather_ms must not be negative")
        if not self.scripted_transcripts or not all(line.strip() for line in self.scripted_transcripts):
            raise ValueError("scripted_transcripts must be non-empty lines")


@dataclass(slots=True)
class Engines:
    """The speech engines every call of this process shares."""

    vad: Vad
    stt: SpeechToText
    tts: TextToSpeech
    #: other voices by name; a name without one speaks with ``tts``
    voices: dict[str, TextToSpeech] = field(default_factory=dict)

    def voice(self, name: str | None) -> TextToSpeech:
        return self.voices.get(name, self.tts) if name else self.tts

    def all_voices(self) -> list[TextToSpeech]:
        return [self.tts, *self.voices.values()]

    async def aclose(self) -> None:
        """Stop the engines' tasks and worker threads (the models stay cached in the process)."""
        await self.vad.aclose()
        await self.stt.aclose()
        for voice in self.all_voices():
            await voice.aclose()


def load_engines(options: EngineOptions) -> Engines:
    """Blocking: load and warm up the engines ``options`` selects."""
    started = time.perf_counter()
    vad = SileroVad(gather_ms=options.vad_gather_ms)
    vad.warm_up()
    voices = {name: _load_tts(options, voice) for name, voice in options.voices}
    engines = Engines(vad=vad, stt=_load_stt(options), tts=_load_tts(options, VoiceOptions()), voices=voices)
    logger.info(
        "speech engines loaded",
        extra={"stt": options.stt, "tts": options.tts, "load_ms": (time.perf_counter() - started) * 1000},
    )
    return engines


def _load_stt(options: EngineOptions) -> SpeechToText:
    if options.stt != "deepgram":
        return _local_stt(options.stt, options)
    from runtime.deepgram_stt import DeepgramStt

    vendors = options.vendors
    vendor = DeepgramStt(
        api_key=vendors.deepgram_api_key,
        base_url=vendors.deepgram_base_url,
        model=vendors.deepgram_model,
        stall_timeout_s=vendors.deepgram_stall_timeout_s,
    )
    if options.stt_fallback == "none":
        return vendor
    return FallbackStt(vendor, _local_stt(options.stt_fallback, options), CircuitBreaker("deepgram"))


def _local_stt(kind: str, options: EngineOptions) -> SpeechToText:
    if kind == "scripted":
        return ScriptedStt(options.scripted_transcripts)
    stt = WhisperStt(cpu_threads=options.stt_threads)
    stt.warm_up()
    return stt


def _load_tts(options: EngineOptions, voice: VoiceOptions) -> TextToSpeech:
    if options.tts != "elevenlabs":
        return _local_tts(options.tts, options, voice)
    from runtime.elevenlabs_tts import ElevenLabsTts

    vendors = options.vendors
    vendor = ElevenLabsTts(
        api_key=vendors.elevenlabs_api_key,
        voice_id=voice.elevenlabs_voice_id or vendors.elevenlabs_voice_id,
        base_url=vendors.elevenlabs_base_url,
        model_id=vendors.elevenlabs_model,
        first_byte_timeout_s=vendors.elevenlabs_first_byte_timeout_s,
    )
    if options.tts_fallback == "none":
        return vendor
    return FallbackTts(vendor, _local_tts(options.tts_fallback, options, voice), CircuitBreaker("elevenlabs"))


def _local_tts(kind: str, options: EngineOptions, voice: VoiceOptions) -> TextToSpeech:
    if kind == "scripted":
        return ScriptedTts(pitch=voice.pitch)
    tts = PiperTts(intra_op_threads=options.tts_threads, pitch=voice.pitch)
    tts.warm_up()
    return tts
