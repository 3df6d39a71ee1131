"""Client-side pacing for an API with a burst limit of N requests per interval.

Not a token bucket: a bucket of 100 refilled at 10/s lets 200 requests through in 10 s, which a
server counting over a sliding window rejects. The window here also counts from when a
response arrived, not when the request left: the server saw the request before that, so
whatever the network's jitter, it never sees more than N within one interval.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from runtime.clock import Clock, MonotonicClock


@dataclass(frozen=True, kw_only=True)
class RateLimit:
    """At most ``max_requests`` per ``interval_s`` seconds."""

    #: GoHighLevel's burst limit for OAuth v2 apps: 100 requests per 10 s per location.
    max_requests: int = 100
    interval_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.interval_s <= 0:
            raise ValueError("need max_requests >= 1 and interval_s > 0")


class RequestWindow:
    """Admits a request while fewer than ``max_requests`` are in flight or were answered
    within the last interval; the others wait."""

    def __init__(self, limit: RateLimit, clock: Clock | None = None) -> None:
        self.limit = limit
        self._clock = clock or MonotonicClock()
        self._answered: deque[float] = deque()
        self._in_flight = 0
        self._changed = asyncio.Condition()

    def _busy(self) -> int:
        horizon = self._clock.now() - self.limit.interval_s
        while self._answered and self._answered[0] <= horizon:
            self._answered.popleft()
        return self._in_flight + len(self._answered)

    def _wait_s(self) -> float | None:
        """How long until an answered request leaves the window; None: wait for one in flight."""
        if not self._answered:
            return None
        return max(self._answered[0] + self.limit.interval_s - self._clock.now(), 0.0)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one request's place in the window for as long as it is in flight."""
        async with self._changed:
            while self._busy() >= self.limit.max_requests:
                try:
                    await asyncio.wait_for(self._changed.wait(), self._wait_s())
                except TimeoutError:
                    pass  # the oldest answer left the window: look again
            self._in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._answered.append(self._clock.now())
                self._changed.notify_all()  # waiting on in-flight requests: now on an answer's expiry
