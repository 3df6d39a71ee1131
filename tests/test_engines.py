"""EngineOptions validation and load_engines: scripted engines need no model, real ones load once."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NoReturn

import numpy as np
import pytest

import runtime.engines
from runtime.audio import FRAME_SAMPLES, ulaw_to_pcm
from runtime.engines import DEFAULT_SCRIPTED_TRANSCRIPTS, EngineOptions, load_engines
from runtime.speech import SpeechEngineError
from runtime.stt import ScriptedStt, WhisperStt
from runtime.tts import PiperTts, ScriptedTts
from runtime.vad import SileroVad

SCRIPTED = EngineOptions(stt="scripted", tts="scripted")


@pytest.mark.parametrize(
    "changes",
    [
        {"stt": "vosk"},
        {"tts": "espeak"},
        {"stt_threads": 0},
        {"tts_threads": 0},
        {"vad_gather_ms": -1.0},
        {"scripted_transcripts": ()},
        {"scripted_transcripts": ("Yes", "  ")},
    ],
)
def test_invalid_options_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(SCRIPTED, **changes)


def test_options_are_frozen_and_keyword_only() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCRIPTED.stt_threads = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        EngineOptions("scripted", "scripted")  # type: ignore[call-arg]


def test_default_script_answers_lead_qualification_questions() -> None:
    assert SCRIPTED.scripted_transcripts == DEFAULT_SCRIPTED_TRANSCRIPTS
    assert SCRIPTED.stt_threads == 2 and SCRIPTED.tts_threads == 1
    assert any("bedroom" in line for line in DEFAULT_SCRIPTED_TRANSCRIPTS)
    assert any("dollars" in line for line in DEFAULT_SCRIPTED_TRANSCRIPTS)


def refuse_to_load(**options: Any) -> NoReturn:
    raise AssertionError("scripted engines must not load a model")


async def test_scripted_engines_load_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.engines, "WhisperStt", refuse_to_load)
    monkeypatch.setattr(runtime.engines, "PiperTts", refuse_to_load)
    options = dataclasses.replace(SCRIPTED, scripted_transcripts=("Hello", "Bye"))
    engines = load_engines(options)
    assert isinstance(engines.vad, SileroVad)
    assert isinstance(engines.stt, ScriptedStt)
    assert isinstance(engines.tts, ScriptedTts)
    stream = engines.stt.open_stream("CA1")
    assert [(await stream.finish_utterance()).text for _ in range(3)] == ["Hello", "Bye", "Hello"]
    assert len(await engines.tts.render("Hello.")) > 0
    await engines.aclose()


async def test_aclose_stops_the_vad() -> None:
    engines = load_engines(SCRIPTED)
    stream = engines.vad.open_stream()
    await stream.process(np.zeros(FRAME_SAMPLES * 2, dtype=np.int16))
    await engines.aclose()
    with pytest.raises(SpeechEngineError):
        await stream.process(np.zeros(FRAME_SAMPLES * 2, dtype=np.int16))


@pytest.mark.engines
async def test_real_engines_load_once_and_work_together() -> None:
    options = EngineOptions(stt="whisper", tts="piper")
    first, second = load_engines(options), load_engines(options)
    assert isinstance(first.stt, WhisperStt) and isinstance(second.stt, WhisperStt)
    assert isinstance(first.tts, PiperTts) and isinstance(second.tts, PiperTts)
    assert first.stt.model is second.stt.model
    assert first.tts.voice is second.tts.voice

    speech = ulaw_to_pcm(await first.tts.render("I am looking to buy a three bedroom house in Austin."))
    probabilities = await first.vad.open_stream().process(speech)
    assert max(probabilities) > 0.9
    stream = first.stt.open_stream("CA1")
    stream.speech_started()
    stream.push_audio(speech)
    heard = re.findall(r"[a-z0-9]+", (await stream.finish_utterance()).text.lower())
    assert {"looking", "bedroom", "house", "austin"} <= set(heard)
    await first.aclose()
    await second.aclose()
