"""The voice performance score: docs/voice-score.md's worked example, reproduced from events."""

from __future__ import annotations

import pytest

from analytics.conversation import analyse_conversation
from analytics.summary import outcome_of
from analytics.voice_score import ScoreOptions, latency_points, rate_points, voice_score
from runtime.events import BotUtterance, CallEnded, CallerUtterance, CallEvent, GreetingLatency, Interruption
from tests.test_conversation_analytics import latency, qualification_call, spoken_call


def worked_example_call() -> list[CallEvent]:
    """docs/voice-score.md: greeting and four answers, one interruption with words, no silence,
    first audio 620, 700, 1160 and 540 ms."""
    events: list[CallEvent] = [
        GreetingLatency(at=0.5, latency_ms=500.0),
        BotUtterance(at=0.6, turn=0, text="Hi, thanks for calling!", audio_ms=3000.0),
    ]
    for turn, wait_ms in enumerate((620, 700, 1160, 540), start=1):
        speech_end = turn * 10.0
        events += [
            CallerUtterance(at=speech_end + 0.4, turn=turn, text="an answer", speech_ms=1200.0),
            latency(turn, speech_end_at=speech_end, first_frame_at=speech_end + wait_ms / 1000),
            BotUtterance(at=speech_end + 1.5, turn=turn, text="Got it. Next question?", audio_ms=2500.0),
        ]
    events.insert(
        8,
        Interruption(
            at=21.9, turn=2, reply_text="Got it.", heard_text="Got", reply_audio_ms=2500, heard_ms=500, reaction_ms=230
        ),
    )
    return [*events, CallEnded(at=45.0, reason="qualification complete")]


def test_the_worked_example() -> None:
    stats = analyse_conversation(worked_example_call())
    assert stats.first_audio_ms == (620.0, 700.0, 1160.0, 540.0)
    assert stats.latency_p95_ms == 1160.0
    assert (stats.bot_turns, stats.interruption_rate, stats.silence_rate) == (5, 0.2, 0.0)
    outcome = outcome_of({"bot": "lead", "stage": "done", "answers": {"intent": "buy"}})
    assert outcome.result == "qualified"
    score = voice_score(
        interruption_rate=stats.interruption_rate,
        silence_rate=stats.silence_rate,
        latency_p95_ms=stats.latency_p95_ms,
        outcome=outcome.result,
    )
    assert (score.latency, score.interruptions, score.silence, score.outcome) == (70.0, 60.0, 100.0, 80.0)
    assert score.score == 75.5


def test_the_qualification_call() -> None:
    stats = analyse_conversation(qualification_call())
    score = voice_score(
        interruption_rate=stats.interruption_rate,
        silence_rate=stats.silence_rate,
        latency_p95_ms=stats.latency_p95_ms,
        outcome="qualified",
    )
    # p95 2500 ms -> 0; both rates 1/6 (0.1667) -> 100 * (1 - 0.3334) = 66.66
    assert (score.latency, score.interruptions, score.silence) == (0.0, 66.66, 66.66)
    # (35 * 0 + 20 * 66.66 + 15 * 66.66 + 30 * 80) / 100 = 47.331
    assert score.score == 47.3


def test_a_call_with_the_speech_bounds() -> None:
    stats = analyse_conversation(spoken_call())
    # the caller's 11.5 s silence (reply heard -> onset) counts; the bot talking over them and the
    # unanswered turn are reported but not scored
    assert (stats.latency_p95_ms, stats.interruption_rate, stats.silence_rate) == (1200.0, 0.2, 0.2)
    score = voice_score(
        interruption_rate=stats.interruption_rate,
        silence_rate=stats.silence_rate,
        latency_p95_ms=stats.latency_p95_ms,
        outcome="qualified",
    )
    # latency 100 * 800 / 1200 = 66.67; both rates 0.2 -> 60
    assert (score.latency, score.interruptions, score.silence) == (66.67, 60.0, 60.0)
    # (35 * 66.67 + 20 * 60 + 15 * 60 + 30 * 80) / 100 = 68.3345
    assert score.score == 68.3


@pytest.mark.parametrize(
    ("p95_ms", "points"), [(300.0, 100.0), (800.0, 100.0), (1400.0, 50.0), (2000.0, 0.0), (5000.0, 0.0)]
)
def test_latency_points(p95_ms: float, points: float) -> None:
    assert latency_points(p95_ms) == points


@pytest.mark.parametrize(("rate", "points"), [(0.0, 100.0), (0.1, 80.0), (0.25, 50.0), (0.5, 0.0), (2.0, 0.0)])
def test_rate_points(rate: float, points: float) -> None:
    assert rate_points(rate, 0.5) == points


def test_a_perfect_booking_scores_100() -> None:
    score = voice_score(interruption_rate=0.0, silence_rate=0.0, latency_p95_ms=640.0, outcome="booked")
    assert score.score == 100.0


def test_parts_that_do_not_apply_are_left_out() -> None:
    # voicemail, never answered: only interruptions (20) and silence (15) count
    score = voice_score(interruption_rate=0.25, silence_rate=0.0, latency_p95_ms=None, outcome="voicemail")
    assert (score.latency, score.outcome) == (None, None)
    assert score.score == round((20 * 50 + 15 * 100) / 35, 1)


def test_weights_are_options() -> None:
    outcome_only = ScoreOptions(latency_weight=0, interruption_weight=0, silence_weight=0, outcome_weight=1)
    score = voice_score(
        interruption_rate=1.0, silence_rate=1.0, latency_p95_ms=3000.0, outcome="partial", options=outcome_only
    )
    assert score.score == 40.0


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="latency_budget_ms"):
        ScoreOptions(latency_budget_ms=2500.0)
    with pytest.raises(ValueError, match="weights"):
        ScoreOptions(latency_weight=0, interruption_weight=0, silence_weight=0, outcome_weight=0)
