"""The write-behind buffer between the call hot path and the store and live bus.

``submit`` is synchronous and O(1): calls never wait on a database. A background task writes
batches to the store, retrying with exponential backoff while the store is down or slow. When
the rows in memory reach ``max_pending``, the oldest batch moves to an append-only JSONL file
in ``spill_dir`` (a buffered append; fsync'd off the event loop), and spilled rows are written
before anything newer, so the store sees rows in the order they were submitted. Spill files
left by a crashed process are replayed at start. Writes are idempotent, so a batch retried
after a lost acknowledgement changes nothing.

The live bus gets its own bounded lane: a live view wants the latest events, so when Redis is
down the oldest unpublished ones are dropped (counted), never the store's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from analytics.live_bus import LiveBus
from analytics.records import StoreItem, record_from_json, record_to_json
from analytics.store import CallStore, StoreError

log = logging.getLogger("analytics")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Waits between retries of a failing write: ``initial_s``, doubling up to ``max_s``."""

    initial_s: float = 0.05
    #: Long enough not to hammer a database that is restarting, short enough to catch up soon.
    max_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("backoff needs 0 < initial_s <= max_s")


@dataclass(frozen=True, slots=True)
class WriteBehindStats:
    """A snapshot for metrics: rows in memory now and the most ever, rows moved to and replayed
    from disk, rows stored, rows the store refused, rows lost (memory full and the spill write
    failed), and the live lane's state."""

    depth: int
    max_depth: int
    spill_files: int
    spilled: int
    replayed: int
    stored: int
    rejected: int
    lost: int
    store_errors: int
    bus_depth: int
    bus_published: int
    bus_dropped: int
    bus_errors: int


class SpillError(Exception):
    """The spill directory is unusable (e.g. another live process holds it)."""


class Spill:
    """The spill directory: numbered JSONL files read oldest first, one process at a time.

    Rows of a batch read from the oldest file are only dropped from disk (``commit``) once
    the store has them, so a crash mid-replay replays them again (harmlessly).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: deque[int] = deque()
        self._offset = 0
        self._next_offset = 0
        self._writer: IO[str] | None = None
        self._writer_number: int | None = None
        self._lock: IO[str] | None = None
        self._sync: asyncio.Future[None] | None = None
        self._sync_again = False

    def open(self) -> None:
        """Take the directory (exclusively) and find the files a previous process left."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / ".lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            self._lock.close()
            raise SpillError(f"spill directory {self.directory} is in use by another process") from e
        numbers = (int(p.stem.removeprefix("spill-")) for p in self.directory.glob("spill-*.jsonl"))
        self.files.extend(sorted(numbers))

    def path(self, number: int) -> Path:
        return self.directory / f"spill-{number}.jsonl"

    def append(self, items: Sequence[StoreItem], *, first: bool = False) -> int:
        """Write rows after every spilled row (or, ``first``, before all of them, in a new file).

        Returns how many rows could not be encoded as JSON (and so were not written)."""
        lines = _lines(items)
        if first:
            number = (self.files[0] - 1) if self.files else 0
            self.files.appendleft(number)
            self._offset = self._next_offset = 0
            with open(self.path(number), "w", encoding="utf-8") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
            return len(items) - len(lines)
        if self._writer is None:
            number = (self.files[-1] + 1) if self.files else 0
            self._writer, self._writer_number = open(self.path(number), "a", encoding="utf-8"), number
            self.files.append(number)
        self._writer.writelines(lines)
        self._writer.flush()
        self._request_sync()
        return len(items) - len(lines)

    def _request_sync(self) -> None:
        """fsync the writer off the event loop; appends during an fsync get one more after it."""
        if self._sync is not None and not self._sync.done():
            self._sync_again = True
            return
        assert self._writer is not None
        self._sync = asyncio.get_running_loop().run_in_executor(None, os.fsync, self._writer.fileno())
        self._sync.add_done_callback(self._synced)

    def _synced(self, future: asyncio.Future[None]) -> None:
        if future.exception() is not None:
            log.error("spill fsync failed", extra={"error": repr(future.exception())})
        if self._sync_again and self._writer is not None:
            self._sync_again = False
            self._request_sync()

    async def _settle(self) -> None:
        """Let the fsync in flight finish (a file must not close under it)."""
        while self._sync is not None and not self._sync.done():
            await asyncio.wait([self._sync])

    async def _seal(self) -> None:
        """Close the file being appended to; the next spill starts a new one."""
        writer = self._writer
        if writer is None:
            return
        self._writer = self._writer_number = None
        await self._settle()
        await asyncio.to_thread(_sync_and_close, writer)

    async def read(self, limit: int) -> list[StoreItem]:
        """Up to ``limit`` rows from the oldest file (sealed first if it is still being written)."""
        if self.files[0] == self._writer_number:
            await self._seal()
        lines, self._next_offset = await asyncio.to_thread(_read_lines, self.path(self.files[0]), self._offset, limit)
        return _parse(lines)

    async def commit(self) -> None:
        """The rows of the last ``read`` are stored: forget them (and the file once all of it is)."""
        self._offset = self._next_offset
        path = self.path(self.files[0])
        if self._offset >= await asyncio.to_thread(os.path.getsize, path):
            await asyncio.to_thread(path.unlink)
            self.files.popleft()
            self._offset = self._next_offset = 0

    async def close(self) -> None:
        await self._seal()
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _sync_and_close(writer: IO[str]) -> None:
    writer.flush()
    os.fsync(writer.fileno())
    writer.close()


