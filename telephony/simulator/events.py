"""Typed events a simulated call reports while it runs (``leadline call`` prints them live).

Times (``at_s``) are seconds since the media stream started.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``ended_by_twilio``: Twilio stopped the stream because the call was redirected or ended through
#: its REST API (only when the stream is driven by the Twilio emulator).
EndReason = Literal["server_hung_up", "script_finished", "caller_hung_up", "max_duration", "ended_by_twilio", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    call_sid: str
    stream_sid: str
    kind: Literal["call_started"] = "call_started"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerSpoke:
    """The caller started saying ``text``; ``barge_in`` if the bot was audible at that moment."""

    text: str
    at_s: float
    duration_ms: float
    barge_in: bool
    kind: Literal["caller_spoke"] = "caller_spoke"


@dataclass(frozen=True, slots=True, kw_only=True)
class DigitsSent:
    """The caller finished pressing ``digits``."""

    digits: str
    at_s: float
    kind: Literal["digits_sent"] = "digits_sent"


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSpoke:
    """A bot utterance finished playing at Twilio (and was transcribed, if asked).

    ``latency_ms`` is set on the utterance that answers a caller turn: from the caller's last
    speech frame (or key press) to the first bot audio played after it. The greeting has none
    (its delay from the stream start is ``CallResult.greeting_ms``).
    """

    text: str | None
    at_s: float
    duration_ms: float
    latency_ms: float | None
    interrupted: bool
    kind: Literal["bot_spoke"] = "bot_spoke"


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeIn:
    """The caller talked over the bot; ``clear_after_ms`` is None if no ``clear`` came."""

    at_s: float
    clear_after_ms: float | None
    kind: Literal["barge_in"] = "barge_in"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    reason: EndReason
    at_s: float
    error: str | None = None
    kind: Literal["call_ended"] = "call_ended"


CallEvent = CallStarted | CallerSpoke | DigitsSent | BotSpoke | BargeIn | CallEnded
