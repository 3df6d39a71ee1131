"""The clock the pipeline reads, injected so tests can drive time instead of patching it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...


class MonotonicClock:
    """``time.monotonic``: nanosecond resolution, unlike uvloop's ``loop.time()`` (whole
    milliseconds), which would quantise every latency we measure."""

    def now(self) -> float:
        return time.monotonic()
