"""A caller's answer to offered slots, as Whisper and Deepgram write it: picks, counter-proposals
as windows in the caller's zone, rejections, declines, and near misses that are none of these."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bots.calendar import Slot
from bots.slot_choice import Ambiguous, Decline, Pick, Propose, Reject, SlotChoice, TimeWindow, parse_slot_choice

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)
TODAY = date(2026, 12, 8)  # a Tuesday
THU, FRI, SAT, SUN = (TODAY + timedelta(days=n) for n in (2, 3, 4, 5))
NEXT_MON, NEXT_TUE = date(2026, 12, 14), date(2026, 12, 15)
NEXT_WEEK = tuple(NEXT_MON + timedelta(days=n) for n in range(7))


def slot(day: date, hour: int, minute: int = 0) -> Slot:
    start = datetime.combine(day, time(hour, minute), tzinfo=ZONE)
    return Slot(start, start + timedelta(minutes=30))


#: "I have Thursday, December 10th at 2 PM, Friday the 11th at 10 AM, or Saturday the 12th at 11 AM."
OFFERS = (slot(THU, 14), slot(FRI, 10), slot(SAT, 11))


def choice(text: str, offered: tuple[Slot, ...] = OFFERS) -> SlotChoice | None:
    return parse_slot_choice(text, offered, tz=TZ, today=TODAY)


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("The first one.", 0),
        ("the second", 1),
        ("Uh, let's do the second one please.", 1),
        ("the last one", 2),
        ("The 3rd option", 2),
        ("option two", 1),
        ("the earliest", 0),
        ("the later one works", 2),
        ("Friday", 1),
        ("Friday works.", 1),
        ("I want Friday", 1),
        ("10 AM", 1),
        ("ten a.m. is good", 1),
        ("the Saturday one", 2),
        ("the 11th", 1),
        ("Friday the eleventh at ten", 1),
        ("Thursday at two", 0),
        ("this weekend", 2),
        ("I can't do Thursday, Friday works", 1),
        ("No, Saturday.", 2),
        ("no later than 3 on Friday", 1),
        ("I'm not sure, maybe the afternoon one", 0),
    ],
)
def test_picks_among_the_offers(text: str, index: int) -> None:
    assert choice(text) == Pick(index)


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("Thursday after five", TimeWindow(dates=(THU,), earliest=time(17))),
        ("how about Monday morning", TimeWindow(dates=(NEXT_MON,), earliest=time(0), latest=time(12))),
        ("next Tuesday at 3", TimeWindow(dates=(NEXT_TUE,), at=time(15))),
        ("sometime next week in the afternoon", TimeWindow(dates=NEXT_WEEK, earliest=time(12), latest=time(17))),
        ("tomorrow evening", TimeWindow(dates=(TODAY + timedelta(days=1),), earliest=time(17))),
        ("five thirty", TimeWindow(at=time(17, 30))),
        ("Friday at half past four", TimeWindow(dates=(FRI,), at=time(16, 30))),
        ("quarter to six tomorrow", TimeWindow(dates=(TODAY + timedelta(days=1),), at=time(17, 45))),
        ("how about noon on Friday", TimeWindow(dates=(FRI,), at=time(12))),
        ("at seven in the morning", TimeWindow(earliest=time(0), latest=time(12), at=time(7))),
        ("between two and four on Monday", TimeWindow(dates=(NEXT_MON,), earliest=time(14), latest=time(16))),
        ("Monday at 3 or 4", TimeWindow(dates=(NEXT_MON,), earliest=time(15), latest=time(16, 1))),
        ("what about 5ish", TimeWindow(at=time(17))),
        ("Not right now, maybe next week.", TimeWindow(dates=NEXT_WEEK)),
        ("December 21st", TimeWindow(dates=(date(2026, 12, 21),))),
    ],
)
def test_counter_proposals_become_windows_in_the_callers_zone(text: str, window: TimeWindow) -> None:
    assert choice(text) == Propose(window)


def test_turning_the_offers_down_with_a_proposal_asks_for_other_times() -> None:
    weekend = TimeWindow(dates=(SAT, SUN), weekdays=frozenset({5, 6}))
    assert choice("not those, anything on the weekend?") == Propose(weekend, instead_of_offers=True)


def test_a_weekday_means_the_offer_on_that_weekday_even_a_week_later() -> None:
    later_friday = (slot(THU, 14), slot(FRI + timedelta(days=7), 10))
    assert choice("Friday", later_friday) == Pick(1)


def test_a_time_that_fits_several_offers_is_ambiguous() -> None:
    two_fridays = (slot(THU, 14), slot(FRI, 10), slot(FRI, 15))
    assert choice("Friday", two_fridays) == Ambiguous((1, 2))
    assert choice("Friday at three", two_fridays) == Pick(2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("None of those work.", Reject()),
        ("no", Reject()),
        ("Those don't work for me.", Reject()),
        ("I'm not ready to schedule.", Decline()),
        ("No thanks.", Decline()),
        ("no, thank you", Decline()),
        ("I'll think about it.", Decline()),
        ("maybe later", Decline()),
    ],
)
def test_rejections_and_declines(text: str, expected: SlotChoice) -> None:
    assert choice(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I have five kids.",
        "I'm having second thoughts",
        "second thoughts",
        "We need three bedrooms.",
        "I need about 3 weeks",
        "yes",  # to three offers: which one is still open
        "Tuesday the 14th",  # the 14th is a Monday
        "the fourth one",
        "banana",
        "",
    ],
)
def test_near_misses_are_unclear(text: str) -> None:
    assert choice(text) is None


def test_a_yes_picks_a_single_offer() -> None:
    assert choice("yeah that works", OFFERS[:1]) == Pick(0)
    assert choice("sounds good", OFFERS[:1]) == Pick(0)


def test_a_pick_past_the_offers_is_unclear() -> None:
    assert choice("the third one", OFFERS[:2]) is None
    assert choice("the last one", OFFERS[:2]) == Pick(1)


@pytest.mark.parametrize(
    ("text", "at"),
    [("at 3", time(15)), ("at 7", time(19)), ("at 8", time(8)), ("at 11:30", time(11, 30)), ("at 12", time(12))],
)
def test_bare_hours_are_read_as_appointment_hours(text: str, at: time) -> None:
    assert choice(f"Monday {text}") == Propose(TimeWindow(dates=(NEXT_MON,), at=at))


def test_a_window_says_which_slots_fit() -> None:
    window = TimeWindow(dates=(THU,), earliest=time(17))
    assert window.fits(slot(THU, 17, 15), TZ) and not window.fits(slot(THU, 16, 45), TZ)
    assert not window.fits(slot(FRI, 18), TZ)
    # 17:15 in New York is 16:15 in Chicago: the window is the caller's.
    assert window.fits(
        Slot(datetime(2026, 12, 10, 16, 15, tzinfo=ZoneInfo("America/Chicago")), slot(THU, 18).start), TZ
    )
    assert window.to_json() == {
        "dates": ["2026-12-10"],
        "weekdays": [],
        "earliest": "17:00",
        "latest": None,
        "at": None,
    }
