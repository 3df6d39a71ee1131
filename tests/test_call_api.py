"""The stored-call API against real stores (Postgres in a fresh schema, and the embedded SQLite
file) filled through the store API, served on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from analytics.live_bus import MemoryLiveBus
from analytics.migrate import migrate
from analytics.recording import StereoRecorder
from analytics.records import (
    AppointmentRecord,
    CallEventRecord,
    CallRecord,
    RecordingRecord,
    Speaker,
    UsageRecord,
    UtteranceRecord,
)
from analytics.store import CallStore, open_store
from runtime import events as ev
from runtime.audio import pcm_to_ulaw
from runtime.call_api import (
    ANALYTICS_EVENT_KIND,
    CALL_STORE,
    LIVE_BUS,
    CallApiOptions,
    add_call_api_routes,
    runtime_events,
    timeline,
)
from tests.conftest import on_loopback
from tests.test_store import pg_schema

TOKEN = "api-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def turn_latency(turn: int, speech_end: float, first_frame: float) -> ev.TurnLatency:
    """A turn whose stages are 300 ms endpointing, 100 ms STT, 200 ms bot, 50 ms TTS, rest sending."""
    return ev.TurnLatency(
        turn=turn,
        speech_end_at=speech_end,
        turn_end_at=speech_end + 0.3,
        stt_done_at=speech_end + 0.4,
        first_text_at=speech_end + 0.6,
        first_audio_at=speech_end + 0.65,
        first_frame_at=first_frame,
        stt_engine_ms=100,
        bot_ms=200,
        tts_engine_ms=50,
    )


#: CA1: greeting, two answered turns (1250 ms and 700 ms to first audio), the second answer
#: interrupted with words, an 8 s silence prompt, the end. Bot turns 0-3: rates 1/4 and 1/4.
CA1_EVENTS: list[ev.CallEvent] = [
    ev.GreetingLatency(at=0.5, latency_ms=500),
    ev.BotUtterance(at=0.5, turn=0, text="Hi, this is Ava.", audio_ms=2000),
    ev.CallerUtterance(at=4.0, turn=1, text="I want to buy.", speech_ms=1500),
    turn_latency(1, 3.5, 4.75),
    ev.BotUtterance(at=4.75, turn=1, text="Great, where?", audio_ms=1000),
    ev.CallerUtterance(at=7.0, turn=2, text="Austin.", speech_ms=800),
    turn_latency(2, 7.0, 7.7),
    ev.BotUtterance(at=7.7, turn=2, text="And your budget is what?", audio_ms=3000),
    ev.Interruption(
        at=8.5,
        turn=2,
        reply_text="And your budget is what?",
        heard_text="And your",
        reply_audio_ms=3000,
        heard_ms=800,
        reaction_ms=180,
    ),
    ev.Silence(at=20.0, action="prompt", silent_s=8.0),
    ev.BotUtterance(at=20.0, turn=3, text="Are you still there?", audio_ms=1500),
    ev.DtmfReceived(at=24.0, digit="5"),
    ev.CallEnded(at=30.0, reason="caller_hangup"),
]
#: CA2, still in progress: one slow turn (2500 ms: dead air).
CA2_EVENTS: list[ev.CallEvent] = [
    ev.BotUtterance(at=0.4, turn=0, text="Hi.", audio_ms=800),
    turn_latency(1, 3.0, 5.5),
    ev.CallerUtterance(at=9.0, turn=2, text="Hello?", speech_ms=600),
    ev.BotTalkedOver(at=9.2, turn=2),
    ev.TurnUnanswered(at=9.5, turn=2, reason="the bot failed"),
]
ANALYTICS_PAYLOAD = {"score": {"score": 75.5}, "summary": {"outcome": {"result": "booked"}}}


def call(sid: str, tenant: str, started: datetime, **changes: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "call_sid": sid,
        "tenant": tenant,
        "direction": "inbound",
        "from_number": "+15125550123",
        "to_number": "+15125550100",
        "state": "completed",
        "started_at": started,
        "bots": ("lead",),
    }
    return CallRecord(**{**fields, **changes})


def event_rows(sid: str, tenant: str, events: list[ev.CallEvent]) -> list[CallEventRecord]:
    return [
        CallEventRecord(call_sid=sid, tenant=tenant, seq=i, kind=e.kind, at=moment(e), payload=ev.event_to_dict(e))
        for i, e in enumerate(events)
    ]


def moment(event: ev.CallEvent) -> float:
    """When the event happened: a turn's latency is known at its first frame."""
    return event.first_frame_at if isinstance(event, ev.TurnLatency) else event.at


