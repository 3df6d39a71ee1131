"""Turn detection on made-up VAD timelines (32 ms windows)."""

from __future__ import annotations

from runtime.config import TurnOptions
from runtime.turn import (
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
    SpeechSustained,
    TurnDetector,
    TurnEnded,
    TurnSignal,
)

W = 0.032


def run(probabilities: list[float], options: TurnOptions | None = None) -> list[tuple[float, TurnSignal]]:
    detector = TurnDetector(options or TurnOptions(), W * 1000)
    signals = []
    for i, p in enumerate(probabilities):
        at = round((i + 1) * W, 6)
        signal = detector.feed(p, at)
        if signal is not None:
            signals.append((at, signal))
    return signals


def test_speech_then_silence_is_one_turn_with_exact_times() -> None:
    # 10 windows quiet, 20 windows speech (640 ms), then 20 windows quiet.
    signals = run([0.0] * 10 + [0.9] * 20 + [0.0] * 20)
    kinds = [type(s) for _, s in signals]
    assert kinds == [SpeechStarted, SpeechSustained, SpeechPaused, TurnEnded]
    assert abs(signals[2][0] - (30 + 7) * W) < 1e-9  # 200 ms of silence needs 7 windows (224 ms)
    started = signals[0][1]
    assert isinstance(started, SpeechStarted)
    assert abs(started.at - 10 * W) < 1e-9  # onset = start of the first voiced window
    ended = signals[3][1]
    assert isinstance(ended, TurnEnded)
    assert abs(ended.speech_end_at - 30 * W) < 1e-9
    # 500 ms of silence needs 16 windows (512 ms) after the last voiced one.
    assert abs(ended.at - 46 * W) < 1e-9
    assert abs(ended.speech_ms - 640) < 1e-6


def test_short_blips_are_not_speech() -> None:
    assert run([0.0, 0.9, 0.0, 0.9, 0.9, 0.0] * 10) == []


def test_pause_shorter_than_end_of_turn_keeps_the_turn_open() -> None:
    signals = run([0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 20)
    assert [type(s) for _, s in signals] == [
        SpeechStarted, SpeechSustained, SpeechPaused, SpeechResumed, SpeechPaused, TurnEnded,
    ]  # fmt: skip


def test_no_pause_signal_when_speculation_is_off() -> None:
    signals = run([0.9] * 10 + [0.0] * 20, TurnOptions(speculate_after_ms=0))
    assert [type(s) for _, s in signals] == [SpeechStarted, SpeechSustained, TurnEnded]


def test_hysteresis_keeps_quiet_tail_of_a_word_in_the_turn() -> None:
    # 0.4 is below the start threshold but above the silence threshold.
    signals = run([0.9] * 5 + [0.4] * 20 + [0.0] * 20)
    ended = next(s for _, s in signals if isinstance(s, TurnEnded))
    assert abs(ended.speech_end_at - 25 * W) < 1e-9


def test_sustained_is_reported_once_after_barge_in_threshold() -> None:
    signals = run([0.9] * 40 + [0.0] * 20, TurnOptions(barge_in_min_speech_ms=300, speculate_after_ms=0))
    sustained = [(at, s) for at, s in signals if isinstance(s, SpeechSustained)]
    assert len(sustained) == 1
    assert abs(sustained[0][0] - 10 * W) < 1e-9  # 320 ms after onset at 0


def test_configurable_end_of_turn_silence() -> None:
    signals = run([0.9] * 10 + [0.0] * 40, TurnOptions(end_of_turn_silence_ms=1000))
    ended = [at for at, s in signals if isinstance(s, TurnEnded)]
    assert abs(ended[0] - (10 + 32) * W) < 1e-9  # 1000 ms -> 32 windows (1024 ms)
