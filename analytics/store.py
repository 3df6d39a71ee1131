"""The call store: where calls, their events, transcripts and outcomes are kept.

``PgCallStore`` (Postgres) in production, ``SqliteCallStore`` (an embedded file) when no
``DATABASE_URL`` is configured; both run the same test-suite. Every write is idempotent
(events and utterances are keyed by call and sequence number, the rest upserted), so a
retried batch changes nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from analytics.records import (
    AppointmentRecord,
    CallEventRecord,
    CallRecord,
    RecordingRecord,
    StoreItem,
    UsageRecord,
    UtteranceRecord,
)

#: Where the embedded SQLite store lives when neither a URL nor a data dir is given.
DEFAULT_DATA_DIR = Path("leadline-data")
SQLITE_FILE_NAME = "leadline.sqlite3"

#: The turn-latency breakdown keys (``TurnLatency.breakdown``) aggregated per stage.
LATENCY_STAGES = (
    "endpointing_ms",
    "stt_ms",
    "bot_ms",
    "tts_ms",
    "send_ms",
    "total_ms",
    "first_audio_ms",
    "runtime_overhead_ms",
)
PERCENTILES = (50, 90, 95, 99)


class StoreError(Exception):
    """A store operation failed.

    ``retryable`` is true when the same write may succeed later (database down, connection
    lost, timeout); false when the rows themselves are refused (a constraint or data error):
    the write-behind buffer then isolates and sets aside the offending row.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one record type maps to its table: columns named as the record's fields."""

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    #: True: a rewrite replaces the row (latest wins); False: the first write stays.
    replace: bool

    def insert_sql(self, placeholder: Callable[[int], str]) -> str:
        """An idempotent INSERT (``ON CONFLICT``, same syntax in Postgres and SQLite)."""
        values = ", ".join(placeholder(i + 1) for i in range(len(self.columns)))
        conflict = f"ON CONFLICT ({', '.join(self.key)}) DO "
        if self.replace:
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.columns if c not in self.key)
            conflict += f"UPDATE SET {updates}"
        else:
            conflict += "NOTHING"
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({values}) {conflict}"


def _columns(cls: type[StoreItem], *extra: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls)) + extra


TABLES: dict[type[StoreItem], TableSpec] = {
    CallRecord: TableSpec("calls", ("call_sid",), _columns(CallRecord), replace=True),
    CallEventRecord: TableSpec("call_events", ("call_sid", "seq"), _columns(CallEventRecord), replace=False),
    UtteranceRecord: TableSpec("utterances", ("call_sid", "seq"), _columns(UtteranceRecord), replace=False),
    AppointmentRecord: TableSpec("appointments", ("appointment_id",), _columns(AppointmentRecord), replace=True),
    RecordingRecord: TableSpec("recordings", ("call_sid",), _columns(RecordingRecord), replace=True),
    UsageRecord: TableSpec("usage", ("call_sid",), _columns(UsageRecord, "billable_minutes"), replace=True),
}


def grouped(items: Sequence[StoreItem]) -> dict[TableSpec, list[StoreItem]]:
    """Rows by table, each table's rows in order (so a later upsert of a row still wins);
    tables are independent, so their relative order does not matter."""
    by_table: dict[TableSpec, list[StoreItem]] = {}
    for item in items:
        by_table.setdefault(TABLES[type(item)], []).append(item)
    return by_table


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFilter:
    """Which calls a listing or an aggregate covers (``since`` inclusive, ``until`` exclusive)."""

    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: str | None = None

    def conditions(self) -> list[tuple[str, object]]:
        """(condition on the calls table ``c`` with one ``{}`` placeholder, value) per filter set."""
        candidates: list[tuple[str, object]] = [
            ("c.tenant = {}", self.tenant),
            ("c.started_at >= {}", self.since),
            ("c.started_at < {}", self.until),
            ("c.outcome = {}", self.outcome),
        ]
        return [(sql, value) for sql, value in candidates if value is not None]


