"""The legal checks a call records: AI disclosure, recording disclosure, TCPA calling hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bots.persona import DEFAULT_PERSONA
from runtime.compliance import discloses_ai, discloses_recording, within_calling_hours


@pytest.mark.parametrize(
    ("text", "ai"),
    [
        (DEFAULT_PERSONA.greeting("lead"), True),
        ("Hi, I'm Ava, an AI assistant for Lakeside Realty.", True),
        ("This is an automated system calling about your inquiry.", True),
        ("Hi, this is Ava from Lakeside Realty. May I have your name?", False),
        ("We said it was not available.", False),  # "said" is not "AI"
    ],
)
def test_an_ai_disclosure_is_recognised(text: str, ai: bool) -> None:
    assert discloses_ai(text) is ai


def test_a_recording_disclosure_is_recognised() -> None:
    assert discloses_recording("This call may be recorded for quality.")
    assert discloses_recording("Calls are monitored and recorded.")
    assert not discloses_recording(DEFAULT_PERSONA.greeting("lead"))


@pytest.mark.parametrize(
    ("number", "utc", "ok", "local"),
    [
        ("+15125550123", datetime(2026, 12, 7, 14, 0, tzinfo=UTC), True, "08:00 America/Chicago"),
        ("+15125550123", datetime(2026, 12, 7, 13, 59, tzinfo=UTC), False, "07:59 America/Chicago"),
        ("+15125550123", datetime(2026, 12, 8, 2, 59, tzinfo=UTC), True, "20:59 America/Chicago"),
        ("+15125550123", datetime(2026, 12, 8, 3, 0, tzinfo=UTC), False, "21:00 America/Chicago"),
        # The lead's zone, not ours: 9:30 pm in New York is 8:30 pm in Austin.
        ("+12125550123", datetime(2026, 12, 8, 2, 30, tzinfo=UTC), False, "21:30 America/New_York"),
        ("+13105550123", datetime(2026, 12, 8, 4, 30, tzinfo=UTC), True, "20:30 America/Los_Angeles"),
        # Summer time moves the window with the clocks.
        ("+15125550123", datetime(2026, 7, 7, 13, 0, tzinfo=UTC), True, "08:00 America/Chicago"),
    ],
)
def test_calling_hours_are_the_leads_own(number: str, utc: datetime, ok: bool, local: str) -> None:
    assert within_calling_hours(number, utc, default_tz="America/Chicago") == (ok, local)


def test_a_number_without_a_known_zone_uses_the_tenants() -> None:
    ok, local = within_calling_hours("+445555", datetime(2026, 12, 7, 20, 0, tzinfo=UTC), default_tz="America/Denver")
    assert (ok, local) == (True, "13:00 America/Denver")
