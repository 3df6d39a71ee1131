"""Typed call events and the sinks they go to.

The pipeline emits events synchronously and never waits on where they go: a sink must not block.
Persistence (Redis, Postgres) plugs in later as another sink; for now each call keeps its
events in a ``CallReport``.

Times are seconds since the call's stream started (``at``), from the monotonic clock.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnLatency:
    """Where the time went between the caller's end of speech and the bot's first audio.

    Every ``*_at`` is seconds since stream start. ``speech_end_at`` is when the last voiced
    audio reached the server; ``turn_end_at`` when silence confirmed the end of the turn.
    """

    turn: int
    speech_end_at: float
    turn_end_at: float
    stt_done_at: float
    first_text_at: float
    first_audio_at: float
    first_frame_at: float
    #: time spent waiting on engines after the turn ended (STT, bot, first TTS chunk), in ms
    stt_engine_ms: float
    bot_ms: float
    tts_engine_ms: float
    #: STT started at a pause before the turn ended (its time partly hidden by endpointing)
    stt_speculative: bool = False
    #: an acknowledgement or filler went out first (queued, first frame); ``first_frame_at`` is
    #: then the answer's own first frame, which waited for it to play
    filler_queued_at: float | None = None
    filler_frame_at: float | None = None
    #: the reply was started at a pause, before the turn ended (its audio held until then)
    speculative_reply: bool = False
    kind: Literal["turn_latency"] = "turn_latency"

    @property
    def first_audio_ms(self) -> float:
        """End of speech -> the first bot audio of any kind (a filler counts)."""
        first = self.first_frame_at if self.filler_frame_at is None else min(self.filler_frame_at, self.first_frame_at)
        return (first - self.speech_end_at) * 1000

    @property
    def endpointing_ms(self) -> float:
        return (self.turn_end_at - self.speech_end_at) * 1000

    @property
    def total_ms(self) -> float:
        """End of speech -> first media frame written: what the caller experiences."""
        return (self.first_frame_at - self.speech_end_at) * 1000

    @property
    def runtime_overhead_ms(self) -> float:
        """Turn end -> first frame, minus the engines' own time: what the runtime adds. For a
        reply started early, the engines' time before the turn end is hidden: what remains is
        from when the audio was both ready and allowed out to the first frame. When a cached
        acknowledgement went out first, the answer waited for it by design: the runtime's
        share is then the acknowledgement's own queue -> first frame."""
        if self.filler_queued_at is not None and self.filler_frame_at is not None:
            return (self.filler_frame_at - self.filler_queued_at) * 1000
        if self.speculative_reply:
            return (self.first_frame_at - max(self.turn_end_at, self.first_audio_at)) * 1000
        pipeline_ms = (self.first_frame_at - self.turn_end_at) * 1000
        return pipeline_ms - self.stt_engine_ms - self.bot_ms - self.tts_engine_ms

    def breakdown(self) -> dict[str, float]:
        return {
            "endpointing_ms": round(self.endpointing_ms, 1),
            "stt_ms": round((self.stt_done_at - self.turn_end_at) * 1000, 1),
            "bot_ms": round((self.first_text_at - self.stt_done_at) * 1000, 1),
            "tts_ms": round((self.first_audio_at - self.first_text_at) * 1000, 1),
            "send_ms": round((self.first_frame_at - self.first_audio_at) * 1000, 1),
            "total_ms": round(self.total_ms, 1),
            "first_audio_ms": round(self.first_audio_ms, 1),
            "runtime_overhead_ms": round(self.runtime_overhead_ms, 2),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GreetingLatency:
    """Stream start -> first greeting frame written."""

    at: float
    latency_ms: float
    kind: Literal["greeting_latency"] = "greeting_latency"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerUtterance:
    """``at``: when the transcript was ready; ``onset_at``/``speech_end_at``: when the caller's
    speech began and ended (seconds since stream start), so gaps between the parties show."""

    at: float
    turn: int
    text: str
    speech_ms: float
    onset_at: float | None = None
    speech_end_at: float | None = None
    kind: Literal["caller_utterance"] = "caller_utterance"


@dataclass(frozen=True, slots=True, kw_only=True)
class BotUtterance:
    at: float
    turn: int
    text: str
    audio_ms: float
    kind: Literal["bot_utterance"] = "bot_utterance"


@dataclass(frozen=True, slots=True, kw_only=True)
class Interruption:
    """The caller spoke over the bot; how much of the bot's reply they had heard."""

    at: float
    turn: int
    reply_text: str
    heard_text: str
    reply_audio_ms: float
    heard_ms: float
    #: caller speech onset -> `clear` written to Twilio
    reaction_ms: float
    kind: Literal["interruption"] = "interruption"


@dataclass(frozen=True, slots=True, kw_only=True)
class Silence:
    at: float
    action: Literal["prompt", "hangup"]
    silent_s: float
    kind: Literal["silence"] = "silence"


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived:
    at: float
    digit: str
    kind: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolViolation:
    at: float
    error: str
    kind: Literal["protocol_error"] = "protocol_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class VendorDegraded:
    """A stage was served by the local engine instead of the vendor (failure or open breaker)."""

    at: float
    turn: int
    stage: Literal["stt", "llm", "tts"]
    reason: str
    kind: Literal["vendor_degraded"] = "vendor_degraded"


CoverPurpose = Literal["ack", "filler"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FillerPlayed:
    """The answer was late, so a cached phrase covered the silence: an acknowledgement when the
    turn budget was about to be missed, a filler when the answer was much later still."""

    at: float
    turn: int
    text: str
    purpose: CoverPurpose = "filler"
    kind: Literal["filler"] = "filler"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyResumed:
    """A barge-in turned out to be no words at all (noise, a cough): the bot picked up again."""

    at: float
    turn: int
    text: str
    kind: Literal["reply_resumed"] = "reply_resumed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyHeard:
    """The caller heard the whole of a bot reply: its last mark came back from Twilio (when the
    bot stopped talking, for the gap before the caller answers)."""

    at: float
    turn: int
    kind: Literal["reply_heard"] = "reply_heard"


@dataclass(frozen=True, slots=True, kw_only=True)
class BotTalkedOver:
    """A reply's first audio went out while the caller was speaking: the bot talked over them."""

    at: float
    turn: int
    kind: Literal["bot_talked_over"] = "bot_talked_over"


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnUnanswered:
    """A caller turn that got no reply at all (the bot failed, or had nothing to say)."""

    at: float
    turn: int
    reason: str
    kind: Literal["turn_unanswered"] = "turn_unanswered"


ComplianceRule = Literal["ai_disclosure", "recording_disclosure", "calling_hours"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ComplianceCheck:
    """One legal requirement checked on this call (``runtime.compliance``): passed or not, and
    what was checked (the words said, the lead's local time)."""

    at: float
    rule: ComplianceRule
    ok: bool
    detail: str
    kind: Literal["compliance"] = "compliance"


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOff:
    """One bot handed the caller to another mid-call; ``latency_ms`` from the decision to the new
    bot's first words being produced."""

    at: float
    turn: int
    from_bot: str
    to_bot: str
    reason: str
    latency_ms: float
    kind: Literal["hand_off"] = "hand_off"


TransferPhase = Literal["requested", "started", "refused", "ended", "returned"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferEvent:
    """A warm transfer to a person: asked for by the bot, started over Twilio (or refused), how it
    ended (``outcome``: joined, no_answer, busy, voicemail, failed, caller_hung_up), and the caller
    back with the bot after a failed one."""

    at: float
    phase: TransferPhase
    reason: str = ""
    outcome: str = ""
    detail: str = ""
    kind: Literal["transfer"] = "transfer"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    at: float
    reason: str
    kind: Literal["call_ended"] = "call_ended"


CallEvent = (
    TurnLatency
    | GreetingLatency
    | CallerUtterance
    | BotUtterance
    | Interruption
    | Silence
    | DtmfReceived
    | ProtocolViolation
    | VendorDegraded
    | FillerPlayed
    | ReplyResumed
    | ReplyHeard
    | BotTalkedOver
    | TurnUnanswered
    | ComplianceCheck
    | HandOff
    | TransferEvent
    | CallEnded
)


def event_to_dict(event: CallEvent) -> dict[str, Any]:
    data = dataclasses.asdict(event)
    if isinstance(event, TurnLatency):
        data.update(event.breakdown())
    return data


class EventSink(ABC):
    """Where call events go. ``emit`` must return at once; it is called on the hot path."""

    @abstractmethod
    def emit(self, call_sid: str, event: CallEvent) -> None: ...


class FanoutSink(EventSink):
    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, call_sid: str, event: CallEvent) -> None:
        for sink in self.sinks:
            sink.emit(call_sid, event)
