"""One suite for every call store: Postgres (a fresh schema per run) and the embedded SQLite file."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from analytics.bot_sessions import StoredBotSessions
from analytics.migrate import migrate
from analytics.pg_store import PgCallStore
from analytics.records import (
    AppointmentRecord,
    CallEventRecord,
    CallRecord,
    RecordingRecord,
    Speaker,
    UsageRecord,
    UtteranceRecord,
    call_event_record,
)
from analytics.sqlite_store import SqliteCallStore
from analytics.store import CallStore, StoreError, latency_summary, open_store
from bots.session_state import DEFAULT_RESUME_WINDOW, STATE_VERSION, resumable
from runtime.events import DtmfReceived, TurnLatency

PG_URL = "postgresql://root@127.0.0.1:5432/test"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def pg_schema(prefix: str = "test_store_") -> AsyncIterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards."""
    schema = prefix + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_URL)
    await conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?search_path={schema}"
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


@pytest.fixture
async def pg_schema_url() -> AsyncIterator[str]:
    async with pg_schema() as url:
        yield url


@pytest.fixture(params=["postgres", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CallStore]:
    if request.param == "sqlite":
        embedded = SqliteCallStore(tmp_path / "calls.sqlite3")
        yield embedded
        await embedded.aclose()
        return
    async with pg_schema() as url:
        await migrate(url)
        pg = PgCallStore(url)
        yield pg
        await pg.aclose()


def call(sid: str = "CA1", *, tenant: str = "acme", minutes: int = 0, **changes: object) -> CallRecord:
    fields: dict[str, object] = {
        "call_sid": sid,
        "tenant": tenant,
        "direction": "inbound",
        "from_number": "+15125550123",
        "to_number": "+15125550100",
        "state": "in-progress",
        "started_at": T0 + timedelta(minutes=minutes),
        "bots": ("lead",),
    }
    fields.update(changes)
    return CallRecord(**fields)  # type: ignore[arg-type]


def event(sid: str, seq: int, kind: str = "dtmf", **payload: object) -> CallEventRecord:
    return CallEventRecord(call_sid=sid, tenant="acme", seq=seq, kind=kind, at=seq * 1.5, payload=dict(payload))


def utterance(sid: str, seq: int, text: str) -> UtteranceRecord:
    speaker: Speaker = "caller" if seq % 2 else "bot"
    return UtteranceRecord(
        call_sid=sid, tenant="acme", seq=seq, speaker=speaker, text=text, start_s=seq, end_s=seq + 0.8, language="en"
    )


def turn(sid: str, seq: int, total_ms: float, stt_ms: float) -> CallEventRecord:
    return event(sid, seq, "turn_latency", total_ms=total_ms, stt_ms=stt_ms, turn=seq)


async def test_call_upsert_latest_wins_and_round_trips(store: CallStore) -> None:
    started = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    await store.upsert_call(call(started_at=started))
    ended = call(
        started_at=started,
        state="completed",
        ended_at=started + timedelta(seconds=95.5),
        bots=("lead", "buyer"),
        outcome="booked",
        duration_s=95.5,
    )
    await store.upsert_call(ended)
    await store.upsert_call(ended)
    got = await store.get_call("CA1")
    assert got == ended
    assert got is not None and got.started_at.utcoffset() is not None
    assert await store.get_call("CA-missing") is None


async def test_events_and_utterances_are_idempotent_and_ordered(store: CallStore) -> None:
    events = [event("CA1", seq, digit=str(seq), nested={"a": [1, 2]}) for seq in (3, 1, 2)]
    await store.add_events(events)
    await store.add_events([*events, event("CA1", 2, digit="changed"), event("CA1", 4)])
    stored = await store.call_events("CA1")
    assert [e.seq for e in stored] == [1, 2, 3, 4]
    assert stored[1] == events[2], "a retried row must not overwrite the first write"
    assert stored[0].payload == {"digit": "1", "nested": {"a": [1, 2]}}
    lines = [utterance("CA1", seq, f"line {seq}") for seq in range(1, 4)]
    await store.add_utterances(lines)
    await store.add_utterances(lines)
    assert await store.call_utterances("CA1") == lines
    assert await store.call_events("CA2") == []


async def test_list_calls_filters_and_pages_newest_first(store: CallStore) -> None:
    await store.write(
        [
            call("CA1", minutes=0, outcome="booked"),
            call("CA2", minutes=10, outcome="no_answer"),
            call("CA3", minutes=20, outcome="booked"),
            call("CA4", minutes=30, tenant="other"),
        ]
    )
    assert [c.call_sid for c in await store.list_calls()] == ["CA4", "CA3", "CA2", "CA1"]
    assert [c.call_sid for c in await store.list_calls(tenant="acme")] == ["CA3", "CA2", "CA1"]
    window = await store.list_calls(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30))
    assert [c.call_sid for c in window] == ["CA3", "CA2"], "since is inclusive, until exclusive"
    assert [c.call_sid for c in await store.list_calls(outcome="booked")] == ["CA3", "CA1"]
    assert [c.call_sid for c in await store.list_calls(limit=2, offset=1)] == ["CA3", "CA2"]


