"""The retention sweep against a real SQLite store: expired files leave the disk and the store together."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.recording import wav_header
from analytics.records import RecordingRecord
from analytics.sqlite_store import SqliteCallStore
from runtime.call_keeping import sweep_recordings

RETENTION = timedelta(days=30)
NOW = datetime.now(UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteCallStore]:
    embedded = SqliteCallStore(tmp_path / "calls.sqlite3")
    yield embedded
    await embedded.aclose()


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    directory = tmp_path / "recordings"
    directory.mkdir()
    return directory


async def record(store: SqliteCallStore, directory: Path, sid: str, *, age: timedelta) -> Path:
    """A recording file last written ``age`` ago, and its row in the store."""
    path = directory / f"{sid}.wav"
    path.write_bytes(wav_header(0))
    written = (NOW - age).timestamp()
    os.utime(path, (written, written))
    row = RecordingRecord(
        call_sid=sid, tenant="acme", path=str(path), duration_s=0.0, channels=2, size_bytes=44, created_at=NOW - age
    )
    await store.add_recording(row)
    return path


async def test_sweep_deletes_old_recordings_and_forgets_them(store: SqliteCallStore, recordings: Path) -> None:
    old = await record(store, recordings, "CA-old", age=RETENTION + timedelta(days=10))
    new = await record(store, recordings, "CA-new", age=timedelta(minutes=1))
    await sweep_recordings(store, recordings, RETENTION, now=NOW)
    assert not old.exists()
    assert await store.call_recording("CA-old") is None
    assert new.exists()
    kept = await store.call_recording("CA-new")
    assert kept is not None and kept.path == str(new)


async def test_a_failed_forget_is_caught_up_by_the_next_sweep(
    store: SqliteCallStore, recordings: Path, tmp_path: Path
) -> None:
    old = await record(store, recordings, "CA-old", age=RETENTION + timedelta(days=10))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    unreachable = SqliteCallStore(blocker / "calls.sqlite3")
    await sweep_recordings(unreachable, recordings, RETENTION, now=NOW)
    assert not old.exists(), "the file goes even when the store is away"
    assert await store.call_recording("CA-old") is not None
    await sweep_recordings(store, recordings, RETENTION, now=NOW + timedelta(hours=1))
    assert await store.call_recording("CA-old") is None, "the row of a file already gone is forgotten later"
    await unreachable.aclose()
