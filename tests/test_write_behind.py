"""The write-behind buffer against real Postgres: bursts, killed connections, a database that is
away (spill to disk, replay in order), shutdown, refused rows, and the live lane."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from analytics.live_bus import LiveBusOptions, MemoryLiveBus, RedisLiveBus
from analytics.migrate import migrate
from analytics.pg_store import PgCallStore, PgOptions
from analytics.records import CallEventRecord, StoreItem, record_to_json
from analytics.write_behind import Backoff, SpillError, WriteBehind
from tests.test_store import T0, call, event, pg_schema, utterance

FAST_RETRY = Backoff(initial_s=0.02, max_s=0.2)


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    async with pg_schema("test_wb_") as url:
        await migrate(url)
        yield url


@pytest.fixture
async def store(schema_url: str) -> AsyncIterator[PgCallStore]:
    pg = PgCallStore(schema_url, PgOptions(application_name="test-wb-" + secrets.token_hex(6)))
    yield pg
    await pg.aclose()


def call_rows(sid: str, n: int) -> list[StoreItem]:
    """A call opened, ``n`` events, and the call closed: the final state must win."""
    closed = call(sid, state="completed", ended_at=T0 + timedelta(minutes=3), outcome="booked", duration_s=180.0)
    return [call(sid), *(event(sid, seq, "dtmf", digit=str(seq % 10)) for seq in range(n)), closed]


def spilled_lines(spill_dir: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in spill_dir.glob("spill-*.jsonl"))


async def assert_all_stored(store: PgCallStore, sid: str, n: int) -> None:
    events = await store.call_events(sid)
    assert [e.seq for e in events] == list(range(n))
    stored_call = await store.get_call(sid)
    assert stored_call is not None and stored_call.state == "completed", "an older upsert overwrote a newer one"


async def test_a_burst_stays_bounded_and_all_arrives(store: PgCallStore, tmp_path: Path) -> None:
    buffer = WriteBehind(store, None, spill_dir=tmp_path, max_pending=2000, batch_size=500, backoff=FAST_RETRY)
    await buffer.start()
    for row in call_rows("CA1", 20_000):
        buffer.submit(row)
    assert buffer.depth <= 2000
    await buffer.aclose()
    stats = buffer.stats()
    assert stats.max_depth <= 2000
    assert stats.spilled > 0 and stats.replayed == stats.spilled
    assert stats.depth == 0 and stats.spill_files == 0 and stats.rejected == 0
    assert await asyncio.to_thread(spilled_lines, tmp_path) == 0
    await assert_all_stored(store, "CA1", 20_000)


async def kill_mid_write(store: PgCallStore) -> int:
    """Hold a lock the buffer's next insert waits on, then terminate that backend mid-transaction."""
    killer = await asyncpg.connect(store.database_url)
    async with killer.transaction():
        await killer.execute("LOCK TABLE call_events IN EXCLUSIVE MODE")
        waiting: list[asyncpg.Record] = []
        async with asyncio.timeout(20):
            while not waiting:
                await asyncio.sleep(0.01)
                waiting = await killer.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    store.options.application_name,
                )
    await killer.close()
    return len(waiting)


async def test_killed_connections_lose_nothing(store: PgCallStore, tmp_path: Path) -> None:
    buffer = WriteBehind(
        store, None, spill_dir=tmp_path, max_pending=1000, batch_size=100, flush_interval_s=0.01, backoff=FAST_RETRY
    )
    await buffer.start()
    kills = []
    for i, row in enumerate(call_rows("CA1", 6000)):
        buffer.submit(row)
        if i % 100 == 0:
            await asyncio.sleep(0.005)
        if i % 1500 == 750:
            kills.append(asyncio.create_task(kill_mid_write(store)))
            await asyncio.sleep(0.05)
    assert await asyncio.gather(*kills) == [1, 1, 1, 1]
    await buffer.aclose()
    assert buffer.stats().store_errors >= 4, "every kill landed inside a write transaction"
    await assert_all_stored(store, "CA1", 6000)


