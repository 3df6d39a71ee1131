"""Calls kept, end to end: a real server whose calls land in Postgres and on Redis through the
write-behind buffer, with the transcript redacted, the analytics and the recording alongside; the
database going away mid-call loses nothing; the embedded default (SQLite, in-process bus) works
with nothing configured."""

from __future__ import annotations

import asyncio
import secrets
import wave
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from analytics.live_bus import LiveBus
from analytics.records import CallEventRecord
from analytics.store import CallStore, open_store
from emulators.anthropic import build_app, default_control
from emulators.control import LatencyProfile
from runtime.call_api import LIVE_BUS
from runtime.engines import EngineOptions, Engines
from runtime.events import CallerUtterance, event_to_dict
from runtime.fallback import CircuitBreaker
from runtime.report import CallReport
from runtime.storage_config import StorageOptions
from runtime.stt import ScriptedStt
from runtime.tts import ScriptedTts
from runtime.vendors import VendorOptions
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.script import CallerLine, CallerScript
from telephony.simulator.turns import CallerTiming
from tests.conftest import API_TOKEN, AUTH_TOKEN, RunningServer, StartServer, on_loopback
from tests.test_store import pg_schema
from tests.test_summary import RecordingResponder
from tests.test_write_behind import PgProxy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REDIS_URL = "redis://127.0.0.1:6379/0"
#: What the caller says; the phone number and the email must never be stored as said.
LINES = (
    "I'm looking to buy a three bedroom house in Austin, call me at 512 555 0199",
    "About four hundred thousand dollars, my email is dana.reyes@example.com",
    "In the next two months, we're relocating for work",
)


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    async with pg_schema("test_keeping_") as url:
        yield url


@pytest.fixture
def tenant() -> str:
    return "keep" + secrets.token_hex(4)


async def open_server(
    start_server: StartServer, scripted_engines: Engines, tenant: str, storage: StorageOptions
) -> RunningServer:
    engines = Engines(vad=scripted_engines.vad, stt=ScriptedStt(LINES), tts=ScriptedTts(ms_per_char=15))
    return await start_server(engines, tenant=tenant, storage=storage)


async def place_call(server: RunningServer, http: aiohttp.ClientSession) -> CallReport:
    options = SimulatedCallOptions(
        public_url=server.base_url,
        auth_token=AUTH_TOKEN,
        account_sid="AC" + "1" * 32,
        from_number="+15125550123",
        to_number="+15125550100",
        script=CallerScript("keeper", tuple(CallerLine(line, pause_ms=300) for line in LINES)),
        max_duration_s=60,
        timing=CallerTiming(linger_ms=5000),  # waits for the server to hang up, even on a busy machine
    )
    result = await run_simulated_call(options, tts=ScriptedTts(), session=http)
    assert result.error is None and result.end_reason == "server_hung_up", (result.error, result.end_reason)
    report = server.state.reports.get(result.call_sid)
    assert report is not None
    return report