def _lines(items: Sequence[StoreItem]) -> list[str]:
    lines = []
    for item in items:
        try:
            lines.append(json.dumps(record_to_json(item), separators=(",", ":")) + "\n")
        except (TypeError, ValueError):
            log.error("row not JSON, not spilled", extra={"type": type(item).__name__, "call_sid": item.call_sid})
    return lines


def _read_lines(path: Path, offset: int, limit: int) -> tuple[list[str], int]:
    with open(path, encoding="utf-8") as f:
        f.seek(offset)
        lines: list[str] = []
        while len(lines) < limit and (line := f.readline()):
            lines.append(line)
        return lines, f.tell()


def _parse(lines: list[str]) -> list[StoreItem]:
    items = []
    for line in lines:
        try:
            items.append(record_from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            # A line cut short by a crash mid-write: nothing after it was acknowledged either.
            log.warning("unreadable spill line skipped", extra={"length": len(line)})
    return items


class WriteBehind:
    """Bounded, batched, spilling writes to a ``CallStore`` (and best-effort to a ``LiveBus``)."""

    def __init__(
        self,
        store: CallStore,
        bus: LiveBus | None,
        *,
        spill_dir: Path,
        # ~1 KB a row: a few MB of memory, minutes of events from 50 calls.
        max_pending: int = 10_000,
        # One transaction per batch: large enough to amortise the round trip, small enough to retry.
        batch_size: int = 500,
        # A partial batch waits this long for company; the dashboard's "live" is about this late.
        flush_interval_s: float = 0.2,
        # Live events kept for Redis while it is away; beyond it the oldest go.
        bus_max_pending: int = 10_000,
        backoff: Backoff | None = None,
        # aclose() writes for this long, then spills what is left to disk.
        close_timeout_s: float = 10.0,
    ) -> None:
        if batch_size < 1 or max_pending < 2 * batch_size:
            raise ValueError("need batch_size >= 1 and max_pending >= 2 * batch_size")
        self.store, self.bus = store, bus
        self.max_pending, self.batch_size = max_pending, batch_size
        self.flush_interval_s, self.close_timeout_s = flush_interval_s, close_timeout_s
        self.backoff = backoff or Backoff()
        self._spill = Spill(spill_dir)
        self._pending: deque[StoreItem] = deque()
        self._inflight: list[StoreItem] = []
        self._inflight_from_disk = False
        self._bus_pending: deque[StoreItem] = deque(maxlen=bus_max_pending)
        self._wake, self._bus_wake = asyncio.Event(), asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._counts = dict.fromkeys(
            (
                "max_depth",
                "spilled",
                "replayed",
                "stored",
                "rejected",
                "lost",
                "store_errors",
                "bus_published",
                "bus_dropped",
                "bus_errors",
            ),
            0,
        )

    async def start(self) -> None:
        """Take the spill directory (replaying what a previous process left) and start writing."""
        await asyncio.to_thread(self._spill.open)
        if self._spill.files:
            log.warning("replaying spilled rows", extra={"files": len(self._spill.files)})
        self._tasks = [asyncio.create_task(self._run_store(), name="write-behind-store")]
        if self.bus is not None:
            self._tasks.append(asyncio.create_task(self._run_bus(), name="write-behind-bus"))

    async def __aenter__(self) -> WriteBehind:
        await self.start()
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    @property
    def depth(self) -> int:
        """Rows held in memory (waiting, or being written)."""
        return len(self._pending) + len(self._inflight)

    def stats(self) -> WriteBehindStats:
        c = self._counts
        return WriteBehindStats(
            depth=self.depth,
            spill_files=len(self._spill.files),
            bus_depth=len(self._bus_pending),
            **c,
        )

    def submit(self, item: StoreItem) -> None:
        """Queue one row; never waits. Raises ``RuntimeError`` after ``aclose``."""
        if self._closing:
            raise RuntimeError("write-behind buffer is closed")
        if self.depth >= self.max_pending:
            self._spill_oldest()
        self._pending.append(item)
        self._counts["max_depth"] = max(self._counts["max_depth"], self.depth)
        if len(self._pending) == 1 or len(self._pending) >= self.batch_size:
            self._wake.set()
        if self.bus is not None:
            if len(self._bus_pending) == self._bus_pending.maxlen:
                self._counts["bus_dropped"] += 1
            self._bus_pending.append(item)
            self._bus_wake.set()

    def _spill_oldest(self) -> None:
        batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
        self._to_disk(batch)
        log.warning("store behind: rows spilled to disk", extra={"rows": len(batch), "files": len(self._spill.files)})

    def _to_disk(self, items: list[StoreItem], *, first: bool = False) -> None:
        try:
            unwritable = self._spill.append(items, first=first)
        except OSError as e:
            # Memory full and the disk refuses too: the only bounded choice left is to drop.
            self._counts["lost"] += len(items)
            log.error("rows lost: spill failed", extra={"rows": len(items), "error": repr(e)})
            return
        self._counts["lost"] += unwritable
        self._counts["spilled"] += len(items) - unwritable

    async def _run_store(self) -> None:
        while (batch := await self._next_batch_or_retry()) is not None:
            await self._store(batch)
            if self._inflight_from_disk:
                await self._spill.commit()
                self._counts["replayed"] += len(self._inflight)
            self._inflight = []

    async def _next_batch_or_retry(self) -> list[StoreItem] | None:
        delay = self.backoff.initial_s
        while True:
            try:
                return await self._next_batch()
            except OSError as e:
                log.error("spill file unreadable, retrying", extra={"error": repr(e), "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff.max_s)

    async def _next_batch(self) -> list[StoreItem] | None:
        """The oldest rows: spilled ones first (they are older than any in memory)."""
        waited = False
        while True:
            if self._spill.files:
                self._inflight_from_disk = True
                self._inflight = await self._spill.read(self.batch_size)
                return self._inflight
            if len(self._pending) >= self.batch_size or (self._pending and (waited or self._closing)):
                self._inflight_from_disk = False
                self._inflight = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
                return self._inflight
            if self._closing:
                return None
            waited = await self._wait(self._wake, self.flush_interval_s if self._pending else None)

    @staticmethod
    async def _wait(event: asyncio.Event, limit_s: float | None) -> bool:
        """Wait for ``event`` (or ``limit_s``); True when the wait was for a partial batch."""
        event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), limit_s)
        return limit_s is not None

    async def _store(self, batch: list[StoreItem]) -> None:
        """Write until the store takes the batch; isolate rows it refuses."""
        delay = self.backoff.initial_s
        while True:
            try:
                await self.store.write(batch)
            except StoreError as e:
                if not e.retryable:
                    await self._isolate(batch, e)
                    return
                self._note_store_error(e, delay)
            except Exception as e:  # an unexpected driver error must not stop persistence
                self._note_store_error(e, delay)
            else:
                self._counts["stored"] += len(batch)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff.max_s)

    def _note_store_error(self, error: Exception, delay: float) -> None:
        self._counts["store_errors"] += 1
        log.warning("store write failed, retrying", extra={"error": repr(error), "retry_in_s": delay})

    async def _isolate(self, batch: list[StoreItem], error: StoreError) -> None:
        if len(batch) == 1:
            self._counts["rejected"] += 1
            item = batch[0]
            # The error text may quote the row (a transcript, a number): only its type is logged.
            cause = type(error.__cause__ or error).__name__
            log.error(
                "store refused a row", extra={"type": type(item).__name__, "call_sid": item.call_sid, "error": cause}
            )
            return
        for item in batch:
            await self._store([item])

    async def _run_bus(self) -> None:
        assert self.bus is not None
        while self._bus_pending or not self._closing:
            if not self._bus_pending:
                await self._wait(self._bus_wake, None)
                continue
            batch = [self._bus_pending.popleft() for _ in range(min(self.batch_size, len(self._bus_pending)))]
            await self._publish(self.bus, batch)

    async def _publish(self, bus: LiveBus, batch: list[StoreItem]) -> None:
        delay = self.backoff.initial_s
        messages = [(item.tenant, record_to_json(item)) for item in batch]
        while True:
            try:
                await bus.publish_many(messages)
            except (TypeError, ValueError) as e:
                # A row that cannot be encoded will never publish: drop the batch (live view only).
                self._counts["bus_dropped"] += len(batch)
                log.error("live bus refused events", extra={"events": len(batch), "error": type(e).__name__})
                return
            except Exception as e:  # live view only: retried, and bounded by the lane's length
                self._counts["bus_errors"] += 1
                log.warning("live bus publish failed, retrying", extra={"error": repr(e), "retry_in_s": delay})
            else:
                self._counts["bus_published"] += len(batch)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff.max_s)

    async def aclose(self) -> None:
        """Write everything (for up to ``close_timeout_s``), then spill what is left to disk."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        self._bus_wake.set()
        done, late = await asyncio.wait(self._tasks, timeout=self.close_timeout_s) if self._tasks else (set(), set())
        for task in late:
            task.cancel()
        outcomes = await asyncio.gather(*done, *late, return_exceptions=True)
        self._spill_leftovers()
        await self._spill.close()
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.error("write-behind task failed", extra={"error": repr(outcome)})

    def _spill_leftovers(self) -> None:
        if self._inflight and not self._inflight_from_disk:
            self._to_disk(self._inflight, first=True)
        self._inflight = []
        if self._pending:
            self._to_disk(list(self._pending))
            self._pending.clear()
        if self._spill.files:
            log.warning("rows left on disk at shutdown", extra={"files": len(self._spill.files)})