async def test_recording_usage_and_appointments(store: CallStore) -> None:
    recording = RecordingRecord(
        call_sid="CA1",
        tenant="acme",
        path="rec/CA1.wav",
        duration_s=61.2,
        channels=2,
        size_bytes=1958400,
        created_at=T0,
    )
    await store.add_recording(recording)
    await store.add_recording(recording)
    assert await store.call_recording("CA1") == recording
    assert await store.call_recording("CA2") is None
    usage = UsageRecord(call_sid="CA1", tenant="acme", billable_seconds=61, recorded_at=T0)
    await store.add_usage(usage)
    assert await store.call_usage("CA1") == usage
    booking = AppointmentRecord(
        appointment_id="apt-1",
        call_sid="CA1",
        tenant="acme",
        starts_at=T0 + timedelta(days=1),
        ends_at=T0 + timedelta(days=1, minutes=30),
        title="Showing",
        booked_at=T0,
        details={"calendar": "local"},
    )
    await store.add_appointment(booking)
    await store.add_appointment(booking)
    assert await store.call_appointments("CA1") == [booking]


def recording(sid: str, *, minutes: int = 0) -> RecordingRecord:
    return RecordingRecord(
        call_sid=sid,
        tenant="acme",
        path=f"rec/{sid}.wav",
        duration_s=30.0,
        channels=2,
        size_bytes=480044,
        created_at=T0 + timedelta(minutes=minutes),
    )


async def test_forget_recordings_removes_only_the_named_files_once(store: CallStore) -> None:
    await store.write([recording("CA1"), recording("CA2", minutes=5), recording("CA3", minutes=10)])
    assert await store.forget_recordings(["rec/CA1.wav", "rec/CA3.wav", "rec/CA9.wav"]) == 2
    assert await store.call_recording("CA1") is None
    assert await store.call_recording("CA3") is None
    assert await store.call_recording("CA2") == recording("CA2", minutes=5)
    assert await store.forget_recordings(["rec/CA1.wav", "rec/CA3.wav"]) == 0, "forgetting twice changes nothing"
    assert await store.forget_recordings([]) == 0
    assert await store.forget_recordings(["rec/CA2.wav", "rec/CA2.wav"]) == 1


async def test_recording_paths_lists_those_created_before(store: CallStore) -> None:
    await store.write([recording("CA1"), recording("CA2", minutes=5), recording("CA3", minutes=10)])
    before = await store.recording_paths(T0 + timedelta(minutes=10))
    assert sorted(before) == ["rec/CA1.wav", "rec/CA2.wav"], "the bound is exclusive"
    assert await store.recording_paths(T0) == []


async def test_bot_sessions_are_per_tenant_and_phone(store: CallStore) -> None:
    assert await store.load_bot_session("acme", "+15125550123") is None
    await store.save_bot_session("acme", "+15125550123", {"step": "budget", "answers": {"beds": 3}})
    await store.save_bot_session("acme", "+15125550123", {"step": "timeline", "answers": {"beds": 3}})
    await store.save_bot_session("other", "+15125550123", {"step": "greeting"})
    assert await store.load_bot_session("acme", "+15125550123") == {"step": "timeline", "answers": {"beds": 3}}
    assert await store.load_bot_session("other", "+15125550123") == {"step": "greeting"}


async def test_stored_bot_sessions_resume_across_store_instances(store: CallStore) -> None:
    sessions = StoredBotSessions(store)
    state = {"version": STATE_VERSION, "last_activity": T0.isoformat(), "bot": "lead", "answers": {"lead": {"beds": 3}}}
    await sessions.save("acme", "+15125550123", state)
    loaded = await sessions.load("acme", "+15125550123")
    assert loaded == state
    assert resumable(loaded, T0 + timedelta(hours=1), DEFAULT_RESUME_WINDOW)
    assert await sessions.load("acme", "+15125550999") is None


