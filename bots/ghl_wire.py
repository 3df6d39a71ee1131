"""GoHighLevel API v2 wire format (protocols.md §6), without I/O: request bodies and queries
out, domain objects and typed errors in. ``bots.ghl`` moves the bytes; the emulator shares the
version constants.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bots.calendar import Appointment, CalendarError, Contact, Slot, SlotTaken

#: The ``Version`` header each API requires; a wrong one is rejected.
CALENDARS_VERSION = "2021-04-15"
#: Contacts and opportunities share this version.
CONTACTS_VERSION = "2021-07-28"
#: The free-slots endpoint refuses ranges longer than this.
MAX_FREE_SLOTS_SPAN = timedelta(days=31)
#: First wait after a 429 that says nothing about when to come back; doubled on each retry.
BACKOFF_S = 0.5
#: What GoHighLevel answers when a slot was booked between the offer and the booking.
_SLOT_GONE = re.compile(r"slot.*\b(no longer|not) available", re.IGNORECASE)
_DATE_KEY = re.compile(r"\d{4}-\d{2}-\d{2}")


class MalformedReply(ValueError):
    """A 2xx body that does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP response: status, headers (case-insensitive mapping) and raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


# --- requests ---


def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("an epoch needs a timezone-aware time")  # a naive one would be read as local
    return round(moment.timestamp() * 1000)


def spans(start: datetime, end: datetime, longest: timedelta = MAX_FREE_SLOTS_SPAN) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive pieces no longer than ``longest``."""
    pieces = []
    while start < end:
        pieces.append((start, min(start + longest, end)))
        start = pieces[-1][1]
    return pieces


def free_slots_query(start: datetime, end: datetime, tz: str) -> dict[str, str]:
    """``startDate``/``endDate`` are epoch milliseconds, not ISO dates."""
    return {"startDate": str(epoch_ms(start)), "endDate": str(epoch_ms(end)), "timezone": tz}


def contact_body(location_id: str, *, name: str, phone: str, email: str | None, timezone: str | None) -> dict[str, Any]:
    first, _, last = name.strip().partition(" ")
    body: dict[str, Any] = {
        "locationId": location_id,
        "name": name,
        "firstName": first,
        "lastName": last,
        "phone": phone,
    }
    if email:
        body["email"] = email
    if timezone:
        body["timezone"] = timezone
    return body


def appointment_body(
    *, calendar_id: str, location_id: str, contact_id: str, slot: Slot, title: str, notes: str
) -> dict[str, Any]:
    """Times keep the caller's offset, as GoHighLevel matches them against its own slot list."""
    body: dict[str, Any] = {
        "calendarId": calendar_id,
        "locationId": location_id,
        "contactId": contact_id,
        "startTime": slot.start.isoformat(),
        "endTime": slot.end.isoformat(),
        "title": title,
        "appointmentStatus": "confirmed",
    }
    if notes:
        body["description"] = notes
    return body


def opportunity_body(
    *, pipeline_id: str, location_id: str, contact_id: str, name: str, value: float | None, stage: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pipelineId": pipeline_id,
        "locationId": location_id,
        "contactId": contact_id,
        "name": name,
        "status": "open",
    }
    if stage is not None:
        body["pipelineStageId"] = stage
    if value is not None:
        body["monetaryValue"] = value
    return body


# --- responses ---


def decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedReply(f"not JSON: {body[:80]!r}") from e


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedReply(f"{what}: expected an object")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedReply(f"{what}: expected a non-empty string")
    return value


