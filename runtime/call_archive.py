"""What every call leaves behind: its record, events, redacted transcript, appointment, usage,
recording metadata and post-call analytics, handed to the write-behind buffer (which stores them
and publishes them on the live bus) without the call ever waiting on a database.

Transcript text is redacted here, before it reaches any store, bus or log; the unredacted text is
kept only when a transcript key is configured, and then only encrypted.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.call_analytics import CallAnalytics, analyse_call
from analytics.pii import Cipher, redact
from analytics.records import (
    AppointmentRecord,
    CallEventRecord,
    CallRecord,
    RecordingRecord,
    UsageRecord,
    UtteranceRecord,
    call_event_record,
)
from analytics.summary import summarise_with_llm
from analytics.write_behind import WriteBehind
from runtime.events import (
    BotUtterance,
    CallerUtterance,
    CallEvent,
    EventSink,
    Interruption,
    ReplyResumed,
    TurnLatency,
    VendorDegraded,
)
from runtime.llm import LanguageModel
from runtime.metrics import CallMetrics
from runtime.report import CallReport

log = logging.getLogger(__name__)

#: The live view's rolling counters, by the event kind that counts in them.
COUNTED_EVENTS = {
    "turn_latency": "turns",
    "interruption": "interruptions",
    "silence": "silences",
    "hand_off": "hand_offs",
    "transfer": "transfer_steps",
    "vendor_degraded": "vendor_faults",
    "filler": "fillers",
}

#: Calls whose numbering is remembered after they end: a transfer's outcome and the caller's
#: return arrive after the first stream has ended, and must continue its sequence.
REMEMBERED_CALLS = 5000


@dataclass
class _Numbering:
    tenant: str
    events: int = 0
    utterances: int = 0


def _wall(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class CallArchive(EventSink):
    """An ``EventSink`` (it sees every call event) plus the call's start and end."""

    def __init__(
        self,
        writer: WriteBehind,
        *,
        analyst: Executor | None = None,
        summariser: LanguageModel | None = None,
        cipher: Cipher | None = None,
        metrics: CallMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.writer = writer
        self._analyst = analyst
        self._summariser = summariser
        self._cipher = cipher
        self._metrics = metrics
        self._now = now
        self._calls: OrderedDict[str, _Numbering] = OrderedDict()
        #: (tenant, counter) -> increments not yet added to the live bus's rolling counters
        self.counts: Counter[tuple[str, str]] = Counter()

    def call_started(self, report: CallReport) -> None:
        context = report.context
        numbering = self._calls.get(context.call_sid) or _Numbering(context.tenant)
        self._calls[context.call_sid] = numbering
        self._calls.move_to_end(context.call_sid)
        while len(self._calls) > REMEMBERED_CALLS:
            self._calls.popitem(last=False)
        self.writer.submit(self._call_record(report, state="in-progress"))
        self.counts[context.tenant, "calls_started"] += 1

    def emit(self, call_sid: str, event: CallEvent) -> None:
        numbering = self._calls.get(call_sid)
        if numbering is None:
            return  # not a call this archive was told about (e.g. started before it existed)
        self._measure(event)
        if event.kind in COUNTED_EVENTS:
            self.counts[numbering.tenant, COUNTED_EVENTS[event.kind]] += 1
        stored = _redacted(event)
        numbering.events += 1
        self.writer.submit(call_event_record(call_sid, numbering.tenant, numbering.events, stored))
        if isinstance(stored, CallerUtterance | BotUtterance):
            self._utterance(call_sid, numbering, stored, original=event)

    async def call_ended(self, report: CallReport, recording: RecordingRecord | None = None) -> None:
        """The call's final record, usage, appointment, recording and analytics. The analytics run
        in ``analyst`` (a worker process in the server): language detection over a call takes a
        noticeable fraction of a second of pure Python, and in a thread of this process, with
        many calls ending together, it would hold the GIL against every call's audio pacing."""
        call_sid = report.context.call_sid
        numbering = self._calls.get(call_sid)
        if numbering is None:
            return
        loop = asyncio.get_running_loop()
        events, state = list(report.events), dict(report.bot_state)
        analytics = await loop.run_in_executor(self._analyst, analyse_report, events, state)
        if self._summariser is not None:
            said = [e for e in events if isinstance(e, CallerUtterance | BotUtterance)]
            # Claude writes the prose (redacted, bounded in time; the built summary on any failure).
            summary = await summarise_with_llm(self._summariser, analytics.summary, said)
            analytics = dataclasses.replace(analytics, summary=summary)
        ended = self._now()
        self.writer.submit(self._call_record(report, state="completed", ended=ended, analytics=analytics))
        self.writer.submit(
            UsageRecord(
                call_sid=call_sid,
                tenant=numbering.tenant,
                billable_seconds=round((ended - _wall(report.started_wall)).total_seconds()),
                recorded_at=ended,
            )
        )
        appointment = _appointment(report, numbering.tenant, ended)
        if appointment is not None:
            self.writer.submit(appointment)
            self.counts[numbering.tenant, "appointments"] += 1
        self.counts[numbering.tenant, "calls_ended"] += 1
        if recording is not None:
            self.writer.submit(recording)
        numbering.events += 1
        self.writer.submit(
            CallEventRecord(
                call_sid=call_sid,
                tenant=numbering.tenant,
                seq=numbering.events,
                kind="call_analytics",
                at=analytics.conversation.duration_s,
                payload=analytics.to_dict(),
            )
        )

    def _call_record(
        self, report: CallReport, *, state: str, ended: datetime | None = None, analytics: CallAnalytics | None = None
    ) -> CallRecord:
        context = report.context
        started = _wall(report.started_wall)
        handoffs = report.bot_state.get("handoffs") or []
        bots = tuple(dict.fromkeys([context.bot, *(h.get("to", "") for h in handoffs if isinstance(h, dict))]))
        return CallRecord(
            call_sid=context.call_sid,
            tenant=context.tenant,
            direction=context.direction,
            from_number=context.from_number,
            to_number=context.to_number,
            state=state,
            started_at=started,
            ended_at=ended,
            bots=tuple(b for b in bots if b),
            outcome=analytics.summary.outcome.result if analytics else None,
            duration_s=(ended - started).total_seconds() if ended else None,
        )

    def _utterance(
        self, call_sid: str, numbering: _Numbering, said: CallerUtterance | BotUtterance, *, original: CallEvent
    ) -> None:
        numbering.utterances += 1
        if isinstance(said, CallerUtterance):
            speaker, start, end = "caller", said.at - said.speech_ms / 1000, said.at
        else:
            speaker, start, end = "bot", said.at, said.at + said.audio_ms / 1000
        self.writer.submit(
            UtteranceRecord(
                call_sid=call_sid,
                tenant=numbering.tenant,
                seq=numbering.utterances,
                speaker=speaker,  # type: ignore[arg-type]  # one of the two literals above
                text=said.text,
                start_s=max(0.0, start),
                end_s=end,
            )
        )
        if self._cipher is not None and isinstance(original, CallerUtterance | BotUtterance):
            numbering.events += 1
            sealed = base64.b64encode(self._cipher.encrypt(original.text)).decode("ascii")
            self.writer.submit(
                CallEventRecord(
                    call_sid=call_sid,
                    tenant=numbering.tenant,
                    seq=numbering.events,
                    kind="raw_transcript",
                    at=said.at,
                    payload={"turn": said.turn, "speaker": speaker, "fernet": sealed},
                )
            )

    def _measure(self, event: CallEvent) -> None:
        if self._metrics is None:
            return
        if isinstance(event, TurnLatency):
            self._metrics.turn(event.breakdown())
        elif isinstance(event, VendorDegraded):
            self._metrics.vendor_error(event.stage, event.reason.split(":", 1)[0][:40])


def analyse_report(events: list[CallEvent], bot_state: dict[str, Any]) -> CallAnalytics:
    """``analyse_call`` on what a worker process can be sent: the report's events (which end
    with the session's ``CallEnded``) and the bot's state."""
    return analyse_call(events, None, bot_state)


def _redacted(event: CallEvent) -> CallEvent:
    """The event with every transcript text redacted (what may be stored and published)."""
    if isinstance(event, CallerUtterance | BotUtterance):
        return dataclasses.replace(event, text=redact(event.text).text)
    if isinstance(event, ReplyResumed):
        return dataclasses.replace(event, text=redact(event.text).text)
    if isinstance(event, Interruption):
        return dataclasses.replace(
            event, reply_text=redact(event.reply_text).text, heard_text=redact(event.heard_text).text
        )
    return event


def _appointment(report: CallReport, tenant: str, booked_at: datetime) -> AppointmentRecord | None:
    booked: Any = report.bot_state.get("appointment")
    if not isinstance(booked, dict) or not booked.get("id"):
        return None
    try:
        starts, ends = datetime.fromisoformat(booked["start"]), datetime.fromisoformat(booked["end"])
    except (KeyError, TypeError, ValueError):
        log.warning("appointment in bot state unreadable", extra={"call_sid": report.context.call_sid})
        return None
    return AppointmentRecord(
        appointment_id=str(booked["id"]),
        call_sid=report.context.call_sid,
        tenant=tenant,
        starts_at=starts,
        ends_at=ends,
        title=str(booked.get("title", "")),
        booked_at=booked_at,
        details={k: v for k, v in booked.items() if k not in ("id", "start", "end", "title")},
    )
