"""What a caller answers to "I have Thursday at 2, Friday at 10 or Saturday at 11" (pure).

The answer is one of: a pick among the offered slots ("the second one", "Friday works", "10
AM", "the Saturday one"), several offers that fit equally ("Friday" with two Friday offers: ask),
a counter-proposal as a time window in the caller's zone ("Thursday after five", "sometime next
week in the afternoon", "not those, anything on the weekend?"), a rejection of the offers with
no alternative ("none of those work"), or no appointment at all ("I'm not ready to schedule").
``None`` means unclear: the dialog asks again, it never guesses.

text2num turns spoken numbers into digits ("five thirty" -> "5 30"); what is left is the
vocabulary of making an appointment, as small tables of patterns. A bare hour is read the way
people book appointments: 1 to 7 in the afternoon or evening, 8 to 11 in the morning ("at 3" is
3 PM), unless a part of the day says otherwise ("7 in the morning"); the bot says the time back
with AM or PM before booking.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from text_to_num import alpha2digit

from bots.calendar import Slot
from bots.slots import Answer
from bots.understanding import parse_yes_no

#: Bare hours up to this one are afternoon or evening hours ("at 5" is 5 PM); later ones morning.
LAST_PM_HOUR = 7
END_OF_DAY = time(23, 59, 59)


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeWindow:
    """When the caller would like the appointment, in their own zone; unset fields do not narrow it.

    ``dates`` are the days to search; ``weekdays`` (Monday 0) are set when the caller named a
    weekday without a date ("Friday"), so that it also matches an offer on a later Friday.
    A slot fits when it starts in ``[earliest, latest)`` local time, and at ``at`` if set.
    """

    dates: tuple[date, ...] = ()
    weekdays: frozenset[int] = frozenset()
    earliest: time | None = None
    latest: time | None = None
    at: time | None = None

    @property
    def empty(self) -> bool:
        return not (self.dates or self.weekdays) and self.earliest is None and self.latest is None and self.at is None

    def fits_day(self, day: date, *, offered: bool = False) -> bool:
        if offered and self.weekdays:
            return day.weekday() in self.weekdays
        return not self.dates or day in self.dates

    def fits_time(self, moment: time, *, exact: bool = True) -> bool:
        """Within the bounds, and at ``at`` when ``exact``."""
        if self.earliest is not None and moment < self.earliest:
            return False
        if self.latest is not None and moment >= self.latest:
            return False
        return not exact or self.at is None or moment == self.at

    def fits(self, slot: Slot, tz: str, *, offered: bool = False, exact: bool = True) -> bool:
        local = slot.start.astimezone(ZoneInfo(tz))
        return self.fits_day(local.date(), offered=offered) and self.fits_time(local.time(), exact=exact)

    def to_json(self) -> dict[str, object]:
        def clock(t: time | None) -> str | None:
            return None if t is None else t.isoformat(timespec="minutes")

        return {
            "dates": [d.isoformat() for d in self.dates],
            "weekdays": sorted(self.weekdays),
            "earliest": clock(self.earliest),
            "latest": clock(self.latest),
            "at": clock(self.at),
        }


@dataclass(frozen=True, slots=True)
class Pick:
    """The offer at ``index`` (0-based, into the offers as they were said)."""

    index: int
    kind: Literal["pick"] = "pick"


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """Several offers fit what the caller said ("Friday" with two Friday offers): ask which."""

    indices: tuple[int, ...]
    kind: Literal["ambiguous"] = "ambiguous"


@dataclass(frozen=True, slots=True)
class Propose:
    """A counter-proposal; ``instead_of_offers`` when the caller turned the offers down with it
    ("not those, anything on the weekend?"), so none of them should be offered again."""

    window: TimeWindow
    instead_of_offers: bool = False
    kind: Literal["propose"] = "propose"


@dataclass(frozen=True, slots=True)
class Reject:
    """None of the offers, and no alternative said ("none of those work", "no")."""

    kind: Literal["reject"] = "reject"


@dataclass(frozen=True, slots=True)
class Decline:
    """No appointment at all ("I'm not ready to schedule", "no thanks")."""

    kind: Literal["decline"] = "decline"


SlotChoice = Pick | Ambiguous | Propose | Reject | Decline


def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE)


_DECLINE = _pattern(
    r"\b(?:not ready|no,? thanks?|no,? thank you|not interested|rather not|hold off|not (?:right )?now"
    r"|not at (?:this|the moment)|maybe (?:later|another time|some other time)|some other time"
    r"|(?:don'?t|do not) (?:want|need) (?:to (?:schedule|book|set|make)|an? (?:appointment|showing|consultation))"
    r"|(?:i'?ll|we'?ll|let me|i will|we will) (?:think about it|call (?:you )?back|get back to you)"
    r"|(?:i'?ll|we'?ll|let me) check (?:my|our) (?:calendar|schedule))"
)
_NOT_THESE = _pattern(
    r"\b(?:none of (?:those|these|them|that)|neither|not (?:those|these|them|any of (?:those|these|them))"
    r"|(?:those|these|they|none) (?:(?:don'?t|do not|doesn'?t|won'?t|will not) work|are no good)"
    r"|something else|another (?:time|day)|other (?:times|days)|different (?:time|day))\b"
)
#: A clause with one of these is turned down ("I can't do Thursday"), not proposed.
_NEGATIVE = _pattern(
    r"\b(?:not|never|none|neither|nor|nope|nah|cannot|busy|out of town|working|meeting"
    r"|(?:do|does|did|ca|wo|is|are|was|could|would|should|have)n'?t|no(?!\s+(?:later|earlier|sooner)\b))\b"
)
_AFFIRM = _pattern(r"\b(?:(?:that|it) works|works for me|perfect|great|fine|good|let'?s do (?:it|that)|book it)\b")
_CLAUSES = re.compile(r"[.,;!?]+|\s+(?:but|though|instead)\s+", re.IGNORECASE)

# Picks by position ----------------------------------------------------------------------------

_ORDINALS = {"first": 0, "second": 1, "third": 2, "fourth": 3, "fifth": 4, "one": 0, "two": 1, "three": 2}
_ORDINALS.update({str(n + 1): n for n in range(5)})
_PICK_TAIL = (
    r"(?:\s+(?:one|option|slot|time|choice|appointment))?"
    r"(?=\s*(?:$|[.,!?]|works|is\b|would|sounds|please|for me|then|i guess|i think|thanks|thank|will|looks|seems"
    r"|if|let'?s|'s|i'?d|we'?d|on\b))"
)
_PICK = _pattern(
    rf"\b(?:(?:the\s+)?(?P<ord>first|second|third|fourth|fifth|last)|the\s+(?P<rel>earliest|soonest|earlier|former"
    rf"|latest|later|latter|middle)){_PICK_TAIL}|\b(?:option|number|choice)\s+(?P<num>one|two|three|[1-5])\b"
    r"|\b(?:the\s+)?(?P<dig>[1-5])(?:st|nd|rd|th)\s+(?:one|option|slot|time|choice)\b"
)
_RELATIVE = {"earliest": 0, "soonest": 0, "earlier": 0, "former": 0, "latest": -1, "later": -1, "latter": -1}


def _picked(text: str, count: int) -> int | Literal[False] | None:
    """The offer a position names; False when none is named, None when it names none of ``count``."""
    match = _PICK.search(text)
    if match is None:
        return False
    word = (match["ord"] or match["rel"] or match["num"] or match["dig"]).lower()
    if word == "last":
        index = count - 1
    elif word == "middle":
        index = 1 if count == 3 else -2
    else:
        index = _ORDINALS.get(word, _RELATIVE.get(word, -2))
        index = count - 1 if index == -1 else index
    return index if 0 <= index < count else None


# Days -----------------------------------------------------------------------------------------

_WEEKDAYS = {name.lower(): number for number, name in enumerate(calendar.day_name)}
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_WEEKDAY = _pattern(rf"\b(?P<which>next|this|this coming|coming)?\s*(?P<day>{'|'.join(_WEEKDAYS)})s?\b")
_DAY_OF_MONTH = _pattern(
    rf"\b(?:(?P<month>{'|'.join(_MONTHS)})\s+(?:the\s+)?(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b"
    rf"|the\s+(?P<day2>\d{{1,2}})(?:st|nd|rd|th)(?:\s+of\s+(?P<month2>{'|'.join(_MONTHS)}))?\b)"
)
_RELATIVE_DAYS = (
    (_pattern(r"\b(?:day after tomorrow)\b"), lambda today: (today + timedelta(days=2),)),
    (_pattern(r"\btomorrow\b"), lambda today: (today + timedelta(days=1),)),
    (_pattern(r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b"), lambda today: (today,)),
    (_pattern(r"\bnext weekend\b"), lambda today: _week(today, 1, 5, 6)),
    (_pattern(r"\bearly next week\b"), lambda today: _week(today, 1, 0, 2)),
    (_pattern(r"\bnext week\b"), lambda today: _week(today, 1, 0, 6)),
    (_pattern(r"\b(?:end of (?:the|this) week|later (?:this|in the) week)\b"), lambda today: _week(today, 0, 3, 5)),
    (_pattern(r"\b(?:this week|rest of the week)\b"), lambda today: _week(today, 0, 0, 6)),
)
_WEEKEND = _pattern(r"\b(?:this |the |on the |over the )?weekend\b")


def _week(today: date, weeks_ahead: int, first: int, last: int) -> tuple[date, ...]:
    """Days ``first``..``last`` (Monday 0) of this week or a later one, none before ``today``."""
    monday = today - timedelta(days=today.weekday()) + timedelta(weeks=weeks_ahead)
    return tuple(d for i in range(first, last + 1) if (d := monday + timedelta(days=i)) >= today)


def _upcoming(today: date, weekday: int) -> date:
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def _days(text: str, today: date) -> tuple[tuple[date, ...], frozenset[int]] | None:
    """The days named, and the weekdays named without a date; None when they contradict."""
    dates: list[date] = []
    weekdays: set[int] = set()
    for match in _WEEKDAY.finditer(text):
        day = _WEEKDAYS[match["day"].lower()]
        if (match["which"] or "").lower() == "next":
            dates.append(_week(today, 1, day, day)[0])
        else:
            dates.append(_upcoming(today, day))
            weekdays.add(day)
    for pattern, resolve in _RELATIVE_DAYS:
        if pattern.search(text):
            dates.extend(resolve(today))
            break
    else:
        if _WEEKEND.search(text):
            dates.extend(_upcoming(today, d) for d in (5, 6))
            weekdays.update((5, 6))
    on_dates = [d for m in _DAY_OF_MONTH.finditer(text) if (d := _date_of_month(m, today))]
    if on_dates:
        if weekdays and any(d.weekday() not in weekdays for d in on_dates):
            return None  # "Monday the 14th" when the 14th is a Tuesday
        return tuple(sorted(set(on_dates))), frozenset()
    return tuple(sorted(set(dates))), frozenset(weekdays)


def _date_of_month(match: re.Match[str], today: date) -> date | None:
    """The next such date from ``today`` on (this month or the next that has it)."""
    day = int(match["day"] or match["day2"])
    month_name = match["month"] or match["month2"]
    candidates = ((today.year + (today.month - 1 + i) // 12, (today.month - 1 + i) % 12 + 1) for i in range(13))
    for year, month in candidates:
        if month_name and month != _MONTHS[month_name.lower()]:
            continue
        if day <= calendar.monthrange(year, month)[1] and (found := date(year, month, day)) >= today:
            return found
    return None


# Times of day ---------------------------------------------------------------------------------

_PARTS_OF_DAY = (
    (_pattern(r"\bearly morning\b"), time(0), time(10), "am"),
    (_pattern(r"\blate morning\b"), time(10), time(12), "am"),
    (_pattern(r"\bmornings?\b"), time(0), time(12), "am"),
    (_pattern(r"\bearly afternoon\b"), time(12), time(15), "pm"),
    (_pattern(r"\blate afternoon\b"), time(15), time(17), "pm"),
    (_pattern(r"\bafternoons?\b"), time(12), time(17), "pm"),
    (_pattern(r"\b(?:lunch ?time|lunch)\b"), time(11), time(14), None),  # "11:30" is AM, "1" PM
    (_pattern(r"\b(?:evenings?|tonight|after work|at night)\b"), time(17), None, "pm"),
)
_CLOCK = (
    r"(?P<h{n}>\d{{1,2}})(?!\d|(?:st|nd|rd|th)\b)(?::(?P<m{n}>[0-5]\d)|\s(?P<s{n}>[0-5]\d)(?!\d))?"
    r"(?:\s*(?P<mer{n}>[ap]\.?\s?m\b\.?)|(?P<oclock{n}>\s*o'?\s?clock))?"
)
_NOT_CLOCK_AFTER = (
    r"(?!\s*(?:bed|bath|kid|child|people|person|year|month|week|day|minute|hour|mile|dollar|thousand|grand|k\b"
    r"|%|percent|of\b))"
)
_CUE = r"(?:at|around|about|after|before|by|until|till|from|between|and|to|or|say|maybe|how about|what about|than)"
_TIME_RANGE = _pattern(rf"\b(?:between|from)\s+{_CLOCK.format(n=1)}\s+(?:and|to|-)\s+{_CLOCK.format(n=2)}")
_AFTER = _pattern(rf"\b(?:after|later than|from|past)\s+{_CLOCK.format(n=1)}{_NOT_CLOCK_AFTER}")
_BEFORE = _pattern(rf"\b(?:before|by|earlier than|no later than|until|till)\s+{_CLOCK.format(n=1)}{_NOT_CLOCK_AFTER}")
_AT = _pattern(rf"(?:\b{_CUE}\s+(?:the\s+)?|(?<![\d:]))\b{_CLOCK.format(n=1)}{_NOT_CLOCK_AFTER}")


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int
    minute: int
    meridiem: str | None  # "am", "pm" or None when not said
    cued: bool  # said after "at", "around", ... or with minutes, AM/PM or o'clock

    def resolve(self, part_meridiem: str | None) -> time | None:
        """The 24-hour time, reading a bare hour as appointments are booked (see the module doc)."""
        hour, meridiem = self.hour, self.meridiem or part_meridiem
        if hour > 23 or (hour > 12 and meridiem == "am") or (hour == 0 and meridiem):
            return None
        if hour <= 12 and meridiem is not None:
            hour = hour % 12 + (12 if meridiem == "pm" else 0)
        elif hour <= 12:
            hour = hour + 12 if 1 <= hour <= LAST_PM_HOUR else hour
        return time(hour, self.minute)


def _clock(match: re.Match[str], n: int, cued: bool) -> _Clock:
    minute = match[f"m{n}"] or match[f"s{n}"]
    meridiem = match[f"mer{n}"]
    spoken = bool(minute or meridiem or match[f"oclock{n}"])  # "five thirty" is a time; "five" may not be
    return _Clock(int(match[f"h{n}"]), int(minute or 0), meridiem and meridiem[0].lower() + "m", cued or spoken)


def _normalise(text: str) -> str:
    """Digits for spoken numbers and clock phrases ("half past four" -> "4:30", "noon" -> "12:00 pm")."""
    text = re.sub(r"(?<=\w)-(?=[a-z])", " ", text.lower())
    text = re.sub(r"\b(?:noon|midday)\b", "12:00 pm", text)
    text = str(alpha2digit(text, "en", threshold=0))
    text = re.sub(r"\bhalf past (\d{1,2})\b", r"\1:30", text)
    text = re.sub(r"\bquarter past (\d{1,2})\b", r"\1:15", text)
    text = re.sub(r"\b(?:a )?quarter (?:to|of|till) (\d{1,2})\b", lambda m: f"{(int(m[1]) - 1) % 12 or 12}:45", text)
    return re.sub(r"\b(\d{1,2})\s*-?ish\b", r"around \1", text)


def _times(text: str) -> tuple[time | None, time | None, time | None] | None:
    """(earliest, latest, at) said in ``text``; None when a time said is not one."""
    part = next(((lo, hi, mer) for p, lo, hi, mer in _PARTS_OF_DAY if p.search(text)), None)
    earliest, latest, meridiem = part if part else (None, None, None)
    bounds: list[tuple[str, time | None]] = []
    for match in _TIME_RANGE.finditer(text):
        bounds += [
            ("after", _clock(match, 1, True).resolve(meridiem)),
            ("before", _clock(match, 2, True).resolve(meridiem)),
        ]
    text = _TIME_RANGE.sub(" ", text)
    for kind, pattern in (("before", _BEFORE), ("after", _AFTER)):  # "no later than 3" is a "before"
        bounds += [(kind, _clock(m, 1, True).resolve(meridiem)) for m in pattern.finditer(text)]
        text = pattern.sub(" ", text)
    ats = [_clock(m, 1, bool(m[0].strip()[0].isalpha())) for m in _AT.finditer(text)]
    resolved = {c.resolve(meridiem) for c in ats if c.cued}
    if None in resolved or any(t is None for _, t in bounds):
        return None
    at_times = sorted(t for t in resolved if t is not None)
    for kind, moment in bounds:
        if kind == "after":
            earliest = max(filter(None, (earliest, moment)))
        else:
            latest = min(filter(None, (latest, moment)))
    at = at_times[0] if len(at_times) == 1 else None
    if len(at_times) > 1:  # "at 3 or 4": anywhere from the first to the last
        earliest, latest = at_times[0], (datetime.combine(date.min, at_times[-1]) + timedelta(minutes=1)).time()
    return earliest, latest, at


# The choice -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Heard:
    """What the caller's positive clauses said, and how they turned anything down."""

    positive: str
    turned_down: bool = False
    not_these: bool = False
    declined: bool = False


