"""Bot sessions that outlive a call: saved at turn ends, resumed by the same caller within the
resume window, never re-asking what they answered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bots.base import CallContext, EndCall, Say
from bots.business_hours import BusinessHours
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifierOptions, QualifyingBot, QualifyingBotFactory
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


def factory(store: MemoryBotSessionStore, clock: Clock) -> QualifyingBotFactory:
    return QualifyingBotFactory(
        persona=DEFAULT_PERSONA,
        calendar=LocalCalendar(BusinessHours()),
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
        "Hi Sarah Jones, welcome back to Lakeside Realty! It's Maya again. Let's pick up where we left off. "
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


async def test_a_caller_already_booked_is_reminded_of_the_appointment() -> None:
    store, clock = MemoryBotSessionStore(), Clock()
    first = factory(store, clock).create(context())
    await talk(first, "I'm Sarah Jones", "We want to buy a house in Austin", "3 bedrooms", "around 450 thousand")
    await talk(first, "we still need a lender", "in 2 months", "no reason", "nothing", "no", "the first one", "yes")
    assert first.snapshot()["appointment"] is not None

    again = await factory(store, clock).create_for_caller(context())
    assert "You're booked for Monday, December 7th at 11:15 AM." in again.greeting()
    actions = [a async for a in again.respond("no that's all, thanks")]
    assert actions[-1] == EndCall("conversation complete")


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
    assert again.greeting().startswith("Hi Sarah Jones, welcome back")