def utterance(
    seq: int, speaker: Speaker, text: str, start: float, language: str, sentiment: float | None
) -> UtteranceRecord:
    return UtteranceRecord(
        call_sid="CA1",
        tenant="acme",
        seq=seq,
        speaker=speaker,
        text=text,
        start_s=start,
        end_s=start + 1.0,
        language=language,
        sentiment=sentiment,
    )


def write_recording(directory: Path) -> Path:
    path = directory / "CA1.wav"
    with StereoRecorder(path) as recorder:
        recorder.caller(pcm_to_ulaw(np.full(8000, 1000, dtype=np.int16)), at_s=1.0)
        recorder.bot(pcm_to_ulaw(np.full(4000, -1000, dtype=np.int16)), at_s=0.0)
    return path


async def fill(store: CallStore, recordings: Path) -> None:
    ca1 = call("CA1", "acme", T0, ended_at=T0 + timedelta(seconds=30), outcome="booked", duration_s=30.0)
    ca2 = call("CA2", "acme", NOW - timedelta(minutes=1), state="in-progress")
    ca3 = call("CA3", "zenith", T0 + timedelta(minutes=5), outcome="no_answers", duration_s=12.0)
    stale = call("CA4", "acme", T0 - timedelta(days=2), state="in-progress")
    analytics = CallEventRecord(
        call_sid="CA1", tenant="acme", seq=99, kind=ANALYTICS_EVENT_KIND, at=30.0, payload=ANALYTICS_PAYLOAD
    )
    recording = write_recording(recordings)
    with StereoRecorder(recordings.parent / "outside.wav") as outside:
        outside.caller(b"\xff" * 80, at_s=0.0)
    await store.write(
        [
            ca1,
            ca2,
            ca3,
            stale,
            *event_rows("CA1", "acme", CA1_EVENTS),
            analytics,
            *event_rows("CA2", "acme", CA2_EVENTS),
            utterance(1, "bot", "Hi, this is Ava.", 0.5, "en", None),
            utterance(2, "caller", "I want to buy.", 2.5, "en", 0.6),
            utterance(3, "caller", "Austin, I hate waiting.", 6.2, "en", -0.3),
            utterance(4, "caller", "Sí, claro.", 23.0, "es", 0.0),
            AppointmentRecord(
                appointment_id="apt-1",
                call_sid="CA1",
                tenant="acme",
                starts_at=T0 + timedelta(days=1),
                ends_at=T0 + timedelta(days=1, hours=1),
                title="Showing",
                booked_at=T0 + timedelta(seconds=25),
            ),
            UsageRecord(call_sid="CA1", tenant="acme", billable_seconds=30, recorded_at=T0 + timedelta(seconds=31)),
            recording_row("CA1", recording),
            recording_row("CA3", recordings.parent / "outside.wav"),
        ]
    )


def recording_row(sid: str, path: Path) -> RecordingRecord:
    return RecordingRecord(
        call_sid=sid,
        tenant="acme",
        path=str(path),
        duration_s=2.0,
        channels=2,
        size_bytes=path.stat().st_size,
        created_at=T0,
    )