async def test_an_unreachable_store_spills_and_a_restart_replays(store: PgCallStore, tmp_path: Path) -> None:
    down = PgCallStore("postgresql://root@127.0.0.1:1/test", PgOptions(connect_timeout_s=0.5))
    buffer = WriteBehind(down, None, spill_dir=tmp_path, max_pending=1000, batch_size=100, close_timeout_s=0.5)
    await buffer.start()
    for row in call_rows("CA1", 3000):
        buffer.submit(row)
    await asyncio.sleep(0.2)
    await buffer.aclose()
    assert buffer.stats().stored == 0 and buffer.stats().store_errors >= 1
    assert await asyncio.to_thread(spilled_lines, tmp_path) == 3002
    await down.aclose()

    replay = WriteBehind(store, None, spill_dir=tmp_path, max_pending=1000, batch_size=100)
    await replay.start()
    await replay.aclose()
    assert replay.stats().replayed == 3002
    assert await asyncio.to_thread(spilled_lines, tmp_path) == 0
    await assert_all_stored(store, "CA1", 3000)


async def test_rows_being_retried_at_shutdown_go_to_disk_before_newer_ones(store: PgCallStore, tmp_path: Path) -> None:
    down = PgCallStore("postgresql://root@127.0.0.1:1/test", PgOptions(connect_timeout_s=0.5))
    buffer = WriteBehind(
        down, None, spill_dir=tmp_path, max_pending=400, batch_size=100, flush_interval_s=0.01, close_timeout_s=0.3
    )
    await buffer.start()
    rows = call_rows("CA1", 1000)
    for row in rows[:50]:
        buffer.submit(row)
    await asyncio.sleep(0.2)
    assert buffer.depth == 50 and buffer.stats().spill_files == 0, "the first rows are being retried from memory"
    for row in rows[50:]:
        buffer.submit(row)
    await buffer.aclose()
    await down.aclose()
    assert buffer.stats().spilled == 1002

    async with WriteBehind(store, None, spill_dir=tmp_path, max_pending=400, batch_size=100):
        pass
    await assert_all_stored(store, "CA1", 1000)


