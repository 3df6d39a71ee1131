"""Bot sessions that outlive a call: saved at turn ends, resumed by the same caller within the
resume window, never re-asking what they answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bots.base import CallContext, EndCall, Say, TransferToHuman
from bots.business_hours import BusinessHours
from bots.calendar import Appointment, CalendarError
from bots.conversation_state import QualifierOptions
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBot, QualifyingBotFactory
from bots.session_state import STATE_VERSION, MemoryBotSessionStore, resumable

START = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
CALLER = "+15125550123"


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at


class CountingStore(MemoryBotSessionStore):
    def __init__(self) -> None:
        super().__init__()
        self.saves = 0

    async def save(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        self.saves += 1
        await super().save(tenant, phone, state)


class BrokenStore(MemoryBotSessionStore):
    async def save(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        raise ConnectionError("database down")


def context(tenant: str = "t1", phone: str = CALLER) -> CallContext:
    return CallContext(
        call_sid="CA1", from_number=phone, to_number="+15125550000", direction="inbound", tenant=tenant, bot="lead"
    )


class NoCancelCalendar(LocalCalendar):
    """A calendar that books but cannot cancel (the CRM is down by the end of the call)."""

    async def cancel(self, appointment_id: str) -> None:
        raise CalendarError("GoHighLevel did not answer within 10 s", retryable=True)


def factory(store: MemoryBotSessionStore, clock: Clock, calendar: LocalCalendar | None = None) -> QualifyingBotFactory:
    return QualifyingBotFactory(
        persona=DEFAULT_PERSONA,
        calendar=calendar or LocalCalendar(BusinessHours()),
        store=store,
        now=clock,
        options=QualifierOptions(resume_window=timedelta(hours=2)),
    )


async def talk(bot: QualifyingBot, *lines: str) -> str:
    text = ""
    for line in lines:
        text = "".join([a.text async for a in bot.respond(line) if isinstance(a, Say)])
        await bot.persist()
    return text


async def test_the_memory_store_keeps_one_copy_per_tenant_and_phone() -> None:
    store = MemoryBotSessionStore()
    assert await store.load("t1", CALLER) is None
    state: dict[str, Any] = {"version": STATE_VERSION, "answers": {"lead": {"name": "Al"}}}
    await store.save("t1", CALLER, state)
    state["answers"]["lead"]["name"] = "changed after saving"
    loaded = await store.load("t1", CALLER)
    assert loaded == {"version": STATE_VERSION, "answers": {"lead": {"name": "Al"}}}
    assert loaded is not None
    loaded["answers"] = {}
    assert (await store.load("t1", CALLER) or {})["answers"] == {"lead": {"name": "Al"}}
    assert await store.load("t2", CALLER) is None


def test_a_state_is_resumable_only_when_recent_and_of_this_version() -> None:
    state = {"version": STATE_VERSION, "last_activity": START.isoformat()}
    window = timedelta(hours=2)
    assert resumable(state, START + timedelta(hours=2), window)
    assert not resumable(state, START + timedelta(hours=2, seconds=1), window)
    assert not resumable({**state, "version": STATE_VERSION + 1}, START, window)
    assert not resumable({"version": STATE_VERSION}, START, window)
    assert not resumable(None, START, window)


async def test_a_caller_who_rings_back_continues_where_they_left_off() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    first = factory(store, clock).create(context())
    await talk(first, "I'm Sarah Jones", "We want to buy a house in Austin", "3 bedrooms")
    saved = await store.load("t1", CALLER)
    assert saved is not None and saved["current_bot"] == "buyer"
    assert saved["last_activity"] == START.isoformat()
    assert saved["handoffs"][0]["to"] == "buyer" and saved["progress"]["buyer"]["current"] == "price"

    clock.at = START + timedelta(hours=1)
    again = await factory(store, clock).create_for_caller(context())
    assert again.greeting() == (
        "Hi Sarah, welcome back to Lakeside Realty! It's Maya again. Let's pick up where we left off. "
        "What price range are you thinking of?"
    )
    assert again.voice == "buyer"
    reply = await talk(again, "under 500k")
    assert reply.endswith(
        "How are you planning to pay: are you pre-approved, paying cash, or still looking for a lender? "
    )
    snapshot = again.snapshot()
    assert snapshot["resumed"] is True
    buyer = snapshot["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["rooms"]["bedrooms"] == 3 and buyer["price"]["maximum"] == 500_000
    assert [h["to"] for h in snapshot["handoffs"]] == ["buyer"]
    assert (await store.load("t1", CALLER) or {})["last_activity"] == clock.at.isoformat()


async def test_a_session_past_the_window_or_of_another_tenant_starts_afresh() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    await talk(factory(store, clock).create(context()), "I'm Sarah Jones")
    other_tenant = await factory(store, clock).create_for_caller(context(tenant="t2"))
    assert other_tenant.greeting().startswith("Hi, thanks for calling Lakeside Realty!")
    clock.at = START + timedelta(hours=3)
    too_late = await factory(store, clock).create_for_caller(context())
    assert too_late.greeting().startswith("Hi, thanks for calling Lakeside Realty!")
    assert too_late.snapshot()["answers"]["lead"] == {}


BOOKING_LINES = [
    "I'm Sarah Jones",
    "We want to buy a house in Austin",
    "3 bedrooms",
    "around 450 thousand",
    "we still need a lender",
    "in 2 months",
    "no reason",
    "nothing",
    "no",
    "the first one",
    "yes",
]


def appointments(bots: QualifyingBotFactory) -> list[Appointment]:
    assert isinstance(bots.calendar, LocalCalendar)
    return bots.calendar.appointments


async def booked_caller(
    store: MemoryBotSessionStore, clock: Clock, phone: str = CALLER, calendar: LocalCalendar | None = None
) -> QualifyingBotFactory:
    """A factory (one calendar) whose caller booked a showing on an earlier call."""
    bots = factory(store, clock, calendar)
    first = bots.create(context(phone=phone))
    await talk(first, *BOOKING_LINES)
    assert first.snapshot()["appointment"] is not None
    clock.at = START + timedelta(minutes=30)
    return bots


async def test_a_caller_already_booked_is_greeted_with_the_appointment_and_asked_how_to_help() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    bots = await booked_caller(store, clock)
    again = await bots.create_for_caller(context())
    assert again.greeting() == (
        "Hi Sarah, welcome back to Lakeside Realty! It's Maya again. I see your showing is booked for "
        "Monday, December 7th at 11:15 AM. How can I help you today?"
    )
    assert not again.done
    actions = [a async for a in again.respond("no that's all, thanks")]
    assert actions[-1] == EndCall("conversation complete")


async def test_the_appointment_is_said_in_the_callers_own_zone() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    bots = await booked_caller(store, clock, phone="+12125550123")  # 212: New York
    again = await bots.create_for_caller(context(phone="+12125550123"))
    [appointment] = appointments(bots)
    assert appointment.start.astimezone(ZoneInfo("America/New_York")).hour == 12
    assert "I see your showing is booked for Monday, December 7th at 12:15 PM." in again.greeting()


async def reschedule(bots: QualifyingBotFactory, store: MemoryBotSessionStore) -> tuple[str, QualifyingBot]:
    """The booked caller rings back and moves the showing to the first time offered."""
    again = await bots.create_for_caller(context())
    offer = await talk(again, "I need to reschedule")
    assert offer.startswith("Of course, let's find you a new time. For the showing, I have")
    assert "11:15 AM" not in offer  # the booked time is not free
    await talk(again, "the first one")
    done = [a async for a in again.respond("yes")]
    await again.persist()
    assert done[-1] == EndCall("booked")
    return "".join(a.text for a in done if isinstance(a, Say)), again


async def test_a_caller_who_reschedules_gets_new_times_and_the_old_one_is_cancelled() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    bots = await booked_caller(store, clock)
    text, again = await reschedule(bots, store)

    assert "You're all set for" in text
    assert "I've cancelled your earlier time, Monday, December 7th at 11:15 AM." in text
    old, new = appointments(bots)
    assert (old.status, new.status) == ("cancelled", "confirmed") and new.title == "Showing: Sarah Jones"
    snapshot = again.snapshot()
    assert snapshot["appointment"]["id"] == new.id and snapshot["cancel_pending"] == []
    saved = await store.load("t1", CALLER)
    assert saved is not None and saved["appointment"]["id"] == new.id and saved["cancel_pending"] == []
    # The old time is free again for the next caller.
    assert any(s.start == old.start for s in await bots.calendar.free_slots(old.start, old.end, "America/Chicago"))


async def test_an_old_time_the_calendar_cannot_cancel_is_left_to_the_team() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    bots = await booked_caller(store, clock, calendar=NoCancelCalendar(BusinessHours()))
    text, again = await reschedule(bots, store)

    assert "I've let the team know to cancel your earlier time, Monday, December 7th at 11:15 AM." in text
    old, new = appointments(bots)
    assert [a["id"] for a in again.snapshot()["cancel_pending"]] == [old.id]
    saved = await store.load("t1", CALLER)
    assert saved is not None and [a["id"] for a in saved["cancel_pending"]] == [old.id]
    assert saved["appointment"]["id"] == new.id


async def test_a_caller_who_changes_their_mind_about_rescheduling_keeps_the_appointment() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    bots = await booked_caller(store, clock)
    again = await bots.create_for_caller(context())
    await talk(again, "can I move my appointment")
    kept = await talk(again, "actually no, I'm not ready to schedule")
    assert "Your showing stays booked for Monday, December 7th at 11:15 AM." in kept
    snapshot = again.snapshot()
    assert snapshot["cancel_pending"] == [] and len(appointments(bots)) == 1
    assert snapshot["appointment"]["start"] == appointments(bots)[0].start.isoformat()


@pytest.mark.parametrize("question", ["I have a question for an agent", "can I talk to a real person"])
async def test_a_caller_with_a_question_for_an_agent_is_offered_a_transfer(question: str) -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    again = await (await booked_caller(store, clock)).create_for_caller(context())
    offer = await talk(again, question)
    assert offer == "Of course. I can connect you with one of our agents right now. Shall I put you through? "
    transfer = [a async for a in again.respond("yes")]
    assert isinstance(transfer[-1], TransferToHuman) and transfer[-1].briefing.startswith("Warm lead: Sarah Jones.")


async def test_a_returning_caller_not_understood_hears_the_options_then_is_offered_a_person() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    again = await (await booked_caller(store, clock)).create_for_caller(context())
    options = await talk(again, "well, about the house")
    assert options == (
        "I can move your appointment to another time, or connect you with one of our agents. Which would you like? "
    )
    assert "connect you with one of our agents" in await talk(again, "hmm, the parking")


async def test_persisting_an_unchanged_session_does_not_write() -> None:
    store, clock = CountingStore(), Clock()
    bot = factory(store, clock).create(context())
    await talk(bot, "I'm Sarah Jones")
    await bot.persist()
    assert store.saves == 1
    await talk(bot, "I want to sell")
    assert store.saves == 2


async def test_a_failing_store_does_not_break_the_call() -> None:
    bot = factory(BrokenStore(), Clock()).create(context())
    reply = await talk(bot, "I'm Sarah Jones")
    assert reply.endswith("Are you looking to buy a home, sell one, or both? ")


async def test_on_an_outbound_call_the_session_is_the_dialled_lead_s() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    outbound = CallContext(
        call_sid="CA2", from_number="+15125550000", to_number=CALLER, direction="outbound-api", tenant="t1", bot="lead"
    )
    await talk(factory(store, clock).create(outbound), "I'm Sarah Jones")
    assert (await store.load("t1", CALLER) or {})["answers"]["lead"] == {"name": "Sarah Jones"}
    assert await store.load("t1", "+15125550000") is None
    again = await factory(store, clock).create_for_caller(context())
    assert again.greeting().startswith("Hi Sarah, welcome back")


async def test_a_lead_who_asks_not_to_be_called_again_is_kept_off_the_call_list() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    bots = factory(store, clock)
    bot = bots.create(context())
    await talk(bot, "Hi, I'm Sarah Jones")
    actions = [a async for a in bot.respond("actually, please stop calling me")]
    await bot.persist()

    said = "".join(a.text for a in actions if isinstance(a, Say))
    assert said == "Understood. I've taken this number off our call list, and we won't call you again. Goodbye!"
    assert actions[-1] == EndCall("opted out") and bot.done
    assert await bots.opted_out("t1", CALLER) and not await bots.opted_out("t2", CALLER)
    assert not await bots.opted_out("t1", "+15125550999")

    # Weeks later, past the resume window, the lead rings us: a new session, the opt-out kept.
    clock.at = START + timedelta(days=30)
    later = await bots.create_for_caller(context())
    assert not later.snapshot()["resumed"]
    await talk(later, "Hi, it's Sarah Jones again")
    await later.persist()
    assert await bots.opted_out("t1", CALLER)
