"""Twilio's playout buffer for the bot's audio, sans-IO and driven by an injected clock.

Twilio queues the ``media`` the server sends and plays it at exactly 8000 samples a second;
a ``mark`` is echoed once all audio queued before it has played, and ``clear`` drops the
queue and echoes the pending marks at once (protocols.md §1.4). Modelling this sample-exactly
lets the simulator record what the caller really heard, echo marks at the right moment and
expose a server that sends audio too slowly (underruns) or too far ahead (lead).

Times are seconds on any monotonic clock (``loop.time()`` in the simulator, plain floats in
tests); nothing here reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from runtime.audio import MULAW_SILENCE, SAMPLE_RATE

#: Twilio drops audio once more than 10 minutes is buffered on its side (warning 31931).
MAX_BUFFERED_BYTES = 10 * 60 * SAMPLE_RATE


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayoutStep:
    """What happened at Twilio between two ``advance`` calls.

    ``run_started_at`` and ``run_ended_at`` describe the latest *run* (bot audio playing
    without a break) and may lie in earlier steps: consumers compare them with what they saw
    before rather than relying on every transition being reported in its own step.
    """

    #: mu-law actually played since the previous step, silence where the buffer was empty
    audio: bytes
    #: marks whose preceding audio finished playing, in order (Twilio echoes these)
    marks: tuple[str, ...]
    #: whether bot audio is still queued at the end of the step
    playing: bool
    #: when the latest run started playing, or None if no bot audio has played yet
    run_started_at: float | None
    #: when the latest run stopped (buffer empty or cleared); None while it plays
    run_ended_at: float | None
    #: whether the latest run stopped on a mark (the server said the audio was complete)
    ended_on_mark: bool


class Playout:
    """One call's playout buffer at Twilio."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._position = 0  # samples played (bot audio or silence) since ``start``
        self._queue: deque[bytes | str] = deque()  # audio chunks and mark names
        self._head_offset = 0  # samples of ``_queue[0]`` already played
        self._buffered = 0  # bytes of audio in the queue
        self._played = bytearray()
        self._reached: list[str] = []
        self._playing = False
        self._run_started_at: float | None = None
        self._run_ended_at: float | None = None
        self._ended_on_mark = False
        self._last_was_mark = False
        self.underruns = 0
        self.max_lead_ms = 0.0
        self.dropped_bytes = 0

    @property
    def buffered_ms(self) -> float:
        """Audio queued at Twilio and not yet played."""
        return self._buffered * 1000 / SAMPLE_RATE

    def receive_media(self, ulaw: bytes, now: float) -> None:
        """The server sent audio; it plays right after whatever is queued."""
        self._play_until(now)
        room = MAX_BUFFERED_BYTES - self._buffered
        if len(ulaw) > room:
            self.dropped_bytes += len(ulaw) - room
            ulaw = ulaw[:room]
        if ulaw:
            self._queue.append(ulaw)
            self._buffered += len(ulaw)
            self._start_run(now)
        self.max_lead_ms = max(self.max_lead_ms, self.buffered_ms)

    def receive_mark(self, name: str, now: float) -> None:
        """The server sent a mark; it is reached when the audio queued before it has played."""
        self._play_until(now)
        self._queue.append(name)
        self._pop_reached_marks()

    def clear(self, now: float) -> list[str]:
        """Drop all queued audio; return the pending marks, which Twilio echoes immediately."""
        self._play_until(now)
        pending = [item for item in self._queue if isinstance(item, str)]
        self._queue.clear()
        self._head_offset = 0
        self._buffered = 0
        if self._playing:
            self._end_run(now, on_mark=False)
        return pending

    def advance(self, now: float) -> PlayoutStep:
        """Play up to ``now`` and report what was played since the previous call."""
        self._play_until(now)
        step = PlayoutStep(
            audio=bytes(self._played),
            marks=tuple(self._reached),
            playing=self._playing,
            run_started_at=self._run_started_at,
            run_ended_at=self._run_ended_at,
            ended_on_mark=self._ended_on_mark,
        )
        self._played.clear()
        self._reached.clear()
        return step

    def _time_of(self, position: int) -> float:
        return self._start + position / SAMPLE_RATE

    def _play_until(self, now: float) -> None:
        remaining = round((now - self._start) * SAMPLE_RATE) - self._position
        while remaining > 0:
            if not self._buffered:
                self._emit(bytes([MULAW_SILENCE]) * remaining)
                return
            remaining -= self._play_head_chunk(remaining)

    def _play_head_chunk(self, limit: int) -> int:
        chunk = self._queue[0]
        assert isinstance(chunk, bytes)  # marks at the head are always popped at once
        taken = chunk[self._head_offset : self._head_offset + limit]
        self._emit(taken)
        self._buffered -= len(taken)
        self._head_offset += len(taken)
        self._last_was_mark = False
        if self._head_offset == len(chunk):
            self._queue.popleft()
            self._head_offset = 0
            self._pop_reached_marks()
        return len(taken)

    def _emit(self, ulaw: bytes) -> None:
        self._played += ulaw
        self._position += len(ulaw)

    def _pop_reached_marks(self) -> None:
        while self._queue and isinstance(head := self._queue[0], str):
            self._queue.popleft()
            self._reached.append(head)
            self._last_was_mark = True
            if not self._playing and self._run_ended_at is not None:
                # A mark after the run ran dry still ends the utterance, late.
                self._ended_on_mark = True
        if self._playing and not self._buffered:
            if not self._last_was_mark:
                self.underruns += 1  # ran dry before the server marked the audio complete
            self._end_run(self._time_of(self._position), on_mark=self._last_was_mark)

    def _start_run(self, now: float) -> None:
        if not self._playing:
            self._playing = True
            self._run_started_at = now
            self._run_ended_at = None
            self._ended_on_mark = False

    def _end_run(self, at: float, *, on_mark: bool) -> None:
        self._playing = False
        self._run_ended_at = at
        self._ended_on_mark = on_mark