class PgProxy:
    """A loopback TCP proxy in front of Postgres that can be cut and restored: a database that
    goes away and comes back on the same address."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()


async def test_rows_wait_while_the_database_is_away_and_arrive_in_order(schema_url: str, tmp_path: Path) -> None:
    proxy = PgProxy()
    await proxy.start()
    schema = schema_url.split("search_path=")[1]
    proxied = PgCallStore(f"postgresql://root@127.0.0.1:{proxy.port}/test?search_path={schema}")
    buffer = WriteBehind(proxied, None, spill_dir=tmp_path, max_pending=400, batch_size=100, backoff=FAST_RETRY)
    await buffer.start()
    rows = call_rows("CA1", 2000)
    for row in rows[:500]:
        buffer.submit(row)
    for _ in range(500):  # until the pool is connected and has written (at most 5 s)
        if buffer.stats().stored:
            break
        await asyncio.sleep(0.01)
    await proxy.stop()
    for row in rows[500:]:
        buffer.submit(row)
        await asyncio.sleep(0)
    assert buffer.stats().spill_files >= 1 and buffer.depth <= 400
    await proxy.start()
    await buffer.aclose()
    assert buffer.stats().store_errors >= 1
    await assert_all_stored(proxied, "CA1", 2000)
    await proxied.aclose()
    await proxy.stop()


async def test_shutdown_flushes_a_partial_batch(store: PgCallStore, tmp_path: Path) -> None:
    buffer = WriteBehind(store, None, spill_dir=tmp_path, batch_size=500, flush_interval_s=60)
    await buffer.start()
    for row in call_rows("CA1", 42):
        buffer.submit(row)
    await asyncio.sleep(0.1)
    assert await store.call_events("CA1") == [], "a partial batch waits for company"
    await buffer.aclose()
    await assert_all_stored(store, "CA1", 42)
    with pytest.raises(RuntimeError):
        buffer.submit(event("CA1", 99))


async def test_refused_rows_are_set_aside_and_the_rest_stored(store: PgCallStore, tmp_path: Path) -> None:
    bad = utterance("CA1", 2, "bad")
    object.__setattr__(bad, "speaker", "narrator")
    not_json = event("CA1", 1, "dtmf", when=T0)
    buffer = WriteBehind(store, MemoryLiveBus(), spill_dir=tmp_path, batch_size=10)
    await buffer.start()
    rows: list[StoreItem] = [utterance("CA1", 1, "a"), bad, not_json, utterance("CA1", 3, "c"), event("CA1", 2)]
    for row in rows:
        buffer.submit(row)
    await buffer.aclose()
    stats = buffer.stats()
    assert stats.rejected == 2 and stats.bus_dropped == 5, "one unencodable event drops its live batch"
    assert [u.seq for u in await store.call_utterances("CA1")] == [1, 3]
    assert [e.seq for e in await store.call_events("CA1")] == [2]


async def test_a_row_that_cannot_be_spilled_is_counted_lost(tmp_path: Path) -> None:
    down = PgCallStore("postgresql://root@127.0.0.1:1/test", PgOptions(connect_timeout_s=0.5))
    buffer = WriteBehind(down, None, spill_dir=tmp_path, max_pending=2, batch_size=1, close_timeout_s=0.2)
    await buffer.start()
    for row in [event("CA1", 0, when=T0), event("CA1", 1), event("CA1", 2), event("CA1", 3)]:
        buffer.submit(row)
    await buffer.aclose()
    await down.aclose()
    assert buffer.stats().lost == 1 and buffer.stats().spilled == 3
    assert await asyncio.to_thread(spilled_lines, tmp_path) == 3


async def test_start_up_replays_a_crashed_process_spill(store: PgCallStore, tmp_path: Path) -> None:
    lines = [json.dumps(record_to_json(row)) + "\n" for row in call_rows("CA1", 10)]
    (tmp_path / "spill-7.jsonl").write_text("".join(lines) + '{"type": "event", "call_sid": "CA1", "se')
    buffer = WriteBehind(store, None, spill_dir=tmp_path, batch_size=4)
    await buffer.start()
    with pytest.raises(SpillError):
        await WriteBehind(store, None, spill_dir=tmp_path, batch_size=4).start()
    await buffer.aclose()
    assert buffer.stats().replayed == 12
    await assert_all_stored(store, "CA1", 10)
    assert not (tmp_path / "spill-7.jsonl").exists()


async def test_live_lane_publishes_and_survives_redis_down(store: PgCallStore, tmp_path: Path) -> None:
    bus = MemoryLiveBus()
    events = bus.subscribe("acme")
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    async with WriteBehind(store, bus, spill_dir=tmp_path / "a", batch_size=10) as buffer:
        buffer.submit(event("CA1", 0, "interruption", heard_text="Hi"))
    assert await first == {
        "type": "event",
        "call_sid": "CA1",
        "tenant": "acme",
        "seq": 0,
        "kind": "interruption",
        "at": 0.0,
        "payload": {"heard_text": "Hi"},
    }
    await events.aclose()  # type: ignore[attr-defined]

    redis_down = RedisLiveBus("redis://127.0.0.1:1/0", LiveBusOptions(prefix="test-down"))
    buffer = WriteBehind(
        store, redis_down, spill_dir=tmp_path / "b", batch_size=10, close_timeout_s=0.5, backoff=FAST_RETRY
    )
    await buffer.start()
    rows: list[CallEventRecord] = [event("CA2", seq) for seq in range(25)]
    for row in rows:
        buffer.submit(row)
    await asyncio.sleep(0.3)
    await buffer.aclose()
    await redis_down.aclose()
    assert buffer.stats().bus_errors >= 1 and buffer.stats().bus_published == 0
    assert len(await store.call_events("CA2")) == 25, "a dead Redis must not hold up the store"
