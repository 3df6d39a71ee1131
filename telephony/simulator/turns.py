"""The caller's turn-taking, sans-IO: which 20 ms frame the caller sends next, and when.

Policy (the clock is the tick time; "reply" means the first bot run that starts playing after
the caller's previous action ended, or after the stream started for the greeting):

- An ordinary line or key press starts once a reply has been heard, nothing is playing, and
  the bot has been quiet for ``max(pause_ms, bot_done_gap_ms)``. Quiet gaps shorter than that
  are pauses inside the bot's reply (sentence synthesis), so the caller keeps waiting.
- A barge-in line starts ``barge_in_after_ms`` after the reply started, whether or not the bot
  is still speaking; it counts as a barge-in only if bot audio is playing at that moment.
- If no reply starts within ``reply_timeout_ms`` the caller goes on anyway (the turn is
  recorded with no reply), as a person would say "hello?".
- ``Hangup`` fires ``after_ms`` after the previous action; after the last step the caller
  waits for the reply and ``linger_ms`` of quiet, then ends the call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from runtime.audio import split_frames
from telephony.simulator.events import BargeIn, CallerSpoke, CallEvent, DigitsSent
from telephony.simulator.playout import PlayoutStep
from telephony.simulator.script import CallerLine, CallerScript, Hangup, PressDigits


@dataclass(frozen=True, slots=True, kw_only=True)
class CallerTiming:
    """Knobs of the caller's turn-taking, in milliseconds."""

    #: quiet after the bot's audio that means its reply is over; longer than a TTS pause
    #: between sentences, shorter than a person's patience
    bot_done_gap_ms: int = 400
    #: how long the caller waits for a reply before speaking anyway
    reply_timeout_ms: int = 10_000
    #: quiet kept after the bot's last reply before the caller ends the call
    linger_ms: int = 1_000
    #: spacing of key presses; a DTMF tone plus inter-digit gap on a real phone
    digit_interval_ms: int = 250
    #: a server that has not sent ``clear`` this long after a barge-in line ended did not react
    clear_timeout_ms: int = 2_000

    def __post_init__(self) -> None:
        if min(self.bot_done_gap_ms, self.linger_ms, self.digit_interval_ms) < 0:
            raise ValueError("timings must not be negative")
        if self.reply_timeout_ms <= 0 or self.clear_timeout_ms <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(slots=True, kw_only=True)
class CallerAction:
    """One thing the caller did, with the bot's reply to it once heard."""

    kind: Literal["speech", "dtmf"]
    text: str
    started_at: float
    ended_at: float | None = None
    barge_in: bool = False
    reply_started_at: float | None = None


@dataclass(frozen=True, slots=True)
class TickOutput:
    """What the caller sends in this 20 ms tick: a speech frame (None = silence), maybe a key."""

    frame: bytes | None = None
    digit: str | None = None
    events: tuple[CallEvent, ...] = field(default_factory=tuple)


@dataclass(slots=True)
class _Attempt:
    at: float
    line_ended_at: float | None = None


