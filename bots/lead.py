"""A minimal scripted Lead bot: what the caller wants, budget, timeline, goodbye.

Deterministic and model-free, so the voice pipeline can be exercised end to end offline. The
full bot core (Buyer/Seller bots, hand-offs, booking, LLM brain) replaces it behind the same
``Bot`` interface.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from bots.base import Bot, BotAction, BotFactory, CallContext, EndCall, Say
from bots.understanding import (
    find_budget,
    find_intent,
    find_place,
    find_property,
    find_timeline,
    spoken_amount,
)

_QUESTIONS = {
    "looking_for": "What kind of property are you looking for, and where?",
    "budget": "What budget do you have in mind?",
    "timeline": "And when are you hoping to make a move?",
}
_REASKS = {
    "looking_for": "Sorry, I didn't quite catch that. Are you looking to buy, sell or rent, and in which area?",
    "budget": "Sorry, I didn't catch a price. Roughly what price range are you thinking of?",
    "timeline": "Sorry, I missed that. Are you thinking weeks, months, or longer?",
}
_ORDER = ("looking_for", "budget", "timeline")


@dataclass
class LeadAnswers:
    """What the caller told us, for the call report and the next bot."""

    intent: str | None = None
    property: str | None = None
    place: str | None = None
    budget: int | None = None
    timeline: str | None = None
    unclear: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _LeadCheckpoint:
    answers: LeadAnswers
    stage: int
    reasked: bool
    interruptions: tuple[str, ...]


class LeadBot(Bot):
    """Asks three questions in order, acknowledging each answer, then says goodbye."""

    def __init__(self, business_name: str, bot_name: str, *, outbound: bool = False) -> None:
        self.business_name = business_name
        self.bot_name = bot_name
        self.outbound = outbound
        self.answers = LeadAnswers()
        self._stage = 0
        self._reasked = False
        self.interruptions: list[str] = []

    @property
    def done(self) -> bool:
        return self._stage >= len(_ORDER)

    def greeting(self) -> str:
        """Says it is an AI first; a lead we dialled is not thanked for calling."""
        if self.outbound:
            hello = f"Hi, this is {self.bot_name}, a virtual assistant with {self.business_name}. "
        else:
            hello = f"Hi, thanks for calling {self.business_name}! I'm {self.bot_name}, a virtual assistant. "
        return hello + _QUESTIONS["looking_for"]

    def interrupted(self, heard_text: str) -> None:
        self.interruptions.append(heard_text)

    def checkpoint(self) -> object:
        return _LeadCheckpoint(copy.deepcopy(self.answers), self._stage, self._reasked, tuple(self.interruptions))

    def rollback(self, checkpoint: object) -> None:
        assert isinstance(checkpoint, _LeadCheckpoint)
        self.answers = copy.deepcopy(checkpoint.answers)
        self._stage, self._reasked = checkpoint.stage, checkpoint.reasked
        self.interruptions = list(checkpoint.interruptions)

    def snapshot(self) -> dict[str, Any]:
        return {
            "bot": "lead",
            "stage": _ORDER[self._stage] if not self.done else "done",
            "answers": asdict(self.answers),
            "interrupted_after": list(self.interruptions),
        }

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        if self.done:
            yield Say("Thanks again for calling. Goodbye!")
            yield EndCall("conversation complete")
            return
        stage = _ORDER[self._stage]
        acknowledgement = getattr(self, f"_understand_{stage}")(caller_text)
        if acknowledgement is None and not self._reasked:
            self._reasked = True
            self.answers.unclear.append(stage)
            yield Say(_REASKS[stage])
            return
        self._stage += 1
        self._reasked = False
        yield Say((acknowledgement or "Okay, thanks.") + " ")
        if self.done:
            yield Say("Thank you! One of our agents will call you back shortly with homes that match. Goodbye!")
            yield EndCall("qualification complete")
        else:
            yield Say(_QUESTIONS[_ORDER[self._stage]])

    def _understand_looking_for(self, text: str) -> str | None:
        a = self.answers
        a.intent, a.property, a.place = find_intent(text), find_property(text), find_place(text)
        if not (a.intent or a.property or a.place):
            return None
        verb = {"buy": "Buying", "sell": "Selling", "rent": "Renting"}.get(a.intent or "", "Looking for")
        thing = f"a {a.property}" if a.property else "a home"
        where = f" in {a.place}" if a.place else ""
        return f"{verb} {thing}{where}, great."

    def _understand_budget(self, text: str) -> str | None:
        self.answers.budget = find_budget(text)
        if self.answers.budget is None:
            return None
        return f"Around {spoken_amount(self.answers.budget)} dollars, got it."

    def _understand_timeline(self, text: str) -> str | None:
        self.answers.timeline = find_timeline(text)
        if self.answers.timeline is None:
            return None
        return f"{self.answers.timeline[0].upper()}{self.answers.timeline[1:]}, perfect."


class LeadBotFactory(BotFactory):
    def __init__(self, business_name: str, bot_name: str) -> None:
        self.business_name = business_name
        self.bot_name = bot_name

    def create(self, context: CallContext) -> LeadBot:
        outbound = context.direction.startswith("outbound")
        return LeadBot(self.business_name, self.bot_name, outbound=outbound)

    def fixed_phrases(self) -> list[str]:
        return [LeadBot(self.business_name, self.bot_name, outbound=out).greeting() for out in (False, True)]
