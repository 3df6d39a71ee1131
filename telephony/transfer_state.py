"""A warm transfer's progress as an explicit transition table, fed by Twilio's callbacks (sans-IO).

Three kinds of callback concern a transfer (protocols.md §1.5, §1.8): the conference's
``statusCallback`` (participants joining and leaving, announcements ending), the agent leg's
call-progress callbacks, and the agent leg's answering-machine verdict (``AmdStatusCallback``).
The ``*_event`` functions turn one callback's form into one event. ``TransferLifecycle`` folds
those, plus the results of our own REST requests and our timeouts, into a stage and finally an
outcome. Like ``telephony.call_state``: callbacks arrive late, twice or out of order, so repeats
and news that comes after the outcome are ignored, and only events no ordering of callbacks
could produce raise (in the manner of h11's ``_state.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from telephony.call_state import CallStatus


class Stage(StrEnum):
    #: the caller's call was redirected into the room; Twilio has not reported them joining
    CONNECTING = "connecting"
    #: the caller is in the room (held); the agent's phone is ringing
    DIALING = "dialing"
    #: the agent's leg answered; waiting for the machine-detection verdict and the join
    SCREENING = "screening"
    #: a person is in the room hearing the briefing; the caller is still on hold
    BRIEFING = "briefing"
    #: the briefing is over: the caller can be taken off hold
    BRIEFED = "briefed"
    #: over; ``TransferLifecycle.outcome`` says how
    DONE = "done"


class TransferOutcome(StrEnum):
    JOINED = "joined"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    FAILED = "failed"
    #: the caller left the room before the agent was joined: nobody to return to the bot
    CALLER_HUNG_UP = "caller_hung_up"


AnsweredBy = Literal[
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"
]
_ANSWERED_BY: frozenset[str] = frozenset(get_args(AnsweredBy))
#: AMD says ``unknown`` when the callee stays silent; an agent picking up a transfer line often
#: waits to hear who it is, so ``unknown`` counts as a person rather than losing the transfer.
_PERSON = frozenset({"human", "unknown"})


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallerJoined:
    conference_sid: str
    event: Literal["caller_joined"] = "caller_joined"


@dataclass(frozen=True, slots=True)
class CallerLeft:
    event: Literal["caller_left"] = "caller_left"


@dataclass(frozen=True, slots=True)
class AgentJoined:
    call_sid: str
    event: Literal["agent_joined"] = "agent_joined"


@dataclass(frozen=True, slots=True)
class AgentLeft:
    """The agent's leg left the room; ``call_status`` is Twilio's ``ParticipantCallStatus``, if sent."""

    call_status: CallStatus | None
    event: Literal["agent_left"] = "agent_left"


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A call-progress callback of the agent's leg."""

    status: CallStatus
    event: Literal["agent_status"] = "agent_status"


@dataclass(frozen=True, slots=True)
class AgentScreened:
    """Answering-machine detection's verdict on the agent's leg."""

    answered_by: str
    event: Literal["agent_screened"] = "agent_screened"


@dataclass(frozen=True, slots=True)
class BriefingEnded:
    """``announcement-end``, or ``announcement-fail`` (``failed``): the agent may not have heard it."""

    failed: bool
    event: Literal["briefing_ended"] = "briefing_ended"


@dataclass(frozen=True, slots=True)
class CallerReleased:
    """Our REST request taking the caller off hold succeeded: caller and agent hear each other."""

    event: Literal["caller_released"] = "caller_released"


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """One of our REST requests failed; ``detail`` names it and Twilio's error code."""

    detail: str
    event: Literal["request_failed"] = "request_failed"


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The current stage's time bound ran out."""

    event: Literal["timed_out"] = "timed_out"


TransferEvent = (
    CallerJoined
    | CallerLeft
    | AgentJoined
    | AgentLeft
    | AgentStatus
    | AgentScreened
    | BriefingEnded
    | CallerReleased
    | RequestFailed
    | TimedOut
)


# --- callback forms -> events -------------------------------------------------------------------


def conference_event(form: Mapping[str, str], caller_call_sid: str) -> TransferEvent | None:
    """The event in a conference ``statusCallback``; None for news that does not move a transfer.

    The room holds only the caller and the agent, so a participant that is not the caller's call
    is the agent. Raises ``ValueError`` when a participant event lacks its SIDs or carries a
    ``ParticipantCallStatus`` Twilio does not define.
    """
    kind = form.get("StatusCallbackEvent", "")
    if kind in ("announcement-end", "announcement-fail"):
        return BriefingEnded(failed=kind == "announcement-fail")
    if kind not in ("participant-join", "participant-leave"):
        return None
    call_sid, conference_sid = form.get("CallSid", ""), form.get("ConferenceSid", "")
    if not call_sid or not conference_sid:
        raise ValueError(f"{kind} callback without CallSid or ConferenceSid")
    if call_sid == caller_call_sid:
        return CallerJoined(conference_sid) if kind == "participant-join" else CallerLeft()
    if kind == "participant-join":
        return AgentJoined(call_sid)
    status = form.get("ParticipantCallStatus")
    return AgentLeft(CallStatus(status) if status else None)


def agent_status_event(form: Mapping[str, str]) -> AgentStatus:
    """The agent leg's call-progress callback; ``ValueError`` for a status Twilio does not define."""
    return AgentStatus(CallStatus(form.get("CallStatus", "")))


def amd_event(form: Mapping[str, str]) -> AgentScreened:
    """The agent leg's ``AmdStatusCallback``; ``ValueError`` for a verdict Twilio does not define."""
    answered_by = form.get("AnsweredBy", "")
    if answered_by not in _ANSWERED_BY:
        raise ValueError(f"unknown AnsweredBy {answered_by!r}")
    return AgentScreened(answered_by)