class ScriptRunner:
    """Plays a ``CallerScript`` against the bot's audio as heard at Twilio."""

    def __init__(self, script: CallerScript, audio: Mapping[str, bytes], timing: CallerTiming, *, start: float) -> None:
        self._steps = deque(script.steps)
        self._audio = audio
        self._timing = timing
        self._start = start
        self._frames: deque[bytes] = deque()
        self._digits: deque[str] = deque()
        self._next_digit_at = start
        self._current: CallerAction | None = None
        self._waiting_since = start
        self._heard_at: float | None = None
        self._bot_playing = False
        self._bot_quiet_since: float | None = None
        self._seen_run: float | None = None
        self._attempt: _Attempt | None = None
        self.actions: list[CallerAction] = []
        self.greeting_started_at: float | None = None
        self.finished = False
        self.hung_up = False

    def observe(self, step: PlayoutStep) -> None:
        """Take in what the caller heard since the last tick."""
        self._bot_playing = step.playing
        self._bot_quiet_since = step.run_ended_at
        if step.run_started_at is not None and step.run_started_at != self._seen_run:
            self._seen_run = step.run_started_at
            self._run_started(step.run_started_at)

    def on_clear(self, now: float) -> BargeIn | None:
        """The server cleared the bot's audio; resolves a pending barge-in."""
        if self._attempt is None:
            return None
        return self._resolve_attempt(now - self._attempt.at)

    def tick(self, now: float) -> TickOutput:
        """Decide this tick's output; call once per 20 ms, after ``observe``."""
        events = list(self._check_attempt(now))
        if not (self._frames or self._digits or self.finished):
            events.extend(self._maybe_start(now))
        frame = self._next_frame(now) if self._frames else None
        digit = self._next_digit(now) if self._digits else None
        if digit is not None and not self._digits:
            events.append(self._digits_done(now))
        return TickOutput(frame=frame, digit=digit, events=tuple(events))

    def close(self) -> BargeIn | None:
        """The call ended; an unresolved barge-in got no ``clear``."""
        return self._resolve_attempt(None) if self._attempt is not None else None

    def _run_started(self, at: float) -> None:
        if self._current is not None:
            # The bot started talking before the caller finished: a negative latency.
            if self._current.reply_started_at is None:
                self._current.reply_started_at = at
            return
        if self._heard_at is not None or at < self._waiting_since:
            return
        self._heard_at = at
        if not self.actions:
            self.greeting_started_at = at
        elif self.actions[-1].reply_started_at is None:
            self.actions[-1].reply_started_at = at

    def _maybe_start(self, now: float) -> tuple[CallEvent, ...]:
        if not self._steps:
            self.finished = self._bot_done(now, self._timing.linger_ms)
            return ()
        step = self._steps[0]
        if isinstance(step, Hangup):
            self.finished = self.hung_up = now >= self._waiting_since + step.after_ms / 1000
            return ()
        if isinstance(step, PressDigits):
            if self._bot_done(now, step.pause_ms):
                self._begin(now, "dtmf", step.digits)
                self._digits.extend(step.digits)
                self._next_digit_at = now
            return ()
        return (self._start_line(step, now),) if self._line_ready(step, now) else ()

    def _line_ready(self, line: CallerLine, now: float) -> bool:
        if line.barge_in_after_ms is None:
            return self._bot_done(now, line.pause_ms)
        if self._heard_at is None:
            return self._timed_out(now)
        return now >= self._heard_at + line.barge_in_after_ms / 1000

    def _start_line(self, line: CallerLine, now: float) -> CallerSpoke:
        frames = split_frames(self._audio[line.text])
        barge_in = line.barge_in_after_ms is not None and self._bot_playing
        self._begin(now, "speech", line.text).barge_in = barge_in
        if barge_in:
            self._attempt = _Attempt(at=now)
        self._frames.extend(frames)
        if not frames:
            self._end_action(now)
        return CallerSpoke(text=line.text, at_s=now - self._start, duration_ms=len(frames) * 20.0, barge_in=barge_in)

    def _bot_done(self, now: float, pause_ms: int) -> bool:
        if self._bot_playing or (self._heard_at is None and not self._timed_out(now)):
            return False
        quiet_since = self._waiting_since if self._bot_quiet_since is None else self._bot_quiet_since
        return now >= quiet_since + max(pause_ms, self._timing.bot_done_gap_ms) / 1000

    def _timed_out(self, now: float) -> bool:
        return now >= self._waiting_since + self._timing.reply_timeout_ms / 1000

    def _begin(self, now: float, kind: Literal["speech", "dtmf"], text: str) -> CallerAction:
        self._steps.popleft()
        self._current = CallerAction(kind=kind, text=text, started_at=now)
        self.actions.append(self._current)
        return self._current

    def _next_frame(self, now: float) -> bytes:
        frame = self._frames.popleft()
        if not self._frames:
            self._end_action(now)
        return frame

    def _next_digit(self, now: float) -> str | None:
        if now < self._next_digit_at:
            return None
        self._next_digit_at = now + self._timing.digit_interval_ms / 1000
        return self._digits.popleft()

    def _digits_done(self, now: float) -> DigitsSent:
        assert self._current is not None
        digits = self._current.text
        self._end_action(now)
        return DigitsSent(digits=digits, at_s=now - self._start)

    def _end_action(self, now: float) -> None:
        assert self._current is not None
        self._current.ended_at = now
        self._heard_at = self._current.reply_started_at
        self._current = None
        self._waiting_since = now
        if self._attempt is not None and self._attempt.line_ended_at is None:
            self._attempt.line_ended_at = now

    def _check_attempt(self, now: float) -> tuple[CallEvent, ...]:
        attempt = self._attempt
        if attempt is None or attempt.line_ended_at is None:
            return ()
        if now < attempt.line_ended_at + self._timing.clear_timeout_ms / 1000:
            return ()
        return (self._resolve_attempt(None),)

    def _resolve_attempt(self, clear_after_s: float | None) -> BargeIn:
        assert self._attempt is not None
        at, self._attempt = self._attempt.at, None
        clear_after_ms = None if clear_after_s is None else clear_after_s * 1000
        return BargeIn(at_s=at - self._start, clear_after_ms=clear_after_ms)