@dataclass
class Api:
    base_url: str
    http: aiohttp.ClientSession
    bus: MemoryLiveBus
    recording: Path

    async def get(
        self, path: str, *, headers: dict[str, str] | None = None, params: Mapping[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        response = await self.http.get(
            f"{self.base_url}{path}", headers=AUTH if headers is None else headers, params=params
        )
        await response.read()
        return response

    async def json(self, path: str, **params: str) -> Any:
        response = await self.get(path, params=params)
        assert response.status == 200, await response.text()
        return await response.json()


@contextlib.asynccontextmanager
async def opened_store(kind: str, tmp_path: Path) -> AsyncIterator[CallStore]:
    if kind == "sqlite":
        store = open_store(None, data_dir=tmp_path)
        yield store
        await store.aclose()
        return
    async with pg_schema("test_call_api_") as url:
        await migrate(url)
        store = open_store(url)
        yield store
        await store.aclose()


@pytest.fixture(params=["postgres", "sqlite"])
async def api(request: pytest.FixtureRequest, tmp_path: Path, http: aiohttp.ClientSession) -> AsyncIterator[Api]:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    async with opened_store(request.param, tmp_path) as store:
        await fill(store, recordings)
        bus = MemoryLiveBus()
        app = web.Application()
        app[CALL_STORE] = store
        app[LIVE_BUS] = bus
        options = CallApiOptions(token=TOKEN, recordings_dir=recordings, keepalive_s=0.2, clock=lambda: NOW)
        add_call_api_routes(app, options)
        async with on_loopback(app) as base_url:
            yield Api(base_url, http, bus, recordings / "CA1.wav")


# --- auth --------------------------------------------------------------------------------------

ROUTES = [
    "/api/v1/calls",
    "/api/v1/calls/CA1",
    "/api/v1/calls/CA1/recording",
    "/api/v1/analytics",
    "/api/v1/live?tenant=acme",
]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
async def test_every_route_wants_the_bearer_token(api: Api, headers: dict[str, str]) -> None:
    for route in ROUTES:
        response = await api.get(route, headers=headers)
        assert response.status == 401, route
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert await response.json() == {"error": "bearer token required"}


async def test_an_empty_token_keeps_the_api_closed(http: aiohttp.ClientSession, tmp_path: Path) -> None:
    app = web.Application()
    app[CALL_STORE] = open_store(None, data_dir=tmp_path)
    app[LIVE_BUS] = MemoryLiveBus()
    add_call_api_routes(app, CallApiOptions(token=""))
    async with on_loopback(app) as base_url:
        for headers in ({}, {"Authorization": "Bearer "}):
            async with http.get(f"{base_url}/api/v1/calls", headers=headers) as response:
                assert response.status == 401
    await app[CALL_STORE].aclose()


# --- listing -----------------------------------------------------------------------------------


async def sids(api: Api, **params: str) -> list[str]:
    body = await api.json("/api/v1/calls", **params)
    return [c["call_sid"] for c in body["calls"]]


async def test_calls_newest_first_and_filtered(api: Api) -> None:
    assert await sids(api) == ["CA2", "CA3", "CA1", "CA4"]
    assert await sids(api, tenant="acme") == ["CA2", "CA1", "CA4"]
    assert await sids(api, outcome="booked") == ["CA1"]
    assert await sids(api, since=T0.isoformat(), until=(T0 + timedelta(minutes=5)).isoformat()) == ["CA1"]
    assert await sids(api, since="2026-03-02T15:00:00Z", tenant="acme") == ["CA2", "CA1"]
    first = await api.json("/api/v1/calls", limit="2")
    assert [c["call_sid"] for c in first["calls"]] == ["CA2", "CA3"] and first["next_offset"] == 2
    rest = await api.json("/api/v1/calls", limit="2", offset="2")
    assert [c["call_sid"] for c in rest["calls"]] == ["CA1", "CA4"] and rest["next_offset"] == 4
    assert (await api.json("/api/v1/calls", limit="3", offset="2"))["next_offset"] is None


async def test_a_call_in_the_listing_is_the_stored_record(api: Api) -> None:
    body = await api.json("/api/v1/calls", outcome="booked")
    assert body["calls"] == [
        {
            "call_sid": "CA1",
            "tenant": "acme",
            "direction": "inbound",
            "from_number": "+15125550123",
            "to_number": "+15125550100",
            "state": "completed",
            "started_at": "2026-03-02T15:00:00+00:00",
            "ended_at": "2026-03-02T15:00:30+00:00",
            "bots": ["lead"],
            "outcome": "booked",
            "duration_s": 30.0,
        }
    ]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"since": "yesterday"}, "since must be an ISO 8601 time"),
        ({"until": "2026-03-02T15:00:00"}, "until needs a time zone offset (Z or +hh:mm)"),
        ({"since": "2026-03-02T16:00:00Z", "until": "2026-03-02T15:00:00Z"}, "since must be before until"),
        ({"limit": "0"}, "limit must be between 1 and 500"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"offset": "-1"}, "offset must be between 0 and 10000000"),
        ({"tenantt": "acme"}, "unknown parameter 'tenantt'"),
    ],
)
async def test_bad_listing_parameters_are_refused_with_the_reason(
    api: Api, params: dict[str, str], reason: str
) -> None:
    response = await api.get("/api/v1/calls", params=params)
    assert response.status == 400
    assert await response.json() == {"error": reason}


