"""Live call events and counters per tenant, for dashboards and other processes.

``RedisLiveBus``: one Redis Stream per tenant (``{prefix}:{tenant}:events``, trimmed to about
``stream_maxlen`` entries), read from "now" with ``XREAD BLOCK``; counters in one hash per
tenant and minute that expires after the window. ``MemoryLiveBus``: the same in-process, for
the embedded default. Events are JSON objects; both buses hand subscribers fresh copies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

Event = dict[str, Any]

ACTIVE_CALLS = "active_calls"


class LiveBusError(Exception):
    """The bus could not take or give events (Redis down, timed out)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveBusOptions:
    #: Key prefix; tests use a unique one so parallel runs never share keys.
    prefix: str = "leadline"
    #: Events kept per tenant: the live view needs minutes, not history (Postgres has that).
    stream_maxlen: int = 10_000
    #: Counters cover the last this many minutes.
    counter_window_minutes: int = 60
    #: An instance that has not reported its active calls for this long no longer counts.
    active_ttl_s: float = 60.0
    #: This process, for its share of the active calls.
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    clock: Callable[[], float] = time.time
    #: How long one XREAD blocks; a subscriber notices cancellation at the latest after it.
    block_ms: int = 1000

    def __post_init__(self) -> None:
        if self.stream_maxlen < 1 or self.counter_window_minutes < 1:
            raise ValueError("stream_maxlen and counter_window_minutes must be positive")

    def minute(self) -> int:
        return int(self.clock() // 60)

    def window(self) -> range:
        """The minutes the counters cover, oldest first."""
        now = self.minute()
        return range(now - self.counter_window_minutes + 1, now + 1)


class LiveBus(ABC):
    """Per-tenant live events (subscribers see what is published after they start reading) and
    rolling counters (sums over the window, plus the active calls of every live instance)."""

    @abstractmethod
    async def publish(self, tenant: str, event: Event) -> None: ...

    async def publish_many(self, events: Sequence[tuple[str, Event]]) -> None:
        """(tenant, event) pairs, in order."""
        for tenant, event in events:
            await self.publish(tenant, event)

    @abstractmethod
    def subscribe(self, tenant: str) -> AsyncIterator[Event]:
        """Events published to ``tenant`` from the first iteration on, in order, until cancelled."""

    @abstractmethod
    async def incr(self, tenant: str, name: str, by: int = 1) -> None: ...

    @abstractmethod
    async def counters(self, tenant: str) -> dict[str, int]:
        """Each counter summed over the window, and ``active_calls``."""

    @abstractmethod
    async def set_active_calls(self, tenant: str, count: int) -> None:
        """This instance's active calls for ``tenant`` (report at least every ``active_ttl_s``)."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""


class MemoryLiveBus(LiveBus):
    """In-process bus; a subscriber that falls ``stream_maxlen`` events behind loses the oldest."""

    def __init__(self, options: LiveBusOptions | None = None) -> None:
        self.options = options or LiveBusOptions()
        self._subscribers: defaultdict[str, set[asyncio.Queue[str]]] = defaultdict(set)
        self._minutes: defaultdict[str, dict[int, Counter[str]]] = defaultdict(dict)
        self._active: dict[str, int] = {}

    async def publish(self, tenant: str, event: Event) -> None:
        data = json.dumps(event)
        for queue in self._subscribers[tenant]:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(data)

    async def subscribe(self, tenant: str) -> AsyncIterator[Event]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=self.options.stream_maxlen)
        self._subscribers[tenant].add(queue)
        try:
            while True:
                yield json.loads(await queue.get())
        finally:
            self._subscribers[tenant].discard(queue)

    async def incr(self, tenant: str, name: str, by: int = 1) -> None:
        minutes = self._minutes[tenant]
        window = self.options.window()
        for stale in [m for m in minutes if m < window.start]:
            del minutes[stale]
        minutes.setdefault(window[-1], Counter())[name] += by

    async def counters(self, tenant: str) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for minute in self.options.window():
            totals.update(self._minutes[tenant].get(minute, Counter()))
        return {**totals, ACTIVE_CALLS: self._active.get(tenant, 0)}

    async def set_active_calls(self, tenant: str, count: int) -> None:
        self._active[tenant] = count

    async def aclose(self) -> None:
        """Nothing to release in-process."""


@contextlib.asynccontextmanager
async def _redis_errors() -> AsyncIterator[None]:
    """Redis failures as ``LiveBusError``, wrapped once here at the adapter edge."""
    try:
        yield
    except (RedisError, OSError) as e:
        raise LiveBusError(f"redis unavailable: {e!r}") from e


class RedisLiveBus(LiveBus):
    """Streams and counters in Redis (``redis.asyncio``); connects lazily."""

    def __init__(self, redis_url: str, options: LiveBusOptions | None = None) -> None:
        self.options = options or LiveBusOptions()
        self.redis: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)

    def stream_key(self, tenant: str) -> str:
        return f"{self.options.prefix}:{tenant}:events"

    def _counter_key(self, tenant: str, minute: int) -> str:
        return f"{self.options.prefix}:{tenant}:counters:{minute}"

    def _active_key(self, tenant: str) -> str:
        return f"{self.options.prefix}:{tenant}:active"

    async def publish(self, tenant: str, event: Event) -> None:
        await self.publish_many([(tenant, event)])

    async def publish_many(self, events: Sequence[tuple[str, Event]]) -> None:
        async with _redis_errors(), self.redis.pipeline(transaction=False) as pipe:
            for tenant, event in events:
                fields: dict[FieldT, EncodableT] = {"data": json.dumps(event)}
                pipe.xadd(self.stream_key(tenant), fields, maxlen=self.options.stream_maxlen, approximate=True)
            await pipe.execute()

    async def subscribe(self, tenant: str) -> AsyncIterator[Event]:
        key = self.stream_key(tenant)
        # "$" resolved once: re-sending "$" after a timed-out block would skip what came between.
        async with _redis_errors():
            latest = await self.redis.xrevrange(key, count=1)
        last_id = str(latest[0][0]) if latest else "0-0"
        while True:
            # RESP2 reply (the client's default protocol): [[stream, [(id, {field: value}), ...]]]
            async with _redis_errors():
                reply: Any = await self.redis.xread({key: last_id}, count=500, block=self.options.block_ms)
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    yield json.loads(fields["data"])

    async def incr(self, tenant: str, name: str, by: int = 1) -> None:
        key = self._counter_key(tenant, self.options.minute())
        async with _redis_errors(), self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, name, by)
            pipe.expire(key, (self.options.counter_window_minutes + 1) * 60)
            await pipe.execute()

    async def counters(self, tenant: str) -> dict[str, int]:
        async with _redis_errors(), self.redis.pipeline(transaction=False) as pipe:
            for minute in self.options.window():
                pipe.hgetall(self._counter_key(tenant, minute))
            pipe.hgetall(self._active_key(tenant))
            *buckets, active = await pipe.execute()
        totals: Counter[str] = Counter()
        for bucket in buckets:
            totals.update({name: int(value) for name, value in bucket.items()})
        return {**totals, ACTIVE_CALLS: self._live_active(active)}

    def _live_active(self, reports: dict[str, str]) -> int:
        """Sum of the instances' reports ("count:unix_time") that are recent enough."""
        oldest = self.options.clock() - self.options.active_ttl_s
        counts = (value.split(":") for value in reports.values())
        return sum(int(count) for count, at in counts if float(at) >= oldest)

    async def set_active_calls(self, tenant: str, count: int) -> None:
        key = self._active_key(tenant)
        async with _redis_errors(), self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, self.options.instance, f"{count}:{self.options.clock()}")
            pipe.expire(key, int(self.options.active_ttl_s) + 1)
            await pipe.execute()

    async def aclose(self) -> None:
        await self.redis.aclose()


def open_bus(redis_url: str | None, options: LiveBusOptions | None = None) -> LiveBus:
    """Redis when a URL is configured, otherwise the in-process bus."""
    return RedisLiveBus(redis_url, options) if redis_url else MemoryLiveBus(options)
