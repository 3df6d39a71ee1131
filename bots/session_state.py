"""Bot sessions that outlive a call: a caller who rings back (same tenant and phone, within the
resume window) continues where they left off instead of answering everything again.

The state is a JSON-ready dict (current bot, answers per bot, question progress, score, hand-off
history, last activity) so any store can keep it as one document; ``BotSessionStore`` is the
interface a Postgres store implements, ``MemoryBotSessionStore`` the in-process default.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import Any

# Bumped when the shape of the state dict changes, so an old document is ignored, not misread.
STATE_VERSION = 1

# A caller ringing back within a day is most likely continuing the same conversation.
DEFAULT_RESUME_WINDOW = timedelta(hours=24)


class BotSessionStore(ABC):
    """Where bot sessions are kept between calls, one document per (tenant, phone)."""

    @abstractmethod
    async def load(self, tenant: str, phone: str) -> dict[str, Any] | None:
        """The last saved state of this caller's session, or None."""

    @abstractmethod
    async def save(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        """Replace this caller's saved state."""


class MemoryBotSessionStore(BotSessionStore):
    """Sessions in a dict: the default for a single process, and for tests."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], dict[str, Any]] = {}

    async def load(self, tenant: str, phone: str) -> dict[str, Any] | None:
        state = self._states.get((tenant, phone))
        return copy.deepcopy(state) if state is not None else None

    async def save(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        self._states[(tenant, phone)] = copy.deepcopy(state)


def resumable(state: dict[str, Any] | None, now: datetime, window: timedelta) -> bool:
    """Whether a saved state is recent enough (and of this version) to continue from."""
    if state is None or state.get("version") != STATE_VERSION:
        return False
    last = state.get("last_activity")
    if not isinstance(last, str):
        return False
    return now - datetime.fromisoformat(last) <= window
