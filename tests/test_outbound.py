"""Outbound pacing: the schedule's arithmetic, and the sender's ordering and `clear`."""

from __future__ import annotations

import asyncio
import json

from runtime.clock import MonotonicClock
from runtime.outbound import FRAME_S, OutboundAudio, PacingSchedule


def test_lead_frames_go_at_once_then_one_per_frame_time() -> None:
    schedule = PacingSchedule(lead_ms=100)
    now = 10.0
    due = []
    for _ in range(8):
        due.append(schedule.due_at(now))
        now = max(now, due[-1])
        assert schedule.sent(now) is False
    # the playing frame plus 100 ms of lead go immediately, then one every 20 ms
    assert due[:6] == [10.0] * 6
    assert [round(d - 10.0, 6) for d in due[6:]] == [round(i * FRAME_S, 6) for i in range(1, 3)]


def test_frame_sent_after_its_playout_time_is_late() -> None:
    schedule = PacingSchedule(lead_ms=40)
    schedule.due_at(0.0)
    schedule.sent(0.0)
    schedule.due_at(0.0)
    assert schedule.sent(0.019) is False  # plays at 0.020
    schedule.due_at(0.019)
    assert schedule.sent(0.050) is True  # should have played at 0.040


def test_a_slow_sender_is_late_but_an_idle_queue_starts_a_new_run() -> None:
    schedule = PacingSchedule(lead_ms=40)
    schedule.due_at(0.0)
    schedule.sent(0.0)
    # Busy sender waking up 1 s later: still the same run, so the frame is late.
    schedule.due_at(1.0)
    assert schedule.sent(1.0) is True
    # The queue ran dry; new audio 1 s later is a new run, not late.
    schedule.idle()
    assert schedule.due_at(2.0) == 2.0
    assert schedule.sent(2.0) is False


def test_reset_after_clear_starts_over() -> None:
    schedule = PacingSchedule(lead_ms=100)
    for i in range(20):
        schedule.due_at(0.0)
        schedule.sent(i * FRAME_S)
    schedule.reset()
    assert schedule.due_at(5.0) == 5.0


async def test_sender_writes_frames_then_mark_and_clear_drops_the_rest() -> None:
    sent: list[dict[str, object]] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    out = OutboundAudio(send, "MZ1", MonotonicClock(), lead_ms=40)
    first_frames: list[str] = []
    out.on_first_frame = lambda utterance, at: first_frames.append(utterance)
    task = asyncio.create_task(out.run())
    try:
        out.enqueue_audio("a", b"\x01" * 160 * 3)
        out.enqueue_mark("a")
        out.enqueue_audio("b", b"\x02" * 160 * 50)  # one second
        await asyncio.sleep(0.2)
        await out.clear()
        count_at_clear = len(sent)
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
    events = [m["event"] for m in sent]
    assert events[:5] == ["media", "media", "media", "mark", "media"]
    assert events[count_at_clear - 1] == "clear"
    assert len(sent) == count_at_clear  # nothing after clear
    media_before_clear = events.count("media")
    assert 8 <= media_before_clear <= 20  # ~200 ms at 20 ms per frame plus the 40 ms lead, not 53
    assert first_frames == ["a", "b"]
    assert out.pending is False
    assert out.stats.frames_sent == media_before_clear
