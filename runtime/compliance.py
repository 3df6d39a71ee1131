"""What a call must get right by law, checked as it happens and recorded as call events.

The checks are pure (text and times in, a verdict out): that the bot says it is an AI before
anything else (several US states require it of automated callers), that a recorded call says it
is recorded (two-party-consent states), and that an outbound call reaches the lead between 8 am
and 9 pm their time (TCPA, 47 CFR 64.1200(c)(1)). This module gives verdicts; the dialler refuses
a call outside the calling window unless the tenant's configuration only records it.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bots.calendar import timezone_for_phone

_AI = re.compile(
    r"\b(virtual assistant|ai assistant|an ai\b|artificial intelligence|automated (assistant|system)|a bot\b)", re.I
)
_RECORDED = re.compile(r"\b(record(ed|ing)?|monitored)\b", re.I)

#: TCPA's calling window, in the called party's local time.
CALLING_HOURS = (time(8, 0), time(21, 0))


def discloses_ai(text: str) -> bool:
    """The words tell the caller they are talking to an AI, not a person."""
    return _AI.search(text) is not None


def discloses_recording(text: str) -> bool:
    """The words tell the caller the call is recorded."""
    return _RECORDED.search(text) is not None


def within_calling_hours(number: str, now: datetime, *, default_tz: str) -> tuple[bool, str]:
    """Whether ``now`` (aware) is inside the calling window where ``number`` is (its area code's
    zone, else ``default_tz``); with the local time, for the record."""
    tz = timezone_for_phone(number, default=default_tz)
    local = now.astimezone(ZoneInfo(tz))
    opens, closes = CALLING_HOURS
    return opens <= local.time() < closes, f"{local:%H:%M} {tz}"


def next_calling_window(number: str, now: datetime, *, default_tz: str) -> datetime:
    """When the calling window next opens where ``number`` is (``now`` itself when it is open)."""
    tz = ZoneInfo(timezone_for_phone(number, default=default_tz))
    local = now.astimezone(tz)
    opens, closes = CALLING_HOURS
    if opens <= local.time() < closes:
        return now
    day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    return datetime.combine(day, opens, tzinfo=tz)
