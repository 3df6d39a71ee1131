"""WhisperStt on phone-path Piper speech, its utterance buffering, and ScriptedStt."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from runtime.audio import FRAME_SAMPLES, SAMPLE_RATE, Pcm
from runtime.stt import WHISPER_RATE, ScriptedStt, WhisperStt

KEY_WORDS = {"looking", "buy", "three", "bedroom", "house", "austin"}
DIGIT_WORDS = {"3": "three", "4": "four", "2": "two"}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, digits spelled out (Whisper writes "3")."""
    return [DIGIT_WORDS.get(word, word) for word in re.findall(r"[a-z0-9']+", text.lower())]


def push_frames(stream: Any, pcm: Pcm) -> None:
    for start in range(0, pcm.size, FRAME_SAMPLES):
        stream.push_audio(pcm[start : start + FRAME_SAMPLES])


def tone(seconds: float) -> Pcm:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * 440 * t) * 16000).astype(np.int16)


def silence(seconds: float) -> Pcm:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def rms(audio: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


@dataclass
class FakeSegment:
    text: str


class RecordingModel:
    """Stands in for the Whisper model: records what it is given."""

    def __init__(self) -> None:
        self.audio: list[np.ndarray[Any, Any]] = []
        self.options: list[dict[str, Any]] = []

    def transcribe(self, audio: np.ndarray[Any, Any], **options: Any) -> tuple[Iterator[FakeSegment], None]:
        self.audio.append(audio)
        self.options.append(options)
        return iter([FakeSegment(" Hello"), FakeSegment(" there. ")]), None


class ConcurrencyProbe:
    """Wraps the real model, counting calls and how many run at once."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def transcribe(self, audio: np.ndarray[Any, Any], **options: Any) -> tuple[list[Any], Any]:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            segments, info = self.model.transcribe(audio, **options)
            return list(segments), info
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
async def recorded() -> AsyncIterator[tuple[WhisperStt, RecordingModel]]:
    engine = WhisperStt()
    model = RecordingModel()
    engine.model = model
    yield engine, model
    await engine.aclose()


@pytest.mark.engines
async def test_transcribes_phone_path_speech_with_preroll(whisper: WhisperStt, sentence_audio: Pcm) -> None:
    stream = whisper.open_stream("CA1")
    onset = 300 * SAMPLE_RATE // 1000  # the VAD confirms speech this late: only the pre-roll has it
    push_frames(stream, silence(0.5))
    push_frames(stream, sentence_audio[:onset])
    stream.speech_started()
    push_frames(stream, sentence_audio[onset:])
    transcript = await stream.finish_utterance()
    heard = words(transcript.text)
    assert KEY_WORDS <= set(heard), transcript.text
    assert heard[0] in ("i", "i'm"), transcript.text
    assert transcript.engine_ms > 0
    await stream.aclose()


@pytest.mark.engines
async def test_streams_share_the_model_one_utterance_at_a_time(
    whisper: WhisperStt, sentence_audio: Pcm, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = ConcurrencyProbe(whisper.model)
    monkeypatch.setattr(whisper, "model", probe)
    first, second = whisper.open_stream("CA1"), whisper.open_stream("CA2")
    assert first.engine.model is second.engine.model
    for stream in (first, second):
        stream.speech_started()
        push_frames(stream, sentence_audio)
    transcripts = await asyncio.gather(first.finish_utterance(), second.finish_utterance())
    for transcript in transcripts:
        assert KEY_WORDS <= set(words(transcript.text)), transcript.text
    assert probe.calls == 2
    assert probe.max_active == 1
    # The second utterance waited for the first; its engine time says so.
    waits = sorted(transcript.engine_ms for transcript in transcripts)
    assert waits[1] > 1.5 * waits[0]


async def test_hands_whisper_16k_float_audio_with_the_documented_options(
    recorded: tuple[WhisperStt, RecordingModel],
) -> None:
    engine, model = recorded
    stream = engine.open_stream("CA1")
    stream.speech_started()
    push_frames(stream, tone(1.0))
    transcript = await stream.finish_utterance()
    assert transcript.text == "Hello there."
    (audio,) = model.audio
    assert audio.dtype == np.float32
    assert audio.size == WHISPER_RATE * 1.0
    assert 0.3 < float(np.max(np.abs(audio))) <= 1.0
    assert model.options == [
        {"language": "en", "beam_size": 1, "without_timestamps": True, "condition_on_previous_text": False}
    ]


async def test_utterance_starts_with_300_ms_of_preroll(recorded: tuple[WhisperStt, RecordingModel]) -> None:
    engine, model = recorded
    stream = engine.open_stream("CA1")
    push_frames(stream, silence(1.0))
    push_frames(stream, tone(0.3))
    stream.speech_started()
    push_frames(stream, silence(0.5))
    await stream.finish_utterance()
    (audio,) = model.audio
    preroll = int(0.3 * WHISPER_RATE)
    assert audio.size == int(0.8 * WHISPER_RATE)
    assert rms(audio[:preroll]) > 0.3
    assert rms(audio[preroll + 160 :]) < 0.01


async def test_preroll_can_be_turned_off() -> None:
    engine = WhisperStt(preroll_ms=0)
    model = RecordingModel()
    engine.model = model
    stream = engine.open_stream("CA1")
    push_frames(stream, tone(1.0))
    stream.speech_started()
    push_frames(stream, silence(0.5))
    await stream.finish_utterance()
    (audio,) = model.audio
    assert audio.size == int(0.5 * WHISPER_RATE)
    await engine.aclose()


async def test_each_utterance_gets_the_latest_preroll(recorded: tuple[WhisperStt, RecordingModel]) -> None:
    engine, model = recorded
    stream = engine.open_stream("CA1")
    stream.speech_started()
    push_frames(stream, tone(1.0))
    await stream.finish_utterance()
    push_frames(stream, silence(1.0))
    stream.speech_started()
    await stream.finish_utterance()
    assert rms(model.audio[1]) < 0.01  # the tone of the previous utterance is not in it
    assert model.audio[1].size == int(0.3 * WHISPER_RATE)


async def test_long_utterance_keeps_the_newest_30_s(
    recorded: tuple[WhisperStt, RecordingModel], caplog: pytest.LogCaptureFixture
) -> None:
    engine, model = recorded
    stream = engine.open_stream("CA1")
    stream.speech_started()
    with caplog.at_level(logging.WARNING, logger="runtime.stt"):
        push_frames(stream, tone(5.0))
        push_frames(stream, silence(30.0))
    await stream.finish_utterance()
    (audio,) = model.audio
    assert audio.size == 30 * WHISPER_RATE
    assert rms(audio[100:]) < 0.01  # the oldest audio (the tone) was dropped
    assert [record.message for record in caplog.records] == ["utterance too long, dropping its oldest audio"]


async def test_empty_utterance_is_empty_text_without_the_model(
    recorded: tuple[WhisperStt, RecordingModel],
) -> None:
    engine, model = recorded
    stream = engine.open_stream("CA1")
    push_frames(stream, tone(1.0))  # audio, but speech never started
    started = time.perf_counter()
    transcript = await stream.finish_utterance()
    assert (time.perf_counter() - started) < 0.05
    assert transcript.text == ""
    assert model.audio == []


async def test_discarded_utterance_is_forgotten(recorded: tuple[WhisperStt, RecordingModel]) -> None:
    engine, model = recorded
    stream = engine.open_stream("CA1")
    stream.speech_started()
    push_frames(stream, tone(1.0))
    stream.discard_utterance()
    assert (await stream.finish_utterance()).text == ""
    assert model.audio == []


def test_whisper_options_are_validated() -> None:
    with pytest.raises(ValueError):
        WhisperStt(cpu_threads=0)


# --- ScriptedStt ---------------------------------------------------------------------------


async def test_scripted_stream_cycles_through_its_script() -> None:
    stream = ScriptedStt(["one", "two"]).open_stream("CA1")
    heard = [(await stream.finish_utterance()).text for _ in range(5)]
    assert heard == ["one", "two", "one", "two", "one"]


async def test_scripted_streams_are_independent_and_discard_does_not_advance() -> None:
    stt = ScriptedStt(["one", "two"])
    first, second = stt.open_stream("CA1"), stt.open_stream("CA2")
    assert (await first.finish_utterance()).text == "one"
    second.speech_started()
    second.push_audio(tone(0.02))
    second.discard_utterance()
    assert (await second.finish_utterance()).text == "one"
    assert (await first.finish_utterance()).text == "two"
    await first.aclose()


async def test_scripted_latency_is_reported() -> None:
    stream = ScriptedStt(["one"], latency_s=0.05).open_stream("CA1")
    started = time.perf_counter()
    transcript = await stream.finish_utterance()
    assert time.perf_counter() - started >= 0.05
    assert transcript.engine_ms >= 50


def test_scripted_needs_a_script() -> None:
    with pytest.raises(ValueError):
        ScriptedStt([])


async def test_scripted_speculation_hides_latency_and_is_void_after_resume() -> None:
    stream = ScriptedStt(["first", "second"], latency_s=0.2).open_stream("CA-spec")
    stream.speech_paused()
    await asyncio.sleep(0.25)  # the turn ends after the recognition finished
    transcript = await stream.finish_utterance()
    assert transcript.text == "first" and transcript.speculative
    assert transcript.engine_ms < 50
    stream.speech_paused()
    stream.speech_resumed()  # caller went on: start over at the turn's end
    transcript = await stream.finish_utterance()
    assert transcript.text == "second" and not transcript.speculative
    assert transcript.engine_ms >= 190


@pytest.mark.engines
async def test_whisper_speculation_gives_the_same_transcript(whisper: WhisperStt, sentence_audio: Pcm) -> None:
    pcm = sentence_audio
    plain, speculative = whisper.open_stream("CA-plain"), whisper.open_stream("CA-spec")
    for stream in (plain, speculative):
        stream.speech_started()
        stream.push_audio(pcm)
    speculative.speech_paused()
    speculative.push_audio(np.zeros(2400, dtype=np.int16))  # 300 ms of silence until the turn ends
    first = await plain.finish_utterance()
    second = await speculative.finish_utterance()
    assert second.speculative and not first.speculative
    assert second.text == first.text


async def test_a_scripted_turn_that_goes_on_after_its_draft_adds_no_words() -> None:
    """Lines are whole turns: a draft at a pause takes the line; the rest of the turn is empty,
    and the next turn is the next line."""
    stream = ScriptedStt(["I want a house in Austin", "Around 400k"]).open_stream("CA1")
    stream.speech_paused()
    assert (await stream.finish_utterance()).text == "I want a house in Austin"  # the draft's
    stream.speech_continued()
    assert (await stream.finish_utterance()).text == ""
    stream.speech_started()
    assert (await stream.finish_utterance()).text == "Around 400k"


async def test_a_scripted_script_of_fragments_gives_every_utterance_a_line() -> None:
    stream = ScriptedStt(["I want a house", "in Austin"], lines_are_turns=False).open_stream("CA1")
    assert (await stream.finish_utterance()).text == "I want a house"
    stream.speech_continued()
    assert (await stream.finish_utterance()).text == "in Austin"
