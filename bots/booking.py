"""Booking an appointment on the phone: offer a few concrete times, understand the choice or a
counter-proposal, confirm it back, book it.

Channel-neutral and brain-neutral: the scripted bots drive it turn by turn and the LLM brain's
tools can too. Everything is said in the caller's zone (``tz``). The dialog never raises for a
calendar failure: a slot taken meanwhile is apologised for and replaced by the nearest free ones,
and a calendar that fails twice ends the dialog with the promise of a call from the team.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from bots.calendar import (
    DEFAULT_NOTICE,
    Appointment,
    Calendar,
    CalendarError,
    Contact,
    Slot,
    SlotTaken,
    offer_slots,
    ordinal,
    spoken_slot,
)
from bots.slot_choice import END_OF_DAY, Ambiguous, Decline, Pick, Propose, Reject, TimeWindow, parse_slot_choice
from bots.slots import Answer
from bots.understanding import parse_yes_no

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How far ahead times are offered: enough choice, and the lead is still warm when it comes.
HORIZON = timedelta(days=14)
#: Offers in the first round; two or three is what a caller can keep in mind when heard.
FIRST_OFFERS = 3
#: Offers in answer to a counter-proposal or a lost slot: the caller already said what suits.
COUNTER_OFFERS = 2
#: "At 3" when 3 is taken is still met by 2:15 or 3:45, not by 10 AM.
NEAR_ENOUGH = timedelta(minutes=90)
#: Unclear answers before the dialog gives up: a caller who is not understood three times will
#: not be helped by a fourth try, and a human call back is better than going in circles.
MAX_MISUNDERSTANDINGS = 3
#: Caller turns before giving up even though each was understood (a caller proposing time after
#: time with nothing free): keeps the call bounded.
MAX_TURNS = 12
#: When no free time fits a counter-proposal, alternatives are looked for this far around it.
AROUND_BEFORE, AROUND_AFTER = timedelta(days=2), timedelta(days=7)

_WHAT: dict[str, str] = {
    "showing": "the showing",
    "listing_consultation": "the listing consultation",
    "callback": "our call",
}
_CALL_BACK = "Someone from our team will call you to set a time."
_GAVE_UP = f"I'm sorry we couldn't find a time that works. {_CALL_BACK}"
_UNREACHABLE = f"I'm sorry, I can't reach our calendar right now. {_CALL_BACK}"
_UNCONFIRMED = f"I'm sorry, I couldn't confirm that booking. {_CALL_BACK}"
_NOTHING_FREE = f"I'm sorry, I don't have any open times in the next two weeks. {_CALL_BACK}"
_DECLINED = "No problem. We can set a time whenever you're ready."


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingRequest:
    """What to book: the kind of appointment, its title on the calendar and notes for the agent."""

    kind: Literal["showing", "listing_consultation", "callback"]
    title: str
    notes: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingStep:
    """What the dialog says next, and whether it is over.

    ``will_book`` marks a question whose "yes" books (an external side effect): a bot must not
    start its reply to it early, since a booking cannot be rolled back.
    """

    say: str
    done: bool
    appointment: Appointment | None = None
    declined: bool = False
    will_book: bool = False


Stage = Literal["new", "choosing", "asking", "confirming", "done"]


class _CannotConfirm(Exception):
    """A booking retried after a failure found its slot taken: maybe by the first attempt."""


class BookingDialog:
    """One booking conversation with one caller, in the caller's zone ``tz``.

    ``now`` is the clock (injected, so tests fix it). ``copy.deepcopy`` gives a copy of the
    conversation that shares the calendar and the clock, for a bot's checkpoint.
    """

    def __init__(
        self,
        calendar: Calendar,
        contact: Contact,
        request: BookingRequest,
        *,
        tz: str,
        now: Callable[[], datetime],
    ) -> None:
        self._calendar = calendar
        self._contact = contact
        self._request = request
        self._tz = tz
        self._zone = ZoneInfo(tz)
        self._now = now
        self._stage: Stage = "new"
        self._offered: list[Slot] = []
        self._chosen: Slot | None = None
        self._excluded: list[Slot] = []
        self._misunderstood = 0
        self._turns = 0
        self._appointment: Appointment | None = None
        self._final: BookingStep | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> BookingDialog:
        clone = copy.copy(self)  # the calendar, clock and frozen values are shared on purpose
        clone._offered = list(self._offered)
        clone._excluded = list(self._excluded)
        return clone

    # --- the conversation ---

    async def open(self, *, named: bool = False) -> BookingStep:
        """Offer two or three free times, spread over days and times of day; ``named``: the bot
        has just said what is being booked, so the offer does not say it again."""
        now = self._now()
        try:
            free = await self._free(now, now + HORIZON)
        except CalendarError as e:
            return self._unreachable(e)
        offers = offer_slots(free, now, FIRST_OFFERS)
        if not offers:
            return self._give_up(_NOTHING_FREE, "nothing free")
        return self._offer(offers, "I have" if named else f"For {_WHAT[self._request.kind]}, I have")

    async def hear(self, caller_text: str) -> BookingStep:
        """React to the caller's answer; once the dialog is over, its last step again."""
        if self._final is not None:
            return self._final
        if self._turns >= MAX_TURNS:
            return self._give_up(_GAVE_UP, "too many turns")
        self._turns += 1
        try:
            return await self._answer(caller_text)
        except _CannotConfirm:
            return self._give_up(_UNCONFIRMED, "booking unconfirmed")
        except CalendarError as e:
            return self._unreachable(e)

    def state(self) -> dict[str, Any]:
        """JSON-ready, for the call report and resuming a session."""
        appointment = self._appointment
        return {
            "kind": self._request.kind,
            "stage": self._stage,
            "tz": self._tz,
            "offered": [s.start.isoformat() for s in self._offered],
            "chosen": self._chosen.start.isoformat() if self._chosen else None,
            "attempts": self._misunderstood,
            "turns": self._turns,
            "declined": bool(self._final and self._final.declined),
            "appointment": None
            if appointment is None
            else {
                "id": appointment.id,
                "calendar": appointment.calendar,
                "start": appointment.start.isoformat(),
                "end": appointment.end.isoformat(),
                "title": appointment.title,
                "status": appointment.status,
            },
        }

    async def _answer(self, text: str) -> BookingStep:
        today = self._now().astimezone(self._zone).date()
        choice = parse_slot_choice(text, self._offered, tz=self._tz, today=today)
        if choice is None and parse_yes_no(text) is Answer.YES:
            if self._stage == "confirming":
                return await self._book()
            if self._stage == "choosing":  # "sure" to two or three offers: which one is still open
                return BookingStep(say=f"Great. Which one: {self._listing(self._offered)}?", done=False)
        match choice:
            case Pick(index=index):
                return await self._picked(self._offered[index])
            case Ambiguous(indices=indices):
                return self._offer([self._offered[i] for i in indices], "I have", question="Which one would you like?")
            case Propose(window=window, instead_of_offers=instead):
                if instead:
                    self._excluded += self._offered
                return await self._propose(window)
            case Reject():
                return self._turned_down()
            case Decline():
                return self._finish(_DECLINED, declined=True)
        return self._misunderstood_step()

    async def _picked(self, slot: Slot) -> BookingStep:
        if self._stage == "confirming" and slot == self._chosen:
            return await self._book()
        return self._confirm(slot)

    def _turned_down(self) -> BookingStep:
        others = [s for s in self._offered if s != self._chosen] if self._stage == "confirming" else []
        if others:
            return self._offer(others, "No problem. I also have", question="Would one of those work?")
        self._stage = "asking"
        return BookingStep(say="No problem. What day and time would suit you better?", done=False)

    def _misunderstood_step(self) -> BookingStep:
        self._misunderstood += 1
        if self._misunderstood >= MAX_MISUNDERSTANDINGS:
            return self._give_up(_GAVE_UP, "not understood")
        if self._stage == "confirming" and self._chosen is not None:
            return self._confirm(self._chosen, again=True)
        if self._stage == "asking" or not self._offered:
            return BookingStep(say="Sorry, I didn't catch that. What day and time would suit you?", done=False)
        return self._offer(self._offered, "Sorry, I didn't catch that. I have", question=_question(self._offered))

    # --- offering and confirming ---

    def _offer(self, slots: Sequence[Slot], lead: str, *, question: str | None = None) -> BookingStep:
        if len(slots) == 1:
            return self._confirm(slots[0], lead)
        self._stage, self._offered, self._chosen = "choosing", list(slots), None
        return BookingStep(say=f"{lead} {self._listing(slots)}. {question or _question(slots)}", done=False)

    def _confirm(self, slot: Slot, lead: str | None = None, *, again: bool = False) -> BookingStep:
        """Say the date and time back; the caller's "yes" books it."""
        if slot not in self._offered:
            self._offered = [slot]
        self._stage, self._chosen = "confirming", slot
        said = spoken_slot(slot, self._tz)
        if again:
            say = f"Sorry, shall I book {said}? Please say yes or no."
        else:
            say = f"{lead} {said}. Shall I book that?" if lead else f"{said}. Shall I book that?"
        return BookingStep(say=say, done=False, will_book=True)

    def _listing(self, slots: Sequence[Slot]) -> str:
        """ "Thursday, December 10th at 2 PM, Friday the 11th at 10 AM, or Saturday the 12th at 11 AM"."""
        said = [spoken_slot(slots[0], self._tz)]
        for previous, slot in pairwise(slots):
            before, local = previous.start.astimezone(self._zone), slot.start.astimezone(self._zone)
            if local.date() == before.date():
                said.append(f"at {_clock(local)}")
            elif (local.year, local.month) == (before.year, before.month):
                said.append(f"{local:%A} the {ordinal(local.day)} at {_clock(local)}")
            else:
                said.append(spoken_slot(slot, self._tz))
        if len(said) == 2:
            return " or ".join(said)
        return ", ".join(said[:-1]) + f", or {said[-1]}"

    # --- looking for times ---

    async def _propose(self, window: TimeWindow) -> BookingStep:
        """The best one or two free times in the caller's window, else the nearest ones."""
        now = self._now()
        start, end = self._range(window, now)
        free = await self._free(start, end) if start < end else []
        fitting = [s for s in self._usable(free, now) if window.fits(s, self._tz, exact=False)]
        best = self._best(window, fitting, now)
        if best:
            return self._offer(best, "I have")
        nearest = await self._nearest(window, now)
        if not nearest:
            return self._give_up(_GAVE_UP, "nothing near the window")
        return self._offer(nearest, "I'm sorry, I don't have anything then. The closest I have is")

    def _range(self, window: TimeWindow, now: datetime) -> tuple[datetime, datetime]:
        if not window.dates:
            return now, now + HORIZON
        first = datetime.combine(window.dates[0], time(0), tzinfo=self._zone)
        last = datetime.combine(window.dates[-1] + timedelta(days=1), time(0), tzinfo=self._zone)
        return max(first, now), last

    def _usable(self, free: Sequence[Slot], now: datetime) -> list[Slot]:
        return [s for s in free if s.start >= now + DEFAULT_NOTICE and s not in self._excluded]

    def _best(self, window: TimeWindow, fitting: list[Slot], now: datetime) -> list[Slot]:
        """At the time asked for (on different days if no day was), else within an hour and a half of it."""
        if window.at is None:
            return offer_slots(fitting, now, COUNTER_OFFERS)
        exact = [s for s in fitting if s.start.astimezone(self._zone).time() == window.at]
        if exact:
            return offer_slots(exact, now, COUNTER_OFFERS)
        near = [s for s in fitting if self._distance(s, window) <= NEAR_ENOUGH]
        return sorted(sorted(near, key=lambda s: self._distance(s, window))[:COUNTER_OFFERS], key=lambda s: s.start)

    async def _nearest(self, window: TimeWindow, now: datetime) -> list[Slot]:
        """The free time closest to the window, and the closest on another day."""
        start, end = self._range(window, now)
        free = self._usable(await self._free(max(start - AROUND_BEFORE, now), end + AROUND_AFTER), now)
        ranked = sorted(free, key=lambda s: (self._distance(s, window), s.start))
        if not ranked:
            return []
        first_day = ranked[0].start.astimezone(self._zone).date()
        other_day = next((s for s in ranked if s.start.astimezone(self._zone).date() != first_day), None)
        return sorted([ranked[0], *([other_day] if other_day else [])], key=lambda s: s.start)

    def _distance(self, slot: Slot, window: TimeWindow) -> timedelta:
        """How far the slot starts from the window (zero inside it), on the window's days."""
        local = slot.start.astimezone(self._zone)
        days: Sequence[date] = window.dates or (local.date(),)
        return min(self._distance_on(local, day, window) for day in days)

    def _distance_on(self, local: datetime, day: date, window: TimeWindow) -> timedelta:
        opens = datetime.combine(day, window.at or window.earliest or time(0), tzinfo=self._zone)
        closes = datetime.combine(day, window.at or window.latest or END_OF_DAY, tzinfo=self._zone)
        if opens <= local <= closes:
            return timedelta(0)
        return min(abs(local - opens), abs(local - closes))

    async def _free(self, start: datetime, end: datetime) -> list[Slot]:
        return await self._retrying(lambda: self._calendar.free_slots(start, end, self._tz))

    # --- booking ---

    async def _book(self) -> BookingStep:
        slot = self._chosen
        assert slot is not None, "booking needs a chosen slot"
        try:
            appointment = await self._booked(slot)
        except SlotTaken:
            log.info("booking slot taken meanwhile", extra={"kind": self._request.kind})
            return await self._taken(slot)
        self._appointment = appointment
        log.info("booking made", extra={"kind": self._request.kind, "appointment_id": appointment.id})
        return self._finish(f"You're all set for {spoken_slot(slot, self._tz)}.", appointment=appointment)

    async def _booked(self, slot: Slot) -> Appointment:
        """Book, retrying once after a retryable failure. A retry that finds the slot taken may
        have lost it to the first attempt, whose answer never came: that cannot be told apart."""
        request = self._request

        async def book() -> Appointment:
            return await self._calendar.book(self._contact, slot, title=request.title, notes=request.notes)

        try:
            return await book()
        except SlotTaken:
            raise
        except CalendarError as e:
            if not e.retryable:
                raise
            log.info("booking failed: retrying once", extra={"error": str(e)})
        try:
            return await book()
        except SlotTaken as e:
            raise _CannotConfirm() from e

    async def _taken(self, slot: Slot) -> BookingStep:
        """The nearest free times to the one lost, else the first free ones."""
        self._excluded.append(slot)
        now = self._now()
        free = self._usable(await self._free(max(slot.start - AROUND_BEFORE, now), slot.start + AROUND_AFTER), now)
        nearest = sorted(sorted(free, key=lambda s: abs(s.start - slot.start))[:COUNTER_OFFERS], key=lambda s: s.start)
        if not nearest:
            nearest = offer_slots(self._usable(await self._free(now, now + HORIZON), now), now, COUNTER_OFFERS)
        if not nearest:
            return self._give_up(_GAVE_UP, "nothing free after a lost slot")
        return self._offer(nearest, "I'm sorry, that time was just taken. I have")

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """A read, retried once when the calendar says it may succeed."""
        try:
            return await call()
        except CalendarError as e:
            if not e.retryable:
                raise
            log.info("calendar request failed: retrying once", extra={"error": str(e)})
        return await call()

    # --- endings ---

    def _finish(self, say: str, *, appointment: Appointment | None = None, declined: bool = False) -> BookingStep:
        self._stage = "done"
        self._final = BookingStep(say=say, done=True, appointment=appointment, declined=declined)
        return self._final

    def _give_up(self, say: str, reason: str) -> BookingStep:
        log.info("booking given up", extra={"reason": reason, "turns": self._turns})
        return self._finish(say)

    def _unreachable(self, error: CalendarError) -> BookingStep:
        log.warning("booking calendar unavailable", extra={"error": str(error), "retryable": error.retryable})
        return self._finish(_UNREACHABLE)


def _question(slots: Sequence[Slot]) -> str:
    return "Which works better?" if len(slots) == 2 else "Which works best?"


def _clock(local: datetime) -> str:
    """ "5 PM", "5:30 PM", as ``spoken_slot`` says times."""
    hour = local.hour % 12 or 12
    minutes = f":{local.minute:02d}" if local.minute else ""
    return f"{hour}{minutes} {'AM' if local.hour < 12 else 'PM'}"


async def cancel_replaced(calendar: Calendar, appointment: dict[str, Any], pending: list[dict[str, Any]]) -> bool:
    """Cancel the appointment a reschedule replaced; True when done. When the calendar fails
    (or the record has no id) it goes on ``pending``, for the team to cancel by hand: the new
    time is booked either way, and a caller is never told a cancel happened that did not."""
    appointment_id = appointment.get("id")
    if isinstance(appointment_id, str) and appointment_id:
        try:
            await calendar.cancel(appointment_id)
        except CalendarError as e:
            log.warning(
                "cancelling the replaced appointment failed", extra={"appointment_id": appointment_id, "error": str(e)}
            )
        else:
            log.info("replaced appointment cancelled", extra={"appointment_id": appointment_id})
            return True
    pending.append(appointment)
    return False
