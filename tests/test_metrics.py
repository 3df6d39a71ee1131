"""Prometheus metrics, checked the way Prometheus sees them: by scraping ``/metrics``."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from runtime.metrics import CALL_METRICS, CallMetrics, add_metrics_routes
from tests.conftest import on_loopback

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, metrics: CallMetrics) -> Samples:
    app = web.Application()
    app[CALL_METRICS] = metrics
    add_metrics_routes(app, metrics.registry)
    async with on_loopback(app) as base_url, http.get(f"{base_url}/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def test_turn_latency_lands_in_buckets_around_the_budget(http: aiohttp.ClientSession) -> None:
    metrics = CallMetrics(CollectorRegistry())
    for ms in (450, 790, 810, 2500):
        metrics.turn_latency("first_audio", ms)
    metrics.turn({"stt_ms": 120.0, "total_ms": 700.0})
    samples = await scrape(http, metrics)
    bucket = "leadline_turn_latency_seconds_bucket"
    assert samples[(bucket, labels(stage="first_audio", le="0.8"))] == 2
    assert samples[(bucket, labels(stage="first_audio", le="0.9"))] == 3
    assert samples[(bucket, labels(stage="first_audio", le="2.0"))] == 3
    assert samples[(bucket, labels(stage="first_audio", le="+Inf"))] == 4
    assert samples[("leadline_turn_latency_seconds_sum", labels(stage="first_audio"))] == pytest.approx(4.55)
    assert samples[("leadline_turn_latency_seconds_count", labels(stage="stt"))] == 1
    assert samples[(bucket, labels(stage="total", le="0.7"))] == 1


async def test_vendor_errors_breakers_frames_calls_and_buffer(http: aiohttp.ClientSession) -> None:
    metrics = CallMetrics(CollectorRegistry())
    metrics.vendor_error("deepgram", "timeout")
    metrics.vendor_error("deepgram", "timeout")
    metrics.vendor_error("elevenlabs", "http_500")
    metrics.breaker("deepgram", "open")
    metrics.breaker("elevenlabs", "open")
    metrics.breaker("elevenlabs", "half_open")
    metrics.late_frames(3)
    metrics.late_frames(2)
    metrics.active_calls(7)
    metrics.buffer(depth=40, spilled=100)
    metrics.buffer(depth=12, spilled=150)
    metrics.buffer(depth=5, spilled=150)
    samples = await scrape(http, metrics)
    assert samples[("leadline_vendor_errors_total", labels(vendor="deepgram", kind="timeout"))] == 2
    assert samples[("leadline_vendor_errors_total", labels(vendor="elevenlabs", kind="http_500"))] == 1
    assert samples[("leadline_breaker_state", labels(vendor="deepgram", state="open"))] == 1
    assert samples[("leadline_breaker_state", labels(vendor="elevenlabs", state="open"))] == 0
    assert samples[("leadline_breaker_state", labels(vendor="elevenlabs", state="half_open"))] == 1
    assert samples[("leadline_late_frames_total", labels())] == 5
    assert samples[("leadline_active_calls", labels())] == 7
    assert samples[("leadline_event_buffer_depth", labels())] == 5
    assert samples[("leadline_event_buffer_spilled_total", labels())] == 150, "a running total, not summed"


async def test_each_registry_is_its_own(http: aiohttp.ClientSession) -> None:
    first, second = CallMetrics(CollectorRegistry()), CallMetrics(CollectorRegistry())
    first.active_calls(3)
    samples = await scrape(http, second)
    assert samples[("leadline_active_calls", labels())] == 0


def test_unknown_stages_and_states_are_refused() -> None:
    metrics = CallMetrics(CollectorRegistry())
    with pytest.raises(ValueError, match="stage"):
        metrics.turn_latency("stt_ms", 10)
    with pytest.raises(ValueError, match="breaker state"):
        metrics.breaker("deepgram", "broken")  # type: ignore[arg-type]
