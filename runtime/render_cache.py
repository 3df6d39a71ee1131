"""The fixed-phrase cache every speech engine's ``render`` uses: greetings, prompts and fillers
are spoken on every call, so each is synthesised once per process and then served from memory.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any


class RenderCache:
    """An LRU of whole-text renders; concurrent requests for one text share one synthesis.

    A failed or cancelled render is not cached, so the next request tries again.
    """

    def __init__(self, render: Callable[[str], Coroutine[Any, Any, bytes]], *, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._render = render
        self._size = size
        self._name = name
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._rendering: dict[str, asyncio.Task[bytes]] = {}

    async def get(self, text: str) -> bytes:
        """The audio of ``text``: from the cache, from a render in progress, or rendered now."""
        cached = self._done.get(text)
        if cached is not None:
            self._done.move_to_end(text)
            return cached
        rendering = self._rendering.get(text)
        if rendering is None:
            rendering = asyncio.create_task(self._render(text), name=self._name)
            self._rendering[text] = rendering
            rendering.add_done_callback(functools.partial(self._rendered, text))
        # Shielded: one waiter giving up must not cancel the synthesis the others wait for.
        return await asyncio.shield(rendering)

    def cancel(self) -> None:
        """Cancel the renders in progress (at engine shutdown)."""
        for rendering in list(self._rendering.values()):
            rendering.cancel()

    def _rendered(self, text: str, rendering: asyncio.Task[bytes]) -> None:
        del self._rendering[text]
        if rendering.cancelled() or rendering.exception() is not None:
            return
        self._done[text] = rendering.result()
        if len(self._done) > self._size:
            self._done.popitem(last=False)
