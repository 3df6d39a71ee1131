"""Keeping calls, wired into the app: the store and live bus, the write-behind buffer between them
and the calls, the stored-call API and dashboard, and the jobs that keep it all tidy (metrics of
the buffer, active calls on the bus, the recordings' retention)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web

from analytics.live_bus import LiveBus, LiveBusError, open_bus
from analytics.migrate import MigrationError, migrate
from analytics.pii import Cipher
from analytics.recording import delete_expired
from analytics.store import CallStore, StoreError, open_store
from analytics.write_behind import WriteBehind
from runtime.app_state import STATE, ServerState
from runtime.call_api import CALL_STORE, LIVE_BUS, CallApiOptions, add_call_api_routes
from runtime.call_archive import CallArchive
from runtime.config import Settings
from runtime.dashboard import add_dashboard_routes

log = logging.getLogger(__name__)

#: How often the buffer's depth, the active calls and the bus's view of them are refreshed.
REFRESH_S = 5.0
#: Recordings are few and large; an hourly sweep keeps the disk within the retention period.
RETENTION_SWEEP_S = 3600.0


def open_call_store(settings: Settings) -> CallStore | None:
    """The configured store (connections open lazily), or None when calls are not kept."""
    storage = settings.storage
    if not storage.keep_calls:
        return None
    storage.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(storage.database_url, data_dir=storage.data_dir)


def add_call_keeping(app: web.Application, store: CallStore) -> None:
    """Mount the API and dashboard over ``store`` and run the archive for the app's lifetime."""
    settings = app[STATE].settings
    app[CALL_STORE] = store
    app[LIVE_BUS] = open_bus(settings.storage.redis_url)
    add_call_api_routes(
        app,
        CallApiOptions(
            token=settings.api_token,
            recordings_dir=settings.storage.recordings_dir.resolve(),
            max_call_s=settings.max_call_s,
        ),
    )
    add_dashboard_routes(app)
    app.cleanup_ctx.append(_archive_ctx)


async def _archive_ctx(app: web.Application) -> AsyncIterator[None]:
    state, store, bus = app[STATE], app[CALL_STORE], app[LIVE_BUS]
    storage = state.settings.storage
    if storage.database_url and storage.database_url.startswith("postgres") and storage.migrate_at_start:
        await _migrate(storage.database_url)
    storage.recordings_dir.mkdir(parents=True, exist_ok=True)
    writer = WriteBehind(store, bus, spill_dir=storage.spill_dir)
    await writer.start()
    cipher = Cipher(storage.transcript_key) if storage.transcript_key else None
    # One worker process for post-call analytics: pure Python, kept off this process's GIL.
    analyst = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    state.archive = CallArchive(writer, analyst=analyst, summariser=state.llm, cipher=cipher, metrics=state.metrics)
    jobs = [asyncio.create_task(_refresh(state, writer)), asyncio.create_task(_sweep_recordings(state, store))]
    yield
    for job in jobs:
        job.cancel()
    await asyncio.gather(*jobs, return_exceptions=True)
    state.archive = None
    await asyncio.to_thread(analyst.shutdown)
    await writer.aclose()  # flushes (or spills) what the calls left, before the store closes
    await bus.aclose()
    await store.aclose()


async def _migrate(database_url: str) -> None:
    try:
        applied = await migrate(database_url)
    except MigrationError:
        # Calls still run; their rows wait in the buffer (and on disk) until the schema is there.
        log.exception("migrations could not be applied at start; run `leadline migrate`")
        return
    if applied:
        log.info("migrations applied", extra={"applied": applied})


async def _refresh(state: ServerState, writer: WriteBehind) -> None:
    bus = state.archive.writer.bus if state.archive else None
    while True:
        stats = writer.stats()
        state.metrics.buffer(stats.depth, stats.spilled)
        if bus is not None and state.archive is not None:
            try:
                await _publish_counts(bus, state.archive)
                await bus.set_active_calls(state.settings.tenant, len(state.live))
            except LiveBusError:
                log.warning("live bus unreachable; live counters not published")
        await asyncio.sleep(REFRESH_S)


async def _publish_counts(bus: LiveBus, archive: CallArchive) -> None:
    """Add what the calls counted since the last refresh to the bus's rolling counters (kept
    for the next refresh if the bus is away)."""
    counts, archive.counts = archive.counts, Counter()
    for index, ((tenant, name), by) in enumerate(counts.items()):
        try:
            await bus.incr(tenant, name, by)
        except LiveBusError:
            archive.counts.update(dict(list(counts.items())[index:]))
            raise


async def _sweep_recordings(state: ServerState, store: CallStore) -> None:
    storage = state.settings.storage
    if storage.recording_retention_days <= 0:
        return
    retention = timedelta(days=storage.recording_retention_days)
    while True:
        await sweep_recordings(store, storage.recordings_dir, retention, now=datetime.now(UTC))
        await asyncio.sleep(RETENTION_SWEEP_S)


async def sweep_recordings(store: CallStore, directory: Path, retention: timedelta, *, now: datetime) -> None:
    """Delete the recordings older than ``retention`` and forget them in the store, so the API
    never offers a file that is gone. A store failure is logged, not raised: the next sweep
    forgets every old row whose file no longer exists, these included."""
    removed = await asyncio.to_thread(delete_expired, directory, retention, now=now)
    try:
        missing = await _missing_files(await store.recording_paths(now - retention))
        forgotten = await store.forget_recordings(sorted({*map(str, removed), *missing}))
    except StoreError:
        log.warning("expired recordings not forgotten in the store; the next sweep retries", exc_info=True)
        return
    if removed or forgotten:
        log.info("expired recordings swept", extra={"deleted": len(removed), "forgotten": forgotten})


async def _missing_files(paths: list[str]) -> list[str]:
    """The paths with no file behind them (checked in a thread: ``stat`` blocks)."""
    return await asyncio.to_thread(lambda: [path for path in paths if not Path(path).exists()])
