"""Stereo call recordings: channel placement and timing read back with ``wave``, bounded memory on
a long call, a file readable after a crash, and the retention job."""

from __future__ import annotations

import os
import tracemalloc
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from analytics.recording import RecorderOptions, StereoRecorder, delete_expired
from runtime.audio import pcm_to_ulaw

RATE = 8000


def tone(value: int, seconds: float) -> bytes:
    """Constant PCM ``value`` as mu-law (a level that survives the codec, easy to find again)."""
    return pcm_to_ulaw(np.full(round(seconds * RATE), value, dtype=np.int16))


def read_stereo(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, RATE)
        frames = wav.readframes(wav.getnframes())
    return np.frombuffer(frames, dtype="<i2").reshape(-1, 2)


def voiced_spans(channel: npt.NDArray[np.int16]) -> list[tuple[float, float]]:
    """(start_s, end_s) of each run of non-silent samples."""
    voiced = np.concatenate([[0], (channel != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(voiced))
    return [(float(a) / RATE, float(b) / RATE) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def test_caller_left_bot_right_at_their_times(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with StereoRecorder(path) as recorder:
        recorder.bot(tone(1000, 1.5), at_s=0.2)
        recorder.caller(tone(-2000, 1.0), at_s=2.0)
        recorder.bot(tone(3000, 0.5), at_s=3.5)
    audio = read_stereo(path)
    assert len(audio) == 4.0 * RATE, "the file ends with the last audio placed"
    assert voiced_spans(audio[:, 0]) == [(2.0, 3.0)]
    assert voiced_spans(audio[:, 1]) == [(0.2, 1.7), (3.5, 4.0)]
    assert len(set(audio[16000:24000, 0].tolist())) == 1, "one constant level, nothing mixed in"
    assert abs(int(audio[16000, 0]) + 2000) < 100 and abs(int(audio[1600, 1]) - 1000) < 50


def test_frames_arriving_one_by_one_and_both_channels_at_once(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with StereoRecorder(path) as recorder:
        for i in range(100):  # 2 s of 20 ms frames on both channels, as a live call delivers them
            recorder.caller(tone(500, 0.02), at_s=i * 0.02)
            recorder.bot(tone(-500, 0.02), at_s=1.0 + i * 0.02)
    audio = read_stereo(path)
    assert voiced_spans(audio[:, 0]) == [(0.0, 2.0)]
    assert voiced_spans(audio[:, 1]) == [(1.0, 3.0)]


def test_audio_later_than_the_lag_is_cut_not_misplaced(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    recorder = StereoRecorder(path, RecorderOptions(lag_s=1.0, block_s=0.5))
    recorder.caller(tone(800, 5.0), at_s=0.0)
    recorder.bot(tone(800, 1.0), at_s=3.5)  # 3.5..4.0 was written already: only 4.0..4.5 is kept
    recorder.close()
    audio = read_stereo(path)
    assert voiced_spans(audio[:, 1]) == [(4.0, 4.5)]
    assert recorder.dropped_frames == 0.5 * RATE


def test_a_long_call_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    minutes = 30
    chunk_s = 0.2
    caller, bot = tone(700, chunk_s), tone(-700, chunk_s)
    recorder = StereoRecorder(path)
    tracemalloc.start()
    try:
        for i in range(round(minutes * 60 / chunk_s)):
            recorder.caller(caller, at_s=i * chunk_s)
            if i % 3 == 0:
                recorder.bot(bot, at_s=i * chunk_s + 0.05)
            assert recorder.buffered_frames <= (1.0 + 0.5 + chunk_s) * RATE + 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    recorder.close()
    size = path.stat().st_size
    assert size == 44 + minutes * 60 * RATE * 4, "30 min of stereo 16-bit audio"
    assert peak < 1_000_000, f"peak {peak} bytes while writing a {size} byte file"
    with wave.open(str(path), "rb") as wav:
        assert wav.getnframes() == minutes * 60 * RATE
        wav.setpos(round((minutes * 60 - 1) * RATE))
        last = np.frombuffer(wav.readframes(1), dtype="<i2")
    assert last[0] != 0


def test_a_crash_before_close_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "crashed.wav"
    recorder = StereoRecorder(path, RecorderOptions(header_every_s=5.0))
    assert len(read_stereo(path)) == 0, "valid (empty) from the first byte"
    for i in range(60):
        recorder.caller(tone(900, 0.25), at_s=i * 0.25)
    # The process dies here: no close(). The descriptor is dropped as a kill would drop it.
    assert recorder._fd is not None
    os.close(recorder._fd)
    recorder._fd = None
    audio = read_stereo(path)
    assert len(audio) == 10 * RATE, "14 s written, the sizes as patched at 10 s"
    assert np.all(audio[:, 0] != 0) and np.all(audio[:, 1] == 0)


def test_to_record_describes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with StereoRecorder(path) as recorder:
        recorder.caller(tone(100, 2.0), at_s=1.0)
    at = datetime(2026, 3, 2, tzinfo=UTC)
    record = recorder.to_record(call_sid="CA1", tenant="acme", created_at=at)
    assert (record.duration_s, record.channels, record.size_bytes) == (3.0, 2, path.stat().st_size)
    assert record.path == str(path)
    with pytest.raises(ValueError, match="closed"):
        recorder.caller(tone(100, 0.1), at_s=4.0)


def test_delete_expired_removes_only_old_recordings(tmp_path: Path) -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    (tmp_path / "acme").mkdir()
    files = {
        "old.wav": now - timedelta(days=31),
        "acme/old.wav": now - timedelta(days=40),
        "fresh.wav": now - timedelta(days=29),
        "old-notes.txt": now - timedelta(days=90),
    }
    for name, written in files.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (written.timestamp(), written.timestamp()))
    removed = delete_expired(tmp_path, timedelta(days=30), now=now)
    assert removed == [tmp_path / "acme" / "old.wav", tmp_path / "old.wav"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["fresh.wav", "old-notes.txt"]
    assert delete_expired(tmp_path, timedelta(days=30), now=now) == []
