"""Twilio's playout buffer model: sample-exact playing, marks, clear, underruns, lead."""

from __future__ import annotations

from runtime.audio import FRAME_BYTES, MULAW_SILENCE
from telephony.simulator.playout import MAX_BUFFERED_BYTES, Playout

SILENCE = bytes([MULAW_SILENCE])
TONE = b"\x10"  # any non-silence mu-law code


def frames(count: int, code: bytes = TONE) -> bytes:
    return code * (FRAME_BYTES * count)


def test_plays_silence_when_nothing_was_sent() -> None:
    playout = Playout(start=10.0)
    step = playout.advance(10.1)
    assert step.audio == SILENCE * 800
    assert step.marks == () and not step.playing and step.run_started_at is None


def test_plays_audio_in_real_time_from_the_moment_it_arrives() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(frames(3), now=0.005)  # 60 ms of audio, 5 ms into the call
    step = playout.advance(0.040)
    assert step.audio == SILENCE * 40 + TONE * 280
    assert step.playing and step.run_started_at == 0.005
    assert playout.buffered_ms == 25.0
    step = playout.advance(0.080)
    assert step.audio == TONE * 200 + SILENCE * 120
    assert not step.playing and step.run_ended_at == 0.065


def test_total_audio_equals_elapsed_time_whatever_the_advance_cadence() -> None:
    playout = Playout(start=0.0)
    played = 0
    for i, now in enumerate((0.013, 0.02, 0.0601, 0.1, 0.33, 0.3333, 1.0)):
        if i == 2:
            playout.receive_media(frames(5), now=now)
        played += len(playout.advance(now).audio)
    assert played == 8000


def test_mark_is_reached_only_after_the_audio_before_it_played() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(frames(5), now=0.0)  # 100 ms
    playout.receive_mark("greeting", now=0.0)
    assert playout.advance(0.099).marks == ()
    step = playout.advance(0.100)
    assert step.marks == ("greeting",)
    assert step.ended_on_mark and step.run_ended_at == 0.1
    assert playout.underruns == 0


def test_mark_on_an_empty_buffer_is_reached_at_once() -> None:
    playout = Playout(start=0.0)
    playout.receive_mark("nothing-queued", now=0.5)
    assert playout.advance(0.5).marks == ("nothing-queued",)


def test_marks_between_sentences_come_back_in_order() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(frames(1), now=0.0)
    playout.receive_mark("s1", now=0.0)
    playout.receive_media(frames(1), now=0.0)
    playout.receive_mark("s2", now=0.0)
    step = playout.advance(0.03)
    assert step.marks == ("s1",) and step.playing
    assert playout.advance(0.05).marks == ("s2",)


def test_clear_drops_queued_audio_and_returns_pending_marks() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(frames(50), now=0.0)  # one second
    playout.receive_mark("reply", now=0.0)
    playout.receive_media(frames(50), now=0.0)
    playout.receive_mark("reply-2", now=0.0)
    assert playout.clear(now=0.2) == ["reply", "reply-2"]
    step = playout.advance(0.3)
    assert step.audio == TONE * 1600 + SILENCE * 800  # played until the clear, then silence
    assert step.marks == ()  # echoed by clear, never again
    assert not step.playing and step.run_ended_at == 0.2 and not step.ended_on_mark
    assert playout.buffered_ms == 0 and playout.underruns == 0


def test_running_dry_before_the_mark_is_an_underrun() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(frames(2), now=0.0)
    playout.advance(0.06)  # 40 ms played, then 20 ms of dead air mid-utterance
    playout.receive_media(frames(2), now=0.06)
    playout.receive_mark("done", now=0.07)
    step = playout.advance(0.2)
    assert playout.underruns == 1
    assert step.marks == ("done",) and step.ended_on_mark


def test_a_mark_arriving_after_the_buffer_ran_dry_still_ends_the_utterance() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(frames(1), now=0.0)
    playout.advance(0.05)
    playout.receive_mark("late", now=0.05)
    step = playout.advance(0.06)
    assert step.marks == ("late",)
    assert step.ended_on_mark and step.run_ended_at == 0.02
    assert playout.underruns == 1


def test_max_lead_shows_a_server_sending_faster_than_real_time() -> None:
    paced, burst = Playout(start=0.0), Playout(start=0.0)
    for i in range(50):
        paced.receive_media(frames(1), now=i * 0.02)
        paced.advance(i * 0.02 + 0.001)
    burst.receive_media(frames(50), now=0.0)
    assert paced.max_lead_ms == 20.0
    assert burst.max_lead_ms == 1000.0


def test_audio_beyond_ten_minutes_is_dropped_like_twilio() -> None:
    playout = Playout(start=0.0)
    playout.receive_media(b"\x10" * MAX_BUFFERED_BYTES, now=0.0)
    playout.receive_media(frames(1), now=0.0)
    assert playout.dropped_bytes == FRAME_BYTES
    assert playout.max_lead_ms == 600_000
