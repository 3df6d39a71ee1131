"""The embedded call store: the Postgres schema in one SQLite file (aiosqlite), for a bare machine.

Datetimes are stored as integer microseconds since the epoch (exact ordering and equality),
JSON columns as text. One connection, writes serialised by a lock; WAL so the API's reads
do not wait on writes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from analytics.migrate import SQLITE_BUSY_TIMEOUT_MS, migrate_sqlite
from analytics.records import (
    DATETIME_FIELDS,
    AppointmentRecord,
    CallEventRecord,
    CallRecord,
    RecordingRecord,
    StoreItem,
    UsageRecord,
    UtteranceRecord,
)
from analytics.store import (
    LATENCY_STAGES,
    CallFilter,
    CallStore,
    StoreError,
    TableSpec,
    duration_summary,
    grouped,
    latency_summary,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: JSON text columns of the record tables (bot_sessions.state is read on its own: calls.state is text).
_JSON_COLUMNS = frozenset({"payload", "details", "bots"})


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _to_column(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, dict | tuple):
        return json.dumps(value)
    return value


def _from_row(row: aiosqlite.Row) -> dict[str, Any]:
    data = dict(row)
    for column, value in data.items():
        if value is None:
            continue
        if column in DATETIME_FIELDS:
            data[column] = from_micros(value)
        elif column in _JSON_COLUMNS:
            data[column] = json.loads(value)
    if "bots" in data:
        data["bots"] = tuple(data["bots"])
    return data


def _row(spec: TableSpec, item: StoreItem) -> list[Any]:
    return [_to_column(getattr(item, column)) for column in spec.columns]


class SqliteCallStore(CallStore):
    """Opens (and migrates) the file on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        if self._db is None:
            await migrate_sqlite(self.path)
            db = await aiosqlite.connect(self.path, isolation_level=None)
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            self._db = db
        return self._db

    async def _transaction(self, statements: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> int:
        """Run the statements in one transaction; returns the rows they changed."""
        async with self._lock:
            try:
                db = await self._connect()
                await db.execute("BEGIN IMMEDIATE")
            except (sqlite3.Error, OSError) as e:
                raise StoreError(f"sqlite unavailable: {e!r}", retryable=True) from e
            try:
                changed = 0
                for sql, rows in statements:
                    cursor = await db.executemany(sql, rows)
                    changed += cursor.rowcount
                await db.execute("COMMIT")
                return changed
            except sqlite3.Error as e:
                await db.execute("ROLLBACK")
                refused = isinstance(e, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError)
                raise StoreError(f"sqlite write failed: {e!r}", retryable=not refused) from e
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def _fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        async with self._lock:
            try:
                db = await self._connect()
                async with db.execute(sql, args) as cursor:
                    rows = await cursor.fetchall()
            except (sqlite3.Error, OSError) as e:
                raise StoreError(f"sqlite read failed: {e!r}", retryable=True) from e
        return [_from_row(row) for row in rows]

    async def write(self, items: Sequence[StoreItem]) -> None:
        try:
            batches = self._batches(items)
        except (TypeError, ValueError) as e:
            raise StoreError(f"a row cannot be stored: {e}", retryable=False) from e
        if batches:
            await self._transaction(batches)

    @staticmethod
    def _batches(items: Sequence[StoreItem]) -> list[tuple[str, list[list[Any]]]]:
        return [
            (spec.insert_sql(lambda _: "?"), [_row(spec, r) for r in rows]) for spec, rows in grouped(items).items()
        ]

    async def save_bot_session(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        sql = (
            "INSERT INTO bot_sessions (tenant, phone, state, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tenant, phone) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
        )
        await self._transaction([(sql, [(tenant, phone, json.dumps(state), to_micros(datetime.now(UTC)))])])

    async def load_bot_session(self, tenant: str, phone: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT state FROM bot_sessions WHERE tenant = ? AND phone = ?", tenant, phone)
        return dict(json.loads(rows[0]["state"])) if rows else None

    async def list_calls(
        self,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        outcome: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[CallRecord]:
        where, args = _where(CallFilter(tenant=tenant, since=since, until=until, outcome=outcome))
        sql = f"SELECT * FROM calls c {where} ORDER BY started_at DESC, call_sid LIMIT ? OFFSET ?"
        return [CallRecord(**row) for row in await self._fetch(sql, *args, limit, offset)]

    async def get_call(self, call_sid: str) -> CallRecord | None:
        rows = await self._fetch("SELECT * FROM calls WHERE call_sid = ?", call_sid)
        return CallRecord(**rows[0]) if rows else None

    async def call_events(self, call_sid: str) -> list[CallEventRecord]:
        rows = await self._fetch("SELECT * FROM call_events WHERE call_sid = ? ORDER BY seq", call_sid)
        return [CallEventRecord(**row) for row in rows]

    async def call_utterances(self, call_sid: str) -> list[UtteranceRecord]:
        rows = await self._fetch("SELECT * FROM utterances WHERE call_sid = ? ORDER BY seq", call_sid)
        return [UtteranceRecord(**row) for row in rows]

    async def call_recording(self, call_sid: str) -> RecordingRecord | None:
        rows = await self._fetch("SELECT * FROM recordings WHERE call_sid = ?", call_sid)
        return RecordingRecord(**rows[0]) if rows else None

    async def recording_paths(self, created_before: datetime) -> list[str]:
        rows = await self._fetch("SELECT path FROM recordings WHERE created_at < ?", to_micros(created_before))
        return [row["path"] for row in rows]

    async def forget_recordings(self, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        return await self._transaction([("DELETE FROM recordings WHERE path = ?", [[path] for path in set(paths)])])

    async def call_appointments(self, call_sid: str) -> list[AppointmentRecord]:
        rows = await self._fetch("SELECT * FROM appointments WHERE call_sid = ? ORDER BY starts_at", call_sid)
        return [AppointmentRecord(**row) for row in rows]

    async def call_usage(self, call_sid: str) -> UsageRecord | None:
        sql = "SELECT call_sid, tenant, billable_seconds, recorded_at FROM usage WHERE call_sid = ?"
        rows = await self._fetch(sql, call_sid)
        return UsageRecord(**rows[0]) if rows else None

    async def aggregate(self, tenant: str | None, since: datetime, until: datetime) -> dict[str, Any]:
        where, args = _where(CallFilter(tenant=tenant, since=since, until=until))
        totals = (await self._fetch(_TOTALS_SQL.format(where=where), *args, *args, *args))[0]
        outcomes = await self._fetch(_OUTCOMES_SQL.format(where=where), *args)
        payloads = await self._fetch(_LATENCY_SQL.format(where=where), *args)
        return {
            "calls": totals["calls"],
            "duration_s": duration_summary(totals["total"], totals["mean"], totals["max"]),
            "outcomes": {row["outcome"]: row["n"] for row in outcomes},
            "bookings": totals["bookings"],
            "billable_minutes": totals["billable_minutes"],
            "latency_ms": _latency([row["payload"] for row in payloads]),
        }

    async def aclose(self) -> None:
        async with self._lock:
            if self._db is not None:
                await self._db.close()
                self._db = None


_TOTALS_SQL = """
SELECT
    (SELECT count(*) FROM appointments a JOIN calls c ON c.call_sid = a.call_sid {where}) AS bookings,
    (SELECT coalesce(sum(u.billable_minutes), 0) FROM usage u JOIN calls c ON c.call_sid = u.call_sid {where})
        AS billable_minutes,
    count(*) AS calls, sum(duration_s) AS total, avg(duration_s) AS mean, max(duration_s) AS max
FROM calls c {where}"""
_OUTCOMES_SQL = "SELECT outcome, count(*) AS n FROM calls c {where} AND outcome IS NOT NULL GROUP BY outcome"
_LATENCY_SQL = """
SELECT e.payload FROM calls c JOIN call_events e ON e.call_sid = c.call_sid AND e.kind = 'turn_latency' {where}"""


def _where(call_filter: CallFilter) -> tuple[str, list[object]]:
    """``WHERE`` over the calls table ``c`` ("WHERE 1" when unfiltered, so callers can AND on)."""
    conditions = call_filter.conditions()
    clauses = [sql.format("?") for sql, _ in conditions]
    return "WHERE " + " AND ".join(clauses or ["1"]), [_to_column(value) for _, value in conditions]


def _latency(payloads: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        stage: latency_summary([float(p[stage]) for p in payloads if p.get(stage) is not None])
        for stage in LATENCY_STAGES
    }
