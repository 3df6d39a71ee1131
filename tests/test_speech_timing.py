"""What a caller heard of a sentence cut short: by the engine's character timing when it gives
one (ElevenLabs' alignment), else by the share of the audio played."""

from __future__ import annotations

import pytest

from runtime.speech import SpeechTiming

TEXT = "Hi Sarah, which works best?"


def timed(text: str, ms_per_char: dict[int, float], default_ms: float = 50.0) -> list[tuple[str, float]]:
    """``text``'s characters said one after another, ``ms_per_char[i]`` for the i-th (slow ones)."""
    said, at = [], 0.0
    for index, char in enumerate(text):
        at += ms_per_char.get(index, default_ms)
        said.append((char, at))
    return said


def test_the_words_heard_are_the_whole_words_said_by_then() -> None:
    timing = SpeechTiming()
    # "Hi" is drawn out: 2 x 600 ms. With an even spread, 1.3 s of ~2.5 s would be half the words.
    said = timed(TEXT, {0: 600.0, 1: 600.0})
    timing.add(said[-1][1], said)
    assert timing.heard_words(TEXT, 1300.0) == ["Hi"]  # " S" said, "Sarah," not finished
    assert timing.heard_words(TEXT, 1200.0) == ["Hi"]  # "Hi" just ended, its space not yet said
    assert timing.heard_words(TEXT, 1199.0) == []  # cut inside "Hi"
    assert timing.heard_words(TEXT, said[-1][1]) == TEXT.split()


def test_times_run_on_from_one_chunk_to_the_next() -> None:
    timing = SpeechTiming()
    said = timed(TEXT, {})  # 50 ms a character
    first, second = said[:10], [(char, by_ms - 500.0) for char, by_ms in said[10:]]
    timing.add(500.0, first)
    timing.add(900.0, second)
    assert timing.said_by_ms == said
    assert timing.heard_words(TEXT, 10 * 50.0) == ["Hi", "Sarah,"]  # "Hi Sarah, " is ten characters
    assert timing.heard_words(TEXT, 16 * 50.0) == ["Hi", "Sarah,", "which"]


@pytest.mark.parametrize("untimed_chunk_first", [True, False])
def test_without_timing_for_every_chunk_the_share_of_audio_is_used(untimed_chunk_first: bool) -> None:
    """A sentence the vendor began and the local engine finished has no timing for part of it."""
    timing = SpeechTiming()
    said = timed(TEXT, {0: 600.0, 1: 600.0})
    chunks = [(500.0, []), (2000.0, said)] if untimed_chunk_first else [(2000.0, said), (500.0, [])]
    for chunk_ms, chars in chunks:
        timing.add(chunk_ms, chars)
    assert timing.audio_ms == 2500.0
    assert timing.heard_words(TEXT, 1250.0) == ["Hi", "Sarah,"]  # half the audio, half the words


def test_no_audio_played_is_no_word_heard() -> None:
    timing = SpeechTiming()
    assert timing.heard_words(TEXT, 0.0) == []
    timing.add(1000.0, timed(TEXT, {}))
    assert timing.heard_words(TEXT, 0.0) == []
