"""Whole conversations with the scripted bot core, turn by turn at the text level: a local
calendar, a fixed clock (Monday 7 December 2026, 9 AM in Austin), the real booking dialog."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bots.base import BotAction, CallContext, EndCall, HandedOff, Say, TransferToHuman
from bots.business_hours import BusinessHours
from bots.calendar import Slot
from bots.conversation_state import QualifierOptions
from bots.flows import FlowState
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA, BotRole, Persona
from bots.qualifier import QualifyingBot, QualifyingBotFactory, wants_person
from runtime.clock import Clock
from runtime.compliance import discloses_ai

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
AUSTIN = ZoneInfo("America/Chicago")
CALLER = "+15125550123"  # 512: Austin, so times are offered in Central time


class SteppingClock(Clock):
    """Monotonic time that moves 4 ms every time it is read: hand-off latencies are known."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        self.t += 0.004
        return self.t


@dataclass
class Call:
    """A call driven turn by turn; every action the bot produced, in order."""

    bot: QualifyingBot
    calendar: LocalCalendar
    actions: list[BotAction] = field(default_factory=list)

    async def say(self, text: str) -> list[BotAction]:
        reply = [action async for action in self.bot.respond(text)]
        self.actions += reply
        return reply

    async def script(self, lines: Sequence[str]) -> None:
        for line in lines:
            await self.say(line)

    def voices_of(self, fragment: str) -> list[str | None]:
        return [a.voice for a in self.actions if isinstance(a, Say) and fragment in a.text]

    def handoffs(self) -> list[tuple[str, str, str]]:
        return [(a.from_bot, a.to_bot, a.reason) for a in self.actions if isinstance(a, HandedOff)]


def context(phone: str = CALLER) -> CallContext:
    return CallContext(
        call_sid="CA1", from_number=phone, to_number="+15125550000", direction="inbound", tenant="t1", bot="lead"
    )


def new_call(bot_class: type[QualifyingBot] = QualifyingBot, options: QualifierOptions | None = None) -> Call:
    calendar = LocalCalendar(BusinessHours())
    factory = QualifyingBotFactory(
        persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW, clock=SteppingClock(), options=options
    )
    bot = bot_class(
        persona=factory.persona,
        calendar=calendar,
        context=context(),
        now=factory.now,
        clock=factory.clock,
        options=factory.options,
    )
    return Call(bot, calendar)


def said(actions: Sequence[BotAction]) -> str:
    return "".join(a.text for a in actions if isinstance(a, Say))


def local(moment: str) -> datetime:
    return datetime.fromisoformat(moment).astimezone(AUSTIN)


BUYER_LINES = [
    "Hi, I'm Sarah Jones",
    "We want to buy a house in Austin",
    "three bedrooms and two baths",
    "around 450 thousand",
    "we still need a lender",
    "in 2 months",
    "We're relocating for a new job",
    "a garage and a big yard",
    "no",
]


