"""Prometheus metrics of the running server, served at ``/metrics``.

The metrics live in their own ``CollectorRegistry`` (not the client's global one), so each app,
and each test, has its own. ``CallMetrics`` is the narrow facade the session and the server
call; every method is a few dictionary lookups and an add, safe on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from runtime.fallback import BreakerState

#: The stages of ``TurnLatency.breakdown()`` (keys without their ``_ms`` suffix).
STAGES = frozenset({"endpointing", "stt", "bot", "tts", "send", "total", "first_audio", "runtime_overhead"})
BREAKER_STATES: tuple[BreakerState, ...] = ("closed", "half_open", "open")
#: Seconds, dense around the 800 ms turn budget so "P95 under budget" can be read off the
#: buckets; 2 s is where a turn counts as dead air.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)


class CallMetrics:
    """The server's metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._active = Gauge("leadline_active_calls", "Calls in progress", registry=registry)
        self._latency = Histogram(
            "leadline_turn_latency_seconds",
            "Turn latency per stage (end of caller speech to first bot audio, by stage)",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self._vendor_errors = Counter(
            "leadline_vendor_errors", "Vendor failures", ["vendor", "kind"], registry=registry
        )
        self._breaker = Gauge(
            "leadline_breaker_state",
            "1 for each vendor's current breaker state",
            ["vendor", "state"],
            registry=registry,
        )
        self._late_frames = Counter(
            "leadline_late_frames", "Outbound frames sent after their due time", registry=registry
        )
        self._depth = Gauge("leadline_event_buffer_depth", "Rows waiting in the write-behind buffer", registry=registry)
        self._spilled = Counter(
            "leadline_event_buffer_spilled", "Rows the write-behind buffer moved to disk", registry=registry
        )
        self._spilled_seen = 0

    def turn_latency(self, stage: str, ms: float) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown latency stage {stage!r}")
        self._latency.labels(stage).observe(max(0.0, ms) / 1000)

    def turn(self, breakdown: Mapping[str, float]) -> None:
        """Every stage of one ``TurnLatency.breakdown()``."""
        for key, ms in breakdown.items():
            self.turn_latency(key.removesuffix("_ms"), ms)

    def vendor_error(self, vendor: str, kind: str) -> None:
        self._vendor_errors.labels(vendor, kind).inc()

    def breaker(self, vendor: str, state: BreakerState) -> None:
        if state not in BREAKER_STATES:
            raise ValueError(f"unknown breaker state {state!r}")
        for candidate in BREAKER_STATES:
            self._breaker.labels(vendor, candidate).set(1 if candidate == state else 0)

    def late_frames(self, n: int) -> None:
        """Frames newly late since the last report."""
        self._late_frames.inc(n)

    def active_calls(self, n: int) -> None:
        self._active.set(n)

    def buffer(self, depth: int, spilled: int) -> None:
        """The write-behind buffer's depth now and its running total of spilled rows
        (``WriteBehindStats``); the counter grows by what is new since the last report."""
        self._depth.set(depth)
        if spilled > self._spilled_seen:
            self._spilled.inc(spilled - self._spilled_seen)
            self._spilled_seen = spilled


#: Where the app keeps its ``CallMetrics`` (the lead's wiring sets it; sessions read it).
CALL_METRICS = web.AppKey("call_metrics", CallMetrics)


def add_metrics_routes(app: web.Application, registry: CollectorRegistry) -> None:
    """``GET /metrics`` in the Prometheus text format. Unauthenticated, as scrapers expect:
    the figures carry no call data, phone numbers or tenants."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
