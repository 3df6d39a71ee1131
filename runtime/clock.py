"""The clock the pipeline reads, injected so tests can drive time instead of patching it."""

from __future__ import annotations

import asyncio
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...


class LoopClock:
    """The running event loop's monotonic clock (what ``asyncio.sleep`` deadlines use)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()
