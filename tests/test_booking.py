"""The booking dialog against the embedded calendar on a fixed clock (offers, picks, counter-
proposals, a slot taken meanwhile, declines, give-ups, calendar failures, DST, checkpoints) and
end to end against the GoHighLevel emulator over loopback."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bots.booking import BookingDialog, BookingRequest, BookingStep
from bots.business_hours import BusinessHours
from bots.calendar import Appointment, CalendarError, Contact, Slot
from bots.ghl import GhlCalendar, GhlOptions
from bots.local_calendar import LocalCalendar
from emulators.control import LatencyProfile
from emulators.ghl import GHL, build_app, default_control
from tests.conftest import on_loopback

CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
HOURS = BusinessHours()  # Chicago: Mon-Fri 9-17, Sat 10-14, 30-minute slots every 45 minutes
#: Tuesday 8 AM in Chicago; offers start two hours out.
NOW = datetime(2026, 12, 8, 8, 0, tzinfo=CHICAGO)
SHOWING = BookingRequest(kind="showing", title="Showing: 12 Oak St", notes="Pre-approved, 450k")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def __call__(self) -> datetime:
        return self.moment


class FlakyCalendar(LocalCalendar):
    """The embedded calendar, failing its next requests as scheduled."""

    def __init__(self, hours: BusinessHours) -> None:
        super().__init__(hours)
        self.failures: dict[str, deque[CalendarError]] = {"free_slots": deque(), "book": deque()}

    def _fail(self, operation: str) -> None:
        if self.failures[operation]:
            raise self.failures[operation].popleft()

    async def free_slots(self, start: datetime, end: datetime, tz: str) -> list[Slot]:
        self._fail("free_slots")
        return await super().free_slots(start, end, tz)

    async def book(self, contact: Contact, slot: Slot, *, title: str, notes: str = "") -> Appointment:
        self._fail("book")
        return await super().book(contact, slot, title=title, notes=notes)


async def dialog(
    calendar: LocalCalendar | None = None, *, tz: str = "America/New_York", clock: Clock | None = None
) -> tuple[BookingDialog, LocalCalendar]:
    calendar = calendar or LocalCalendar(HOURS)
    contact = await calendar.upsert_contact(name="Dana Reyes", phone="+12125550100")
    return BookingDialog(calendar, contact, SHOWING, tz=tz, now=clock or Clock(NOW)), calendar


async def talk(booking: BookingDialog, *lines: str) -> list[BookingStep]:
    return [await booking.hear(line) for line in lines]


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = NEW_YORK) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


# --- the happy path ---


async def test_offers_are_said_in_the_callers_zone_then_the_pick_is_confirmed_and_booked() -> None:
    booking, calendar = await dialog()
    opened = await booking.open()
    # Chicago 10:30, 11:15 and 16:30, said in New York time.
    assert opened.say == (
        "For the showing, I have Tuesday, December 8th at 11:30 AM, Wednesday the 9th at 12:15 PM, "
        "or Thursday the 10th at 5:30 PM. Which works best?"
    )
    assert not opened.done and not opened.will_book
    confirm, booked = await talk(booking, "Uh, the second one.", "Yes please.")
    assert confirm.say == "Wednesday, December 9th at 12:15 PM. Shall I book that?" and confirm.will_book
    assert (
        booked.done and not booked.declined and booked.say == "You're all set for Wednesday, December 9th at 12:15 PM."
    )
    [appointment] = calendar.appointments
    assert booked.appointment == appointment
    assert appointment.start == at(date(2026, 12, 9), 12, 15) == at(date(2026, 12, 9), 11, 15, CHICAGO)
    assert (appointment.title, calendar.notes[appointment.contact.id]) == (SHOWING.title, [SHOWING.notes])
    assert booking.state()["appointment"]["start"] == "2026-12-09T12:15:00-05:00"
    assert await booking.hear("thanks") == booked  # over: nothing more happens


async def test_no_to_the_confirmation_goes_back_to_the_other_offers() -> None:
    booking, calendar = await dialog()
    await booking.open()
    _, back, confirm, booked = await talk(booking, "Thursday", "no", "the Tuesday one", "yes")
    assert back.say == (
        "No problem. I also have Tuesday, December 8th at 11:30 AM or Wednesday the 9th at 12:15 PM. "
        "Would one of those work?"
    )
    assert not back.will_book and confirm.will_book and booked.done
    assert [a.start for a in calendar.appointments] == [at(date(2026, 12, 8), 11, 30)]


async def test_a_counter_proposal_is_met_within_its_window() -> None:
    evenings = BusinessHours(week=dict.fromkeys(range(5), (time(9), time(20))))
    thursday = Clock(datetime(2026, 12, 10, 8, 0, tzinfo=CHICAGO))
    booking, _ = await dialog(LocalCalendar(evenings), tz="America/Chicago", clock=thursday)
    opened = await booking.open()
    assert opened.say.startswith("For the showing, I have Thursday, December 10th at 10:30 AM, Friday")
    offered = await booking.hear("Thursday after five")
    assert offered.say == "I have Thursday, December 10th at 5:15 PM or at 7:30 PM. Which works better?"
    confirm, booked = await talk(booking, "the later one", "yes")
    assert confirm.will_book and booked.appointment is not None
    assert booked.appointment.start == at(date(2026, 12, 10), 19, 30, CHICAGO)


async def test_an_exact_time_asked_for_is_confirmed_straight_away() -> None:
    booking, _ = await dialog(tz="America/Chicago")
    await booking.open()
    confirm, booked = await talk(booking, "how about next Tuesday at three", "sure")
    assert confirm.say == "I have Tuesday, December 15th at 3 PM. Shall I book that?" and confirm.will_book
    assert booked.appointment is not None and booked.appointment.start == at(date(2026, 12, 15), 15, 0, CHICAGO)


async def test_nothing_in_the_window_offers_the_nearest_times() -> None:
    booking, _ = await dialog(tz="America/Chicago")
    await booking.open()
    nearest = await booking.hear("Sunday morning")  # closed on Sundays
    assert nearest.say.startswith(
        "I'm sorry, I don't have anything then. The closest I have is Saturday, December 12th"
    )
    assert [f"{datetime.fromisoformat(s):%a %H:%M}" for s in booking.state()["offered"]] == ["Sat 13:00", "Mon 09:00"]


async def test_turning_the_offers_down_never_offers_them_again() -> None:
    booking, _ = await dialog(tz="America/Chicago")
    await booking.open()
    first = [datetime.fromisoformat(s) for s in booking.state()["offered"]]
    await booking.hear("Not those. What else do you have on Tuesday?")
    again = [datetime.fromisoformat(s) for s in booking.state()["offered"]]
    assert again and not set(first) & set(again)
    assert all(s.date() == date(2026, 12, 8) for s in again)


# --- a slot taken meanwhile ---


async def test_a_slot_taken_meanwhile_is_apologised_for_and_the_nearest_offered() -> None:
    booking, calendar = await dialog()
    await booking.open()
    await booking.hear("the first one")
    chosen = booking.state()["chosen"]
    someone = await calendar.upsert_contact(name="Sam", phone="+15125550199")
    await calendar.book(
        someone, Slot(datetime.fromisoformat(chosen), datetime.fromisoformat(chosen) + timedelta(minutes=30)), title="x"
    )
    taken = await booking.hear("yes")
    assert taken.say == (
        # 10:45 AM would have been nearer, but it is within the two hours' notice.
        "I'm sorry, that time was just taken. I have Tuesday, December 8th at 12:15 PM or at 1 PM. Which works better?"
    )
    assert not taken.done and chosen not in booking.state()["offered"]
    _, booked = await talk(booking, "12:15", "yes")
    assert booked.appointment is not None and booked.appointment.start == at(date(2026, 12, 8), 12, 15)
    assert len(calendar.appointments) == 2


# --- endings ---


@pytest.mark.parametrize("line", ["I'm not ready to schedule yet.", "No thanks."])
async def test_a_caller_who_declines_ends_the_dialog_without_booking(line: str) -> None:
    booking, calendar = await dialog()
    await booking.open()
    step = await booking.hear(line)
    assert step.done and step.declined and step.appointment is None and not calendar.appointments
    assert booking.state()["declined"] is True


async def test_three_misunderstandings_end_in_a_graceful_give_up() -> None:
    booking, calendar = await dialog()
    await booking.open()
    first, second, third = await talk(booking, "banana", "purple monkey", "I have five kids")
    assert first.say.startswith("Sorry, I didn't catch that. I have Tuesday") and not first.done
    assert not second.done
    assert third.done and not third.declined and third.appointment is None
    assert "Someone from our team will call you" in third.say
    assert booking.state()["attempts"] == 3 and not calendar.appointments


async def test_an_unclear_confirmation_is_asked_again() -> None:
    booking, _ = await dialog()
    await booking.open()
    await booking.hear("the first one")
    again = await booking.hear("hmm")
    assert (
        again.say == "Sorry, shall I book Tuesday, December 8th at 11:30 AM? Please say yes or no." and again.will_book
    )


# --- calendar failures ---


async def test_a_retryable_failure_is_retried_once() -> None:
    calendar = FlakyCalendar(HOURS)
    calendar.failures["free_slots"].append(CalendarError("timeout", retryable=True))
    calendar.failures["book"].append(CalendarError("503", retryable=True, status=503))
    booking, _ = await dialog(calendar)
    assert not (await booking.open()).done
    _, booked = await talk(booking, "the first one", "yes")
    assert booked.appointment is not None and len(calendar.appointments) == 1


@pytest.mark.parametrize(
    "errors",
    [
        [CalendarError("timeout", retryable=True), CalendarError("timeout", retryable=True)],
        [CalendarError("bad token", retryable=False, status=401)],
    ],
    ids=["failed-twice", "not-retryable"],
)
async def test_a_calendar_that_keeps_failing_ends_the_dialog_gracefully(errors: list[CalendarError]) -> None:
    calendar = FlakyCalendar(HOURS)
    booking, _ = await dialog(calendar)
    await booking.open()
    await booking.hear("the first one")
    calendar.failures["book"].extend(errors)
    step = await booking.hear("yes")
    assert step.done and step.appointment is None and not step.declined
    assert (
        step.say
        == "I'm sorry, I can't reach our calendar right now. Someone from our team will call you to set a time."
    )
    assert not calendar.appointments


async def test_a_retried_booking_that_finds_its_slot_taken_is_not_reoffered_as_lost() -> None:
    """The first attempt may have booked it: the caller is told the team will confirm."""
    calendar = FlakyCalendar(HOURS)
    booking, _ = await dialog(calendar)
    await booking.open()
    await booking.hear("the first one")
    chosen = datetime.fromisoformat(booking.state()["chosen"])
    someone = await calendar.upsert_contact(name="Sam", phone="+15125550199")
    await calendar.book(someone, Slot(chosen, chosen + timedelta(minutes=30)), title="x")
    calendar.failures["book"].append(CalendarError("timeout", retryable=True))
    step = await booking.hear("yes")
    assert step.done and step.appointment is None and "couldn't confirm" in step.say


async def test_no_free_time_at_all_ends_at_once() -> None:
    booking, _ = await dialog(LocalCalendar(BusinessHours(week={})))
    step = await booking.open()
    assert step.done and "next two weeks" in step.say


# --- time zones and checkpoints ---


async def test_a_booking_across_a_dst_change_lands_on_the_callers_wall_clock_time() -> None:
    friday = datetime(2026, 3, 6, 8, 0, tzinfo=CHICAGO)  # clocks go forward on Sunday the 8th
    booking, calendar = await dialog(clock=Clock(friday))
    await booking.open()
    confirm, booked = await talk(booking, "Monday at 10", "yes")
    assert confirm.say == "I have Monday, March 9th at 10 AM. Shall I book that?"
    [appointment] = calendar.appointments
    assert booked.appointment == appointment and appointment.start == at(date(2026, 3, 9), 10)
    assert appointment.start.astimezone(UTC).hour == 14  # EDT; it would be 15 on EST


async def test_a_deep_copy_shares_the_calendar_and_clock_but_not_the_conversation() -> None:
    clock = Clock(NOW)
    booking, calendar = await dialog(clock=clock)
    await booking.open()
    before = booking.state()
    clone = copy.deepcopy(booking)
    _, booked = await talk(clone, "the first one", "yes")
    assert booked.appointment in calendar.appointments  # booked on the shared calendar
    assert booking.state() == before  # the original conversation did not move
    clock.moment += timedelta(days=1)
    assert (await copy.deepcopy(booking).open()).say.startswith("For the showing, I have Wednesday, December 9th")


# --- end to end against the GoHighLevel emulator ---

TOKEN = "pit-booking-test"
LOCATION_ID, CALENDAR_ID, PIPELINE_ID = "loc-booking-00000001", "cal-booking-00000001", "pipe-booking-0000001"


@pytest.fixture
async def ghl() -> AsyncIterator[tuple[str, GhlCalendar]]:
    control = default_control()
    control.latency["request"] = LatencyProfile(median_ms=1, p95_ms=3)
    app = build_app(
        token=TOKEN,
        location_id=LOCATION_ID,
        calendar_id=CALENDAR_ID,
        pipeline_id=PIPELINE_ID,
        hours=HOURS,
        control=control,
    )
    async with on_loopback(app) as base_url:
        options = GhlOptions(
            token=TOKEN, location_id=LOCATION_ID, calendar_id=CALENDAR_ID, pipeline_id=PIPELINE_ID, base_url=base_url
        )
        calendar = GhlCalendar(options)
        try:
            yield base_url, calendar
        finally:
            await calendar.aclose()
        assert app[GHL].appointments  # the test booked through the emulator


async def test_booking_through_the_ghl_emulator_with_a_slot_taken_in_between(ghl: tuple[str, GhlCalendar]) -> None:
    base_url, calendar = ghl
    contact = await calendar.upsert_contact(name="Dana Reyes", phone="(212) 555-0100", timezone="America/New_York")
    booking = BookingDialog(calendar, contact, SHOWING, tz="America/New_York", now=lambda: datetime.now(UTC))
    assert not (await booking.open()).done
    confirm = await booking.hear("the first one")
    chosen = booking.state()["chosen"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/_emulator/ghl/appointments", json={"startTime": chosen}) as behind,
    ):
        assert behind.status == 200
    taken = await booking.hear("yes")
    assert confirm.will_book and taken.say.startswith("I'm sorry, that time was just taken.")
    assert chosen not in booking.state()["offered"]
    step = await booking.hear("the first one")
    booked = await booking.hear("yes") if not step.done else step
    assert booked.done and booked.appointment is not None
    assert booked.appointment.start.isoformat() == booking.state()["chosen"] != chosen
    assert booked.appointment.start.tzinfo is not None and booked.appointment.contact == contact
