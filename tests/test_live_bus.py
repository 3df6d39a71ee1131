"""One suite for both live buses: Redis (a unique key prefix per test, deleted after) and in-process."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from analytics.live_bus import ACTIVE_CALLS, Event, LiveBus, LiveBusError, LiveBusOptions, MemoryLiveBus, RedisLiveBus

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class FakeClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


BusFactory = Callable[..., LiveBus]


@pytest.fixture(params=["redis", "memory"])
async def make_bus(request: pytest.FixtureRequest) -> AsyncIterator[BusFactory]:
    """Builds buses sharing one unique prefix (several Redis instances = several processes)."""
    prefix = "test-leadline-" + secrets.token_hex(6)
    made: list[LiveBus] = []

    def make(**options: object) -> LiveBus:
        opts = LiveBusOptions(prefix=prefix, block_ms=100, **options)  # type: ignore[arg-type]
        bus = RedisLiveBus(REDIS_URL, opts) if request.param == "redis" else MemoryLiveBus(opts)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.aclose()
    await delete_keys(prefix)


async def delete_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=prefix + ":*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


class Collector:
    """A subscriber running in its own task, as a dashboard's event stream would."""

    def __init__(self, bus: LiveBus, tenant: str) -> None:
        self.bus, self.tenant = bus, tenant
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.bus.subscribe(self.tenant):
            await self.events.put(event)

    async def ready(self) -> None:
        """Subscribers see events from when they start reading: publish until one arrives."""
        while self.events.empty():
            await self.bus.publish(self.tenant, {"warmup": True})
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        while not self.events.empty():
            assert self.events.get_nowait() == {"warmup": True}

    async def take(self, n: int) -> list[Event]:
        return [await asyncio.wait_for(self.events.get(), 5) for _ in range(n)]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_subscribers_get_their_tenants_events_in_order(make_bus: BusFactory) -> None:
    bus = make_bus()
    acme, other = Collector(bus, "acme"), Collector(bus, "other")
    await acme.ready()
    await other.ready()
    await bus.publish_many([("acme", {"n": i, "nested": {"turn": i}}) for i in range(300)] + [("other", {"n": -1})])
    await bus.publish("acme", {"n": 300})
    assert await acme.take(301) == [{"n": i, "nested": {"turn": i}} for i in range(300)] + [{"n": 300}]
    assert await other.take(1) == [{"n": -1}]
    await asyncio.sleep(0.3)
    assert acme.events.empty(), "acme must not see other tenants' events"
    await acme.stop()
    await other.stop()


async def test_a_second_process_sees_the_events(make_bus: BusFactory) -> None:
    publisher, reader = make_bus(), make_bus()
    if isinstance(publisher, MemoryLiveBus):
        reader = publisher  # in-process: one bus per process by design
    watcher = Collector(reader, "acme")
    while watcher.events.empty():
        await publisher.publish("acme", {"warmup": True})
        await asyncio.sleep(0.05)
    await publisher.publish("acme", {"call_sid": "CA1", "kind": "interruption"})
    while (event := await watcher.take(1)) == [{"warmup": True}]:
        pass
    assert event == [{"call_sid": "CA1", "kind": "interruption"}]
    await watcher.stop()


async def test_counters_roll_over_the_window(make_bus: BusFactory) -> None:
    clock = FakeClock()
    bus = make_bus(clock=clock, counter_window_minutes=5)
    await bus.incr("acme", "calls")
    await bus.incr("acme", "calls", by=2)
    await bus.incr("acme", "bookings")
    await bus.incr("other", "calls", by=7)
    clock.now += 4 * 60
    await bus.incr("acme", "calls")
    assert await bus.counters("acme") == {"calls": 4, "bookings": 1, ACTIVE_CALLS: 0}
    clock.now += 60
    assert await bus.counters("acme") == {"calls": 1, ACTIVE_CALLS: 0}, "the first minute left the window"
    assert await bus.counters("nobody") == {ACTIVE_CALLS: 0}


async def test_active_calls_sum_live_instances(make_bus: BusFactory) -> None:
    clock = FakeClock()
    first = make_bus(clock=clock, active_ttl_s=30)
    await first.set_active_calls("acme", 3)
    await first.set_active_calls("acme", 4)
    assert (await first.counters("acme"))[ACTIVE_CALLS] == 4
    if isinstance(first, RedisLiveBus):
        second = make_bus(clock=clock, active_ttl_s=30)
        clock.now += 20
        await second.set_active_calls("acme", 2)
        assert (await second.counters("acme"))[ACTIVE_CALLS] == 6
        clock.now += 15
        assert (await second.counters("acme"))[ACTIVE_CALLS] == 2, "an instance silent past the TTL stops counting"


async def test_redis_stream_length_is_bounded() -> None:
    prefix = "test-leadline-" + secrets.token_hex(6)
    bus = RedisLiveBus(REDIS_URL, LiveBusOptions(prefix=prefix, stream_maxlen=100))
    await bus.publish_many([("acme", {"n": i}) for i in range(2000)])
    length = await bus.redis.xlen(bus.stream_key("acme"))
    await bus.aclose()
    await delete_keys(prefix)
    # MAXLEN ~ trims whole stream nodes (100 entries each by default), so allow one node over.
    assert 100 <= length <= 200


async def test_a_slow_memory_subscriber_keeps_the_newest() -> None:
    bus = MemoryLiveBus(LiveBusOptions(stream_maxlen=10))
    events = bus.subscribe("acme")
    first = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    await bus.publish_many([("acme", {"n": i}) for i in range(100)])
    got = [await first] + [await anext(events) for _ in range(9)]
    assert [e["n"] for e in got] == list(range(90, 100))
    await events.aclose()  # type: ignore[attr-defined]


async def test_redis_down_raises_a_bus_error() -> None:
    bus = RedisLiveBus("redis://127.0.0.1:1/0", LiveBusOptions(prefix="test-down"))
    with pytest.raises(LiveBusError):
        await bus.publish("acme", {"n": 1})
    with pytest.raises(LiveBusError):
        await bus.counters("acme")
    with pytest.raises(LiveBusError):
        await anext(bus.subscribe("acme"))
    await bus.aclose()
