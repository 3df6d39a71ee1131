"""Caller sentiment per turn (VADER) and its least-squares trend."""

from __future__ import annotations

import pytest

from analytics.sentiment import analyse_sentiment, label_of, least_squares_slope, score_text
from runtime.events import CallerUtterance


def said(turn: int, text: str) -> CallerUtterance:
    return CallerUtterance(at=turn * 10.0, turn=turn, text=text, speech_ms=1500.0)


@pytest.mark.parametrize(
    ("compound", "label"),
    [(0.05, "positive"), (0.0499, "neutral"), (0.0, "neutral"), (-0.0499, "neutral"), (-0.05, "negative")],
)
def test_labels_use_vaders_thresholds(compound: float, label: str) -> None:
    assert label_of(compound) == label


def test_scores_follow_the_words() -> None:
    assert score_text("This is great, thank you so much!") > 0.5
    assert score_text("This is terrible, stop calling me.") < -0.5
    assert score_text("The house has three bedrooms") == 0.0


@pytest.mark.parametrize(
    ("values", "slope"),
    [
        ([], 0.0),
        ([0.4], 0.0),
        ([0.0, 0.5, 1.0], 0.5),
        # x = 0..3, mean 1.5; y mean 0.25; cov = (-1.5)(-0.75)+(-0.5)(0.25)+(0.5)(-0.25)+(1.5)(0.75) = 2.0;
        # var = 2.25+0.25+0.25+2.25 = 5 -> 0.4
        ([-0.5, 0.5, 0.0, 1.0], 0.4),
        ([0.3, 0.3, 0.3], 0.0),
    ],
)
def test_least_squares_slope(values: list[float], slope: float) -> None:
    assert least_squares_slope(values) == pytest.approx(slope)


def test_a_call_that_turns_around_is_improving() -> None:
    report = analyse_sentiment(
        [
            said(1, "This is terrible, stop calling me."),
            said(2, "I want a three bedroom house in Austin"),
            said(3, "This is great, thank you so much!"),
        ]
    )
    first, last = report.turns[0].compound, report.turns[-1].compound
    assert [t.label for t in report.turns] == ["negative", "positive", "positive"]
    # three evenly spaced points: the slope is (last - first) / 2
    assert report.slope == pytest.approx((last - first) / 2, abs=1e-4)
    assert report.direction == "improving"
    assert report.mean == pytest.approx(sum(t.compound for t in report.turns) / 3, abs=1e-4)


def test_a_souring_call_is_declining() -> None:
    report = analyse_sentiment([said(1, "I love it, wonderful!"), said(2, "No, I hate this. Awful.")])
    assert report.direction == "declining"
    assert report.slope < 0


def test_one_turn_has_no_trend() -> None:
    report = analyse_sentiment([said(1, "Great, thanks!")])
    assert (report.slope, report.direction) == (0.0, "unknown")


def test_other_languages_are_not_scored() -> None:
    utterances = [said(1, "Esto es terrible"), said(2, "This is great!"), said(3, "Yes")]
    report = analyse_sentiment(utterances, {1: "es", 2: "en", 3: "unknown"})
    assert [t.turn for t in report.turns] == [2, 3]
    assert report.unscored_turns == (1,)


def test_no_turns() -> None:
    report = analyse_sentiment([])
    assert (report.turns, report.mean, report.direction) == ((), None, "unknown")
