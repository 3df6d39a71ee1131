"""Lead scoring, table-tested on answers as the flows keep them."""

from __future__ import annotations

from typing import Any

import pytest

from bots.scoring import Score, Temperature, score_buyer, score_lead, score_seller


def timeline(bucket: str) -> dict[str, Any]:
    return {"bucket": bucket, "target": None, "phrase": bucket}


def reason(kind: str) -> dict[str, str]:
    return {"kind": kind, "text": kind}


@pytest.mark.parametrize(
    ("answers", "temperature", "points", "reasons"),
    [
        (
            {"timeline": timeline("asap"), "financing": "cash"},
            "hot",
            4,
            ("wants to move as soon as possible", "paying cash", "motivation unknown"),
        ),
        (
            {"timeline": timeline("0-3 months"), "financing": "pre-approved", "motivation": reason("relocation")},
            "hot",
            5,
            ("moving within 3 months", "pre-approved", "motivated: relocation"),
        ),
        (
            {"timeline": timeline("0-3 months"), "financing": "needs lender"},
            "warm",
            2,
            ("moving within 3 months", "still needs a lender", "motivation unknown"),
        ),
        (
            {"timeline": timeline("3-6 months"), "financing": "pre-approved", "must_sell_first": "yes"},
            "warm",
            2,
            ("moving in 3 to 6 months", "pre-approved", "motivation unknown", "must sell first"),
        ),
        (
            {"timeline": timeline("12+ months"), "financing": "pre-approved"},
            "cold",
            1,
            ("more than a year out", "pre-approved", "motivation unknown"),
        ),
        (
            {"timeline": None, "financing": None, "motivation": reason("other")},
            "cold",
            0,
            ("timeline unknown", "financing unknown", "motivation: other"),
        ),
        ({}, "cold", 0, ("timeline unknown", "financing unknown", "motivation unknown")),
    ],
)
def test_buyer_scores(answers: dict[str, Any], temperature: Temperature, points: int, reasons: tuple[str, ...]) -> None:
    assert score_buyer(answers) == Score(temperature=temperature, points=points, reasons=reasons)


@pytest.mark.parametrize(
    ("answers", "temperature", "points", "first_reason"),
    [
        ({"timeline": timeline("asap"), "reason": reason("relocation"), "listed_with_agent": "no"}, "hot", 4, "wants"),
        ({"timeline": timeline("0-3 months"), "reason": reason("downsizing")}, "warm", 2, "moving within 3 months"),
        ({"timeline": timeline("6-12 months"), "reason": reason("divorce")}, "cold", 1, "moving in 6 to 12 months"),
        (
            {"timeline": timeline("asap"), "reason": reason("financial"), "listed_with_agent": "yes"},
            "cold",
            3,
            "listed with another agent",
        ),
    ],
)
def test_seller_scores(answers: dict[str, Any], temperature: str, points: int, first_reason: str) -> None:
    score = score_seller(answers)
    assert (score.temperature, score.points) == (temperature, points)
    assert score.reasons[0].startswith(first_reason)


def test_a_downsizing_seller_is_motivated_but_not_pressed() -> None:
    assert "motivation: downsizing" in score_seller({"reason": reason("downsizing")}).reasons
    assert "motivated: inherited" in score_seller({"reason": reason("inherited")}).reasons


def test_a_caller_who_is_both_is_as_hot_as_their_hotter_side() -> None:
    buyer = {"timeline": timeline("asap"), "financing": "cash"}
    seller = {"timeline": timeline("12+ months"), "listed_with_agent": "yes"}
    score = score_lead({"lead": {"name": "A"}, "buyer": buyer, "seller": seller})
    assert score == score_buyer(buyer)
    assert score_lead({"lead": {}, "buyer": {}, "seller": seller}) == score_seller(seller)


def test_no_qualifying_answers_is_cold() -> None:
    assert score_lead({"lead": {"name": "A"}, "buyer": {}, "seller": {}}) == Score(
        temperature="cold", points=0, reasons=("not qualified yet",)
    )


def test_a_score_is_json_ready() -> None:
    assert score_buyer({}).to_dict()["reasons"] == ["timeline unknown", "financing unknown", "motivation unknown"]
