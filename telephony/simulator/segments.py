"""Cut the bot audio played at Twilio into utterances, sans-IO.

An utterance is bot audio played with no break longer than ``gap_s``. It also ends early when
the buffer runs dry right after a mark (the server said that audio was complete) or on
``clear`` (the bot was interrupted). Each finished utterance carries its audio, so it can be
transcribed as soon as it has been heard.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.audio import SAMPLE_RATE
from telephony.simulator.playout import PlayoutStep


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSegment:
    started_at: float
    ended_at: float
    #: mu-law as played, from the first bot sample to the last (short gaps included)
    audio: bytes
    interrupted: bool


class BotSegmenter:
    """Consumes every ``PlayoutStep`` of a call, in order, and yields finished utterances."""

    def __init__(self, *, start: float, gap_s: float) -> None:
        self._gap_s = gap_s
        self._cursor = start  # time of the first sample of the next step's audio
        self._seen_run: float | None = None
        self._open_at: float | None = None
        self._audio = bytearray()

    def feed(self, step: PlayoutStep, now: float) -> BotSegment | None:
        """Add one step; return the utterance it completes, if any."""
        step_start, self._cursor = self._cursor, self._cursor + len(step.audio) / SAMPLE_RATE
        new_run = step.run_started_at is not None and step.run_started_at != self._seen_run
        self._seen_run = step.run_started_at
        if self._open_at is None and new_run and step.run_started_at is not None:
            self._open_at = step.run_started_at
            skip = round((step.run_started_at - step_start) * SAMPLE_RATE)
            self._audio += step.audio[max(skip, 0) :]
        elif self._open_at is not None:
            self._audio += step.audio
        if self._open_at is None or step.playing or step.run_ended_at is None:
            return None
        if step.ended_on_mark or now - step.run_ended_at >= self._gap_s:
            return self._close(step.run_ended_at, interrupted=False)
        return None

    def cleared(self, now: float) -> BotSegment | None:
        """The server sent ``clear``: the utterance being played was cut off at ``now``."""
        return self._close(now, interrupted=True) if self._open_at is not None else None

    def flush(self, now: float) -> BotSegment | None:
        """The call ended; return the utterance still open, if any."""
        return self._close(now, interrupted=False) if self._open_at is not None else None

    def _close(self, end: float, *, interrupted: bool) -> BotSegment:
        assert self._open_at is not None
        start, self._open_at = self._open_at, None
        end = max(end, start)
        audio = bytes(self._audio[: round((end - start) * SAMPLE_RATE)])
        self._audio.clear()
        return BotSegment(started_at=start, ended_at=end, audio=audio, interrupted=interrupted)