async def test_a_buyer_is_handed_to_the_buyer_bot_and_books_a_showing() -> None:
    call = new_call()
    assert call.bot.greeting().startswith("Hi, thanks for calling Lakeside Realty! I'm Ava, a virtual assistant.")
    await call.script(BUYER_LINES)
    offer = said(call.actions[-1:])
    assert "showing" in offer and "Monday, December 7th at 11:15 AM" in offer
    confirm = said(await call.say("the first one"))
    assert confirm == "Monday, December 7th at 11:15 AM. Shall I book that? "
    assert call.bot.checkpoint() is None  # the next "yes" books
    last = await call.say("yes")

    assert "You're all set for Monday, December 7th at 11:15 AM." in said(last)
    assert last[-1] == EndCall("booked")
    snapshot = call.bot.snapshot()
    assert snapshot["answers"]["lead"] == {"name": "Sarah Jones", "intent": {"intent": "buy", "confidence": 0.9}}
    buyer = snapshot["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["property_type"] == ["house"]
    assert buyer["rooms"]["bedrooms"] == 3 and buyer["rooms"]["bathrooms"] == 2
    assert buyer["price"]["target"] == 450_000 and buyer["financing"] == "needs lender"
    assert buyer["timeline"]["bucket"] == "0-3 months" and buyer["motivation"]["kind"] == "relocation"
    assert buyer["must_haves"] == ["garage", "yard"] and buyer["must_sell_first"] == "no"
    assert snapshot["score"] == {
        "temperature": "warm",
        "points": 3,
        "reasons": ["moving within 3 months", "still needs a lender", "motivated: relocation"],
    }
    assert call.handoffs() == [("lead", "buyer", "wants to buy")]
    assert snapshot["handoffs"][0]["latency_ms"] > 0
    assert call.voices_of("I'll bring in Maya, who works with our buyers.") == ["lead"]
    assert call.voices_of("Hi, this is Maya.") == ["buyer"]
    assert call.voices_of("What price range") == ["buyer"]
    [appointment] = call.calendar.appointments
    assert appointment.start == datetime(2026, 12, 7, 11, 15, tzinfo=AUSTIN)
    assert appointment.title == "Showing: Sarah Jones" and appointment.contact.phone == CALLER
    assert "Buying: in Austin, a house" in call.calendar.notes[appointment.contact.id][0]
    assert snapshot["appointment"]["id"] == appointment.id and snapshot["appointment"]["kind"] == "showing"
    assert snapshot["next_step"] == "showing" and snapshot["effectiveness"]["completion_rate"] == 1.0


async def test_the_buyer_bot_never_asks_what_the_caller_already_said() -> None:
    call = new_call()
    await call.say("Sarah")
    reply = said(await call.say("We'd like to buy a three bedroom condo in Round Rock, under 400k, we're pre-approved"))
    assert (
        "I have your details so far: in Round Rock, a condo, 3 bedrooms, around four hundred thousand dollars" in reply
    )
    assert reply.endswith("When are you hoping to move? ")
    asked = said(call.actions)
    for question in (
        "Which areas",
        "What kind of home",
        "How many bedrooms",
        "What price range",
        "How are you planning",
    ):
        assert question not in asked


async def test_a_seller_books_a_listing_consultation() -> None:
    call = new_call()
    first = await call.say("Hi, this is John Smith, I'd like to sell my condo at 12 Elm Street")
    assert "I'll bring in Sam, who works with our sellers." in said(first)
    assert "12 Elm Street, a condo" in said(first)
    await call.script(
        ["it needs some updating", "we're downsizing", "sometime next year", "about 600k", "no", "we owe about 200k"]
    )
    assert "listing consultation" in said(call.actions[-1:])
    await call.say("the second one")
    last = await call.say("yes")

    assert last[-1] == EndCall("booked")
    snapshot = call.bot.snapshot()
    seller = snapshot["answers"]["seller"]
    assert seller["address"] == {"number": "12", "street": "Elm Street", "unit": None, "city": None}
    assert seller["property_type"] == ["condo"] and seller["condition"] == "needs work"
    assert seller["reason"]["kind"] == "downsizing" and seller["timeline"]["bucket"] == "6-12 months"
    assert seller["price"]["target"] == 600_000 and seller["listed_with_agent"] == "no"
    assert seller["mortgage"] == {"status": "owes", "owed": 200_000}
    assert snapshot["score"]["temperature"] == "cold"
    assert "not listed with another agent" in snapshot["score"]["reasons"]
    assert call.handoffs() == [("lead", "seller", "wants to sell")]
    assert call.voices_of("Hi, this is Sam.") == ["seller"]
    [appointment] = call.calendar.appointments
    assert appointment.title == "Listing consultation: John Smith"
    assert appointment.start == datetime(2026, 12, 8, 12, 0, tzinfo=AUSTIN)
    assert snapshot["appointment"]["kind"] == "listing_consultation"


async def test_a_caller_who_buys_and_sells_meets_both_bots_then_a_hot_lead_is_offered_a_person() -> None:
    call = new_call()
    await call.script(
        [
            "I'm Tom Baker",
            "We're looking to buy a new place in Georgetown",
            "a townhouse",
            "3 bedrooms",
            "under 500k",
            "we're pre-approved",
            "as soon as possible",
            "we need more space",
            "no",
        ]
    )
    reply = said(await call.say("yes, we have to sell our house first"))
    assert "I'll bring in Sam, who works with our sellers." in reply
    await call.script(["1234 Oak Lane", "a house", "it's in great shape", "in 2 months", "about 600k", "no"])
    offer = said(await call.say("it's paid off"))
    assert "ready to move" in offer and "Shall I put you through?" in offer
    assert call.bot.checkpoint() is None

    declined = said(await call.say("no thanks, let's just book something"))
    assert "listing consultation" in declined
    await call.say("the first one")
    await call.say("yes")

    assert call.handoffs() == [("lead", "buyer", "wants to buy"), ("buyer", "seller", "must sell first")]
    assert call.voices_of("I'll bring in Maya") == ["lead"] and call.voices_of("I'll bring in Sam") == ["buyer"]
    assert call.voices_of("Hi, this is Sam.") == ["seller"]
    snapshot = call.bot.snapshot()
    assert snapshot["answers"]["buyer"]["must_sell_first"] == "yes"
    assert snapshot["answers"]["seller"]["address"]["street"] == "Oak Lane"
    assert snapshot["answers"]["seller"]["mortgage"] == {"status": "paid off", "owed": None}
    assert snapshot["score"]["temperature"] == "hot"
    assert snapshot["score"]["reasons"][:2] == ["wants to move as soon as possible", "pre-approved"]
    assert [h["to"] for h in snapshot["handoffs"]] == ["buyer", "seller"]
    assert snapshot["appointment"]["kind"] == "listing_consultation"
    assert len(call.calendar.appointments) == 1


async def test_a_caller_asking_for_a_person_is_transferred_and_gets_a_callback_when_nobody_answers() -> None:
    call = new_call()
    offer = said(await call.say("Hi, this is Ana Lopez, can I talk to a real person?"))
    assert "connect you with one of our agents" in offer
    assert call.bot.checkpoint() is None  # a "yes" transfers
    reply = await call.say("yes please")
    [transfer] = [a for a in reply if isinstance(a, TransferToHuman)]
    assert transfer.reason == "transfer: caller asked for a person"
    assert transfer.briefing.startswith("Cold lead: Ana Lopez.")

    after = [action async for action in call.bot.after_transfer("no_answer")]
    text = said(after)
    assert text.startswith(
        "I'm sorry, I couldn't reach an agent just now. Let's book a time for them to call you back."
    )
    assert "For our call, I have" in text
    await call.say("the first one")
    last = await call.say("yes")

    assert last[-1] == EndCall("booked")
    [appointment] = call.calendar.appointments
    assert appointment.title == "Callback: Ana Lopez"
    snapshot = call.bot.snapshot()
    assert snapshot["appointment"]["kind"] == "callback" and snapshot["next_step"] == "callback"
    assert snapshot["answers"]["lead"]["name"] == "Ana Lopez"


async def test_a_joined_transfer_ends_the_bots_part() -> None:
    call = new_call()
    await call.say("agent please")
    await call.say("yes")
    assert [a async for a in call.bot.after_transfer("joined")] == []
    assert call.bot.done and call.calendar.appointments == []


async def test_vague_answers_are_asked_once_more_then_left_unknown_and_scored_cold() -> None:
    call = new_call()
    await call.script(["Bea", "I want to buy", "in Pflugerville", "a house", "2 bedrooms"])
    first = said(await call.say("I don't know"))
    assert first == "Roughly what budget would you like to stay within? "
    second = said(await call.say("no idea honestly"))
    assert second.startswith("No problem, let's move on.") and "How are you planning to pay" in second
    assert "Have you spoken with a lender yet" in said(await call.say("not sure"))
    await call.say("I don't know")
    assert "Even roughly" in said(await call.say("no idea"))
    await call.script(["hard to say", "just because", "nothing special", "no"])

    snapshot = call.bot.snapshot()
    buyer = snapshot["answers"]["buyer"]
    assert buyer["price"] is None and buyer["financing"] is None and buyer["timeline"] is None
    assert snapshot["progress"]["buyer"]["unknown"] == ["price", "financing", "timeline", "must_haves"]
    assert snapshot["progress"]["buyer"]["reasked"] == ["financing", "price", "timeline"]
    assert snapshot["score"] == {
        "temperature": "cold",
        "points": 0,
        "reasons": ["timeline unknown", "financing unknown", "motivation: other"],
    }
    assert snapshot["effectiveness"]["completion_rate"] == pytest.approx(7 / 11, abs=0.001)

    declined = said(await call.say("I'm not ready to schedule"))
    assert "Or one of our agents could give you a quick call." in declined
    last = await call.say("no thanks")
    assert last[-1] == EndCall("follow-up")
    assert call.bot.snapshot()["next_step"] == "follow_up" and call.calendar.appointments == []


async def test_a_slot_taken_between_offer_and_confirmation_is_replaced_by_the_next_ones() -> None:
    call = new_call()
    await call.script(BUYER_LINES)
    await call.say("the first one")
    taken = Slot(datetime(2026, 12, 7, 11, 15, tzinfo=AUSTIN), datetime(2026, 12, 7, 11, 45, tzinfo=AUSTIN))
    other = await call.calendar.upsert_contact(name="Someone Else", phone="+15125559999")
    await call.calendar.book(other, taken, title="Showing: Someone Else")

    sorry = said(await call.say("yes"))
    assert sorry.startswith("I'm sorry, that time was just taken. I have")
    assert "11:15 AM" not in sorry
    await call.say("the first one")
    last = await call.say("yes")

    assert last[-1] == EndCall("booked")
    mine = [a for a in call.calendar.appointments if a.contact.phone == CALLER]
    assert len(mine) == 1 and mine[0].start != taken.start
    assert local(call.bot.snapshot()["appointment"]["start"]) == mine[0].start


async def test_a_speculative_reply_rolls_back_to_the_exact_conversation() -> None:
    call = new_call()
    await call.script(BUYER_LINES[:3])
    checkpoint = call.bot.checkpoint()
    assert checkpoint is not None
    before = call.bot.snapshot()
    await call.say("around 450 thousand")
    assert call.bot.snapshot() != before
    call.bot.rollback(checkpoint)
    assert call.bot.snapshot() == before
    assert said(await call.say("under 300k")) == (
        "Around three hundred thousand dollars, got it. How are you planning to pay: are you pre-approved, "
        "paying cash, or still looking for a lender? "
    )


class _SellerCannotStart(QualifyingBot):
    async def _start(self, target: BotRole) -> tuple[FlowState, str]:
        if target == "seller":
            raise RuntimeError("seller bot unavailable")
        return await super()._start(target)


async def test_a_failed_hand_off_leaves_the_caller_with_the_previous_bot() -> None:
    call = new_call(_SellerCannotStart)
    reply = await call.say("I'm Ned and I want to sell my house at 5 Pine Road")

    assert not any(isinstance(a, HandedOff) for a in reply)
    assert call.bot.voice == "lead" and call.bot.snapshot()["bot"] == "lead"
    assert all(a.voice == "lead" for a in reply if isinstance(a, Say))
    assert "call back" in said(reply)  # the lead bot goes on to the next step itself
    [record] = call.bot.snapshot()["handoffs"]
    assert record["from"] == "lead" and record["to"] == "seller" and record["ok"] is False
    assert call.bot.snapshot()["answers"]["seller"] == {}


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("can I talk to a real person", True),
        ("agent please", True),
        ("I'd like to speak with an agent", True),
        ("put me through to someone", True),
        ("I'm an agent myself", False),
        ("we're talking to a lender", False),
    ],
)
def test_asking_for_a_person(text: str, asks: bool) -> None:
    assert wants_person(text) is asks


