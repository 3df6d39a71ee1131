"""The vendor-neutral calendar: caller time zones, which slots to offer and how to say them,
business hours across DST, and the embedded calendar's bookings."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bots.business_hours import BusinessHours
from bots.calendar import CalendarError, Slot, SlotTaken, offer_slots, ordinal, spoken_slot, timezone_for_phone
from bots.local_calendar import LocalCalendar

CHICAGO = ZoneInfo("America/Chicago")
HOURS = BusinessHours()  # Mon-Fri 9-17, Sat 10-14, 30-minute slots every 45 minutes, Chicago


def local(day: date, hour: int, minute: int = 0, zone: ZoneInfo = CHICAGO) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def starts(slots: list[Slot], zone: ZoneInfo = CHICAGO) -> list[str]:
    return [f"{s.start.astimezone(zone):%a %H:%M}" for s in slots]


# --- time zones ---


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        ("+15125550123", "America/Chicago"),  # Austin
        ("(512) 555-0123", "America/Chicago"),  # national format, as callers type it
        ("+12125550100", "America/New_York"),
        ("+14155550100", "America/Los_Angeles"),
        ("+13035550100", "America/Denver"),
        ("+16025550100", "America/Phoenix"),  # Arizona keeps standard time all year
        ("+18085550100", "Pacific/Honolulu"),
        ("+19075550100", "America/Chicago"),  # Alaska spans two zones: the default
        ("+18005550100", "America/Chicago"),  # toll-free: anywhere
        ("not a number", "America/Chicago"),
    ],
)
def test_timezone_comes_from_the_area_code_when_it_names_one_zone(number: str, zone: str) -> None:
    assert timezone_for_phone(number, default="America/Chicago") == zone


def test_the_contacts_own_timezone_wins_unless_it_is_not_a_zone() -> None:
    assert timezone_for_phone("+12125550100", default="UTC", contact_timezone="America/Denver") == "America/Denver"
    assert timezone_for_phone("+12125550100", default="UTC", contact_timezone="Mars/Olympus") == "America/New_York"


# --- offers and how they are said ---

MONDAY = date(2026, 11, 23)
WEEK = HOURS.slots(local(MONDAY, 0), local(MONDAY + timedelta(days=7), 0))


def test_offers_start_with_the_soonest_then_spread_over_days_and_times_of_day() -> None:
    offers = offer_slots(WEEK, now=local(MONDAY, 8))
    # 10:30 is the first slot two hours out; then a different day *and* part of the day; then,
    # with no evening hours, a third day.
    assert starts(offers) == ["Mon 10:30", "Tue 12:00", "Wed 09:00"]
    assert offer_slots(WEEK, now=local(MONDAY, 8), n=2) == offers[:2]


def test_offers_on_a_single_day_differ_in_time_of_day_then_keep_hours_apart() -> None:
    monday_only = [s for s in WEEK if s.start.date() == MONDAY]
    assert starts(offer_slots(monday_only, now=local(MONDAY, 8))) == ["Mon 10:30", "Mon 12:00", "Mon 14:15"]


def test_offers_skip_slots_within_the_notice_and_may_be_fewer() -> None:
    late = [s for s in WEEK if s.start.date() == MONDAY and s.start.hour >= 15]
    assert starts(late) == ["Mon 15:00", "Mon 15:45", "Mon 16:30"]
    assert starts(offer_slots(late, now=local(MONDAY, 13, 30))) == ["Mon 15:45", "Mon 16:30"]
    assert starts(offer_slots(late, now=local(MONDAY, 14))) == ["Mon 16:30"]
    assert offer_slots(late, now=local(MONDAY, 16)) == []


def test_a_slot_is_said_in_the_callers_zone() -> None:
    slot = Slot(datetime(2026, 11, 26, 23, 30, tzinfo=UTC), datetime(2026, 11, 27, 0, 0, tzinfo=UTC))
    assert spoken_slot(slot, "America/Chicago") == "Thursday, November 26th at 5:30 PM"
    assert spoken_slot(slot, "America/New_York") == "Thursday, November 26th at 6:30 PM"
    assert spoken_slot(slot, "Asia/Tokyo") == "Friday, November 27th at 8:30 AM"


@pytest.mark.parametrize(("hour", "said"), [(0, "12 AM"), (9, "9 AM"), (12, "12 PM"), (13, "1 PM")])
def test_whole_hours_are_said_without_minutes(hour: int, said: str) -> None:
    start = local(date(2026, 12, 1), hour)
    assert (
        spoken_slot(Slot(start, start + timedelta(minutes=30)), "America/Chicago") == f"Tuesday, December 1st at {said}"
    )


def test_ordinals() -> None:
    days = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31]
    assert [ordinal(d) for d in days] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "31st",
    ]


# --- business hours ---


def test_the_grid_follows_the_weekly_hours() -> None:
    by_day = {d: [s for s in WEEK if s.start.date() == MONDAY + timedelta(days=d)] for d in range(7)}
    assert [len(by_day[d]) for d in range(7)] == [11, 11, 11, 11, 11, 5, 0]  # 9:00..16:30; Sat 10:00..13:30
    assert starts(by_day[5]) == ["Sat 10:00", "Sat 10:45", "Sat 11:30", "Sat 12:15", "Sat 13:00"]
    assert all(s.end - s.start == timedelta(minutes=30) for s in WEEK)


@pytest.mark.parametrize(
    ("before", "after", "utc_hours"),
    [(date(2025, 3, 7), date(2025, 3, 10), [15, 14]), (date(2025, 10, 31), date(2025, 11, 3), [14, 15])],
    ids=["spring-forward", "fall-back"],
)
def test_opening_stays_at_nine_local_across_dst(before: date, after: date, utc_hours: list[int]) -> None:
    first = [HOURS.slots(local(d, 0), local(d, 23))[0].start for d in (before, after)]
    assert [f"{m:%H:%M}" for m in first] == ["09:00", "09:00"]
    assert [m.astimezone(UTC).hour for m in first] == utc_hours


def test_invalid_hours_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        BusinessHours(timezone="Central")
    with pytest.raises(ValueError, match="weekday 7"):
        BusinessHours(week={7: (time(9), time(17))})
    with pytest.raises(ValueError, match="weekday 0"):
        BusinessHours(week={0: (time(17), time(9))})


# --- the embedded calendar ---


async def test_local_free_slots_are_given_in_the_callers_zone() -> None:
    calendar = LocalCalendar(HOURS)
    slots = await calendar.free_slots(local(MONDAY, 0), local(MONDAY, 23), "America/New_York")
    assert [f"{s.start:%H:%M %Z}" for s in slots[:2]] == ["10:00 EST", "10:45 EST"]


async def test_local_contacts_are_deduplicated_by_phone_then_email() -> None:
    calendar = LocalCalendar(HOURS)
    first = await calendar.upsert_contact(name="Dana Reyes", phone="+15125550123", email="dana@example.com")
    again = await calendar.upsert_contact(name="Dana R. Reyes", phone="+15125550123")
    by_email = await calendar.upsert_contact(name="Dana", phone="+15125559999", email="DANA@example.com")
    other = await calendar.upsert_contact(name="Sam", phone="+12125550100")
    assert first.id == again.id == by_email.id != other.id
    assert again.name == "Dana R. Reyes" and again.email == "dana@example.com"  # kept what was not resent


async def test_local_booking_takes_the_slot_out_of_the_free_list() -> None:
    calendar = LocalCalendar(HOURS)
    contact = await calendar.upsert_contact(name="Dana", phone="+15125550123")
    day = (local(MONDAY, 0), local(MONDAY, 23))
    slot = (await calendar.free_slots(*day, "America/Chicago"))[2]
    appointment = await calendar.book(contact, slot, title="Showing: 12 Oak St", notes="Pre-approved")
    assert (appointment.start, appointment.end, appointment.status) == (slot.start, slot.end, "confirmed")
    assert slot not in await calendar.free_slots(*day, "America/Chicago")
    assert calendar.notes[contact.id] == ["Pre-approved"]
    with pytest.raises(SlotTaken) as taken:
        await calendar.book(contact, slot, title="again")
    assert taken.value.retryable is False


@pytest.mark.parametrize(
    "start",
    [local(MONDAY, 9, 10), local(MONDAY, 17), local(MONDAY + timedelta(days=6), 10)],
    ids=["off-grid", "after-closing", "sunday"],
)
async def test_local_booking_outside_the_grid_is_refused(start: datetime) -> None:
    calendar = LocalCalendar(HOURS)
    contact = await calendar.upsert_contact(name="Dana", phone="+15125550123")
    with pytest.raises(SlotTaken):
        await calendar.book(contact, Slot(start, start + timedelta(minutes=30)), title="Showing")


async def test_concurrent_calls_cannot_book_the_same_slot() -> None:
    calendar = LocalCalendar(HOURS)
    contacts = [await calendar.upsert_contact(name=f"Caller {i}", phone=f"+1512555{i:04d}") for i in range(20)]
    slot = HOURS.slots(local(MONDAY, 9), local(MONDAY, 10))[0]
    results = await asyncio.gather(*(calendar.book(c, slot, title="Showing") for c in contacts), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, SlotTaken) for r in results if isinstance(r, BaseException))
    assert len(calendar.appointments) == 1


async def test_local_notes_and_opportunities_need_a_known_contact() -> None:
    calendar = LocalCalendar(HOURS)
    contact = await calendar.upsert_contact(name="Dana", phone="+15125550123")
    await calendar.add_note(contact.id, "Wants a 3-bed in Austin")
    opportunity_id = await calendar.create_opportunity(contact.id, name="Dana - buyer", value=450_000, stage="new")
    assert calendar.notes[contact.id] == ["Wants a 3-bed in Austin"]
    assert [(o.id, o.value, o.stage) for o in calendar.opportunities] == [(opportunity_id, 450_000, "new")]
    with pytest.raises(CalendarError) as unknown:
        await calendar.add_note("nobody", "hello")
    assert unknown.value.retryable is False
