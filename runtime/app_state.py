"""What the server keeps for its whole life: settings, engines, bots, reports, live calls."""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from analytics.recording import StereoRecorder
from bots.base import BotFactory
from runtime.anthropic_llm import AnthropicLlm
from runtime.bot_shelf import BotShelf
from runtime.call_archive import CallArchive
from runtime.config import Settings
from runtime.engines import EngineOptions, Engines, load_engines
from runtime.metrics import CallMetrics
from runtime.report import ReportStore
from runtime.session import CallSession
from runtime.transfers import Transfers
from telephony.rest import TwilioRest
from telephony.signature import WebhookValidator


@dataclass
class ServerState:
    settings: Settings
    bots: BotFactory
    engines: Engines | None = None
    reports: ReportStore = field(default_factory=ReportStore)
    live: dict[str, CallSession] = field(default_factory=dict)
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
    protocol_errors: Counter[str] = field(default_factory=Counter)
    background: set[asyncio.Task[object]] = field(default_factory=set)
    load: Callable[[EngineOptions], Engines] = load_engines
    #: Twilio REST, when an account is configured (hang-ups, outbound calls)
    rest: TwilioRest | None = None
    #: vendor clients the app owns, closed at shutdown
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    validator: WebhookValidator = field(init=False)
    #: every call's record, events, transcript and analytics into the store (when calls are kept)
    archive: CallArchive | None = None
    #: the server's Prometheus metrics (``/metrics``)
    metrics: CallMetrics = field(default_factory=lambda: CallMetrics(CollectorRegistry()))
    #: bots waiting for their call's stream (prepared by the voice webhook, or parked in a transfer)
    shelf: BotShelf = field(default_factory=BotShelf)
    transfers: Transfers = field(init=False)
    #: recordings of calls whose caller is with a person: (recorder, when the call's first stream
    #: started), closed when the transfer ends or continued if the caller comes back
    recordings_on_hold: dict[str, tuple[StereoRecorder, float]] = field(default_factory=dict)
    #: Claude, when it is the configured brain: the bots' and the call summaries' client
    llm: AnthropicLlm | None = None
    #: the time of day, for rules about it (TCPA's calling hours); tests set their own
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self.validator = WebhookValidator(self.settings.twilio_auth_token)
        self.transfers = Transfers(self.settings, self.validator, self.shelf, self.reports, self.spawn)

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run a background job the server owns (kept referenced until it finishes)."""
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


STATE = web.AppKey("state", ServerState)
