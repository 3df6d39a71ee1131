"""The call store on Postgres (asyncpg): one pool, batched ``executemany`` writes, JSONB payloads."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from analytics.records import (
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
    PERCENTILES,
    CallFilter,
    CallStore,
    StoreError,
    TableSpec,
    duration_summary,
    grouped,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PgOptions:
    #: Shown in ``pg_stat_activity``, so operators (and tests) can find our connections.
    application_name: str = "leadline"
    #: Writes come from one write-behind task; the rest of the pool serves API reads.
    max_size: int = 5
    #: A query stuck longer than this fails and is retried, instead of stalling the buffer.
    command_timeout_s: float = 10.0
    #: Connecting to a database that is down fails fast; the buffer backs off and retries.
    connect_timeout_s: float = 5.0


#: The rows themselves are refused (retrying cannot help). ValueError and TypeError cover a value
#: the client cannot encode (asyncpg's client-side DataError is a ValueError).
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError, ValueError, TypeError)
_TRANSIENT_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def _placeholder(n: int) -> str:
    return f"${n}"


def _value(item: StoreItem, column: str) -> Any:
    value = getattr(item, column)
    return list(value) if isinstance(value, tuple) else value


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class PgCallStore(CallStore):
    """Connects lazily (the first use creates the pool), so it can be built while Postgres is down."""

    def __init__(self, database_url: str, options: PgOptions | None = None) -> None:
        self.database_url = database_url
        self.options = options or PgOptions()
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self.database_url,
                    min_size=1,
                    max_size=self.options.max_size,
                    command_timeout=self.options.command_timeout_s,
                    timeout=self.options.connect_timeout_s,
                    server_settings={"application_name": self.options.application_name},
                    init=_init_connection,
                )
            return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            pool = await self._get_pool()
            async with pool.acquire() as conn:
                yield conn
        except _DATA_ERRORS as e:
            raise StoreError(f"postgres refused the rows: {e}", retryable=False) from e
        except _TRANSIENT_ERRORS as e:
            raise StoreError(f"postgres unavailable: {e!r}", retryable=True) from e

    async def write(self, items: Sequence[StoreItem]) -> None:
        if not items:
            return
        async with self._connection() as conn, conn.transaction():
            for spec, rows in grouped(items).items():
                await conn.executemany(spec.insert_sql(_placeholder), [_row(spec, r) for r in rows])

    async def save_bot_session(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO bot_sessions (tenant, phone, state, updated_at) VALUES ($1, $2, $3, now()) "
                "ON CONFLICT (tenant, phone) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
                tenant,
                phone,
                state,
            )

    async def load_bot_session(self, tenant: str, phone: str) -> dict[str, Any] | None:
        async with self._connection() as conn:
            state = await conn.fetchval(
                "SELECT state FROM bot_sessions WHERE tenant = $1 AND phone = $2", tenant, phone
            )
        return None if state is None else dict(state)

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
        n = len(args)
        sql = f"SELECT * FROM calls c {where} ORDER BY started_at DESC, call_sid LIMIT ${n + 1} OFFSET ${n + 2}"
        async with self._connection() as conn:
            rows = await conn.fetch(sql, *args, limit, offset)
        return [_call(row) for row in rows]

    async def get_call(self, call_sid: str) -> CallRecord | None:
        async with self._connection() as conn:
            row = await conn.fetchrow("SELECT * FROM calls WHERE call_sid = $1", call_sid)
        return None if row is None else _call(row)

    async def call_events(self, call_sid: str) -> list[CallEventRecord]:
        rows = await self._fetch("SELECT * FROM call_events WHERE call_sid = $1 ORDER BY seq", call_sid)
        return [CallEventRecord(**dict(row)) for row in rows]

    async def call_utterances(self, call_sid: str) -> list[UtteranceRecord]:
        rows = await self._fetch("SELECT * FROM utterances WHERE call_sid = $1 ORDER BY seq", call_sid)
        return [UtteranceRecord(**dict(row)) for row in rows]

    async def call_recording(self, call_sid: str) -> RecordingRecord | None:
        rows = await self._fetch("SELECT * FROM recordings WHERE call_sid = $1", call_sid)
        return RecordingRecord(**dict(rows[0])) if rows else None

    async def recording_paths(self, created_before: datetime) -> list[str]:
        rows = await self._fetch("SELECT path FROM recordings WHERE created_at < $1", created_before)
        return [row["path"] for row in rows]

    async def forget_recordings(self, paths: Sequence[str]) -> int:
        if not paths:
            return 0
        async with self._connection() as conn:
            removed: int = await conn.fetchval(_FORGET_SQL, list(paths))
        return removed

    async def call_appointments(self, call_sid: str) -> list[AppointmentRecord]:
        rows = await self._fetch("SELECT * FROM appointments WHERE call_sid = $1 ORDER BY starts_at", call_sid)
        return [AppointmentRecord(**dict(row)) for row in rows]

    async def call_usage(self, call_sid: str) -> UsageRecord | None:
        sql = "SELECT call_sid, tenant, billable_seconds, recorded_at FROM usage WHERE call_sid = $1"
        rows = await self._fetch(sql, call_sid)
        return UsageRecord(**dict(rows[0])) if rows else None

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows

    async def aggregate(self, tenant: str | None, since: datetime, until: datetime) -> dict[str, Any]:
        where, args = _where(CallFilter(tenant=tenant, since=since, until=until))
        async with self._connection() as conn:
            totals = await conn.fetchrow(_TOTALS_SQL.format(where=where), *args)
            outcomes = await conn.fetch(_OUTCOMES_SQL.format(where=where), *args)
            latency = await conn.fetch(_LATENCY_SQL.format(where=where, n=len(args) + 1), *args, list(LATENCY_STAGES))
        return {
            "calls": totals["calls"],
            "duration_s": duration_summary(totals["total"], totals["mean"], totals["max"]),
            "outcomes": {row["outcome"]: row["n"] for row in outcomes},
            "bookings": totals["bookings"],
            "billable_minutes": totals["billable_minutes"],
            "latency_ms": _latency(latency),
        }

    async def aclose(self) -> None:
        async with self._pool_lock:
            if self._pool is not None:
                await self._pool.close()
                self._pool = None


_TOTALS_SQL = """
SELECT count(*) AS calls, sum(duration_s) AS total, avg(duration_s) AS mean, max(duration_s) AS max,
    (SELECT count(*) FROM appointments a JOIN calls c ON c.call_sid = a.call_sid {where}) AS bookings,
    (SELECT coalesce(sum(u.billable_minutes), 0) FROM usage u JOIN calls c ON c.call_sid = u.call_sid {where})
        AS billable_minutes
