"""Call lifecycle driven by Twilio status callbacks, as an explicit transition table.

Twilio reports ``CallStatus`` in voice webhooks and status callbacks (protocols.md §1.2, §1.5).
Callbacks are separate HTTP requests, so they can arrive late, twice, or out of order; each
carries a ``SequenceNumber`` (from 0) for telling which came first. ``CallLifecycle`` therefore
ignores repeats and callbacks that are behind what it already knows, and raises only for moves
no ordering of callbacks could explain (in the manner of h11's ``_state.py``).
"""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    """Twilio's ``CallStatus`` values; ``initiated`` appears only in callbacks."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """The call has ended; no further status can follow."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER, CallStatus.CANCELED}
)

# Forward moves. busy/no-answer/canceled describe a call never answered, so once in-progress the
# call can only complete or fail.
_TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    CallStatus.QUEUED: frozenset({CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS}) | _TERMINAL,
    CallStatus.INITIATED: frozenset({CallStatus.RINGING, CallStatus.IN_PROGRESS}) | _TERMINAL,
    CallStatus.RINGING: frozenset({CallStatus.IN_PROGRESS}) | _TERMINAL,
    CallStatus.IN_PROGRESS: frozenset({CallStatus.COMPLETED, CallStatus.FAILED}),
    CallStatus.COMPLETED: frozenset(),
    CallStatus.BUSY: frozenset(),
    CallStatus.FAILED: frozenset(),
    CallStatus.NO_ANSWER: frozenset(),
    CallStatus.CANCELED: frozenset(),
}

# How far along each live status is: a live status arriving below the current one is a late
# callback, not a move backwards.
_PROGRESS = {CallStatus.QUEUED: 0, CallStatus.INITIATED: 1, CallStatus.RINGING: 2, CallStatus.IN_PROGRESS: 3}


class IllegalTransition(Exception):
    """A status no ordering of Twilio callbacks could produce from the current one."""

    def __init__(self, from_status: CallStatus, to_status: CallStatus) -> None:
        super().__init__(f"call cannot go from {from_status} to {to_status}")
        self.from_status = from_status
        self.to_status = to_status


class CallLifecycle:
    """The status of one call, fed every ``CallStatus`` Twilio reports for it."""

    def __init__(self, status: CallStatus = CallStatus.QUEUED) -> None:
        self._status = status
        self._history: list[tuple[CallStatus, int | None]] = [(status, None)]
        self._last_sequence: int | None = None

    @property
    def status(self) -> CallStatus:
        return self._status

    @property
    def history(self) -> tuple[tuple[CallStatus, int | None], ...]:
        """Each status taken, with its callback's sequence number; the starting status first."""
        return tuple(self._history)

    def apply(self, status: CallStatus | str, *, sequence_number: int | None = None) -> bool:
        """Apply a reported status; True if it changed the call's status.

        False for a repeat or a stale callback: a ``sequence_number`` not above one already
        seen, or a live status behind the current live one. Raises ``IllegalTransition`` for an
        impossible move (anything out of a terminal status, or in-progress to busy/no-answer/
        canceled) and ``ValueError`` for a status Twilio does not define.
        """
        new = CallStatus(status)
        if self._is_stale(new, sequence_number):
            return False
        if new != self._status and new not in _TRANSITIONS[self._status]:
            raise IllegalTransition(self._status, new)
        if sequence_number is not None:
            self._last_sequence = sequence_number
        if new == self._status:
            return False
        self._status = new
        self._history.append((new, sequence_number))
        return True

    def _is_stale(self, new: CallStatus, sequence_number: int | None) -> bool:
        if sequence_number is not None and self._last_sequence is not None:
            if sequence_number <= self._last_sequence:
                return True
        if new.is_terminal or self._status.is_terminal:
            return False
        return _PROGRESS[new] < _PROGRESS[self._status]
