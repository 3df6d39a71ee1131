"""Hand-off rules: routes, confidence, loops bounded, and a failed start rolled back."""

from __future__ import annotations

from typing import Any

import pytest

from bots.handoff import HandoffRecord, HandoffRules, attempt, wanted_route
from bots.persona import BotRole


class TickingClock:
    def __init__(self) -> None:
        self.t = 10.0

    def now(self) -> float:
        self.t += 0.025
        return self.t


def answers(intent: str | None = None, **buyer: Any) -> dict[BotRole, dict[str, Any]]:
    lead = {"intent": {"intent": intent, "confidence": 0.9}} if intent else {}
    return {"lead": lead, "buyer": buyer, "seller": {}}


@pytest.mark.parametrize(
    ("source", "known", "route"),
    [
        ("lead", answers("buy"), ("buyer", "wants to buy")),
        ("lead", answers("sell"), ("seller", "wants to sell")),
        ("lead", answers("both"), ("buyer", "buying and selling")),
        ("lead", answers("rent"), None),
        ("lead", answers("other"), None),
        ("lead", answers(None), None),
        ("buyer", answers("buy", must_sell_first="yes"), ("seller", "must sell first")),
        ("buyer", answers("buy", must_sell_first="no"), None),
        ("buyer", answers("both"), ("seller", "also selling")),
        ("seller", answers("both"), ("buyer", "also buying")),
        ("seller", answers("sell"), None),
    ],
)
def test_where_a_caller_goes_next(
    source: BotRole, known: dict[BotRole, dict[str, Any]], route: tuple[str, str] | None
) -> None:
    assert wanted_route(source, known) == route


def test_only_allowed_routes_are_taken() -> None:
    rules = HandoffRules()
    assert rules.refusal("lead", "buyer", 0, ["lead"]) is None
    assert rules.refusal("buyer", "lead", 0, ["buyer"]) == "no route from buyer to lead"
    narrow = HandoffRules(routes=frozenset({("lead", "buyer")}))
    assert narrow.refusal("lead", "seller", 0, ["lead"]) == "no route from lead to seller"


def test_a_bot_is_never_handed_back_to() -> None:
    rules = HandoffRules()
    assert rules.refusal("seller", "buyer", 2, ["lead", "buyer", "seller"]) == "buyer already spoke with the caller"


def test_hand_offs_per_call_are_bounded() -> None:
    rules = HandoffRules(max_per_call=1)
    assert rules.refusal("lead", "buyer", 0, ["lead"]) is None
    assert rules.refusal("buyer", "seller", 1, ["lead", "buyer"]) == "hand-off limit reached"


def test_ping_pong_between_two_bots_is_bounded_by_the_count_alone() -> None:
    rules = HandoffRules(max_per_call=3)
    pairs: list[tuple[BotRole, BotRole]] = [("buyer", "seller"), ("seller", "buyer")] * 3
    allowed = [rules.refusal(source, target, made, ()) is None for made, (source, target) in enumerate(pairs)]
    assert allowed == [True, True, True, False, False, False]


@pytest.mark.parametrize(
    "options",
    [
        {"min_intent_confidence": 1.5},
        {"max_per_call": -1},
        {"routes": frozenset({("lead", "lead")})},
        {"routes": frozenset({("lead", "agent")})},
    ],
)
def test_bad_rules_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        HandoffRules(**options)


async def test_a_hand_off_is_timed_from_decision_to_first_words() -> None:
    clock = TickingClock()

    async def start() -> str:
        clock.now()  # producing the first words takes one more tick
        return "Hi, this is Maya."

    started, record = await attempt("lead", "buyer", "wants to buy", start, clock)
    assert started == "Hi, this is Maya."
    assert record == HandoffRecord(from_bot="lead", to_bot="buyer", reason="wants to buy", latency_ms=50.0)


async def test_a_bot_that_cannot_start_is_a_failed_hand_off() -> None:
    async def start() -> str:
        raise RuntimeError("no seller bot")

    started, record = await attempt("buyer", "seller", "must sell first", start, TickingClock())
    assert started is None
    assert record.ok is False and (record.from_bot, record.to_bot) == ("buyer", "seller")


def test_records_round_trip_as_json() -> None:
    record = HandoffRecord(from_bot="lead", to_bot="seller", reason="wants to sell", latency_ms=3.5, ok=False)
    assert record.to_dict() == {
        "from": "lead",
        "to": "seller",
        "reason": "wants to sell",
        "latency_ms": 3.5,
        "ok": False,
    }
    assert HandoffRecord.from_dict(record.to_dict()) == record
