"""The scripted brain taking over a call from a failing LLM brain: it continues from the LLM's
session state (bot, answers, question, booking) instead of starting over, and keeps the call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from bots.base import BotAction, EndCall, HandedOff, Notice, Say
from bots.business_hours import BusinessHours
from bots.fallback import FallbackBot, FallbackBotFactory
from bots.lead import LeadBot
from bots.llm_bot import LlmBotFactory
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBotFactory
from emulators.control import Fault
from runtime.fallback import CircuitBreaker
from runtime.llm import ChatMessage, LanguageModel, LlmError, LlmEvent, ToolSpec
from tests.test_anthropic import Emulator, running_emulator
from tests.test_qualifier import BUYER_LINES, NOW, SteppingClock, context, new_call

#: Failures enough for every request after the fault is switched on.
OUTAGE = 1000


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as running:
        yield running


def fallback_bot(emulator: Emulator, calendar: LocalCalendar) -> FallbackBot:
    options: dict[str, Any] = {"persona": DEFAULT_PERSONA, "calendar": calendar, "now": lambda: NOW}
    factory = FallbackBotFactory(
        LlmBotFactory(emulator.llm(max_retries=0), clock=SteppingClock(), **options),
        QualifyingBotFactory(clock=SteppingClock(), **options),
        CircuitBreaker("anthropic"),
    )
    return factory.create(context())


async def say(bot: FallbackBot, text: str) -> list[BotAction]:
    return [action async for action in bot.respond(text)]


def said(actions: list[BotAction]) -> str:
    return "".join(a.text for a in actions if isinstance(a, Say))


async def test_after_the_hand_off_the_scripted_brain_continues_with_the_buyers_next_question_and_books(
    emulator: Emulator,
) -> None:
    calendar = LocalCalendar(BusinessHours())
    bot = fallback_bot(emulator, calendar)
    before = [action for line in BUYER_LINES[:3] for action in await say(bot, line)]
    assert [a.to_bot for a in before if isinstance(a, HandedOff)] == ["buyer"] and bot.degraded_turns == 0

    emulator.control.faults.schedule(Fault.OVERLOADED, count=OUTAGE)
    taken = await say(bot, BUYER_LINES[3])
    assert isinstance(taken[0], Notice) and bot.took_over
    assert said(taken) == (
        "Around four hundred fifty thousand dollars, got it. How are you planning to pay: are you "
        "pre-approved, paying cash, or still looking for a lender? "
    )
    assert {a.voice for a in taken if isinstance(a, Say)} == {"buyer"} and bot.voice == "buyer"
    rest = [action for line in [*BUYER_LINES[4:], "the first one", "yes"] for action in await say(bot, line)]

    assert rest[-1] == EndCall("booked") and bot.done
    assert not any(isinstance(a, HandedOff) for a in rest)
    for started_over in ("May I have your name", "Which areas", "How many bedrooms", "What kind of home"):
        assert started_over not in said(taken + rest)
    snapshot = bot.snapshot()
    scripted = new_call()
    await scripted.script([*BUYER_LINES, "the first one", "yes"])
    assert snapshot["answers"] == scripted.bot.snapshot()["answers"]
    assert snapshot["score"] == scripted.bot.snapshot()["score"]
    assert [(h["from"], h["to"]) for h in snapshot["handoffs"]] == [("lead", "buyer")]
    [appointment] = calendar.appointments
    assert appointment.title == "Showing: Sarah Jones" and snapshot["appointment"]["id"] == appointment.id
    assert snapshot["degraded_turns"] == len(BUYER_LINES) - 3 + 2 and snapshot["took_over"] is True


async def test_a_failure_while_booking_continues_the_same_booking(emulator: Emulator) -> None:
    calendar = LocalCalendar(BusinessHours())
    bot = fallback_bot(emulator, calendar)
    for line in BUYER_LINES:
        await say(bot, line)
    assert bot.snapshot()["stage"] == "booking" and "2026-12-07T11:15:00-06:00" in bot.snapshot()["booking"]["offered"]

    emulator.control.faults.schedule(Fault.OVERLOADED, count=OUTAGE)
    confirm = said(await say(bot, "the first one"))
    assert confirm == "Monday, December 7th at 11:15 AM. Shall I book that? "
    last = await say(bot, "yes")
    assert last[-1] == EndCall("booked") and len(calendar.appointments) == 1


class FailingAfter(LanguageModel):
    """The emulator's model until ``requests`` more requests were made, then an outage."""

    def __init__(self, model: LanguageModel) -> None:
        self.model = model
        self.left: int | None = None

    def stream(
        self, *, system: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmEvent]:
        if self.left is not None and self.left <= 0:
            return self._failing()
        self.left = None if self.left is None else self.left - 1
        return self.model.stream(system=system, messages=messages, tools=tools)

    async def _failing(self) -> AsyncIterator[LlmEvent]:
        raise LlmError("overloaded", retryable=True, status=529)
        yield  # an async generator

    async def aclose(self) -> None:
        await self.model.aclose()


async def test_a_reply_the_llm_said_before_failing_is_not_said_again(emulator: Emulator) -> None:
    """The model answered and recorded the price, then its next request failed: the scripted
    brain, continuing from the recorded state, does not say it all again."""
    calendar = LocalCalendar(BusinessHours())
    model = FailingAfter(emulator.llm(max_retries=0))
    options: dict[str, Any] = {"persona": DEFAULT_PERSONA, "calendar": calendar, "now": lambda: NOW}
    bot = FallbackBotFactory(
        LlmBotFactory(model, **options), QualifyingBotFactory(**options), CircuitBreaker("anthropic")
    ).create(context())
    for line in BUYER_LINES[:3]:
        await say(bot, line)
    model.left = 1  # the request that records the price, not the one that would answer
    reply = said(await say(bot, BUYER_LINES[3]))

    assert bot.took_over and bot.snapshot()["answers"]["buyer"]["price"]["target"] == 450_000
    assert reply.strip() == (  # once
        "Around four hundred fifty thousand dollars, got it. How are you planning to pay: are you "
        "pre-approved, paying cash, or still looking for a lender?"
    )


async def test_without_a_shared_state_the_fallback_answers_alone_and_the_primary_keeps_the_call() -> None:
    bot = FallbackBot(FailingLead("Lakeside", "Ava"), LeadBot("Lakeside", "Ava"), CircuitBreaker("llm"))
    actions = await say(bot, "I want to buy a condo in Austin")
    assert isinstance(actions[0], Notice) and "Buying a condo in Austin" in said(actions)
    assert not bot.took_over and bot.primary.greeting() == bot.greeting()
    await say(bot, "hello again")
    assert isinstance(bot.primary, FailingLead) and bot.primary.calls == 2  # still tried first


class FailingLead(LeadBot):
    def __init__(self, business: str, name: str) -> None:
        super().__init__(business, name)
        self.calls = 0

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        self.calls += 1
        raise LlmError("bad key", retryable=False, status=401)
        yield Say("")  # an async generator
