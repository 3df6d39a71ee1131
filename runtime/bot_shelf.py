"""Bots waiting for their call's next Media Stream.

The voice webhook prepares the bot while Twilio connects the stream (loading a returning caller's
saved conversation takes a store read the stream should not wait for), and a bot is parked while
its caller is with a person, in case the transfer fails and the caller comes back. Entries expire,
so a call whose stream never comes leaves nothing behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bots.base import Bot


class BotShelf:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._bots: dict[str, tuple[Bot, float]] = {}

    def put(self, call_sid: str, bot: Bot, *, ttl_s: float) -> None:
        """Keep ``bot`` for ``call_sid`` at most ``ttl_s`` (replacing one kept before)."""
        now = self._clock()
        for stale in [sid for sid, (_, expires) in self._bots.items() if expires <= now]:
            del self._bots[stale]
        self._bots[call_sid] = (bot, now + ttl_s)

    def take(self, call_sid: str) -> Bot | None:
        """The bot kept for ``call_sid`` (once), or None if there is none or it expired."""
        entry = self._bots.pop(call_sid, None)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def __len__(self) -> int:
        return len(self._bots)
