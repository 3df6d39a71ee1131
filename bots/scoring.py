"""How hot a lead is, from what the bots learned: hot (ready now: offer a person), warm (book an
appointment), cold (a follow-up). Pure: answers in (as ``bots.flows`` keeps them), a score with
the reasons an agent reads out.

Points, in the way inside-sales teams rank leads: a near timeline and money in place make a
buyer hot; a near timeline and a pressing reason make a seller hot; a home already listed with
another agent is not ours to work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Temperature = Literal["hot", "warm", "cold"]

#: Points at which a lead is hot or warm: a buyer needs a near timeline and money in place to
#: be hot (2 + 2); either one alone, or both only partly, makes them warm.
HOT_POINTS = 4
WARM_POINTS = 2

_TIMELINE_POINTS = {
    "asap": (2, "wants to move as soon as possible"),
    "0-3 months": (2, "moving within 3 months"),
    "3-6 months": (1, "moving in 3 to 6 months"),
    "6-12 months": (0, "moving in 6 to 12 months"),
    "12+ months": (-1, "more than a year out"),
    "unknown": (0, "no timeline yet"),
}
_FINANCING_POINTS = {
    "pre-approved": (2, "pre-approved"),
    "cash": (2, "paying cash"),
    "needs lender": (0, "still needs a lender"),
    "not sure": (0, "financing unclear"),
}
#: Reasons that put a seller on a clock of their own.
_PRESSING_REASONS = frozenset({"relocation", "divorce", "financial", "inherited", "growing family", "retirement"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    temperature: Temperature
    points: int
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "points": self.points, "reasons": list(self.reasons)}


_Part = tuple[int, str]
_RANK: dict[Temperature, int] = {"cold": 0, "warm": 1, "hot": 2}


def _timeline(answers: Mapping[str, Any]) -> _Part:
    timeline = answers.get("timeline")
    return _TIMELINE_POINTS[timeline["bucket"]] if timeline else (0, "timeline unknown")


def _financing(answers: Mapping[str, Any]) -> _Part:
    financing = answers.get("financing")
    return _FINANCING_POINTS[financing] if financing else (0, "financing unknown")


def _motivation(answers: Mapping[str, Any], slot: str, pressing: frozenset[str] | None) -> _Part:
    reason = answers.get(slot)
    if not reason:
        return 0, "motivation unknown"
    if reason["kind"] == "other" or (pressing is not None and reason["kind"] not in pressing):
        return 0, f"motivation: {reason['kind']}"
    return 1, f"motivated: {reason['kind']}"


def _temperature(points: int) -> Temperature:
    return "hot" if points >= HOT_POINTS else "warm" if points >= WARM_POINTS else "cold"


def _score(parts: list[_Part], *, blocked: str | None = None) -> Score:
    points = sum(p for p, _ in parts)
    reasons = tuple(reason for _, reason in parts)
    if blocked:
        return Score(temperature="cold", points=points, reasons=(blocked, *reasons))
    return Score(temperature=_temperature(points), points=points, reasons=reasons)


def score_buyer(answers: Mapping[str, Any]) -> Score:
    parts = [_timeline(answers), _financing(answers), _motivation(answers, "motivation", None)]
    if answers.get("must_sell_first") == "yes":
        parts.append((-1, "must sell first"))
    return _score(parts)


def score_seller(answers: Mapping[str, Any]) -> Score:
    parts = [_timeline(answers), _motivation(answers, "reason", _PRESSING_REASONS)]
    listed = answers.get("listed_with_agent")
    if listed == "no":
        parts.append((1, "not listed with another agent"))
    return _score(parts, blocked="listed with another agent" if listed == "yes" else None)


def score_lead(answers_by_bot: Mapping[str, Mapping[str, Any]]) -> Score:
    """The caller's score: the better of their buyer and seller scores (a caller who is both is
    as hot as their hotter side); cold with no qualifying answers yet."""
    scores = [
        score(answers_by_bot[role])
        for role, score in (("buyer", score_buyer), ("seller", score_seller))
        if answers_by_bot.get(role)
    ]
    if not scores:
        return Score(temperature="cold", points=0, reasons=("not qualified yet",))
    return max(scores, key=lambda s: (_RANK[s.temperature], s.points))
