"""Whole conversations with the LLM brain through the real Anthropic client and the emulator over
loopback, the scenarios of tests/test_qualifier.py: each must reach what the scripted brain
reaches (answers, score, hand-offs, appointment, next step), with the same calendar and clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from bots.base import Bot, BotAction, EndCall, HandedOff, Say, TransferToHuman
from bots.business_hours import BusinessHours
from bots.calendar import Slot
from bots.fallback import FallbackBotFactory
from bots.llm_bot import LlmBot, LlmBotFactory
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBot, QualifyingBotFactory
from emulators.control import Fault
from runtime.fallback import CircuitBreaker
from tests.test_anthropic import Emulator, running_emulator
from tests.test_qualifier import AUSTIN, BUYER_LINES, CALLER, NOW, SteppingClock, context

SELLER_LINES = [
    "Hi, this is John Smith, I'd like to sell my condo at 12 Elm Street",
    "it needs some updating",
    "we're downsizing",
    "sometime next year",
    "about 600k",
    "no",
    "we owe about 200k",
    "the second one",
    "yes",
]
BOTH_LINES = [
    "I'm Tom Baker",
    "We're looking to buy a new place in Georgetown",
    "a townhouse",
    "3 bedrooms",
    "under 500k",
    "we're pre-approved",
    "as soon as possible",
    "we need more space",
    "no",
    "yes, we have to sell our house first",
    "1234 Oak Lane",
    "a house",
    "it's in great shape",
    "in 2 months",
    "about 600k",
    "no",
    "it's paid off",
    "no thanks, let's just book something",
    "the first one",
    "yes",
]
VAGUE_LINES = [
    "Bea",
    "I want to buy",
    "in Pflugerville",
    "a house",
    "2 bedrooms",
    "I don't know",
    "no idea honestly",
    "not sure",
    "I don't know",
    "no idea",
    "hard to say",
    "just because",
    "nothing special",
    "no",
    "I'm not ready to schedule",
    "no thanks",
]


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as running:
        yield running


@dataclass
class Call:
    """One brain's conversation, every action in order."""

    bot: Bot
    calendar: LocalCalendar
    actions: list[BotAction] = field(default_factory=list)

    async def say(self, text: str) -> list[BotAction]:
        reply = [action async for action in self.bot.respond(text)]
        self.actions += reply
        return reply

    async def script(self, lines: Sequence[str]) -> None:
        for line in lines:
            await self.say(line)

    async def transfer_ended(self, outcome: Any) -> list[BotAction]:
        reply = [action async for action in self.bot.after_transfer(outcome)]
        self.actions += reply
        return reply

    def spoken(self) -> list[tuple[str | None, str]]:
        """What was said, as runs of one voice."""
        runs: list[tuple[str | None, str]] = []
        for action in self.actions:
            if isinstance(action, Say):
                if runs and runs[-1][0] == action.voice:
                    runs[-1] = (action.voice, runs[-1][1] + action.text)
                else:
                    runs.append((action.voice, action.text))
        return runs

    def voice_of(self, words: str) -> str | None:
        [voice] = [voice for voice, text in self.spoken() if words in text]
        return voice

    def handoffs(self) -> list[tuple[str, str, str]]:
        return [(a.from_bot, a.to_bot, a.reason) for a in self.actions if isinstance(a, HandedOff)]

    def outcome(self) -> dict[str, Any]:
        """What both brains must agree on."""
        snapshot = self.bot.snapshot()
        appointment = dict(snapshot["appointment"] or {})
        appointment.pop("id", None)
        return {
            "answers": snapshot["answers"],
            "score": snapshot["score"],
            "handoffs": [(h["from"], h["to"], h["reason"], h["ok"]) for h in snapshot["handoffs"]],
            "appointment": appointment,
            "next_step": snapshot["next_step"],
            "completion": snapshot["effectiveness"]["completion_rate"],
            "unknown": {role: p["unknown"] for role, p in snapshot["progress"].items()},
            "ends": [a for a in self.actions if isinstance(a, EndCall | TransferToHuman | HandedOff)],
        }


