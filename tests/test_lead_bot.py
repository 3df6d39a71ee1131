"""The minimal Lead bot and the slot extractors it relies on."""

from __future__ import annotations

import pytest

from bots.base import BotAction, CallContext, EndCall, Say
from bots.lead import LeadBot, LeadBotFactory
from bots.understanding import find_budget, find_place, find_property, find_timeline, spoken_amount
from runtime.compliance import discloses_ai


async def reply(bot: LeadBot, text: str) -> tuple[str, list[BotAction]]:
    actions = [a async for a in bot.respond(text)]
    return "".join(a.text for a in actions if isinstance(a, Say)), actions


def test_a_dialled_lead_is_greeted_as_one_we_called() -> None:
    factory = LeadBotFactory("Lakeside Realty", "Ava")
    numbers = {"tenant": "t1", "bot": "lead"}
    inbound = factory.create(
        CallContext(
            call_sid="CA1", from_number="+15125550123", to_number="+15125550100", direction="inbound", **numbers
        )
    )
    outbound = factory.create(
        CallContext(
            call_sid="CA2", from_number="+15125550100", to_number="+15125550123", direction="outbound-api", **numbers
        )
    )
    assert inbound.greeting().startswith("Hi, thanks for calling Lakeside Realty!")
    assert outbound.greeting().startswith("Hi, this is Ava, a virtual assistant with Lakeside Realty.")
    assert discloses_ai(outbound.greeting()) and "thanks for calling" not in outbound.greeting()
    assert factory.fixed_phrases() == [inbound.greeting(), outbound.greeting()]


async def test_full_qualification_acknowledges_each_answer_and_hangs_up() -> None:
    bot = LeadBot("Lakeside Realty", "Ava")
    assert "Lakeside Realty" in bot.greeting() and "virtual assistant" in bot.greeting()
    text, _ = await reply(bot, "Hi, I am looking to buy a 3 bedroom house in Austin.")
    assert "Buying a three bedroom house in Austin" in text and "budget" in text
    text, _ = await reply(bot, "My budget is about $400,000.")
    assert "four hundred thousand dollars" in text and "when" in text.lower()
    text, actions = await reply(bot, "Yes, I want to move in the next two months.")
    assert "In the next two months" in text and "Goodbye" in text
    assert isinstance(actions[-1], EndCall)
    assert bot.snapshot()["answers"] == {
        "intent": "buy", "property": "three bedroom house", "place": "Austin",
        "budget": 400_000, "timeline": "in the next two months", "unclear": [],
    }  # fmt: skip


async def test_unclear_answer_is_asked_again_once_then_moves_on() -> None:
    bot = LeadBot("Lakeside Realty", "Ava")
    await reply(bot, "I want to buy a condo")
    text, _ = await reply(bot, "hmm I'm not sure")
    assert "didn't catch a price" in text
    text, _ = await reply(bot, "still not sure")
    assert "when" in text.lower()
    assert bot.snapshot()["answers"]["unclear"] == ["budget"]


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("About four hundred thousand dollars.", 400_000),
        ("My budget is about $400,000.", 400_000),
        ("maybe 450k", 450_000),
        ("four hundred and fifty thousand", 450_000),
        ("half a million", 500_000),
        ("up to 1.2 million", 1_200_000),
        ("I have three kids and two dogs", None),
    ],
)
def test_budget(text: str, budget: int | None) -> None:
    assert find_budget(text) == budget


def test_spoken_amounts() -> None:
    assert spoken_amount(400_000) == "four hundred thousand"
    assert spoken_amount(325_500) == "three hundred twenty-five thousand five hundred"
    assert spoken_amount(1_250_000) == "one point two five million"


def test_property_place_timeline() -> None:
    assert find_property("a 4-bedroom townhouse") == "four bedroom townhouse"
    assert find_place("something near Round Rock please") == "Round Rock"
    assert find_place("in the city") is None
    assert find_timeline("Maybe next spring") == "next spring"
    assert find_timeline("I want to move in 2 months.") == "in 2 months"
    assert find_timeline("no idea") is None