async def test_aggregate_on_a_hand_computed_fixture(store: CallStore) -> None:
    await store.write(
        [
            call("CA1", minutes=0, outcome="booked", duration_s=60.0),
            call("CA2", minutes=5, outcome="booked", duration_s=120.0),
            call("CA3", minutes=9, outcome="no_answer", duration_s=30.0),
            call("CA4", minutes=15),
            call("CA5", minutes=90, outcome="booked", duration_s=999.0),
            call("CA6", minutes=1, tenant="other", outcome="booked", duration_s=5.0),
            *[turn("CA1", i, total_ms=t, stt_ms=100.0) for i, t in enumerate([400.0, 500.0, 600.0])],
            *[turn("CA2", i, total_ms=t, stt_ms=200.0) for i, t in enumerate([700.0, 1000.0])],
            event("CA2", 9, "interruption"),
            turn("CA5", 0, total_ms=5000.0, stt_ms=1.0),
            turn("CA6", 0, total_ms=9000.0, stt_ms=1.0),
            UsageRecord(call_sid="CA1", tenant="acme", billable_seconds=60, recorded_at=T0),
            UsageRecord(call_sid="CA2", tenant="acme", billable_seconds=121, recorded_at=T0),
            AppointmentRecord(
                appointment_id="apt-1",
                call_sid="CA2",
                tenant="acme",
                starts_at=T0,
                ends_at=T0,
                title="Showing",
                booked_at=T0,
            ),
        ]
    )
    figures = await store.aggregate("acme", T0, T0 + timedelta(hours=1))
    assert figures["calls"] == 4
    assert figures["duration_s"] == {"total": 210.0, "mean": 70.0, "max": 120.0}
    assert figures["outcomes"] == {"booked": 2, "no_answer": 1}
    assert figures["bookings"] == 1
    assert figures["billable_minutes"] == 1 + 3
    # total_ms over 400, 500, 600, 700, 1000: p50 = 600, p90 = 700 + 0.6 * 300, p95 = 700 + 0.8 * 300
    assert figures["latency_ms"]["total_ms"] == {"count": 5, "p50": 600.0, "p90": 880.0, "p95": 940.0, "p99": 988.0}
    assert figures["latency_ms"]["stt_ms"]["p50"] == 100.0
    assert figures["latency_ms"]["tts_ms"] == {"count": 0, "p50": None, "p90": None, "p95": None, "p99": None}
    everyone = await store.aggregate(None, T0, T0 + timedelta(hours=1))
    assert everyone["calls"] == 5 and everyone["latency_ms"]["total_ms"]["count"] == 6


async def test_pipeline_turn_latency_events_feed_the_aggregate(store: CallStore) -> None:
    latency = TurnLatency(
        turn=1,
        speech_end_at=10.0,
        turn_end_at=10.5,
        stt_done_at=10.6,
        first_text_at=10.8,
        first_audio_at=10.9,
        first_frame_at=10.95,
        stt_engine_ms=100.0,
        bot_ms=200.0,
        tts_engine_ms=100.0,
    )
    row = call_event_record("CA1", "acme", 7, latency)
    assert (row.kind, row.at) == ("turn_latency", 10.0)
    await store.write([call("CA1"), row, call_event_record("CA1", "acme", 8, DtmfReceived(at=12.0, digit="5"))])
    figures = await store.aggregate("acme", T0, T0 + timedelta(hours=1))
    assert figures["latency_ms"]["total_ms"]["p50"] == 950.0
    assert figures["latency_ms"]["stt_ms"]["p50"] == 100.0
    assert figures["latency_ms"]["endpointing_ms"]["count"] == 1
    assert [e.payload["kind"] for e in await store.call_events("CA1")] == ["turn_latency", "dtmf"]


async def test_empty_aggregate(store: CallStore) -> None:
    figures = await store.aggregate("acme", T0, T0 + timedelta(hours=1))
    assert figures["calls"] == 0 and figures["bookings"] == 0 and figures["outcomes"] == {}
    assert figures["duration_s"] == {"total": 0.0, "mean": None, "max": None}


async def test_refused_rows_are_not_retryable(store: CallStore) -> None:
    bad = utterance("CA1", 1, "hi")
    object.__setattr__(bad, "speaker", "narrator")  # past the record's own check, as a buggy caller could
    with pytest.raises(StoreError) as failure:
        await store.add_utterances([utterance("CA1", 2, "kept?"), bad])
    assert not failure.value.retryable
    assert await store.call_utterances("CA1") == [], "a refused batch is rolled back whole"
    with pytest.raises(StoreError) as failure:
        await store.add_events([event("CA1", 1, when=T0)])
    assert not failure.value.retryable, "a payload that is not JSON can never be stored"


def test_latency_summary_matches_percentile_cont() -> None:
    assert latency_summary([10.0]) == {"count": 1, "p50": 10.0, "p90": 10.0, "p95": 10.0, "p99": 10.0}
    assert latency_summary([4.0, 1.0, 3.0, 2.0])["p50"] == 2.5


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


async def test_open_store_picks_the_backend(data_dir: Path, pg_schema_url: str) -> None:
    embedded = open_store(None, data_dir=data_dir)
    assert isinstance(embedded, SqliteCallStore)
    await embedded.upsert_call(call())
    await embedded.aclose()
    assert (data_dir / "leadline.sqlite3").exists()
    assert isinstance(open_store(pg_schema_url), PgCallStore)
    assert isinstance(open_store(f"sqlite:///{data_dir}/x.db"), SqliteCallStore)
    with pytest.raises(ValueError):
        open_store("mysql://localhost/x")