# --- one call ----------------------------------------------------------------------------------


async def test_one_call_in_full(api: Api) -> None:
    body = await api.json("/api/v1/calls/CA1")
    assert body["call"]["outcome"] == "booked"
    assert [e["kind"] for e in body["events"]] == [e.kind for e in CA1_EVENTS], "analytics kept apart"
    assert body["events"][3]["payload"]["total_ms"] == 1250.0
    assert body["analytics"] == ANALYTICS_PAYLOAD
    assert [(u["speaker"], u["text"]) for u in body["transcript"]][:2] == [
        ("bot", "Hi, this is Ava."),
        ("caller", "I want to buy."),
    ]
    assert body["latency"] == [
        {"turn": 1, "at": 4.75, **stages(endpointing=300, send=600, total=1250)},
        {"turn": 2, "at": 7.7, **stages(endpointing=300, send=50, total=700)},
    ]
    assert body["appointments"][0]["appointment_id"] == "apt-1"
    assert body["usage"]["billable_minutes"] == 1
    assert body["recording"] == {
        "duration_s": 2.0,
        "size_bytes": api.recording.stat().st_size,
        "content_type": "audio/wav",
    }


def stages(*, endpointing: float, send: float, total: float) -> dict[str, Any]:
    return {
        "endpointing_ms": endpointing,
        "stt_ms": 100.0,
        "bot_ms": 200.0,
        "tts_ms": 50.0,
        "send_ms": send,
        "total_ms": total,
        "first_audio_ms": total,
        "runtime_overhead_ms": pytest.approx(total - endpointing - 350, abs=0.01),
    }


async def test_the_timeline_has_speech_silences_and_moments_in_order(api: Api) -> None:
    timeline = (await api.json("/api/v1/calls/CA1"))["timeline"]
    assert [(t["kind"], t["start_s"]) for t in timeline] == [
        ("bot", 0.5),
        ("caller", 2.5),
        ("caller", 6.2),
        ("interruption", 8.5),
        ("silence", 12.0),
        ("caller", 23.0),
        ("dtmf", 24.0),
        ("call_ended", 30.0),
    ]
    interruption = timeline[3]
    assert interruption["label"] == "And your" and interruption["end_s"] is None
    assert timeline[4]["end_s"] == 20.0