# --- the lifecycle ------------------------------------------------------------------------------


class IllegalTransferEvent(Exception):
    """An event no ordering of Twilio's callbacks (or of our own requests) could produce now."""

    def __init__(self, stage: Stage, event: TransferEvent) -> None:
        super().__init__(f"transfer cannot take {event.event} while {stage}")
        self.stage = stage
        self.event = event


_ALWAYS = frozenset({"caller_joined", "caller_left", "request_failed"})
_AGENT_NEWS = frozenset({"agent_joined", "agent_left", "agent_status", "agent_screened"})
#: The events each stage takes; anything else raises. Once DONE, everything is ignored.
_ACCEPTS: dict[Stage, frozenset[str]] = {
    Stage.CONNECTING: _ALWAYS | {"timed_out"},
    Stage.DIALING: _ALWAYS | _AGENT_NEWS | {"timed_out"},
    Stage.SCREENING: _ALWAYS | _AGENT_NEWS | {"timed_out"},
    Stage.BRIEFING: _ALWAYS | _AGENT_NEWS | {"briefing_ended", "timed_out"},
    # Nothing is awaited here: our own request taking the caller off hold decides.
    Stage.BRIEFED: _ALWAYS | _AGENT_NEWS | {"briefing_ended", "caller_released"},
}

#: How an agent leg that ended before anyone was joined ended, by its final ``CallStatus``.
_UNANSWERED = {
    CallStatus.NO_ANSWER: TransferOutcome.NO_ANSWER,
    CallStatus.BUSY: TransferOutcome.BUSY,
    CallStatus.FAILED: TransferOutcome.FAILED,
    CallStatus.CANCELED: TransferOutcome.FAILED,
}


class TransferLifecycle:
    """One transfer's stage, fed every event about it; ``outcome`` is set once it is DONE."""

    def __init__(self) -> None:
        self.stage = Stage.CONNECTING
        self.outcome: TransferOutcome | None = None
        #: why, in Twilio's words where it gave some (``busy``, ``machine_start``), else ours
        self.detail = ""
        self.conference_sid: str | None = None
        #: the agent's leg, once it has joined the room
        self.agent_call_sid: str | None = None
        self._answered = False
        self._person = False
        self._agent_in_room = False

    def apply(self, event: TransferEvent) -> bool:
        """Apply one event; True if it changed the stage. Raises ``IllegalTransferEvent``."""
        if self.stage is Stage.DONE:
            return False
        if event.event not in _ACCEPTS[self.stage]:
            raise IllegalTransferEvent(self.stage, event)
        before = self.stage
        self._apply(event)
        return self.stage is not before

    def _apply(self, event: TransferEvent) -> None:
        match event:
            case CallerJoined(conference_sid=sid):
                if self.conference_sid not in (None, sid):
                    raise IllegalTransferEvent(self.stage, event)
                self.conference_sid = sid
                if self.stage is Stage.CONNECTING:
                    self.stage = Stage.DIALING
            case CallerLeft():
                self._finish(TransferOutcome.CALLER_HUNG_UP)
            case AgentStatus(status=status):
                self._on_agent_status(status)
            case AgentScreened(answered_by=answered_by):
                self._on_verdict(answered_by)
            case AgentJoined(call_sid=sid):
                self.agent_call_sid = sid
                self._answered = self._agent_in_room = True
                self._screen()
            case AgentLeft(call_status=status):
                if status is not None and status.is_terminal:
                    self._on_agent_status(status)
                else:
                    self._finish(TransferOutcome.FAILED, "agent_left")
            case BriefingEnded(failed=failed):
                if self.stage is Stage.BRIEFING:
                    self.stage = Stage.BRIEFED
                    self.detail = "briefing_failed" if failed else ""
            case CallerReleased():
                self._finish(TransferOutcome.JOINED, self.detail)
            case RequestFailed(detail=detail):
                self._finish(TransferOutcome.FAILED, detail)
            case TimedOut():
                self._on_timeout()

    def _on_agent_status(self, status: CallStatus) -> None:
        if status is CallStatus.IN_PROGRESS:
            self._answered = True
            self._screen()
        elif status.is_terminal:
            unanswered = _UNANSWERED.get(status)
            if unanswered is None or self._answered:
                self._finish(TransferOutcome.FAILED, "agent_hung_up")
            else:
                self._finish(unanswered, status.value)

    def _on_verdict(self, answered_by: str) -> None:
        self._answered = True
        if answered_by == "fax":
            self._finish(TransferOutcome.FAILED, "fax")
        elif answered_by not in _PERSON:
            self._finish(TransferOutcome.VOICEMAIL, answered_by)
        else:
            self._person = True
            self._screen()

    def _screen(self) -> None:
        """Brief only a person who is in the room: AMD may decide before or after the join."""
        if self.stage is Stage.DIALING:
            self.stage = Stage.SCREENING
        if self.stage is Stage.SCREENING and self._person and self._agent_in_room:
            self.stage = Stage.BRIEFING

    def _on_timeout(self) -> None:
        if self.stage is Stage.BRIEFING:
            # The agent is a person in the room; a lost announcement-end must not strand them.
            self.stage = Stage.BRIEFED
            self.detail = "briefing_unconfirmed"
        elif self.stage is Stage.DIALING:
            self._finish(TransferOutcome.NO_ANSWER, "timeout")
        else:
            self._finish(TransferOutcome.FAILED, f"timeout_{self.stage}")

    def _finish(self, outcome: TransferOutcome, detail: str = "") -> None:
        self.stage = Stage.DONE
        self.outcome = outcome
        self.detail = detail
