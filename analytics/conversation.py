"""How the conversation flowed, from a call's events: interruptions both ways, caller silences,
bot dead air and turn latency.

Only what the events record is counted. The caller talking over the bot is an ``Interruption``;
the bot talking over the caller a ``BotTalkedOver``. Caller silences run from the end of a reply
the caller heard (``ReplyHeard``) to their next speech onset; events from before those facts were
recorded fall back to the runtime's silence watchdog. Times are seconds since the call's stream
started, as in the events.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from analytics.pii import redact
from runtime.events import (
    BotTalkedOver,
    BotUtterance,
    CallEnded,
    CallerUtterance,
    CallEvent,
    FillerPlayed,
    GreetingLatency,
    Interruption,
    ReplyHeard,
    ReplyResumed,
    Silence,
    TransferEvent,
    TurnLatency,
    TurnUnanswered,
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
class BotInterruption:
    """The bot's reply of ``turn`` began (at ``at``) while the caller was still speaking."""

    at: float
    turn: int
    interrupter: Literal["bot"] = "bot"
    interrupted: Literal["caller"] = "caller"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerSilence:
    """The caller said nothing from ``started_at`` to ``ended_at``: from the end of a bot reply
    they heard to their next speech (the bot's prompts in between do not end it), or to the call's
    end (``hung_up`` when the runtime hung up on the silence). Events without those facts give
    the watchdog's view instead: its prompt, and its hang-up if the caller stayed silent."""

    started_at: float
    ended_at: float
    silent_s: float
    hung_up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadAir:
    """The caller waited ``wait_ms`` for the bot's first audio: from their end of speech (turn 0:
    from the stream's start, for the greeting). ``unanswered``: the turn got no reply at all, and
    the wait runs to the bot's next audio or the call's end."""

    turn: int
    started_at: float
    ended_at: float
    wait_ms: float
    unanswered: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationStats:
    duration_s: float
    caller_turns: int
    #: distinct turns the bot spoke in (greeting, answers, prompts), interrupted or not
    bot_turns: int
    interruptions: tuple[InterruptionStat, ...]
    #: caller interruptions (with words) per bot turn
    interruption_rate: float
    #: replies that began while the caller was speaking
    bot_interruptions: tuple[BotInterruption, ...]
    #: bot interruptions per caller turn
    bot_interruption_rate: float
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
    caller_turns = sum(isinstance(e, CallerUtterance) for e in events)
    interruptions = interruptions_of(events)
    talked_over = tuple(BotInterruption(at=e.at, turn=e.turn) for e in events if isinstance(e, BotTalkedOver))
    silences = tuple(s for s in caller_silences(events) if s.silent_s >= options.caller_silence_s)
    first_audio = tuple(round(e.first_audio_ms, 1) for e in events if isinstance(e, TurnLatency))
    return ConversationStats(
        duration_s=_duration_s(events),
        caller_turns=caller_turns,
        bot_turns=bot_turns,
        interruptions=interruptions,
        interruption_rate=_rate(sum(not i.resumed for i in interruptions), bot_turns),
        bot_interruptions=talked_over,
        bot_interruption_rate=_rate(len(talked_over), caller_turns),
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
    """Every caller silence, of any length: measured from the speech bounds when the events have
    them, else the watchdog's view."""
    if _speech_bounds_known(events):
        return heard_silences(events)
    return watchdog_silences(events)


def _speech_bounds_known(events: Sequence[CallEvent]) -> bool:
    """Replies heard to their end are recorded, and every caller turn has its onset."""
    utterances = [e for e in events if isinstance(e, CallerUtterance)]
    return any(isinstance(e, ReplyHeard) for e in events) and all(u.onset_at is not None for u in utterances)


def heard_silences(events: Sequence[CallEvent]) -> tuple[CallerSilence, ...]:
    """From the end of a reply the caller heard to their next speech onset. A transfer starting
    ends the wait (the caller is then with a person); otherwise it runs to the call's end."""
    found: list[CallerSilence] = []
    since: float | None = None
    hung_up = False
    for event in events:
        if isinstance(event, ReplyHeard) and since is None:
            since, hung_up = event.at, False
        elif since is None:
            continue
        elif isinstance(event, CallerUtterance) and event.onset_at is not None:
            if event.onset_at > since:
                found.append(_quiet(since, event.onset_at, hung_up=False))
            since = None
        elif isinstance(event, TransferEvent) and event.phase == "started":
            found.append(_quiet(since, event.at, hung_up=False))
            since = None
        elif isinstance(event, Silence) and event.action == "hangup":
            hung_up = True
    if since is not None:
        found.append(_quiet(since, _duration_s(events), hung_up=hung_up))
    return tuple(found)


def _quiet(started_at: float, ended_at: float, *, hung_up: bool) -> CallerSilence:
    return CallerSilence(
        started_at=round(started_at, 3),
        ended_at=round(ended_at, 3),
        silent_s=round(ended_at - started_at, 3),
        hung_up=hung_up,
    )


def watchdog_silences(events: Sequence[CallEvent]) -> tuple[CallerSilence, ...]:
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
    """Turns (and the greeting) the caller waited longer than ``threshold_ms`` to hear the bot,
    and every turn that got no reply at all, in the order they began."""
    slow = [w for w in _answer_waits(events) if w.wait_ms > threshold_ms]
    return tuple(sorted([*slow, *unanswered_waits(events)], key=lambda w: w.started_at))


def _answer_waits(events: Sequence[CallEvent]) -> list[DeadAir]:
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
    return waits


def unanswered_waits(events: Sequence[CallEvent]) -> list[DeadAir]:
    """Each ``TurnUnanswered``: from the caller's end of speech (unknown when the turn failed
    before its transcript: from when the bot gave up) to the bot's next audio after it gave up,
    or the call's end. An acknowledgement played before it gave up did not answer the turn."""
    speech_end = {
        e.turn: e.speech_end_at for e in events if isinstance(e, CallerUtterance) and e.speech_end_at is not None
    }
    waits: list[DeadAir] = []
    for index, event in enumerate(events):
        if isinstance(event, TurnUnanswered):
            started_at = speech_end.get(event.turn, event.at)
            later = (_bot_audio_at(e) for e in events[index + 1 :])
            ended_at = next((at for at in later if at is not None), _duration_s(events))
            waits.append(_unanswered(event.turn, started_at, ended_at))
    return waits


def _unanswered(turn: int, started_at: float, ended_at: float) -> DeadAir:
    return DeadAir(
        turn=turn,
        started_at=round(started_at, 3),
        ended_at=round(ended_at, 3),
        wait_ms=round((ended_at - started_at) * 1000, 1),
        unanswered=True,
    )


def _bot_audio_at(event: CallEvent) -> float | None:
    """By when the bot was heard, if the event says: an answer's first audio, a reply begun over
    the caller or resumed, a silence prompt starting, a reply done (its audio began earlier)."""
    if isinstance(event, TurnLatency):
        return event.speech_end_at + event.first_audio_ms / 1000
    if isinstance(event, BotTalkedOver | ReplyResumed | Silence | BotUtterance):
        return event.at
    return None


def _duration_s(events: Sequence[CallEvent]) -> float:
    """Until ``CallEnded``; for a call still running, until its latest event."""
    ended = [e.at for e in events if isinstance(e, CallEnded)]
    if ended:
        return ended[-1]
    return max((e.at for e in events if not isinstance(e, TurnLatency)), default=0.0)


def _rate(count: int, per: int) -> float:
    return round(count / per, 4) if per else 0.0
