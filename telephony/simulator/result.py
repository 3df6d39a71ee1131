"""What a simulated call measured, and its JSON report.

Times ending in ``_s`` are seconds since the media stream started; latencies are in ms.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from telephony.simulator.events import EndReason
from telephony.simulator.turns import CallerAction


@dataclass(frozen=True, slots=True, kw_only=True)
class BotUtterance:
    started_s: float
    ended_s: float
    #: the transcript, when the bot's audio was transcribed
    text: str | None
    #: cut off by ``clear``
    interrupted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One caller action and the bot's reply to it."""

    action: Literal["speech", "dtmf"]
    #: the line spoken, or the digits pressed
    caller_text: str
    started_s: float
    ended_s: float
    barge_in: bool
    #: transcripts of the bot utterances that ended between this action and the next one
    bot_text: str | None
    #: last caller frame sent -> first bot audio played after it; None if the bot never
    #: replied, negative if the bot started talking before the caller finished
    latency_ms: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeInRecord:
    at_s: float
    #: barge-in speech start -> ``clear`` received; None if the server never cleared
    clear_after_ms: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCounts:
    media_sent: int = 0
    media_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    dtmf_sent: int = 0
    #: bot audio ran dry before the server marked it complete (server sends too slowly)
    underruns: int = 0
    #: most bot audio queued at Twilio at once (server sends too far ahead if large)
    max_lead_ms: float = 0.0
    #: bot audio beyond Twilio's 10-minute buffer, dropped
    dropped_audio_ms: float = 0.0
    #: server messages that were not valid Media Streams messages for this stream
    protocol_errors: int = 0
    status_callback_errors: int = 0
    #: worst lateness of the caller's own 20 ms tick (a saturated load generator shows here)
    max_tick_lag_ms: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResult:
    call_sid: str
    stream_sid: str | None
    end_reason: EndReason
    error: str | None
    duration_s: float
    #: stream start -> first bot audio played
    greeting_ms: float | None
    turns: tuple[Turn, ...]
    barge_ins: tuple[BargeInRecord, ...]
    bot_utterances: tuple[BotUtterance, ...]
    counts: CallCounts
    wav_path: Path | None
    report_path: Path | None

    def to_dict(self) -> dict[str, Any]:
        """The whole result as JSON-ready data."""
        data = dataclasses.asdict(self)
        data["wav_path"] = None if self.wav_path is None else str(self.wav_path)
        data["report_path"] = None if self.report_path is None else str(self.report_path)
        return data

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def build_turns(actions: Sequence[CallerAction], utterances: Sequence[BotUtterance], start: float) -> tuple[Turn, ...]:
    """Pair each finished caller action with the bot utterances that answered it.

    An utterance answers the action before the caller's next action *ended*, so a reply cut
    short by a barge-in still belongs to the turn it answered.
    """
    done = [a for a in actions if a.ended_at is not None]
    ends = [a.ended_at - start for a in done if a.ended_at is not None] + [float("inf")]
    return tuple(
        _turn(action, [u for u in utterances if ends[i] <= u.ended_s < ends[i + 1]], start)
        for i, action in enumerate(done)
    )


def _turn(action: CallerAction, replies: Sequence[BotUtterance], start: float) -> Turn:
    assert action.ended_at is not None
    texts = [u.text for u in replies if u.text]
    latency = action.reply_started_at
    return Turn(
        action=action.kind,
        caller_text=action.text,
        started_s=action.started_at - start,
        ended_s=action.ended_at - start,
        barge_in=action.barge_in,
        bot_text=" ".join(texts) if texts else None,
        latency_ms=None if latency is None else (latency - action.ended_at) * 1000,
    )
