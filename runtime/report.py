"""Each call's events kept in memory as its report (persistence comes with the storage layer)."""

from __future__ import annotations

import statistics
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from bots.base import CallContext
from runtime.events import CallEvent, EventSink, Interruption, TurnLatency, event_to_dict
from runtime.outbound import PacingStats
from telephony.call_state import CallLifecycle


@dataclass(frozen=True, slots=True, kw_only=True)
class AmdResult:
    """Twilio's answering-machine detection verdict on an outbound call (protocols.md §1.5)."""

    #: ``AnsweredBy``: human, machine_start, machine_end_beep/_silence/_other, fax or unknown
    answered_by: str
    #: ``MachineDetectionDuration``: how long Twilio listened before deciding, in ms
    duration_ms: int | None
    #: wall-clock time the verdict arrived
    at: float


@dataclass
class CallReport:
    """Everything known about one call: context, lifecycle, events, pacing."""

    context: CallContext
    lifecycle: CallLifecycle
    started_wall: float = field(default_factory=time.time)
    events: list[CallEvent] = field(default_factory=list)
    pacing: PacingStats | None = None
    end_reason: str = ""
    bot_state: dict[str, Any] = field(default_factory=dict)
    protocol_errors: int = 0
    dropped_inbound_frames: int = 0
    #: the latest answering-machine detection verdict (outbound calls dialled with AMD)
    amd: AmdResult | None = None

    def add(self, event: CallEvent) -> None:
        self.events.append(event)

    def turn_latencies(self) -> list[TurnLatency]:
        return [e for e in self.events if isinstance(e, TurnLatency)]

    def to_dict(self) -> dict[str, Any]:
        turns = self.turn_latencies()
        totals = [t.total_ms for t in turns]
        pacing = self.pacing or PacingStats()
        return {
            "call_sid": self.context.call_sid,
            "tenant": self.context.tenant,
            "direction": self.context.direction,
            "from": self.context.from_number,
            "to": self.context.to_number,
            "bot": self.context.bot,
            "status": str(self.lifecycle.status),
            "started_at": self.started_wall,
            "end_reason": self.end_reason,
            "summary": {
                "turns": len(turns),
                "turn_latency_ms_p50": round(statistics.median(totals), 1) if totals else None,
                "turn_latency_ms_max": round(max(totals), 1) if totals else None,
                "interruptions": sum(isinstance(e, Interruption) for e in self.events),
                "frames_sent": pacing.frames_sent,
                "late_frames": pacing.late_frames,
                "pacing_jitter_ms_p99": round(pacing.jitter.percentile(99), 2),
                "protocol_errors": self.protocol_errors,
                "dropped_inbound_frames": self.dropped_inbound_frames,
            },
            "pacing_jitter_ms": pacing.jitter.to_dict(),
            "bot_state": self.bot_state,
            "amd": None if self.amd is None else asdict(self.amd),
            "events": [event_to_dict(e) for e in self.events],
        }


class ReportStore(EventSink):
    """Reports of live calls and of the most recent finished ones (bounded)."""

    def __init__(self, keep_finished: int = 1000) -> None:
        self.keep_finished = keep_finished
        self._reports: OrderedDict[str, CallReport] = OrderedDict()

    def open(self, report: CallReport) -> CallReport:
        self._reports[report.context.call_sid] = report
        self._reports.move_to_end(report.context.call_sid)
        while len(self._reports) > self.keep_finished:
            self._reports.popitem(last=False)
        return report

    def get(self, call_sid: str) -> CallReport | None:
        return self._reports.get(call_sid)

    def recent(self, limit: int) -> list[CallReport]:
        return list(self._reports.values())[-limit:][::-1]

    def emit(self, call_sid: str, event: CallEvent) -> None:
        report = self._reports.get(call_sid)
        if report is not None:
            report.add(event)
