"""The calendar the bots book viewings and consultations in, whatever the vendor behind it.

Two implementations: ``bots.local_calendar`` (embedded, business hours in memory) and
``bots.ghl`` (GoHighLevel). The helpers below are pure: which time zone a caller is in, which
few slots to offer on the phone, and how to say one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

#: Slots sooner than this are not offered: whoever takes the appointment needs time to prepare
#: (and to drive to a showing).
DEFAULT_NOTICE = timedelta(hours=2)
#: Last resort when spreading offers: two slots closer than this sound like the same offer.
MIN_OFFER_GAP = timedelta(hours=2)
#: Where the afternoon and the evening start (local hour); for spreading offers over the day.
AFTERNOON_HOUR = 12
EVENING_HOUR = 17


class CalendarError(Exception):
    """A calendar request failed.

    ``retryable`` is true when the same request may succeed later (timeouts, dropped
    connections, 408, 429, 5xx); false when it will fail again as sent (bad credentials, a
    request the vendor rejects). ``status`` is the vendor's HTTP status, if any.
    """

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class SlotTaken(CalendarError):
    """The slot is no longer free (someone booked it since it was offered): offer others."""

    def __init__(self, message: str = "the slot is no longer available", *, status: int | None = None) -> None:
        super().__init__(message, retryable=False, status=status)


def _check_aware(*moments: datetime) -> None:
    if any(m.tzinfo is None or m.utcoffset() is None for m in moments):
        raise ValueError("calendar times must be timezone-aware")


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """A lead as the CRM knows it; ``timezone`` is an IANA name when the CRM has one."""

    id: str
    name: str
    phone: str
    email: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable stretch of time, ``start`` inclusive and ``end`` exclusive."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _check_aware(self.start, self.end)
        if self.end <= self.start:
            raise ValueError("a slot must end after it starts")

    def overlaps(self, other: Slot) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class Appointment:
    """A booked appointment; ``calendar`` is the calendar's id, ``status`` the vendor's
    (``confirmed``, ``new``, ...)."""

    id: str
    calendar: str
    contact: Contact
    start: datetime
    end: datetime
    title: str
    status: str


class Calendar(ABC):
    """One tenant's booking calendar and the CRM records around an appointment.

    Every method raises ``CalendarError`` on failure, and only that.
    """

    @abstractmethod
    async def upsert_contact(
        self, *, name: str, phone: str, email: str | None = None, timezone: str | None = None
    ) -> Contact:
        """The contact with this phone (or email), created or updated."""

    @abstractmethod
    async def free_slots(self, start: datetime, end: datetime, tz: str) -> list[Slot]:
        """Free slots starting in ``[start, end)``, soonest first, expressed in zone ``tz``."""

    @abstractmethod
    async def book(self, contact: Contact, slot: Slot, *, title: str, notes: str = "") -> Appointment:
        """Book ``slot``; raises ``SlotTaken`` when it is no longer free."""

    @abstractmethod
    async def cancel(self, appointment_id: str) -> None:
        """Cancel the appointment, freeing its slot (a reschedule cancels the time it replaces);
        cancelling one already cancelled is not an error."""

    @abstractmethod
    async def add_note(self, contact_id: str, body: str) -> None:
        """Attach a note (e.g. the call's summary) to the contact."""

    @abstractmethod
    async def create_opportunity(
        self, contact_id: str, *, name: str, value: float | None = None, stage: str | None = None
    ) -> str:
        """Open a deal for the contact in the sales pipeline; returns its id. ``stage`` is the
        pipeline stage's id in the CRM (its first stage when None)."""

    async def aclose(self) -> None:
        """Release connections; the calendar is unusable afterwards. Nothing to release by default."""
        return


# --- pure helpers ---


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA zone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def timezone_for_phone(number: str, *, default: str, contact_timezone: str | None = None) -> str:
    """The caller's IANA time zone: the CRM's if it has a valid one, else the one zone of the
    number's area code, else ``default`` (the tenant's).

    Area codes spanning several zones (907 Alaska, toll-free 8xx) and unparsable numbers give
    ``default``: a wrong guess would offer times an hour or more off.
    """
    if contact_timezone and is_timezone(contact_timezone):
        return contact_timezone
    try:
        parsed = phonenumbers.parse(number, "US")
    except phonenumbers.NumberParseException:
        return default
    zones = phone_timezones.time_zones_for_number(parsed)
    if len(zones) == 1 and is_timezone(zones[0]):
        return zones[0]
    return default


def _part_of_day(moment: datetime) -> int:
    return (moment.hour >= AFTERNOON_HOUR) + (moment.hour >= EVENING_HOUR)


_Distinct = Callable[[Slot, Slot], bool]

#: Tests of "different enough from an offer already chosen", most demanding first.
_SPREAD_TIERS: tuple[_Distinct, ...] = (
    lambda a, b: a.start.date() != b.start.date() and _part_of_day(a.start) != _part_of_day(b.start),
    lambda a, b: a.start.date() != b.start.date(),
    lambda a, b: _part_of_day(a.start) != _part_of_day(b.start),
    lambda a, b: abs(a.start - b.start) >= MIN_OFFER_GAP,
    lambda a, b: True,  # two close slots still beat a single one
)


def offer_slots(slots: Iterable[Slot], now: datetime, n: int = 3, *, notice: timedelta = DEFAULT_NOTICE) -> list[Slot]:
    """Up to ``n`` slots to offer a caller: the soonest one, then others on different days and
    at different times of day, so one of them likely suits (close ones only when nothing else
    is left); in time order.

    Day and time of day are read in each slot's own zone, so pass slots as ``free_slots``
    returns them (in the caller's zone). Slots starting within ``notice`` of ``now`` are skipped.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    ahead = sorted((s for s in slots if s.start >= now + notice), key=lambda s: s.start)
    chosen: list[Slot] = []
    for distinct in _SPREAD_TIERS:
        for slot in ahead:
            if len(chosen) < n and slot not in chosen and all(distinct(slot, c) for c in chosen):
                chosen.append(slot)
    return sorted(chosen, key=lambda s: s.start)


def ordinal(day: int) -> str:
    """``1`` -> ``1st``, ``12`` -> ``12th``, ``22`` -> ``22nd``."""
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def spoken_slot(slot: Slot, tz: str) -> str:
    """The slot's start as a voice bot says it in the caller's zone: "Thursday, November 26th
    at 5:30 PM" ("at 5 PM" on the hour, which TTS reads more naturally than "5:00")."""
    local = slot.start.astimezone(ZoneInfo(tz))
    hour = local.hour % 12 or 12
    clock = f"{hour}:{local.minute:02d}" if local.minute else f"{hour}"
    return f"{local:%A}, {local:%B} {ordinal(local.day)} at {clock} {'AM' if local.hour < 12 else 'PM'}"
