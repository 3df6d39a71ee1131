"""The caller's sentiment per turn (VADER) and its trend over the call.

VADER (Hutto and Gilbert, 2014) is a lexicon and rule-based analyser built for short, informal
English, which is what a caller's turn is. Its ``compound`` score runs from -1 to 1; the labels
use the thresholds its authors document: positive at >= 0.05, negative at <= -0.05, neutral
between. VADER's lexicon is English only, so turns detected as another language are not scored.

The trend is the slope of the least-squares line through the scored turns' compound scores
against their position (0, 1, 2, ...): compound points per caller turn. A slope is used rather
than a first-half/second-half delta because it uses every turn and is not moved by where the
middle of an odd-length call falls.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from runtime.events import CallerUtterance

SentimentLabel = Literal["positive", "neutral", "negative"]
TrendDirection = Literal["improving", "steady", "declining", "unknown"]

#: VADER's documented thresholds on the compound score.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05
#: A slope this steep (compound points per turn) moves a neutral caller to clearly positive or
#: negative within about five turns; flatter is "steady".
TREND_SLOPE = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnSentiment:
    turn: int
    at: float
    compound: float
    label: SentimentLabel


@dataclass(frozen=True, slots=True, kw_only=True)
class SentimentReport:
    turns: tuple[TurnSentiment, ...]
    #: least-squares slope of compound over scored-turn position; 0.0 with fewer than two
    slope: float
    direction: TrendDirection
    mean: float | None
    #: turns not scored because they are in another language than English
    unscored_turns: tuple[int, ...]


@functools.cache
def _analyser() -> SentimentIntensityAnalyzer:
    """Loads the lexicon once per process (about 7,500 entries)."""
    return SentimentIntensityAnalyzer()


def label_of(compound: float) -> SentimentLabel:
    if compound >= POSITIVE_AT:
        return "positive"
    if compound <= NEGATIVE_AT:
        return "negative"
    return "neutral"


def score_text(text: str) -> float:
    """VADER's compound score of ``text``, -1 to 1."""
    return float(_analyser().polarity_scores(text)["compound"])


def least_squares_slope(values: Sequence[float]) -> float:
    """Slope of the least-squares line through (0, v0), (1, v1), ...; 0.0 for fewer than two points."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    variance = sum((x - mean_x) ** 2 for x in range(n))
    return covariance / variance


def analyse_sentiment(
    utterances: Sequence[CallerUtterance], languages: Mapping[int, str] | None = None
) -> SentimentReport:
    """``languages``: turn -> detected language; turns known to be another language than English
    are skipped ("unknown" and missing turns are scored)."""
    languages = languages or {}
    turns = tuple(_turn_sentiment(u) for u in utterances if _scorable(u, languages))
    compounds = [t.compound for t in turns]
    slope = least_squares_slope(compounds)
    return SentimentReport(
        turns=turns,
        slope=round(slope, 4),
        direction=_direction(slope, len(compounds)),
        mean=round(sum(compounds) / len(compounds), 4) if compounds else None,
        unscored_turns=tuple(u.turn for u in utterances if not _scorable(u, languages)),
    )


def _scorable(utterance: CallerUtterance, languages: Mapping[int, str]) -> bool:
    return languages.get(utterance.turn, "unknown") in ("en", "unknown")


def _turn_sentiment(utterance: CallerUtterance) -> TurnSentiment:
    compound = score_text(utterance.text)
    return TurnSentiment(turn=utterance.turn, at=utterance.at, compound=compound, label=label_of(compound))


def _direction(slope: float, points: int) -> TrendDirection:
    if points < 2:
        return "unknown"
    if slope >= TREND_SLOPE:
        return "improving"
    if slope <= -TREND_SLOPE:
        return "declining"
    return "steady"
