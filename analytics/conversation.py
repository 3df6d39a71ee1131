"""How the conversation flowed, from a call's events: interruptions, caller silences, bot dead
air and turn latency.

Only what the events record is counted. The caller talking over the bot is an ``Interruption``
event; the bot talking over the caller is not recorded by the runtime, so it is not here.
Times are seconds since the call's stream started, as in the events.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from analytics.pii import redact
from runtime.events import (
    BotUtterance,
    CallEnded,
    CallerUtterance,
    CallEvent,
    FillerPlayed,
    GreetingLatency,
    Interruption,
    ReplyResumed,
    Silence,
    TurnLatency,
    VendorDegraded,
)
from runtime.histogram import percentile


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationOptions:
    #: a caller silence counts from this long (issue 6; the runtime prompts at 8 s by default)
    caller_silence_s: float = 8.0
    #: a wait for the bot longer than this is dead air (issue 6)
    dead_air_ms: float = 2000.0

    def __post_init__(self) -> None:
        if self.caller_silence_s <= 0 or self.dead_air_ms <= 0:
            raise ValueError("caller_silence_s and dead_air_ms must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class InterruptionStat:
    """The caller spoke over the bot's reply of ``turn`` (its texts PII-redacted)."""

    at: float
    turn: int
    interrupter: Literal["caller"]
    interrupted: Literal["bot"]
    reply_text: str
    heard_text: str
    #: share of the reply's audio (as synthesised when the caller cut in) that was played
    heard_fraction: float
    reaction_ms: float
    #: the barge-in held no words (a cough, noise) and the bot picked up again; not counted in
    #: the interruption rate
    resumed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerSilence:
    """The caller said nothing from ``started_at`` to at least ``ended_at``: the runtime's
    silence prompt, and its hang-up if the caller stayed silent after the prompt."""

    started_at: float
    ended_at: float
    silent_s: float
    hung_up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadAir:
    """The caller waited ``wait_ms`` for the bot's first audio: from their end of speech (turn 0:
    from the stream's start, for the greeting)."""

    turn: int
    started_at: float
    ended_at: float
    wait_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationStats:
    duration_s: float
    caller_turns: int
    #: distinct turns the bot spoke in (greeting, answers, prompts), interrupted or not
    bot_turns: int
    interruptions: tuple[InterruptionStat, ...]
    #: caller interruptions (with words) per bot turn
    interruption_rate: float
    caller_silences: tuple[CallerSilence, ...]
    #: caller silences per bot turn
    silence_rate: float
    dead_air: tuple[DeadAir, ...]
    #: end of caller speech -> first bot audio (an acknowledgement counts), per answered turn
    first_audio_ms: tuple[float, ...]
    #: nearest-rank 95th percentile of ``first_audio_ms`` (runtime/histogram.py, as the benchmarks)
    latency_p95_ms: float | None
    #: turns the answer was late enough for an acknowledgement or filler to cover it
    covered_turns: int
    #: stage -> how many times a vendor was replaced by the local engine
    vendor_fallbacks: dict[str, int] = field(default_factory=dict)


def analyse_conversation(
    events: Iterable[CallEvent], options: ConversationOptions = ConversationOptions()
) -> ConversationStats:
    events = list(events)
    bot_turns = len({e.turn for e in events if isinstance(e, BotUtterance | Interruption)})
    interruptions = interruptions_of(events)
    silences = tuple(s for s in caller_silences(events) if s.silent_s >= options.caller_silence_s)
    first_audio = tuple(round(e.first_audio_ms, 1) for e in events if isinstance(e, TurnLatency))
    return ConversationStats(
        duration_s=_duration_s(events),
        caller_turns=sum(isinstance(e, CallerUtterance) for e in events),
        bot_turns=bot_turns,
        interruptions=interruptions,
        interruption_rate=_rate(sum(not i.resumed for i in interruptions), bot_turns),
        caller_silences=silences,
        silence_rate=_rate(len(silences), bot_turns),
        dead_air=dead_air(events, options.dead_air_ms),
        first_audio_ms=first_audio,
        latency_p95_ms=percentile(list(first_audio), 95) if first_audio else None,
        covered_turns=len({e.turn for e in events if isinstance(e, FillerPlayed)}),
        vendor_fallbacks=dict(Counter(e.stage for e in events if isinstance(e, VendorDegraded))),
    )