def llm_call(emulator: Emulator) -> Call:
    calendar = LocalCalendar(BusinessHours())
    factory = LlmBotFactory(
        emulator.llm(), persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW, clock=SteppingClock()
    )
    return Call(factory.create(context()), calendar)


def scripted_call() -> Call:
    calendar = LocalCalendar(BusinessHours())
    factory = QualifyingBotFactory(persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW, clock=SteppingClock())
    return Call(factory.create(context()), calendar)


Scenario = Callable[[Call], Awaitable[None]]


async def both_brains(emulator: Emulator, scenario: Scenario) -> Call:
    """The scenario with each brain; the LLM brain's call, once it matched the scripted one."""
    scripted, llm = scripted_call(), llm_call(emulator)
    await scenario(scripted)
    await scenario(llm)
    assert isinstance(llm.bot, LlmBot) and isinstance(scripted.bot, QualifyingBot)
    assert _without_latency(llm.outcome()) == _without_latency(scripted.outcome())
    return llm


def _without_latency(outcome: dict[str, Any]) -> dict[str, Any]:
    ends = [(a.from_bot, a.to_bot, a.reason) if isinstance(a, HandedOff) else a for a in outcome["ends"]]
    return {**outcome, "ends": ends}


def said(actions: Sequence[BotAction]) -> str:
    return "".join(a.text for a in actions if isinstance(a, Say))