def parse_time(value: Any, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(_text(value, what))
    except ValueError as e:
        raise MalformedReply(f"{what}: not an ISO 8601 time: {value!r}") from e
    if moment.tzinfo is None:
        raise MalformedReply(f"{what}: time without an offset: {value!r}")
    return moment


def parse_free_slots(body: bytes, length: timedelta, zone: ZoneInfo) -> list[Slot]:
    """``{"2024-10-28": {"slots": ["2024-10-28T10:00:00-05:00", ...]}, ..., "traceId": ...}``
    -> slots of ``length`` in ``zone`` (the endpoint gives start times only)."""
    days = _object(decode(body), "free slots")
    slots = []
    for day, entry in days.items():
        if not _DATE_KEY.fullmatch(day):
            continue  # traceId and whatever else the API adds beside the days
        starts = _object(entry, day).get("slots")
        if not isinstance(starts, list):
            raise MalformedReply(f"{day}.slots: expected a list")
        for value in starts:
            start = parse_time(value, f"{day}.slots").astimezone(zone)
            slots.append(Slot(start, start + length))
    return slots


def parse_contact(body: bytes) -> Contact:
    """``{"new": bool, "contact": {...}, "traceId": ...}`` -> the contact."""
    contact = _object(_object(decode(body), "upsert").get("contact"), "contact")
    full_name = " ".join(str(contact.get(k) or "") for k in ("firstName", "lastName")).strip()
    return Contact(
        id=_text(contact.get("id"), "contact.id"),
        name=str(contact.get("name") or full_name),
        phone=str(contact.get("phone") or ""),
        email=contact.get("email") or None,
        timezone=contact.get("timezone") or None,
    )


def parse_appointment(body: bytes, contact: Contact, slot: Slot, title: str) -> Appointment:
    """The created event; what it leaves out is what we asked for."""
    event = _object(decode(body), "appointment")
    return Appointment(
        id=_text(event.get("id"), "appointment.id"),
        calendar=_text(event.get("calendarId"), "appointment.calendarId"),
        contact=contact,
        start=parse_time(event["startTime"], "startTime") if "startTime" in event else slot.start,
        end=parse_time(event["endTime"], "endTime") if "endTime" in event else slot.end,
        title=str(event.get("title") or title),
        status=str(event.get("appointmentStatus") or "confirmed"),
    )


def check_status(body: bytes, expected: str) -> None:
    """An updated event that took the status asked for (a reply with another one did not)."""
    status = _text(_object(decode(body), "appointment").get("appointmentStatus"), "appointment.appointmentStatus")
    if status != expected:
        raise MalformedReply(f"appointmentStatus is {status!r}, not {expected!r}")


def parse_created_id(body: bytes, kind: str) -> str:
    """``{"note": {"id": ...}}``, ``{"opportunity": {"id": ...}}`` -> the id."""
    return _text(_object(_object(decode(body), kind).get(kind), kind).get("id"), f"{kind}.id")


# --- errors and retries ---


def error_message(body: bytes) -> str:
    """GoHighLevel's ``{"statusCode", "message", "error"}``; ``message`` is a list for 422."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")
    return "; ".join(map(str, message)) if isinstance(message, list) else str(message)


def is_retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def error_for(reply: Reply, *, booking: bool = False) -> CalendarError:
    """The typed error for a non-2xx reply; ``booking``: the reply to an appointment create,
    where a conflict or GoHighLevel's "slot ... no longer available" means ``SlotTaken``.
    Other 422s are validation errors (our bug), not a taken slot."""
    message = error_message(reply.body)
    if booking and (reply.status == 409 or (reply.status in (400, 422) and _SLOT_GONE.search(message))):
        return SlotTaken(message, status=reply.status)
    return CalendarError(
        f"GoHighLevel HTTP {reply.status}: {message}", retryable=is_retryable(reply.status), status=reply.status
    )


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # Retry-After as an HTTP date: not sent by GoHighLevel; fall back


def retry_delay_s(headers: Mapping[str, str], attempt: int) -> float:
    """How long to wait before retrying a 429: ``Retry-After``; else, with the burst spent,
    the reported interval; else exponential back-off from ``BACKOFF_S``."""
    retry_after = _seconds(headers.get("Retry-After"))
    if retry_after is not None:
        return retry_after
    interval_ms = _seconds(headers.get("X-RateLimit-Interval-Milliseconds"))
    if headers.get("X-RateLimit-Remaining") == "0" and interval_ms is not None:
        return interval_ms / 1000
    return float(BACKOFF_S * 2**attempt)
