"""The bot's audio on its way to Twilio: 20 ms frames at real-time pace, marks, and ``clear``.

Twilio plays whatever it has buffered, so sending a whole reply at once would make ``clear``
the only way to stop it and would leave seconds of audio queued at Twilio. Instead frames go out
at 1x real time, keeping only ``lead_ms`` buffered there (pipecat's ``_write_audio_sleep`` does
the same). ``PacingSchedule`` is the arithmetic, ``OutboundAudio`` the task that follows it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from runtime.audio import FRAME_MS, split_frames
from runtime.clock import Clock
from runtime.histogram import MsHistogram
from telephony.media_stream import clear_message, mark_message, media_message

log = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000


class PacingSchedule:
    """When each outbound frame is due, and whether it went out in time.

    Frame ``n`` of a run of continuous audio plays at Twilio at ``epoch + n * 20 ms``, where the
    epoch is when the run's first frame was sent; we send it ``lead`` earlier. A frame sent
    after its playout time is late: Twilio's buffer ran dry while we still had audio. When our
    queue ran dry (``idle``) long enough for Twilio's buffer to empty, the next frame starts a
    new run instead of being counted late.
    """

    def __init__(self, lead_ms: float) -> None:
        self.lead_s = lead_ms / 1000
        self._epoch: float | None = None
        self._index = 0
        self._idle = True

    def due_at(self, now: float) -> float:
        """Send time of the next frame."""
        if self._epoch is None or (self._idle and now >= self.playout_at()):
            self._epoch, self._index = now, 0
        self._idle = False
        return max(self._epoch, self._epoch + self._index * FRAME_S - self.lead_s)

    def playout_at(self) -> float:
        """When the next frame would start playing at Twilio."""
        assert self._epoch is not None
        return self._epoch + self._index * FRAME_S

    def sent(self, now: float) -> bool:
        """Record that the next frame went out at ``now``; True if it was late."""
        if self._index == 0:
            self._epoch = now
            late = False
        else:
            late = now > self.playout_at()
        self._index += 1
        return late

    def idle(self) -> None:
        """Our queue ran dry: the next frame may start a new run."""
        self._idle = True

    def reset(self) -> None:
        """After ``clear``: Twilio's buffer is empty."""
        self._epoch = None
        self._idle = True


@dataclass
class PacingStats:
    """Sender health: jitter is how long after its due time a frame went out; late frames
    mean Twilio's buffer ran dry while we still had audio."""

    frames_sent: int = 0
    late_frames: int = 0
    jitter: MsHistogram = field(default_factory=MsHistogram)

    def record(self, jitter_s: float, late: bool) -> None:
        self.frames_sent += 1
        self.late_frames += late
        self.jitter.add(jitter_s * 1000)


@dataclass(frozen=True, slots=True)
class _Frame:
    audio: bytes
    utterance: str


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


Send = Callable[[str], Awaitable[None]]


class OutboundAudio:
    """One call's outbound queue and the task that paces it onto the socket."""

    def __init__(self, send: Send, stream_sid: str, clock: Clock, lead_ms: float) -> None:
        self._send = send
        self._stream_sid = stream_sid
        self._clock = clock
        self._schedule = PacingSchedule(lead_ms)
        self._items: deque[_Frame | _Mark] = deque()
        self._wakeup = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._generation = 0
        self.stats = PacingStats()
        #: called with (utterance, time) when an utterance's first frame is written
        self.on_first_frame: Callable[[str, float], None] | None = None
        #: called with (audio, time) for every frame written (the call's recording)
        self.on_frame: Callable[[bytes, float], None] | None = None
        self._last_utterance = ""

    @property
    def pending(self) -> bool:
        """Audio or marks not yet written to the socket."""
        return bool(self._items)

    def enqueue_audio(self, utterance: str, ulaw: bytes) -> None:
        self._items.extend(_Frame(frame, utterance) for frame in split_frames(ulaw))
        self._wakeup.set()

    def enqueue_mark(self, name: str) -> None:
        self._items.append(_Mark(name))
        self._wakeup.set()

    async def clear(self) -> float:
        """Drop everything queued here and tell Twilio to drop what it has; returns when sent."""
        self._generation += 1
        self._items.clear()
        self._schedule.reset()
        self._last_utterance = ""
        async with self._send_lock:
            await self._send(clear_message(self._stream_sid))
        return self._clock.now()

    async def run(self) -> None:
        """The sender task: runs until cancelled."""
        while True:
            if not self._items:
                self._schedule.idle()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            item = self._items[0]
            if isinstance(item, _Mark):
                self._items.popleft()
                async with self._send_lock:
                    await self._send(mark_message(self._stream_sid, item.name))
                continue
            await self._send_frame_when_due(item)

    async def _send_frame_when_due(self, frame: _Frame) -> None:
        due = self._schedule.due_at(self._clock.now())
        generation = self._generation
        delay = due - self._clock.now()
        if delay > 0:
            await asyncio.sleep(delay)
        if generation != self._generation or not self._items or self._items[0] is not frame:
            return  # cleared while waiting
        self._items.popleft()
        async with self._send_lock:
            await self._send(media_message(self._stream_sid, frame.audio))
        now = self._clock.now()
        self.stats.record(max(0.0, now - due), late=self._schedule.sent(now))
        if self.on_frame is not None:
            self.on_frame(frame.audio, now)
        if frame.utterance != self._last_utterance:
            self._last_utterance = frame.utterance
            if self.on_first_frame is not None:
                self.on_first_frame(frame.utterance, now)