async def test_a_buyer_is_handed_to_maya_and_books_a_showing(emulator: Emulator) -> None:
    async def scenario(call: Call) -> None:
        await call.script([*BUYER_LINES, "the first one", "yes"])

    call = await both_brains(emulator, scenario)
    snapshot = call.bot.snapshot()
    assert snapshot["answers"]["lead"] == {"name": "Sarah Jones", "intent": {"intent": "buy", "confidence": 0.9}}
    buyer = snapshot["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["price"]["target"] == 450_000
    assert buyer["financing"] == "needs lender" and buyer["must_haves"] == ["garage", "yard"]
    assert snapshot["score"]["temperature"] == "warm" and snapshot["score"]["points"] == 3
    assert call.handoffs() == [("lead", "buyer", "wants to buy")]
    assert call.voice_of("I'll bring in Maya, who works with our buyers.") == "lead"
    assert call.voice_of("Hi, this is Maya.") == "buyer"
    assert "great. I'll bring in Maya" in said(call.actions)  # one space between two responses' words
    [appointment] = call.calendar.appointments
    assert appointment.start == datetime(2026, 12, 7, 11, 15, tzinfo=AUSTIN)
    assert appointment.title == "Showing: Sarah Jones" and appointment.contact.phone == CALLER
    assert "Buying: in Austin, a house" in call.calendar.notes[appointment.contact.id][0]
    assert snapshot["appointment"]["id"] == appointment.id and snapshot["next_step"] == "showing"
    assert call.actions[-1] == EndCall("booked") and call.bot.done
    assert snapshot["usage"]["cache_read_input_tokens"] > 0  # the system prompt and tools, cached


async def test_a_seller_books_a_listing_consultation(emulator: Emulator) -> None:
    async def scenario(call: Call) -> None:
        await call.script(SELLER_LINES)

    call = await both_brains(emulator, scenario)
    seller = call.bot.snapshot()["answers"]["seller"]
    assert seller["address"] == {"number": "12", "street": "Elm Street", "unit": None, "city": None}
    assert seller["mortgage"] == {"status": "owes", "owed": 200_000} and seller["listed_with_agent"] == "no"
    assert call.bot.snapshot()["score"]["temperature"] == "cold"
    assert call.handoffs() == [("lead", "seller", "wants to sell")]
    assert call.voice_of("Hi, this is Sam.") == "seller"
    [appointment] = call.calendar.appointments
    assert appointment.title == "Listing consultation: John Smith"
    assert appointment.start == datetime(2026, 12, 8, 12, 0, tzinfo=AUSTIN)


async def test_a_caller_who_buys_and_sells_meets_both_bots(emulator: Emulator) -> None:
    async def scenario(call: Call) -> None:
        await call.script(BOTH_LINES)

    call = await both_brains(emulator, scenario)
    assert call.handoffs() == [("lead", "buyer", "wants to buy"), ("buyer", "seller", "must sell first")]
    assert call.voice_of("I'll bring in Maya") == "lead" and call.voice_of("I'll bring in Sam") == "buyer"
    assert call.voice_of("Hi, this is Sam.") == "seller"
    assert "Shall I put you through?" in said(call.actions)  # a hot lead is offered a person first
    snapshot = call.bot.snapshot()
    assert (
        snapshot["score"]["temperature"] == "hot" and snapshot["answers"]["seller"]["address"]["street"] == "Oak Lane"
    )
    assert snapshot["appointment"]["kind"] == "listing_consultation" and len(call.calendar.appointments) == 1


async def test_a_caller_asking_for_a_person_is_transferred_then_gets_a_callback(emulator: Emulator) -> None:
    async def scenario(call: Call) -> None:
        await call.say("Hi, this is Ana Lopez, can I talk to a real person?")
        await call.say("yes please")
        await call.transfer_ended("no_answer")
        await call.script(["the first one", "yes"])

    call = await both_brains(emulator, scenario)
    [transfer] = [a for a in call.actions if isinstance(a, TransferToHuman)]
    assert transfer.reason == "transfer: caller asked for a person"
    assert transfer.briefing.startswith("Cold lead: Ana Lopez.")
    assert "I'm sorry, I couldn't reach an agent just now." in said(call.actions)
    [appointment] = call.calendar.appointments
    assert appointment.title == "Callback: Ana Lopez"
    assert call.bot.snapshot()["next_step"] == "callback"


async def test_vague_answers_are_left_unknown_and_end_with_a_follow_up(emulator: Emulator) -> None:
    async def scenario(call: Call) -> None:
        await call.script(VAGUE_LINES)

    call = await both_brains(emulator, scenario)
    snapshot = call.bot.snapshot()
    assert snapshot["progress"]["buyer"]["unknown"] == ["price", "financing", "timeline", "must_haves"]
    assert snapshot["score"]["temperature"] == "cold" and snapshot["next_step"] == "follow_up"
    assert call.actions[-1] == EndCall("follow-up") and call.calendar.appointments == []


async def test_a_slot_taken_meanwhile_is_replaced_by_the_nearest_free_ones(emulator: Emulator) -> None:
    taken = Slot(datetime(2026, 12, 7, 11, 15, tzinfo=AUSTIN), datetime(2026, 12, 7, 11, 45, tzinfo=AUSTIN))

    async def scenario(call: Call) -> None:
        await call.script([*BUYER_LINES, "the first one"])
        other = await call.calendar.upsert_contact(name="Someone Else", phone="+15125559999")
        await call.calendar.book(other, taken, title="Showing: Someone Else")
        assert said(await call.say("yes")).startswith("I'm sorry, that time was just taken. I have")
        await call.script(["the first one", "yes"])

    call = await both_brains(emulator, scenario)
    [mine] = [a for a in call.calendar.appointments if a.contact.phone == CALLER]
    assert mine.start != taken.start
    assert call.bot.snapshot()["booking"]["attempts"] == 1


async def test_the_scripted_brain_answers_when_the_llm_fails(emulator: Emulator) -> None:
    calendar = LocalCalendar(BusinessHours())
    options: dict[str, Any] = {"persona": DEFAULT_PERSONA, "calendar": calendar, "now": lambda: NOW}
    factory = FallbackBotFactory(
        LlmBotFactory(emulator.llm(max_retries=0), **options),
        QualifyingBotFactory(**options),
        CircuitBreaker("anthropic"),
    )
    bot = factory.create(context())
    emulator.control.faults.schedule(Fault.OVERLOADED, count=2)
    reply = [action async for action in bot.respond("Hi, I'm Sarah Jones")]
    assert "Nice to meet you, Sarah." in said(reply) and bot.snapshot()["degraded_turns"] == 1
    assert bot.snapshot()["fallback"]["answers"]["lead"]["name"] == "Sarah Jones"
