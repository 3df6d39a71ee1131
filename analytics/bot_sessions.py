"""Bot sessions kept in the call store, so a caller who rings back resumes on any instance."""

from __future__ import annotations

from typing import Any

from analytics.store import CallStore
from bots.session_state import BotSessionStore


class StoredBotSessions(BotSessionStore):
    """``BotSessionStore`` over a ``CallStore`` (Postgres or the embedded SQLite file).

    Saves go straight to the store, not through the write-behind buffer: the next call of the
    same caller must read what this one saved. A store error propagates to the bot wiring,
    which decides whether to carry on without a saved session.
    """

    def __init__(self, store: CallStore) -> None:
        self.store = store

    async def load(self, tenant: str, phone: str) -> dict[str, Any] | None:
        return await self.store.load_bot_session(tenant, phone)

    async def save(self, tenant: str, phone: str, state: dict[str, Any]) -> None:
        await self.store.save_bot_session(tenant, phone, state)