def test_a_persona_comes_from_configuration_with_defaults_for_what_is_left_out() -> None:
    persona = Persona.from_dict(
        {
            "business_name": "Hill Country Homes",
            "service_areas": ["Austin", "Round Rock"],
            "timezone": "America/Denver",
            "bots": {"buyer": {"name": "Zoe", "voice": "zoe", "specialty": "helps our buyers"}},
        }
    )
    assert persona.greeting("lead") == (
        "Hi, thanks for calling Hill Country Homes! I'm Ava, a virtual assistant. May I have your name?"
    )
    assert persona.greeting("lead", outbound=True).startswith("Hi, this is Ava, a virtual assistant with Hill Country")
    assert persona.greeting("buyer", outbound=True) == persona.greeting("buyer")  # hand-offs are the same
    assert persona.buyer.name == "Zoe" and persona.seller.name == "Sam"
    assert persona.service_areas == ("Austin", "Round Rock") and persona.voices() == ["lead", "zoe", "seller"]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"business_name": " "}, "business_name is empty"),
        ({"bots": {"seller": {"voice": ""}}}, "seller bot: voice is empty"),
        ({"bots": {"lead": {"greeting": "Hi from {company}"}}}, "greeting may only use {business} and {name}"),
        ({"bots": {"lead": {"outbound_greeting": "{agent} here"}}}, "outbound_greeting may only use {business}"),
        ({"bots": {"agent": {}}}, "bots must map some of lead, buyer, seller"),
        ({"bots": {"lead": {"colour": "red"}}}, "unknown lead bot settings: colour"),
        ({"service_areas": "Austin"}, "service_areas must be a list"),
    ],
)
def test_a_bad_persona_is_refused_by_name(config: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        Persona.from_dict(config)


def test_the_factory_renders_the_greetings_in_every_bot_voice() -> None:
    factory = QualifyingBotFactory(
        persona=DEFAULT_PERSONA, calendar=LocalCalendar(BusinessHours()), now=lambda: NOW, clock=SteppingClock()
    )
    inbound = factory.create(context()).greeting()
    outbound = factory.create(dataclasses.replace(context(), direction="outbound-api")).greeting()
    assert factory.fixed_phrases() == [inbound, outbound]
    assert inbound.startswith("Hi, thanks for calling Lakeside Realty!")
    # A lead we dialled is not thanked for calling; the bot still says it is an AI first.
    assert outbound == (
        "Hi, this is Ava, a virtual assistant with Lakeside Realty, following up on your home inquiry. "
        "May I have your name?"
    )
    assert discloses_ai(outbound)
    assert factory.voices() == ["lead", "buyer", "seller"]


async def test_a_renter_is_not_handed_off_and_gets_a_callback_offer() -> None:
    call = new_call()
    await call.say("Kim")
    reply = await call.say("I'm looking to rent an apartment")
    assert not any(isinstance(a, HandedOff) for a in reply)
    assert "Let's set up a quick call back from one of our agents. I have" in said(reply)
    assert call.bot.snapshot()["answers"]["lead"]["intent"]["intent"] == "rent"


async def test_an_unsure_intent_is_asked_again_then_left_to_a_person() -> None:
    call = new_call()
    await call.say("Kim")
    assert said(await call.say("maybe looking at a house")).startswith("Just so I get you to the right person")
    reply = await call.say("I'm not sure yet")
    assert call.handoffs() == [] and "call back" in said(reply)
    assert call.bot.snapshot()["answers"]["lead"]["intent"] is None


async def test_a_caller_who_starts_with_what_they_want_is_heard_then_asked_their_name() -> None:
    call = new_call()
    first = said(await call.say("Hi, I am looking to buy a three bedroom house in Austin."))
    assert first == "Buying a three bedroom house in Austin, great. And who am I speaking with? "
    reply = said(await call.say("Sarah Jones"))

    assert reply.startswith("Nice to meet you, Sarah. I'll bring in Maya, who works with our buyers.")
    assert "I have your details so far: in Austin, a house, 3 bedrooms." in reply
    assert reply.endswith("What price range are you thinking of? ")
    assert "catch" not in said(call.actions) and call.handoffs() == [("lead", "buyer", "wants to buy")]
    assert call.bot.snapshot()["answers"]["lead"]["name"] == "Sarah Jones"


async def test_a_caller_who_keeps_their_name_is_handed_off_after_one_more_try() -> None:
    call = new_call()
    first = said(await call.say("I want to sell my condo at 12 Elm Street"))
    assert first == "Selling a condo at 12 Elm Street, great. And who am I speaking with? "
    reply = said(await call.say("why do you need that"))

    assert call.handoffs() == [("lead", "seller", "wants to sell")]
    assert "12 Elm Street, a condo" in reply and "catch" not in said(call.actions)
    assert call.bot.snapshot()["answers"]["lead"]["name"] is None


@pytest.mark.parametrize(
    ("before", "answer", "reply"),
    [
        (
            BUYER_LINES[:3],
            "we're pre-approved",
            "Pre-approved, that's great. And what price range are you thinking of? ",
        ),
        (
            ["Sarah", "I want to buy a home in Austin"],
            "three bedrooms and two baths",
            "3 bedrooms and 2 bathrooms, got it. And would that be a house, a condo, or something else? ",
        ),
        (
            ["Sarah", "I want to sell my house"],
            "we're downsizing, sometime next year",
            "That makes sense. Sometime next year, perfect. And what's the address of the property you're selling? ",
        ),
    ],
)
async def test_an_answer_to_another_question_is_acknowledged_and_the_question_asked_again(
    before: list[str], answer: str, reply: str
) -> None:
    call = new_call()
    await call.script(before)
    assert said(await call.say(answer)) == reply


async def test_after_an_answer_to_another_question_the_asked_one_is_still_taken() -> None:
    call = new_call()
    await call.script([*BUYER_LINES[:3], "we're pre-approved"])
    reply = said(await call.say("under 500k"))
    assert reply == "Around five hundred thousand dollars, got it. When are you hoping to move? "
    buyer = call.bot.snapshot()["answers"]["buyer"]
    assert buyer["financing"] == "pre-approved" and buyer["price"]["maximum"] == 500_000


NO_TRANSFERS = QualifierOptions(transfers=False)


async def test_without_anyone_to_transfer_to_a_caller_asking_for_a_person_books_a_callback() -> None:
    call = new_call(options=NO_TRANSFERS)
    reply = await call.say("Hi, this is Ana Lopez, can I talk to a real person?")
    assert "can't take a call right now, but one can call you back" in said(reply)
    assert not any(isinstance(a, TransferToHuman) for a in call.actions)
    await call.say("the first one works")
    last = await call.say("yes, please book it")
    assert last[-1] == EndCall("booked")
    [appointment] = call.calendar.appointments
    assert appointment.title == "Callback: Ana Lopez"


async def test_without_anyone_to_transfer_to_a_hot_lead_books_a_showing_instead() -> None:
    call = new_call(options=NO_TRANSFERS)
    await call.script(
        [
            "Hi, I'm Sarah Jones and I want to buy a three bedroom house in Austin",
            "About four hundred thousand, and we're already pre-approved",
            "In the next two months, we're relocating for work",
            "a garage",
        ]
    )
    offer = said(await call.say("no, we don't need to sell first"))
    assert call.bot.score().temperature == "hot"
    assert "Shall I put you through" not in offer
    assert "The next step is a showing with one of our agents. I have" in offer