def interruptions_of(events: Sequence[CallEvent]) -> tuple[InterruptionStat, ...]:
    """Every barge-in, marked ``resumed`` when the bot's ``ReplyResumed`` followed it before the
    caller said anything."""
    found: list[InterruptionStat] = []
    unresolved: int | None = None
    for event in events:
        if isinstance(event, Interruption):
            found.append(_interruption(event))
            unresolved = len(found) - 1
        elif isinstance(event, CallerUtterance):
            unresolved = None
        elif isinstance(event, ReplyResumed) and unresolved is not None:
            found[unresolved] = dataclasses.replace(found[unresolved], resumed=True)
            unresolved = None
    return tuple(found)


def _interruption(event: Interruption) -> InterruptionStat:
    heard = event.heard_ms / event.reply_audio_ms if event.reply_audio_ms > 0 else 0.0
    return InterruptionStat(
        at=event.at,
        turn=event.turn,
        interrupter="caller",
        interrupted="bot",
        reply_text=redact(event.reply_text).text,
        heard_text=redact(event.heard_text).text,
        heard_fraction=round(min(1.0, heard), 3),
        reaction_ms=event.reaction_ms,
    )


def caller_silences(events: Sequence[CallEvent]) -> tuple[CallerSilence, ...]:
    """The runtime's ``Silence`` events as silences: a prompt and the hang-up after it, with no
    caller words between, are one silence."""
    found: list[CallerSilence] = []
    prompt: Silence | None = None
    for event in events:
        if isinstance(event, CallerUtterance) and prompt is not None:
            found.append(_silence(prompt, prompt, hung_up=False))
            prompt = None
        elif isinstance(event, Silence) and event.action == "prompt":
            if prompt is not None:
                found.append(_silence(prompt, prompt, hung_up=False))
            prompt = event
        elif isinstance(event, Silence):
            found.append(_silence(prompt or event, event, hung_up=True))
            prompt = None
    if prompt is not None:
        found.append(_silence(prompt, prompt, hung_up=False))
    return tuple(found)


def _silence(first: Silence, last: Silence, *, hung_up: bool) -> CallerSilence:
    started_at = first.at - first.silent_s
    return CallerSilence(
        started_at=round(started_at, 3),
        ended_at=last.at,
        silent_s=round(last.at - started_at, 3),
        hung_up=hung_up,
    )


def dead_air(events: Sequence[CallEvent], threshold_ms: float) -> tuple[DeadAir, ...]:
    """Turns (and the greeting) the caller waited longer than ``threshold_ms`` to hear the bot."""
    waits = [
        DeadAir(turn=0, started_at=0.0, ended_at=e.at, wait_ms=round(e.latency_ms, 1))
        for e in events
        if isinstance(e, GreetingLatency)
    ]
    waits += [
        DeadAir(
            turn=e.turn,
            started_at=e.speech_end_at,
            ended_at=round(e.speech_end_at + e.first_audio_ms / 1000, 3),
            wait_ms=round(e.first_audio_ms, 1),
        )
        for e in events
        if isinstance(e, TurnLatency)
    ]
    return tuple(w for w in waits if w.wait_ms > threshold_ms)


def _duration_s(events: Sequence[CallEvent]) -> float:
    """Until ``CallEnded``; for a call still running, until its latest event."""
    ended = [e.at for e in events if isinstance(e, CallEnded)]
    if ended:
        return ended[-1]
    return max((e.at for e in events if not isinstance(e, TurnLatency)), default=0.0)


def _rate(count: int, per: int) -> float:
    return round(count / per, 4) if per else 0.0
