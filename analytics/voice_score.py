"""The voice performance score of a call: one 0-100 figure from how the conversation flowed and
how it ended. The formula, its reasons and a worked example are in docs/voice-score.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.summary import CallOutcome

#: Outcome points: a booking or a caller handed to a person is the goal; a qualified lead nearly
#: so; a partial one leaves work for an agent. A voicemail is no conversation: not scored.
OUTCOME_POINTS: dict[CallOutcome, float | None] = {
    "booked": 100.0,
    "transferred": 100.0,
    "qualified": 80.0,
    "partial": 40.0,
    "no_answers": 0.0,
    "voicemail": None,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreOptions:
    #: the turn budget: first audio within 800 ms at P95 (README, LEADLINE_ACK_AFTER_MS) scores full marks
    latency_budget_ms: float = 800.0
    #: a P95 at the dead-air threshold (2 s, issue 6) scores nothing
    latency_zero_ms: float = 2000.0
    #: one caller interruption every other bot turn scores nothing
    interruption_zero_rate: float = 0.5
    #: one long caller silence every other bot turn scores nothing
    silence_zero_rate: float = 0.5
    latency_weight: float = 35.0
    interruption_weight: float = 20.0
    silence_weight: float = 15.0
    outcome_weight: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.latency_budget_ms < self.latency_zero_ms:
            raise ValueError("latency_budget_ms must be positive and below latency_zero_ms")
        if self.interruption_zero_rate <= 0 or self.silence_zero_rate <= 0:
            raise ValueError("zero rates must be positive")
        weights = (self.latency_weight, self.interruption_weight, self.silence_weight, self.outcome_weight)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError("weights must not be negative and must not all be zero")


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceScore:
    score: float
    #: each part, 0-100; None when the call gave nothing to judge it by (then left out)
    latency: float | None
    interruptions: float
    silence: float
    outcome: float | None


def voice_score(
    *,
    interruption_rate: float,
    silence_rate: float,
    latency_p95_ms: float | None,
    outcome: CallOutcome,
    options: ScoreOptions = ScoreOptions(),
) -> VoiceScore:
    """The weighted mean of the parts that apply, rounded to one decimal."""
    latency = None if latency_p95_ms is None else latency_points(latency_p95_ms, options)
    interruptions = rate_points(interruption_rate, options.interruption_zero_rate)
    silence = rate_points(silence_rate, options.silence_zero_rate)
    points = OUTCOME_POINTS[outcome]
    parts = [
        (latency, options.latency_weight),
        (interruptions, options.interruption_weight),
        (silence, options.silence_weight),
        (points, options.outcome_weight),
    ]
    weighted = [(value, weight) for value, weight in parts if value is not None]
    total = sum(weight for _, weight in weighted)
    score = sum(value * weight for value, weight in weighted) / total if total else 0.0
    return VoiceScore(
        score=round(score, 1), latency=latency, interruptions=interruptions, silence=silence, outcome=points
    )


def latency_points(p95_ms: float, options: ScoreOptions = ScoreOptions()) -> float:
    """100 within budget, falling linearly to 0 at ``latency_zero_ms``."""
    span = options.latency_zero_ms - options.latency_budget_ms
    return round(100 * _clamp((options.latency_zero_ms - p95_ms) / span), 2)


def rate_points(rate: float, zero_rate: float) -> float:
    """100 at a rate of 0, falling linearly to 0 at ``zero_rate``."""
    return round(100 * _clamp(1 - rate / zero_rate), 2)


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))
