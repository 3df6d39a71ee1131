"""The GoHighLevel client against the emulator over real loopback sockets (happy path, a slot
taken meanwhile, auth and Version checks, rate limits, stalls and broken answers), and the
wire format on recorded bodies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from multidict import CIMultiDict

from bots import ghl_wire as wire
from bots.business_hours import BusinessHours
from bots.calendar import CalendarError, Contact, SlotTaken, offer_slots
from bots.ghl import GhlCalendar, GhlOptions
from bots.rate_limit import RateLimit
from emulators.control import Fault, LatencyProfile
from emulators.ghl import GHL, SLOT_TAKEN_MESSAGE, GhlEmulator, build_app, default_control
from tests.conftest import on_loopback

TOKEN = "pit-test-token"
LOCATION_ID = "loc-test-0000000001"
CALENDAR_ID = "cal-test-0000000001"
PIPELINE_ID = "pipe-test-000000001"
HOURS = BusinessHours()  # Mon-Fri 9-17, Sat 10-14, Chicago; 11 weekday slots
CHICAGO = ZoneInfo("America/Chicago")
FAST = LatencyProfile(median_ms=1, p95_ms=3)


@dataclass
class Emulator:
    base_url: str
    ghl: GhlEmulator
    clients: list[GhlCalendar] = field(default_factory=list)

    def calendar(self, **options: Any) -> GhlCalendar:
        """A client of this emulator, closed when the test ends."""
        defaults: dict[str, Any] = {
            "token": TOKEN,
            "location_id": LOCATION_ID,
            "calendar_id": CALENDAR_ID,
            "pipeline_id": PIPELINE_ID,
            "base_url": self.base_url,
        }
        client = GhlCalendar(GhlOptions(**{**defaults, **options}))
        self.clients.append(client)
        return client

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.ghl.control.stats)


@asynccontextmanager
async def running_emulator(rate_limit: RateLimit | None = None) -> AsyncIterator[Emulator]:
    control = default_control()
    control.latency["request"] = FAST
    app = build_app(
        token=TOKEN,
        location_id=LOCATION_ID,
        calendar_id=CALENDAR_ID,
        pipeline_id=PIPELINE_ID,
        hours=HOURS,
        rate_limit=rate_limit,
        control=control,
    )
    async with on_loopback(app) as base_url:
        emulator = Emulator(base_url, app[GHL])
        try:
            yield emulator
        finally:
            for client in emulator.clients:
                await client.aclose()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as running:
        yield running


def next_monday() -> date:
    """A weekday whose slots are all in the future, whenever the suite runs."""
    today = datetime.now(CHICAGO).date()
    return today + timedelta(days=7 - today.weekday())


def day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=CHICAGO)
    return start, start + timedelta(days=1)


async def dana(calendar: GhlCalendar) -> Contact:
    return await calendar.upsert_contact(name="Dana Reyes", phone="(512) 555-0123", email="dana@example.com")


# --- over the wire ---


async def test_upsert_book_note_and_opportunity(emulator: Emulator) -> None:
    calendar = emulator.calendar()
    contact = await dana(calendar)
    again = await calendar.upsert_contact(name="Dana M. Reyes", phone="+15125550123")
    assert contact.id == again.id and len(emulator.ghl.contacts) == 1  # deduplicated, not duplicated
    assert (again.phone, again.name, again.email) == ("+15125550123", "Dana M. Reyes", "dana@example.com")

    slots = await calendar.free_slots(*day_range(next_monday()), "America/New_York")
    assert len(slots) == 11
    assert [f"{s.start:%H:%M}" for s in slots[:2]] == ["10:00", "10:45"]  # 9:00 in Chicago
    assert {str(s.start.tzinfo) for s in slots} == {"America/New_York"}
    appointment = await calendar.book(contact, slots[1], title="Showing: 12 Oak St", notes="Pre-approved")
    assert (appointment.start, appointment.end, appointment.status) == (slots[1].start, slots[1].end, "confirmed")
    assert appointment.calendar == CALENDAR_ID and appointment.contact == contact
    stored = emulator.ghl.appointments[appointment.id]
    assert stored["contactId"] == contact.id and stored["title"] == "Showing: 12 Oak St"
    assert slots[1] not in await calendar.free_slots(*day_range(next_monday()), "America/New_York")

    await calendar.add_note(contact.id, "Wants a 3-bed in Austin, budget 450k")
    opportunity_id = await calendar.create_opportunity(contact.id, name="Dana - buyer", value=450_000, stage="st-1")
    assert [n["body"] for n in emulator.ghl.notes[contact.id]] == ["Wants a 3-bed in Austin, budget 450k"]
    opportunity = emulator.ghl.opportunities[opportunity_id]
    assert (opportunity["pipelineId"], opportunity["pipelineStageId"], opportunity["monetaryValue"]) == (
        PIPELINE_ID,
        "st-1",
        450_000,
    )
    assert opportunity["status"] == "open" and opportunity["contactId"] == contact.id


async def test_a_long_range_is_asked_for_in_31_day_pieces(emulator: Emulator) -> None:
    start, _ = day_range(next_monday())
    end = start + timedelta(days=45)
    slots = await emulator.calendar().free_slots(start, end, "America/Chicago")
    assert emulator.stats["requests"] == 2
    assert slots == HOURS.slots(start, end)  # every slot once, in order, none outside the range


async def test_a_slot_taken_meanwhile_raises_and_drops_out_of_the_next_offers(emulator: Emulator) -> None:
    calendar = emulator.calendar()
    contact = await dana(calendar)
    day = day_range(next_monday())
    offers = offer_slots(await calendar.free_slots(*day, "America/Chicago"), now=datetime.now(UTC))
    async with aiohttp.ClientSession() as http:
        behind = await http.post(
            f"{emulator.base_url}/_emulator/ghl/appointments", json={"startTime": offers[0].start.isoformat()}
        )
        assert behind.status == 200
    with pytest.raises(SlotTaken) as taken:
        await calendar.book(contact, offers[0], title="Showing")
    assert taken.value.retryable is False and taken.value.status == 400
    fresh = offer_slots(await calendar.free_slots(*day, "America/Chicago"), now=datetime.now(UTC))
    assert offers[0] not in fresh and len(fresh) == 3
    assert (await calendar.book(contact, fresh[0], title="Showing")).start == fresh[0].start


async def test_a_cancelled_appointment_frees_its_slot_and_cancelling_again_is_harmless(emulator: Emulator) -> None:
    calendar = emulator.calendar()
    contact = await dana(calendar)
    day = day_range(next_monday())
    slot = (await calendar.free_slots(*day, "America/Chicago"))[0]
    appointment = await calendar.book(contact, slot, title="Showing")
    assert slot not in await calendar.free_slots(*day, "America/Chicago")

    await calendar.cancel(appointment.id)
    await calendar.cancel(appointment.id)
    assert emulator.ghl.appointments[appointment.id]["appointmentStatus"] == "cancelled"  # kept, not deleted
    assert slot in await calendar.free_slots(*day, "America/Chicago")
    rebooked = await calendar.book(contact, slot, title="Showing")
    assert rebooked.id != appointment.id


async def test_cancelling_an_unknown_appointment_is_a_permanent_error(emulator: Emulator) -> None:
    with pytest.raises(CalendarError) as failed:
        await emulator.calendar().cancel("no-such-event")
    assert (failed.value.status, failed.value.retryable) == (404, False)
    assert "Appointment not found" in str(failed.value)


async def test_an_appointment_update_is_checked_like_a_booking(emulator: Emulator) -> None:
    """``PUT /calendars/events/appointments/{id}``: a bad status is a 422, a taken time a 400."""
    calendar = emulator.calendar()
    contact = await dana(calendar)
    first, second = (await calendar.free_slots(*day_range(next_monday()), "America/Chicago"))[:2]
    appointment = await calendar.book(contact, first, title="Showing")
    await calendar.book(contact, second, title="Showing")
    url = f"{emulator.base_url}/calendars/events/appointments/{appointment.id}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Version": wire.CALENDARS_VERSION}
    async with aiohttp.ClientSession() as http:
        bad = await http.put(url, json={"appointmentStatus": "gone"}, headers=headers)
        assert bad.status == 422 and "appointmentStatus must be one of" in (await bad.json())["message"][0]
        taken = await http.put(url, json={"startTime": second.start.isoformat()}, headers=headers)
        assert taken.status == 400 and (await taken.json())["message"] == SLOT_TAKEN_MESSAGE
        fetched = await http.get(url, headers=headers)
        assert (await fetched.json())["startTime"] == first.start.isoformat()


async def test_a_wrong_token_is_not_worth_retrying(emulator: Emulator) -> None:
    with pytest.raises(CalendarError) as failed:
        await dana(emulator.calendar(token="pit-wrong"))
    assert (failed.value.status, failed.value.retryable) == (401, False)
    assert "access token is invalid" in str(failed.value)


async def test_the_emulator_requires_each_apis_version_header(emulator: Emulator) -> None:
    start, end = day_range(next_monday())
    url = f"{emulator.base_url}/calendars/{CALENDAR_ID}/free-slots"
    query = wire.free_slots_query(start, end, "America/Chicago")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http:
        missing = await http.get(url, params=query, headers=auth)
        assert (missing.status, await missing.json()) == (
            401,
            {"statusCode": 401, "message": "version header was not found.", "error": "Unauthorized"},
        )
        wrong = await http.get(url, params=query, headers={**auth, "Version": wire.CONTACTS_VERSION})
        assert wrong.status == 401 and (await wrong.json())["message"] == "version header is invalid"
        right = await http.get(url, params=query, headers={**auth, "Version": wire.CALENDARS_VERSION})
        assert right.status == 200 and "traceId" in await right.json()
        assert right.headers["X-RateLimit-Max"] == "100" and right.headers["X-RateLimit-Remaining"] == "99"
        assert right.headers["X-RateLimit-Interval-Milliseconds"] == "10000"


async def test_a_429_is_retried_after_its_retry_after(emulator: Emulator) -> None:
    emulator.ghl.control.faults.schedule(Fault.RATE_LIMIT)
    began = time.monotonic()
    contact = await dana(emulator.calendar())
    assert time.monotonic() - began >= 1.0  # Retry-After: 1
    assert contact.id in emulator.ghl.contacts and emulator.stats["requests"] == 2


async def test_a_429_asking_for_too_long_a_wait_fails_at_once_as_retryable(emulator: Emulator) -> None:
    emulator.ghl.control.faults.schedule(Fault.RATE_LIMIT)
    began = time.monotonic()
    with pytest.raises(CalendarError) as failed:
        await dana(emulator.calendar(max_retry_wait_s=0.5))
    assert time.monotonic() - began < 0.5
    assert (failed.value.status, failed.value.retryable) == (429, True)
    assert emulator.stats["requests"] == 1


async def test_the_emulator_enforces_its_burst_limit() -> None:
    async with running_emulator(RateLimit(max_requests=100, interval_s=10.0)) as emulator:
        start, end = day_range(next_monday())
        url = f"{emulator.base_url}/calendars/{CALENDAR_ID}/free-slots"
        headers = {"Authorization": f"Bearer {TOKEN}", "Version": wire.CALENDARS_VERSION}
        query = wire.free_slots_query(start, end, "America/Chicago")
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(url, params=query, headers=headers) as ok:
                    assert ok.status == 200
            async with http.get(url, params=query, headers=headers) as limited:
                assert limited.status == 429
                assert limited.headers["X-RateLimit-Remaining"] == "0"
                assert 1 <= int(limited.headers["Retry-After"]) <= 10
                assert (await limited.json())["statusCode"] == 429


async def test_client_pacing_keeps_a_burst_of_150_under_the_limit() -> None:
    limit = RateLimit(max_requests=100, interval_s=1.0)  # GoHighLevel's 100 per 10 s, ten times faster
    async with running_emulator(limit) as emulator:
        calendar = emulator.calendar(rate_limit=limit, max_rate_limit_retries=0)  # a 429 would fail the call
        day = day_range(next_monday())
        began = time.monotonic()
        results = await asyncio.gather(*(calendar.free_slots(*day, "America/Chicago") for _ in range(150)))
        assert time.monotonic() - began >= limit.interval_s  # the last 50 waited for the window
        assert all(len(r) == 11 for r in results)
        assert emulator.stats["requests"] == 150 and emulator.stats.get("rate_limited", 0) == 0


async def test_a_stalled_request_times_out_as_retryable(emulator: Emulator) -> None:
    emulator.ghl.control.faults.schedule(Fault.STALL)
    began = time.monotonic()
    with pytest.raises(CalendarError) as failed:
        await emulator.calendar(timeout_s=0.3).free_slots(*day_range(next_monday()), "America/Chicago")
    assert 0.3 <= time.monotonic() - began < 2.0
    assert failed.value.retryable is True and failed.value.status is None


@pytest.mark.parametrize(("fault", "status"), [(Fault.DISCONNECT, None), (Fault.OVERLOADED, 503)])
async def test_dropped_and_overloaded_requests_are_retryable(
    emulator: Emulator, fault: Fault, status: int | None
) -> None:
    emulator.ghl.control.faults.schedule(fault)
    with pytest.raises(CalendarError) as failed:
        await dana(emulator.calendar())  # a POST: aiohttp does not resend it on its own
    assert (failed.value.status, failed.value.retryable) == (status, True)


async def test_a_malformed_answer_is_retryable_only_for_a_read(emulator: Emulator) -> None:
    calendar = emulator.calendar()
    contact = await dana(calendar)
    day = day_range(next_monday())
    emulator.ghl.control.faults.schedule(Fault.MALFORMED)
    with pytest.raises(CalendarError) as read:
        await calendar.free_slots(*day, "America/Chicago")
    assert read.value.retryable is True and "unreadable" in str(read.value)
    slot = (await calendar.free_slots(*day, "America/Chicago"))[0]
    emulator.ghl.control.faults.schedule(Fault.MALFORMED)
    with pytest.raises(CalendarError) as write:
        await calendar.book(contact, slot, title="Showing")
    assert write.value.retryable is False
    assert len(emulator.ghl.appointments) == 1  # why: the booking went through, only its answer broke


# --- the wire format, on recorded bodies ---

#: protocols.md §6, the free-slots example, plus the traceId the API adds.
FREE_SLOTS_BODY = (
    b'{"2024-10-28":{"slots":["2024-10-28T10:00:00-05:00","2024-10-28T11:00:00-05:00"]},'
    b'"2024-10-29":{"slots":["2024-10-29T10:00:00-05:00","2024-10-29T14:30:00-05:00"]},'
    b'"traceId":"3e0c1a0b-5f0b-4e0f-9d2c-6a9b2c1d0e7f"}'
)


def test_free_slots_parse_into_slots_of_the_calendars_length_in_the_callers_zone() -> None:
    slots = wire.parse_free_slots(FREE_SLOTS_BODY, timedelta(minutes=30), ZoneInfo("America/New_York"))
    assert [f"{s.start:%m-%d %H:%M}-{s.end:%H:%M}" for s in slots] == [
        "10-28 11:00-11:30",
        "10-28 12:00-12:30",
        "10-29 11:00-11:30",
        "10-29 15:30-16:00",
    ]


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"2024-10-28": {"slots": "10:00"}}', b'{"2024-10-28": {"slots": ["2024-10-28T10:00:00"]}}'],
    ids=["truncated", "not-an-object", "slots-not-a-list", "no-offset"],
)
def test_malformed_free_slots_are_refused(body: bytes) -> None:
    with pytest.raises(wire.MalformedReply):
        wire.parse_free_slots(body, timedelta(minutes=30), ZoneInfo("UTC"))


def test_free_slot_queries_are_epoch_milliseconds_in_pieces_of_31_days() -> None:
    start = datetime(2024, 10, 28, tzinfo=UTC)
    assert wire.free_slots_query(start, start + timedelta(days=2), "America/Chicago") == {
        "startDate": "1730073600000",  # protocols.md §6's example
        "endDate": "1730246400000",
        "timezone": "America/Chicago",
    }
    pieces = wire.spans(start, start + timedelta(days=70))
    assert [(b - a).days for a, b in pieces] == [31, 31, 8]
    assert all(a == prev_b for (a, _), (_, prev_b) in zip(pieces[1:], pieces, strict=False))


def reply(status: int, body: bytes) -> wire.Reply:
    return wire.Reply(status, CIMultiDict(), body)


SLOT_GONE = b'{"statusCode":400,"message":"The slot you have selected is no longer available.","error":"Bad Request"}'
VALIDATION = (
    b'{"statusCode":422,"message":["startTime must be a valid ISO 8601 date string"],"error":"Unprocessable Entity"}'
)


def test_errors_say_whether_retrying_helps_and_only_a_lost_slot_is_slot_taken() -> None:
    assert isinstance(wire.error_for(reply(400, SLOT_GONE), booking=True), SlotTaken)
    assert isinstance(wire.error_for(reply(409, b"{}"), booking=True), SlotTaken)
    invalid = wire.error_for(reply(422, VALIDATION), booking=True)
    assert not isinstance(invalid, SlotTaken) and invalid.retryable is False  # our bug, not a lost slot
    assert "startTime must be" in str(invalid)
    assert not isinstance(wire.error_for(reply(400, SLOT_GONE)), SlotTaken)  # not a booking
    retryable = {s: wire.error_for(reply(s, b"oops")).retryable for s in (400, 401, 403, 404, 408, 429, 500, 503)}
    assert retryable == {400: False, 401: False, 403: False, 404: False, 408: True, 429: True, 500: True, 503: True}


def test_a_429_waits_as_long_as_the_headers_say() -> None:
    assert wire.retry_delay_s(CIMultiDict({"retry-after": "3"}), 0) == 3.0
    spent = CIMultiDict({"X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "10000"})
    assert wire.retry_delay_s(spent, 0) == 10.0
    assert [wire.retry_delay_s(CIMultiDict(), attempt) for attempt in range(3)] == [0.5, 1.0, 2.0]