class CallStore(ABC):
    """Persistence of calls. Writes are idempotent; reads serve the API and the dashboard."""

    @abstractmethod
    async def write(self, items: Sequence[StoreItem]) -> None:
        """Store a batch of mixed rows in one transaction, in order (later upserts win)."""

    async def upsert_call(self, call: CallRecord) -> None:
        await self.write([call])

    async def add_events(self, events: Sequence[CallEventRecord]) -> None:
        await self.write(events)

    async def add_utterances(self, utterances: Sequence[UtteranceRecord]) -> None:
        await self.write(utterances)

    async def add_appointment(self, appointment: AppointmentRecord) -> None:
        await self.write([appointment])

    async def add_recording(self, recording: RecordingRecord) -> None:
        await self.write([recording])

    async def add_usage(self, usage: UsageRecord) -> None:
        await self.write([usage])

    @abstractmethod
    async def save_bot_session(self, tenant: str, phone: str, state: dict[str, Any]) -> None: ...

    @abstractmethod
    async def load_bot_session(self, tenant: str, phone: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def list_calls(
        self,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        outcome: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CallRecord]:
        """Newest first."""

    @abstractmethod
    async def get_call(self, call_sid: str) -> CallRecord | None: ...

    @abstractmethod
    async def call_events(self, call_sid: str) -> list[CallEventRecord]:
        """In sequence order."""

    @abstractmethod
    async def call_utterances(self, call_sid: str) -> list[UtteranceRecord]:
        """In sequence order."""

    @abstractmethod
    async def call_recording(self, call_sid: str) -> RecordingRecord | None: ...

    @abstractmethod
    async def recording_paths(self, created_before: datetime) -> list[str]:
        """The files of the recordings created before ``created_before``: those the retention
        sweep may have deleted, so it can forget the rows whose file is gone."""

    @abstractmethod
    async def forget_recordings(self, paths: Sequence[str]) -> int:
        """Remove the recordings whose file is one of ``paths`` (deleted from disk, so the API
        must no longer offer them); returns the rows removed. Forgetting twice is harmless."""

    @abstractmethod
    async def call_appointments(self, call_sid: str) -> list[AppointmentRecord]: ...

    @abstractmethod
    async def call_usage(self, call_sid: str) -> UsageRecord | None: ...

    @abstractmethod
    async def aggregate(self, tenant: str | None, since: datetime, until: datetime) -> dict[str, Any]:
        """Figures over the calls started in [since, until) (all tenants when ``tenant`` is None):

        ``{"calls", "duration_s": {"total", "mean", "max"}, "outcomes": {outcome: n},
        "bookings", "billable_minutes", "latency_ms": {stage: {"count", "p50", "p90", "p95",
        "p99"}}}``; percentiles interpolate linearly (Postgres ``percentile_cont``), rounded to
        0.1 ms; a stage with no turns has count 0 and None percentiles.
        """

    @abstractmethod
    async def aclose(self) -> None: ...


def percentile_cont(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks, as Postgres ``percentile_cont``."""
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(values: Sequence[float]) -> dict[str, Any]:
    """One stage's count and percentiles, as ``CallStore.aggregate`` reports them."""
    ordered = sorted(values)
    summary: dict[str, Any] = {"count": len(ordered)}
    for p in PERCENTILES:
        summary[f"p{p}"] = round(percentile_cont(ordered, p / 100), 1) if ordered else None
    return summary


def duration_summary(total: float | None, mean: float | None, longest: float | None) -> dict[str, float | None]:
    """Call durations in seconds, rounded to the millisecond (sums differ in the last bits
    between databases)."""
    return {
        "total": round(total or 0.0, 3),
        "mean": None if mean is None else round(mean, 3),
        "max": None if longest is None else round(longest, 3),
    }


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` URL (the
    SQLAlchemy convention), None for any other URL."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///"))


def embedded_url(data_dir: Path) -> str:
    """The SQLite URL of the embedded store under ``data_dir``."""
    return "sqlite:///" + str(data_dir / SQLITE_FILE_NAME)


def open_store(database_url: str | None, *, data_dir: Path = DEFAULT_DATA_DIR) -> CallStore:
    """The store a URL names; the embedded SQLite file under ``data_dir`` when None.

    Connections open lazily on first use, so a store can be built while its database is
    down (the write-behind buffer keeps the writes until it is back).
    """
    from analytics.pg_store import PgCallStore
    from analytics.sqlite_store import SqliteCallStore

    url = database_url or embedded_url(data_dir)
    path = sqlite_path(url)
    if path is not None:
        return SqliteCallStore(path)
    if is_postgres_url(url):
        return PgCallStore(url)
    raise ValueError("database URL must start with postgres://, postgresql:// or sqlite:///")
