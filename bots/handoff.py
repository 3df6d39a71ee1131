"""When one bot hands the caller to another, and the record of each hand-off.

The rules are explicit: an intent must be sure enough, only some routes exist (lead to buyer or
seller; buyer to seller when they must sell first or sell too; seller to buyer when they buy
too), a bot is never handed back to (no loops), and a call has a bounded number of hand-offs.
A hand-off that fails (the new bot cannot start) leaves the caller with the previous bot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bots.persona import ROLES, BotRole
from runtime.clock import Clock

log = logging.getLogger(__name__)

_T = TypeVar("_T")

ALLOWED_ROUTES: frozenset[tuple[BotRole, BotRole]] = frozenset(
    {("lead", "buyer"), ("lead", "seller"), ("buyer", "seller"), ("seller", "buyer")}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffRules:
    #: A keyword hint ("looking for a house", 0.6) is enough; a hedged or mixed intent is re-asked.
    min_intent_confidence: float = 0.6
    #: The longest useful path is lead -> buyer -> seller (two); one spare for a rerouted lead.
    max_per_call: int = 3
    routes: frozenset[tuple[BotRole, BotRole]] = ALLOWED_ROUTES

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_intent_confidence <= 1.0:
            raise ValueError("min_intent_confidence must be within 0-1")
        if self.max_per_call < 0:
            raise ValueError("max_per_call must be >= 0")
        if not all(a in ROLES and b in ROLES and a != b for a, b in self.routes):
            raise ValueError(f"routes must join two different bots of {', '.join(ROLES)}")

    def refusal(self, source: BotRole, target: BotRole, made: int, visited: Collection[BotRole]) -> str | None:
        """Why the hand-off may not happen, or None when it may."""
        if (source, target) not in self.routes:
            return f"no route from {source} to {target}"
        if target in visited:
            return f"{target} already spoke with the caller"
        if made >= self.max_per_call:
            return "hand-off limit reached"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffRecord:
    """One hand-off (``ok``) or attempt (not ``ok``: the caller stayed with ``from_bot``)."""

    from_bot: BotRole
    to_bot: BotRole
    reason: str
    latency_ms: float
    ok: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.from_bot,
            "to": self.to_bot,
            "reason": self.reason,
            "latency_ms": self.latency_ms,
            "ok": self.ok,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoffRecord:
        return cls(
            from_bot=data["from"],
            to_bot=data["to"],
            reason=str(data["reason"]),
            latency_ms=float(data["latency_ms"]),
            ok=bool(data.get("ok", True)),
        )


_LEAD_ROUTES: dict[str, tuple[BotRole, str]] = {
    "buy": ("buyer", "wants to buy"),
    "both": ("buyer", "buying and selling"),
    "sell": ("seller", "wants to sell"),
}


def wanted_route(source: BotRole, answers: Mapping[BotRole, Mapping[str, Any]]) -> tuple[BotRole, str] | None:
    """Where the caller should go next from ``source``, and why; None: stay."""
    intent = (answers["lead"].get("intent") or {}).get("intent")
    if source == "lead":
        return _LEAD_ROUTES.get(intent or "")
    if source == "buyer" and answers["buyer"].get("must_sell_first") == "yes":
        return "seller", "must sell first"
    if source == "buyer" and intent == "both":
        return "seller", "also selling"
    if source == "seller" and intent == "both":
        return "buyer", "also buying"
    return None


async def attempt(
    source: BotRole, target: BotRole, reason: str, start: Callable[[], Awaitable[_T]], clock: Clock
) -> tuple[_T | None, HandoffRecord]:
    """Start ``target`` (``start`` produces its first words) and time it from this decision.
    A start that raises is a failed hand-off: None, and the caller stays with ``source``."""
    decided = clock.now()
    try:
        started: _T | None = await start()
    except Exception:  # any failure of the new bot must leave the caller with the old one
        log.exception("hand-off failed", extra={"from_bot": source, "to_bot": target})
        started = None
    latency_ms = round((clock.now() - decided) * 1000, 3)
    record = HandoffRecord(from_bot=source, to_bot=target, reason=reason, latency_ms=latency_ms, ok=started is not None)
    return started, record
