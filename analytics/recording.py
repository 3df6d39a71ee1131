"""Call recordings: a stereo WAV (caller left, bot right) written while the call runs, and the
retention job that deletes old ones.

The recorder keeps only a short window of audio in memory (``lag_s`` plus one block, plus the
chunk being placed): audio is placed on the call's timeline by its time (seconds since the
stream started, as ``runtime.events``), gaps are silence, and everything older than the newest
audio by ``lag_s`` is appended to the file in blocks. The header is valid from the first byte
and its sizes are patched every ``header_every_s`` of audio, so a process that dies mid-call
leaves a WAV that ``wave`` reads up to the last patch.

Writes run on the caller's thread (the event loop): each is one unbuffered ``write`` of a block
(16 KB for the default 0.5 s) into the page cache, or an 8-byte ``pwrite`` of the header, with
no ``fsync``; that is tens of microseconds, less than a frame's decode, so handing it to a
thread would cost more than it saves.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from analytics.records import RecordingRecord
from runtime.audio import ulaw_to_pcm

log = logging.getLogger("analytics")

SAMPLE_RATE = 8000
CHANNELS = 2
SAMPLE_WIDTH = 2
FRAME_BYTES = CHANNELS * SAMPLE_WIDTH
HEADER_BYTES = 44
Channel = Literal["caller", "bot"]
_CHANNEL_INDEX: dict[Channel, int] = {"caller": 0, "bot": 1}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecorderOptions:
    #: Audio this far behind the newest is written out; a channel's audio arriving later than
    #: that is cut. One second covers the skew between the inbound and outbound paths.
    lag_s: float = 1.0
    #: Written in blocks of this much audio: few syscalls, and little held in memory.
    block_s: float = 0.5
    #: The header's sizes are patched this often, bounding what a crash can lose.
    header_every_s: float = 5.0
    #: Audio placed beyond this is dropped: a bogus timestamp must not write hours of silence
    #: (four hours is far past ``LEADLINE_MAX_CALL_S``'s ceiling).
    max_duration_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if min(self.lag_s, self.block_s, self.header_every_s, self.max_duration_s) <= 0:
            raise ValueError("recorder options must be positive")


def wav_header(data_bytes: int) -> bytes:
    """The canonical 44-byte PCM header of a stereo 8 kHz 16-bit file with ``data_bytes`` of audio."""
    byte_rate = SAMPLE_RATE * FRAME_BYTES
    return (
        struct.pack("<4sI4s", b"RIFF", 36 + data_bytes, b"WAVE")
        + struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, CHANNELS, SAMPLE_RATE, byte_rate, FRAME_BYTES, 8 * SAMPLE_WIDTH)
        + struct.pack("<4sI", b"data", data_bytes)
    )


class StereoRecorder:
    """One call's recording; ``caller``/``bot`` place mu-law audio at a time on the timeline."""

    def __init__(self, path: Path, options: RecorderOptions | None = None) -> None:
        self.path = path
        self.options = options or RecorderOptions()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(self._fd, wav_header(0))
        #: frames in the file, the first frame of the window
        self._written = 0
        self._patched = 0
        #: frames past the newest audio placed on either channel (the timeline's end so far)
        self._newest = 0
        self._window: npt.NDArray[np.int16] = np.zeros((0, CHANNELS), dtype="<i2")
        #: frames cut because they arrived after their place was written, or past the limit
        self.dropped_frames = 0

    def caller(self, ulaw: bytes, at_s: float) -> None:
        self.place("caller", ulaw, at_s)

    def bot(self, ulaw: bytes, at_s: float) -> None:
        self.place("bot", ulaw, at_s)

    def place(self, channel: Channel, ulaw: bytes, at_s: float) -> None:
        if self._fd is None:
            raise ValueError("recording is closed")
        start = round(at_s * SAMPLE_RATE)
        pcm = self._clip(ulaw_to_pcm(ulaw), start)
        if not len(pcm):
            return
        start = max(start, self._written)
        end = start + len(pcm)
        self._grow(end - self._written)
        self._window[start - self._written : end - self._written, _CHANNEL_INDEX[channel]] = pcm
        self._newest = max(self._newest, end)
        self._flush_before(self._newest - self._frames(self.options.lag_s), self._frames(self.options.block_s))

    def _clip(self, pcm: npt.NDArray[np.int16], start: int) -> npt.NDArray[np.int16]:
        """The part of ``pcm`` that may still be written: not before the file's end, not past the limit."""
        late = min(len(pcm), max(0, self._written - start))
        limit = max(0, self._frames(self.options.max_duration_s) - max(start, self._written))
        kept = pcm[late : late + limit]
        self.dropped_frames += len(pcm) - len(kept)
        return kept

    def _frames(self, seconds: float) -> int:
        return round(seconds * SAMPLE_RATE)

    def _grow(self, frames: int) -> None:
        missing = frames - len(self._window)
        if missing > 0:
            self._window = np.concatenate([self._window, np.zeros((missing, CHANNELS), dtype="<i2")])

    def _flush_before(self, frame: int, minimum: int) -> None:
        """Append the window's frames before ``frame`` once there are at least ``minimum``."""
        count = frame - self._written
        if count < max(1, minimum):
            return
        self._grow(count)
        assert self._fd is not None
        os.write(self._fd, self._window[:count].tobytes())
        self._window = self._window[count:].copy()
        self._written += count
        if self._written - self._patched >= self._frames(self.options.header_every_s):
            self._patch_header()

    def _patch_header(self) -> None:
        assert self._fd is not None
        data_bytes = self._written * FRAME_BYTES
        os.pwrite(self._fd, struct.pack("<I", 36 + data_bytes), 4)
        os.pwrite(self._fd, struct.pack("<I", data_bytes), 40)
        self._patched = self._written

    @property
    def buffered_frames(self) -> int:
        """Frames held in memory (bounded by lag, block and the largest chunk placed)."""
        return len(self._window)

    @property
    def duration_s(self) -> float:
        return max(self._written, self._newest) / SAMPLE_RATE

    @property
    def size_bytes(self) -> int:
        return HEADER_BYTES + max(self._written, self._newest) * FRAME_BYTES

    def close(self) -> None:
        """Write out the rest and fix the header's sizes; closing twice is harmless."""
        if self._fd is None:
            return
        self._flush_before(self._newest, 1)
        self._patch_header()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StereoRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_record(self, *, call_sid: str, tenant: str, created_at: datetime) -> RecordingRecord:
        """The recording's metadata row for the call store."""
        return RecordingRecord(
            call_sid=call_sid,
            tenant=tenant,
            path=str(self.path),
            duration_s=self.duration_s,
            channels=CHANNELS,
            size_bytes=self.size_bytes,
            created_at=created_at,
        )


def delete_expired(directory: Path, older_than: timedelta, *, now: datetime) -> list[Path]:
    """Delete the WAV files under ``directory`` last written before ``now - older_than``; returns
    them, so the caller can drop their metadata. Blocking file work: run it in a thread."""
    cutoff = (now - older_than).timestamp()
    removed: list[Path] = []
    for path in sorted(directory.rglob("*.wav")):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue  # deleted meanwhile (another instance's cleanup): nothing left to do
    if removed:
        log.info("expired recordings deleted", extra={"count": len(removed), "directory": str(directory)})
    return removed