async def test_without_a_transcript_speech_comes_from_the_utterance_events(api: Api) -> None:
    timeline = (await api.json("/api/v1/calls/CA2"))["timeline"]
    assert timeline == [
        {"kind": "bot", "start_s": 0.4, "end_s": pytest.approx(1.2), "label": "Hi."},
        {"kind": "caller", "start_s": pytest.approx(8.4), "end_s": 9.0, "label": "Hello?"},
    ]


async def test_an_unknown_call_is_404(api: Api) -> None:
    response = await api.get("/api/v1/calls/CA-nope")
    assert response.status == 404
    assert await response.json() == {"error": "no such call"}


# --- recordings --------------------------------------------------------------------------------


async def test_the_recording_whole_and_by_range(api: Api) -> None:
    whole = await api.get("/api/v1/calls/CA1/recording")
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert await whole.read() == api.recording.read_bytes()
    part = await api.get("/api/v1/calls/CA1/recording", headers={**AUTH, "Range": "bytes=44-51"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 44-51/{api.recording.stat().st_size}"
    assert await part.read() == api.recording.read_bytes()[44:52]
    beyond = await api.get("/api/v1/calls/CA1/recording", headers={**AUTH, "Range": "bytes=999999-"})
    assert beyond.status == 416


async def test_no_recording_or_one_outside_the_directory_is_404(api: Api) -> None:
    for sid in ("CA2", "CA3"):
        response = await api.get(f"/api/v1/calls/{sid}/recording")
        assert response.status == 404, sid
        assert await response.json() == {"error": "no recording for this call"}
    api.recording.unlink()
    assert (await api.get("/api/v1/calls/CA1/recording")).status == 404


# --- analytics ---------------------------------------------------------------------------------


async def test_analytics_for_a_tenant_and_period(api: Api) -> None:
    body = await api.json("/api/v1/analytics", tenant="acme")
    assert body["period"] == {"since": (NOW - timedelta(days=7)).isoformat(), "until": NOW.isoformat()}
    assert body["calls"] == 3 and body["analysed_calls"] == 3
    assert body["outcomes"] == {"booked": 1} and body["bookings"] == 1
    assert body["latency_ms"]["first_audio_ms"]["count"] == 3
    assert body["latency_ms"]["first_audio_ms"]["p50"] == 1250.0
    assert body["conversation"] == {
        "bot_turns": 5,
        "caller_turns": 3,
        "interruptions": 1,
        "interruption_rate": 0.2,
        "bot_interruptions": 1,  # CA2's turn 2
        "bot_interruption_rate": 0.3333,
        "caller_silences": 1,
        "silence_rate": 0.2,
        "dead_air": 2,  # CA1's slow turn, and CA2's unanswered one
        "unanswered_turns": 1,
    }
    assert body["languages"] == {"en": 2, "es": 1}
    assert body["sentiment"] == {"turns": 3, "mean": 0.1, "positive": 1, "neutral": 1, "negative": 1}
    histogram = body["latency_histogram"]
    assert histogram["bounds_ms"] == [200, 400, 600, 800, 1000, 1200, 1500, 2000, 3000]
    assert histogram["counts"]["first_audio_ms"] == [0, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert histogram["counts"]["stt_ms"] == [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert body["latency_budget"] == {"budget_ms": 800.0, "within": {"first_audio_ms": 0.3333, "total_ms": 0.3333}}


async def test_analytics_of_an_empty_period_and_bad_periods(api: Api) -> None:
    body = await api.json("/api/v1/analytics", since="2020-01-01T00:00:00Z", until="2020-01-02T00:00:00Z")
    assert body["calls"] == 0 and body["analysed_calls"] == 0
    assert body["conversation"]["interruption_rate"] is None and body["sentiment"]["mean"] is None
    assert (await api.get("/api/v1/analytics", params={"since": (NOW + timedelta(days=1)).isoformat()})).status == 400
    assert (await api.get("/api/v1/analytics", params={"outcome": "booked"})).status == 400


# --- live --------------------------------------------------------------------------------------


async def read_sse(response: aiohttp.ClientResponse) -> tuple[str, Any]:
    """The next event (comments skipped): its name and its parsed data."""
    name, data = "message", ""
    while True:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data += line.removeprefix("data: ")
        elif not line and data:
            return name, json.loads(data)


async def test_live_feed_snapshot_then_published_records(api: Api) -> None:
    async with api.http.get(f"{api.base_url}/api/v1/live", headers=AUTH, params={"tenant": "acme"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        name, snapshot = await read_sse(response)
        assert name == "snapshot"
        assert [c["call_sid"] for c in snapshot["active_calls"]] == ["CA2"], "ended and stale calls left out"
        assert snapshot["counters"] == {"active_calls": 0}
        await api.bus.publish("zenith", {"type": "event", "call_sid": "CA3", "kind": "dtmf"})
        await api.bus.publish("acme", {"type": "event", "call_sid": "CA2", "kind": "turn_latency", "seq": 2})
        name, event = await asyncio.wait_for(read_sse(response), timeout=5)
        assert (name, event["call_sid"], event["seq"]) == ("event", "CA2", 2), "only the tenant's events"
        assert b": keepalive" in await asyncio.wait_for(response.content.readuntil(b"\n\n"), timeout=5)
    for _ in range(50):
        if not api.bus._subscribers["acme"]:
            break
        await asyncio.sleep(0.05)
    assert not api.bus._subscribers["acme"], "the subscription ends with the feed"


async def test_live_feed_needs_a_tenant(api: Api) -> None:
    response = await api.get("/api/v1/live")
    assert response.status == 400
    assert await response.json() == {"error": "tenant is required"}


# --- the description ---------------------------------------------------------------------------


async def test_openapi_documents_exactly_the_routes(api: Api) -> None:
    spec = await api.json("/api/openapi.json")
    assert spec["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    app_routes = await served_routes(api)
    assert {r for r in app_routes if r[0].startswith("/api/v1/")} == {
        r for r in documented if r[0].startswith("/api/v1/")
    }
    assert ("/api/openapi.json", "GET") in documented
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"]), "every $ref resolves"


async def served_routes(api: Api) -> set[tuple[str, str]]:
    """The app's routes as (path template, method), read from a fresh app built the same way."""
    app = web.Application()
    add_call_api_routes(app, CallApiOptions(token=TOKEN))
    routes = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD":
            routes.add((str(path), route.method))
    return routes


# --- stored events back to runtime events -------------------------------------------------------


def test_stored_events_come_back_as_the_runtime_events() -> None:
    rows = event_rows("CA1", "acme", CA1_EVENTS)
    rows.append(CallEventRecord(call_sid="CA1", tenant="acme", seq=50, kind="handed_off", at=9.0, payload={}))
    rows.append(CallEventRecord(call_sid="CA1", tenant="acme", seq=51, kind="silence", at=9.0, payload={}))
    assert runtime_events(rows) == CA1_EVENTS, "unknown kinds and incomplete payloads left out"


def test_hand_offs_and_transfers_are_marks_on_the_timeline() -> None:
    rows = [
        CallEventRecord(
            call_sid="CA1",
            tenant="acme",
            seq=1,
            kind="hand_off",
            at=5.0,
            payload={"from_bot": "lead", "to_bot": "buyer"},
        ),
        CallEventRecord(call_sid="CA1", tenant="acme", seq=2, kind="transfer", at=9.0, payload={"phase": "started"}),
        CallEventRecord(call_sid="CA1", tenant="acme", seq=3, kind="greeting_latency", at=0.4, payload={}),
    ]
    assert timeline(rows, []) == [
        {"kind": "handoff", "start_s": 5.0, "end_s": None, "label": "buyer"},
        {"kind": "transfer", "start_s": 9.0, "end_s": None, "label": "started"},
    ]