async def stored(check: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    """Wait for the write-behind buffer to get ``what`` into the store."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110  # the store is polled: it signals nothing
            await asyncio.sleep(0.1)


def analytics_of(events: Sequence[CallEventRecord]) -> dict[str, Any]:
    (row,) = [e for e in events if e.kind == "call_analytics"]
    return row.payload


async def test_a_call_lands_in_postgres_and_on_redis_redacted_with_analytics_and_recording(
    schema_url: str,  # before the server: the schema must outlive the server's buffer
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    tenant: str,
    tmp_path: Path,
) -> None:
    storage = StorageOptions(database_url=schema_url, redis_url=REDIS_URL, data_dir=tmp_path)
    server = await open_server(start_server, scripted_engines, tenant, storage)
    reader = redis.from_url(REDIS_URL)
    stream = f"leadline:{tenant}:events"
    try:
        report = await place_call(server, http)
        call_sid = report.context.call_sid
        store = open_store(schema_url)
        try:
            await stored(lambda: _has_analytics(store, call_sid), "the call's analytics")
            call = await store.get_call(call_sid)
            events = await store.call_events(call_sid)
            utterances = await store.call_utterances(call_sid)
            recording = await store.call_recording(call_sid)
        finally:
            await store.aclose()
        assert call is not None and call.state == "completed" and call.tenant == tenant
        assert call.outcome == "qualified" and call.duration_s is not None and call.duration_s > 5
        # Every event of the call, in order, and nothing said kept as said.
        kinds = Counter(e.kind for e in events)
        assert kinds == Counter(e.kind for e in report.events) + Counter({"call_analytics": 1})
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        # When each party spoke: every reply heard to its end, every caller turn with its bounds.
        assert kinds["reply_heard"] == 4 and "bot_talked_over" not in kinds and "turn_unanswered" not in kinds
        checks = {e.payload["rule"]: e.payload["ok"] for e in events if e.kind == "compliance"}
        assert checks == {"ai_disclosure": True, "recording_disclosure": False}  # recorded, but not said
        spoken = [e for e in report.events if isinstance(e, CallerUtterance)]
        assert all(e.onset_at is not None and e.speech_end_at is not None for e in spoken)
        assert all(e.onset_at < e.speech_end_at <= e.at for e in spoken if e.onset_at and e.speech_end_at)
        stored_text = " ".join(str(e.payload) for e in events) + " ".join(u.text for u in utterances)
        assert "555 0199" not in stored_text and "dana.reyes" not in stored_text
        caller = [u.text for u in utterances if u.speaker == "caller"]
        assert "[PHONE]" in caller[0] and "[EMAIL]" in caller[1] and len(caller) == 3
        assert analytics_of(events)["summary"]["outcome"]["result"] == "qualified"
        # The stereo recording, caller left and bot right, as long as the call.
        assert recording is not None and Path(recording.path).parent == tmp_path / "recordings"
        with wave.open(recording.path) as wav:
            assert wav.getnchannels() == 2 and wav.getframerate() == 8000
            assert abs(wav.getnframes() / 8000 - call.duration_s) < 3
        # The live bus saw the call as it happened, and counted it.
        assert await reader.xlen(stream) >= len(events)
        bus = server.app[LIVE_BUS]
        await stored(lambda: _counted(bus, tenant), "the live counters", timeout_s=15)
        counters = await bus.counters(tenant)
        assert (counters["calls_started"], counters["turns"], counters.get("appointments", 0)) == (1, 3, 0)
        # And the API serves it.
        async with http.get(
            f"{server.base_url}/api/v1/calls/{call_sid}", headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as response:
            body = await response.json()
        assert response.status == 200, body
        assert [line["speaker"] for line in body["transcript"]][:2] == ["bot", "caller"]
    finally:
        await reader.delete(stream)
        await reader.aclose()


async def _counted(bus: LiveBus, tenant: str) -> bool:
    return (await bus.counters(tenant)).get("calls_ended", 0) == 1


async def _has_analytics(store: CallStore, call_sid: str) -> bool:
    return any(e.kind == "call_analytics" for e in await store.call_events(call_sid))


async def test_a_database_that_goes_away_mid_call_loses_nothing(
    schema_url: str,
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    tenant: str,
    tmp_path: Path,
) -> None:
    proxy = PgProxy()
    await proxy.start()
    schema = schema_url.split("search_path=")[1]
    proxied_url = f"postgresql://root@127.0.0.1:{proxy.port}/test?search_path={schema}"
    store = open_store(schema_url)
    try:
        storage = StorageOptions(database_url=proxied_url, data_dir=tmp_path, record_calls=False)
        server = await open_server(start_server, scripted_engines, tenant, storage)
        call = asyncio.create_task(place_call(server, http))
        await stored(lambda: _any_call(store, tenant), "the call's first rows")
        await proxy.stop()  # the database is gone for the rest of the call
        report = await call
        assert server.state.archive is not None
        await stored(lambda: _spilled_or_waiting(server), "rows held back", timeout_s=10)
        await proxy.start()  # ...and back
        call_sid = report.context.call_sid
        await stored(lambda: _has_analytics(store, call_sid), "the call once the database is back", timeout_s=60)
        events = await store.call_events(call_sid)
        assert Counter(e.kind for e in events) == Counter(e.kind for e in report.events) + Counter(
            {"call_analytics": 1}
        )
        turns = [e.payload for e in events if e.kind == "turn_latency"]
        assert turns == [event_to_dict(e) for e in report.turn_latencies()]
        row = await store.get_call(call_sid)
        assert row is not None and row.state == "completed"
    finally:
        await store.aclose()
        await proxy.stop()


async def _any_call(store: CallStore, tenant: str) -> bool:
    return bool(await store.list_calls(tenant=tenant))


async def _spilled_or_waiting(server: RunningServer) -> bool:
    archive = server.state.archive
    assert archive is not None
    stats = archive.writer.stats()
    return stats.store_errors > 0 and (stats.depth > 0 or stats.spilled > 0)


async def test_with_nothing_configured_calls_are_kept_in_the_embedded_store(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    tenant: str,
    tmp_path: Path,
) -> None:
    server = await open_server(start_server, scripted_engines, tenant, StorageOptions(data_dir=tmp_path))
    failing = CircuitBreaker("failing-vendor")
    for _ in range(failing.failure_threshold):
        failing.record_failure()
    report = await place_call(server, http)
    store = open_store(None, data_dir=tmp_path)
    try:
        await stored(lambda: _has_analytics(store, report.context.call_sid), "the call in SQLite")
        assert [c.call_sid for c in await store.list_calls(tenant=tenant)] == [report.context.call_sid]
    finally:
        await store.aclose()
    async with http.get(f"{server.base_url}/metrics") as response:
        metrics = await response.text()
    assert 'leadline_turn_latency_seconds_count{stage="first_audio"} 3.0' in metrics
    assert 'leadline_breaker_state{state="open",vendor="failing-vendor"} 1.0' in metrics


async def test_with_claude_as_the_brain_claude_writes_the_stored_summary_from_the_redacted_call(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    tenant: str,
    tmp_path: Path,
) -> None:
    control = default_control()
    fast = LatencyProfile(median_ms=1, p95_ms=2)
    control.latency.update(first_token=fast, token_interval=fast)
    responder = RecordingResponder("Buyer for a three bedroom house in Austin, about 400k, moving in two months.")
    async with on_loopback(build_app(api_key="k", responder=responder, control=control)) as base_url:
        claude = VendorOptions(anthropic_api_key="k", anthropic_base_url=base_url)
        engines = Engines(vad=scripted_engines.vad, stt=ScriptedStt(LINES), tts=ScriptedTts(ms_per_char=15))
        server = await start_server(
            engines,
            tenant=tenant,
            storage=StorageOptions(data_dir=tmp_path, record_calls=False),
            llm="anthropic",
            engines=EngineOptions(stt="scripted", tts="scripted", vendors=claude),
        )
        report = await place_call(server, http)
        store = open_store(None, data_dir=tmp_path)
        try:
            await stored(lambda: _has_analytics(store, report.context.call_sid), "the call's analytics")
            summary = analytics_of(await store.call_events(report.context.call_sid))["summary"]
        finally:
            await store.aclose()
    assert (summary["source"], summary["text"]) == ("llm", responder.text)
    (request,) = responder.requests
    assert "555 0199" not in str(request) and "dana.reyes" not in str(request)  # Claude saw it redacted
