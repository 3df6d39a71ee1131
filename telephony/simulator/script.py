"""What the simulated caller says and does, as data.

A script is a sequence of steps the caller performs in order. When each step starts is decided
by the turn-taking policy in ``telephony.simulator.turns``: ordinary lines and key presses wait
for the bot's reply to finish, barge-in lines cut into it, a hang-up waits a fixed time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DTMF_DIGITS = frozenset("0123456789*#")


@dataclass(frozen=True, slots=True)
class CallerLine:
    """Say ``text``.

    Without ``barge_in_after_ms`` the caller waits for the bot's reply to finish and then lets
    ``pause_ms`` of silence pass after the bot's last audio (a human's response gap). With it,
    the caller starts speaking that many ms after the bot's reply starts playing, talking over
    the bot if it is still speaking.
    """

    text: str
    pause_ms: int = 700
    barge_in_after_ms: int | None = None
    kind: Literal["line"] = "line"

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a caller line needs text")
        if self.pause_ms < 0 or (self.barge_in_after_ms is not None and self.barge_in_after_ms < 0):
            raise ValueError("pause_ms and barge_in_after_ms must not be negative")


@dataclass(frozen=True, slots=True)
class PressDigits:
    """Press keys (sent as ``dtmf`` messages), after the bot's reply and ``pause_ms`` of silence."""

    digits: str
    pause_ms: int = 700
    kind: Literal["digits"] = "digits"

    def __post_init__(self) -> None:
        if not self.digits or not set(self.digits) <= DTMF_DIGITS:
            raise ValueError(f"digits must be a non-empty string of 0-9, * and #: {self.digits!r}")
        if self.pause_ms < 0:
            raise ValueError("pause_ms must not be negative")


@dataclass(frozen=True, slots=True)
class Hangup:
    """Hang up ``after_ms`` after the previous step ended, whatever the bot is doing."""

    after_ms: int = 0
    kind: Literal["hangup"] = "hangup"

    def __post_init__(self) -> None:
        if self.after_ms < 0:
            raise ValueError("after_ms must not be negative")


ScriptStep = CallerLine | PressDigits | Hangup


@dataclass(frozen=True, slots=True)
class CallerScript:
    """A named caller script; a ``Hangup`` can only be the last step."""

    name: str
    steps: tuple[ScriptStep, ...]

    def __post_init__(self) -> None:
        if any(isinstance(step, Hangup) for step in self.steps[:-1]):
            raise ValueError("Hangup must be the last step of a script")

    def lines(self) -> tuple[str, ...]:
        """The distinct texts the caller speaks, in order (what needs rendering)."""
        texts = (step.text for step in self.steps if isinstance(step, CallerLine))
        return tuple(dict.fromkeys(texts))


#: A home buyer calling the office: name and intent to the Lead bot (Ava), who hands them to the
#: Buyer bot (Maya); several answers per line, as callers give them; then a showing is picked from
#: the offered slots, confirmed and booked, and the bot says goodbye and hangs up. The second line
#: cuts into the end of Maya's first question (the caller knows what is coming), to exercise
#: barge-in. Every line is one Whisper tiny.en transcribes reliably from Piper's voice, and long
#: enough to be taken as a turn.
HOME_BUYER_SCRIPT = CallerScript(
    name="home-buyer",
    steps=(
        CallerLine("Hi, this is Sarah Miller. We'd like to buy a house in Austin."),
        # Ava's bridge and Maya's greeting take about 13 s; 12 s in, Maya is asking about rooms.
        CallerLine(
            "Three bedrooms and two bathrooms, for about four hundred thousand dollars.", barge_in_after_ms=12_000
        ),
        CallerLine("We still need a lender, and we'd like to move in about two months."),
        CallerLine("We're moving for a new job in town and we need a garage and a big yard for the dog."),
        CallerLine("No, we don't need to sell a house first."),
        CallerLine("The first one works for me."),
        CallerLine("Yes, please book it."),
    ),
)
