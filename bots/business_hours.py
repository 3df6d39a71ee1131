"""A tenant's opening hours and the grid of appointment slots they make (pure).

Shared by the embedded calendar and the GoHighLevel emulator, so both offer the same slots.
Slots are laid out in local wall-clock time, so a 9:00 opening stays 9:00 across DST changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bots.calendar import Slot, is_timezone


def _default_week() -> dict[int, tuple[time, time]]:
    """Weekdays 9 to 5, plus Saturday late morning: weekend viewings are common in real estate."""
    return {**dict.fromkeys(range(5), (time(9), time(17))), 5: (time(10), time(14))}


@dataclass(frozen=True, kw_only=True)
class BusinessHours:
    """When appointments can be booked.

    ``week`` maps a weekday (Monday 0 ... Sunday 6) to its opening and closing time, in
    ``timezone``; days not in it are closed. A new slot starts every ``slot_minutes +
    buffer_minutes``.
    """

    #: The office's zone; US Central as a middle ground for a US tenant that did not say.
    timezone: str = "America/Chicago"
    week: Mapping[int, tuple[time, time]] = field(default_factory=_default_week)
    #: Long enough for a consultation call or one showing.
    slot_minutes: int = 30
    #: Time between appointments to write up notes or drive to the next showing.
    buffer_minutes: int = 15

    def __post_init__(self) -> None:
        problems = []
        if not is_timezone(self.timezone):
            problems.append(f"unknown time zone {self.timezone!r}")
        if self.slot_minutes <= 0 or self.buffer_minutes < 0:
            problems.append("need slot_minutes > 0 and buffer_minutes >= 0")
        for day, (opens, closes) in self.week.items():
            if day not in range(7) or opens >= closes:
                problems.append(f"bad hours for weekday {day}: need 0 <= day <= 6 and opening before closing")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def slots(self, start: datetime, end: datetime) -> list[Slot]:
        """Every slot of the grid starting in ``[start, end)``, in the office's zone, in order."""
        first, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        days = (first + timedelta(days=i) for i in range((last - first).days + 1))
        return [slot for day in days for slot in self._day(day) if start <= slot.start < end]

    def _day(self, day: date) -> Iterator[Slot]:
        hours = self.week.get(day.weekday())
        if hours is None:
            return
        step = timedelta(minutes=self.slot_minutes + self.buffer_minutes)
        local = datetime.combine(day, hours[0], tzinfo=self.zone)
        closes = datetime.combine(day, hours[1], tzinfo=self.zone)
        while local + self.length <= closes:  # wall-clock arithmetic: same-zone aware datetimes
            yield Slot(local, (local.astimezone(UTC) + self.length).astimezone(self.zone))
            local += step
