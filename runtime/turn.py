"""Turn detection from VAD probabilities: when the caller starts talking and when they are done.

Pure and clock-free: the caller of ``feed`` passes the time each VAD window completed, so the
same code is exercised by unit tests with made-up timelines and by live calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import Literal

from runtime.config import TurnOptions


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Enough continuous speech to believe the caller is talking; ``at`` is the onset."""

    at: float
    kind: Literal["speech_started"] = "speech_started"


@dataclass(frozen=True, slots=True)
class SpeechSustained:
    """The caller has been talking for ``barge_in_min_speech_ms``: long enough to barge in."""

    at: float
    onset_at: float
    kind: Literal["speech_sustained"] = "speech_sustained"


@dataclass(frozen=True, slots=True)
class SpeechPaused:
    """The caller has been silent for ``speculate_after_ms``: the turn may be ending."""

    at: float
    onset_at: float
    speech_end_at: float
    kind: Literal["speech_paused"] = "speech_paused"


@dataclass(frozen=True, slots=True)
class SpeechResumed:
    """The caller spoke again after a ``SpeechPaused``, in the same turn."""

    at: float
    kind: Literal["speech_resumed"] = "speech_resumed"


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """Silence after speech lasted ``end_of_turn_silence_ms``.

    ``speech_end_at`` is when the last voiced window arrived; ``at`` when the turn was declared over.
    """

    at: float
    onset_at: float
    speech_end_at: float
    kind: Literal["turn_ended"] = "turn_ended"

    @property
    def speech_ms(self) -> float:
        return (self.speech_end_at - self.onset_at) * 1000


TurnSignal = SpeechStarted | SpeechSustained | SpeechPaused | SpeechResumed | TurnEnded


class _State(Enum):
    QUIET = auto()
    ONSET = auto()
    SPEAKING = auto()


class TurnDetector:
    """A three-state machine over VAD windows: quiet -> onset -> speaking -> quiet."""

    def __init__(self, options: TurnOptions, window_ms: float) -> None:
        self.options = options
        self.window_s = window_ms / 1000
        self._state = _State.QUIET
        self._onset_at = 0.0
        self._onset_windows = 0
        self._last_voiced_at = 0.0
        self._sustained = False
        self._paused = False

    @property
    def speaking(self) -> bool:
        """True from confirmed onset until the turn ends."""
        return self._state is _State.SPEAKING

    def feed(self, probability: float, at: float) -> TurnSignal | None:
        """One VAD window that finished arriving at ``at``; returns what it changed, if anything."""
        if self._state is _State.QUIET:
            self._quiet(probability, at)
            return None
        if self._state is _State.ONSET:
            return self._onset(probability, at)
        return self._speaking(probability, at)

    def _quiet(self, probability: float, at: float) -> None:
        if probability >= self.options.speech_threshold:
            self._state = _State.ONSET
            self._onset_at = at - self.window_s
            self._onset_windows = 1
            self._last_voiced_at = at

    def _onset(self, probability: float, at: float) -> SpeechStarted | None:
        if probability < self.options.speech_threshold:
            self._state = _State.QUIET
            return None
        self._onset_windows += 1
        self._last_voiced_at = at
        if (at - self._onset_at) * 1000 + 1e-6 >= self.options.speech_start_ms:
            self._state = _State.SPEAKING
            self._sustained = False
            return SpeechStarted(self._onset_at)
        return None

    def _speaking(self, probability: float, at: float) -> TurnSignal | None:
        if probability >= self.options.silence_threshold:
            self._last_voiced_at = at
            if self._paused:
                self._paused = False
                return SpeechResumed(at)
            if not self._sustained and (at - self._onset_at) * 1000 >= self.options.barge_in_min_speech_ms:
                self._sustained = True
                return SpeechSustained(at, self._onset_at)
            return None
        silent_ms = (at - self._last_voiced_at) * 1000 + 1e-6
        if silent_ms >= self.options.end_of_turn_silence_ms:
            self._state = _State.QUIET
            self._paused = False
            return TurnEnded(at=at, onset_at=self._onset_at, speech_end_at=self._last_voiced_at)
        if self.options.speculate_after_ms and not self._paused and silent_ms >= self.options.speculate_after_ms:
            self._paused = True
            return SpeechPaused(at, self._onset_at, self._last_voiced_at)
        return None