def _hear(text: str) -> _Heard:
    text = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", text, flags=re.IGNORECASE)  # "a.m." ends no sentence
    clauses = [c.strip() for c in _CLAUSES.split(text) if c and c.strip()]
    positive = " , ".join(c for c in clauses if not _NEGATIVE.search(c))
    return _Heard(
        positive=positive,
        turned_down=any(_NEGATIVE.search(c) for c in clauses),
        not_these=bool(_NOT_THESE.search(text)),
        declined=bool(_DECLINE.search(text)),
    )


def _window(text: str, today: date) -> TimeWindow | None:
    normal = _normalise(text)
    days = _days(normal, today)
    times = _times(normal)
    if days is None or times is None:
        return None
    earliest, latest, at = times
    if earliest is not None and latest is not None and earliest >= latest:
        return None
    return TimeWindow(dates=days[0], weekdays=days[1], earliest=earliest, latest=latest, at=at)


def parse_slot_choice(text: str, offered: Sequence[Slot], *, tz: str, today: date) -> SlotChoice | None:
    """The caller's answer to the ``offered`` slots (said in zone ``tz``, where it is ``today``).

    What is said in a negative clause ("I can't do Thursday, Friday works") is left out; a pick
    or a time beats a decline or a rejection said with it ("not right now, maybe next week").
    """
    heard = _hear(text)
    picked = False if heard.not_these else _picked(heard.positive, len(offered))
    if picked is None:
        return None
    if picked is not False:
        return Pick(picked)
    window = _window(heard.positive, today) if heard.positive else TimeWindow()
    if window is None:
        return None
    if not window.empty:
        return _against_offers(window, offered, tz, instead=heard.not_these)
    return _without_time(text, heard, len(offered))


def _against_offers(window: TimeWindow, offered: Sequence[Slot], tz: str, *, instead: bool) -> SlotChoice:
    if instead:
        return Propose(window, instead_of_offers=True)
    fitting = tuple(i for i, slot in enumerate(offered) if window.fits(slot, tz, offered=True))
    if len(fitting) == 1:
        return Pick(fitting[0])
    if fitting:
        return Ambiguous(fitting)
    return Propose(replace(window, weekdays=frozenset()) if window.dates else window)


def _without_time(text: str, heard: _Heard, count: int) -> SlotChoice | None:
    if heard.declined:
        return Decline()
    if heard.not_these or heard.turned_down:
        return Reject()
    affirmed = parse_yes_no(text) is Answer.YES or bool(_AFFIRM.search(text))
    return Pick(0) if count == 1 and affirmed else None