FROM calls c {where}"""
_FORGET_SQL = "WITH gone AS (DELETE FROM recordings WHERE path = ANY($1::text[]) RETURNING 1) SELECT count(*) FROM gone"
_OUTCOMES_SQL = "SELECT outcome, count(*) AS n FROM calls c {where} AND outcome IS NOT NULL GROUP BY outcome"
_FRACTIONS = ", ".join(str(p / 100) for p in PERCENTILES)
_LATENCY_SQL = f"""
SELECT s.stage, count(*) AS n,
    percentile_cont(ARRAY[{_FRACTIONS}]) WITHIN GROUP (ORDER BY (e.payload ->> s.stage)::float8) AS pcts
FROM calls c
JOIN call_events e ON e.call_sid = c.call_sid AND e.kind = 'turn_latency'
CROSS JOIN unnest(${{n}}::text[]) AS s(stage)
{{where}} AND e.payload ? s.stage
GROUP BY s.stage"""


def _where(call_filter: CallFilter) -> tuple[str, list[object]]:
    """``WHERE`` over the calls table ``c`` ("WHERE TRUE" when unfiltered, so callers can AND on)."""
    conditions = call_filter.conditions()
    clauses = [sql.format(f"${i + 1}") for i, (sql, _) in enumerate(conditions)]
    return "WHERE " + " AND ".join(clauses or ["TRUE"]), [value for _, value in conditions]


def _row(spec: TableSpec, item: StoreItem) -> list[Any]:
    return [_value(item, column) for column in spec.columns]


def _call(row: asyncpg.Record) -> CallRecord:
    data = dict(row)
    data["bots"] = tuple(data["bots"])
    return CallRecord(**data)


def _latency(rows: Sequence[asyncpg.Record]) -> dict[str, dict[str, Any]]:
    found = {row["stage"]: row for row in rows}
    summary: dict[str, dict[str, Any]] = {}
    for stage in LATENCY_STAGES:
        row = found.get(stage)
        pcts = row["pcts"] if row is not None else [None] * len(PERCENTILES)
        summary[stage] = {"count": row["n"] if row is not None else 0}
        for p, value in zip(PERCENTILES, pcts, strict=True):
            summary[stage][f"p{p}"] = None if value is None else round(value, 1)
    return summary
