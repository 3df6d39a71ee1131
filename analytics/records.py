"""The typed rows a call leaves behind, and their JSON form (for the live bus and spill files).

Every record carries its tenant, so the live bus can route it and a store can scope reads
without joins. Datetimes are timezone-aware (UTC when stored); ``at``, ``start_s`` and
``end_s`` are seconds since the call's stream started, as in ``runtime.events``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from runtime.events import CallEvent, TurnLatency, event_to_dict

Speaker = Literal["caller", "bot"]


def _check_aware(*moments: datetime | None) -> None:
    if any(m is not None and m.utcoffset() is None for m in moments):
        raise ValueError("stored datetimes must be timezone-aware")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One call, upserted as it progresses (the latest write wins)."""

    call_sid: str
    tenant: str
    direction: str
    from_number: str
    to_number: str
    state: str
    started_at: datetime
    ended_at: datetime | None = None
    bots: tuple[str, ...] = ()
    outcome: str | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        _check_aware(self.started_at, self.ended_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEventRecord:
    """One typed call event (``runtime.events``), keyed by its per-call sequence number."""

    call_sid: str
    tenant: str
    seq: int
    kind: str
    at: float
    payload: dict[str, Any] = field(default_factory=dict)


def call_event_record(call_sid: str, tenant: str, seq: int, event: CallEvent) -> CallEventRecord:
    """A pipeline event as stored: ``kind`` and ``at`` as columns, all of it (a turn's latency
    breakdown included, which ``CallStore.aggregate`` reads) in the payload. A turn's latency
    is placed on the timeline at the caller's end of speech, where the wait it measures began."""
    at = event.speech_end_at if isinstance(event, TurnLatency) else event.at
    return CallEventRecord(
        call_sid=call_sid, tenant=tenant, seq=seq, kind=event.kind, at=at, payload=event_to_dict(event)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UtteranceRecord:
    """One transcript line; ``text`` is already redacted by whoever hands it to the store."""

    call_sid: str
    tenant: str
    seq: int
    speaker: Speaker
    text: str
    start_s: float
    end_s: float
    language: str | None = None
    sentiment: float | None = None

    def __post_init__(self) -> None:
        if self.speaker not in ("caller", "bot"):
            raise ValueError(f"speaker must be 'caller' or 'bot', not {self.speaker!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppointmentRecord:
    """An appointment booked during a call; ``appointment_id`` is the calendar's own id."""

    appointment_id: str
    call_sid: str
    tenant: str
    starts_at: datetime
    ends_at: datetime
    title: str
    booked_at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_aware(self.starts_at, self.ends_at, self.booked_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRecord:
    """Where a call's recording is and what it is (the audio itself stays on disk)."""

    call_sid: str
    tenant: str
    path: str
    duration_s: float
    channels: int
    size_bytes: int
    created_at: datetime

    def __post_init__(self) -> None:
        _check_aware(self.created_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecord:
    """What a call costs: billed per started minute, as telephony carriers bill."""

    call_sid: str
    tenant: str
    billable_seconds: int
    recorded_at: datetime

    def __post_init__(self) -> None:
        _check_aware(self.recorded_at)
        if self.billable_seconds < 0:
            raise ValueError("billable_seconds must not be negative")

    @property
    def billable_minutes(self) -> int:
        return math.ceil(self.billable_seconds / 60)


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSessionRecord:
    """A bot's saved conversation state for one caller of one tenant."""

    tenant: str
    phone: str
    state: dict[str, Any]
    updated_at: datetime


StoreItem = CallRecord | CallEventRecord | UtteranceRecord | AppointmentRecord | RecordingRecord | UsageRecord

#: The JSON ``type`` tag of each record kind (bus messages, spill lines).
RECORD_TYPES: dict[str, type[StoreItem]] = {
    "call": CallRecord,
    "event": CallEventRecord,
    "utterance": UtteranceRecord,
    "appointment": AppointmentRecord,
    "recording": RecordingRecord,
    "usage": UsageRecord,
}
_TYPE_NAMES = {cls: name for name, cls in RECORD_TYPES.items()}
DATETIME_FIELDS = frozenset(
    {"started_at", "ended_at", "starts_at", "ends_at", "booked_at", "created_at", "recorded_at"}
)


def record_to_json(item: StoreItem) -> dict[str, Any]:
    """The record as JSON-ready values, tagged with its ``type``."""
    data: dict[str, Any] = {"type": _TYPE_NAMES[type(item)]}
    for f in fields(item):
        value = getattr(item, f.name)
        data[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return data


def record_from_json(data: dict[str, Any]) -> StoreItem:
    """Inverse of ``record_to_json``; raises ``KeyError``/``ValueError`` on a malformed row."""
    cls = RECORD_TYPES[data["type"]]
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in DATETIME_FIELDS and value is not None:
            value = datetime.fromisoformat(value)
        elif f.name == "bots":
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)
