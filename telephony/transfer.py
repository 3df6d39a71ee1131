"""Warm transfer of a live caller to a person, through a Twilio conference (protocols.md §1.8).

1. ``start``: the caller's call is redirected from the bot's ``<Connect><Stream>`` into a room
   named for it; the stream gets ``stop``, so the bot has left the call.
2. Once Twilio reports the caller in the room, they are put on hold (Twilio's hold music) and the
   agent is dialled into the room through the Participants API, with machine detection on.
3. When a person has answered and joined, the briefing is played to them alone (``AnnounceUrl``);
   the caller, on hold, hears neither it nor the agent.
4. After ``announcement-end`` both participants are set to end the room on leaving and the
   caller is taken off hold: they are talking.

Why ``AnnounceUrl`` for the briefing: a Participants-API leg goes straight into the room once
answered (the resource has no ``Url`` of TwiML to run first), and an announcement is the
documented way to play TwiML to one participant, with a conference event when it ends. Whether
Twilio seats the leg before or after machine detection decides is not relied on: the briefing
waits for both a person's verdict and the join.

Any other ending hangs up the agent's leg and redirects the caller back to the bot's stream with
``transfer_outcome`` and ``transfer_detail`` parameters, so the bot can apologise and book a
callback. Every wait is bounded (``TransferOptions``); what happened is decided by the sans-IO
``TransferLifecycle`` from the callbacks that ``TransferCallbacks`` routes here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from telephony.conference import conference_twiml
from telephony.rest import TwilioRest, TwilioRestError
from telephony.transfer_routes import (
    AGENT_AMD_PATH,
    AGENT_STATUS_PATH,
    BRIEFING_PATH,
    CONFERENCE_PATH,
    TransferCallbacks,
)
from telephony.transfer_state import (
    CallerReleased,
    RequestFailed,
    Stage,
    TimedOut,
    TransferEvent,
    TransferLifecycle,
    TransferOutcome,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
#: ``start`` runs once; ``finish`` only after it succeeded (``refused``: Twilio would not move the caller).
_Phase = Literal["new", "starting", "started", "refused", "finished"]

#: ``<Parameter>`` names on the stream a caller returns to after a failed transfer.
OUTCOME_PARAMETER = "transfer_outcome"
DETAIL_PARAMETER = "transfer_detail"
CALLER_LABEL = "caller"
AGENT_LABEL = "agent"
#: ``Enable`` reports as soon as it knows; ``DetectMessageEnd`` would wait for a voicemail's beep,
#: and the transfer leaves no message.
MACHINE_DETECTION = "Enable"

#: Builds the ``<Connect><Stream>`` TwiML that returns the caller to the bot, given the extra
#: stream parameters saying how the transfer ended (the server adds its own, e.g. a fresh token).
ReturnTwiml = Callable[[Mapping[str, str]], str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferOptions:
    """How long each part of a transfer may take; the caller is on hold throughout."""

    #: Twilio's ring time for the agent (``Timeout``, 5-600 s; Twilio adds ~5 s): four rings
    #: reach someone at their desk, and a caller on hold should not wait longer.
    ring_timeout_s: int = 20
    #: ``MachineDetectionTimeout`` (3-59 s): Twilio's default of 30 s is too long on hold;
    #: when it runs out the verdict is ``unknown``, which counts as a person.
    machine_detection_timeout_s: int = 8
    #: from the redirect to Twilio reporting the caller in the room (normally about a second)
    connect_timeout_s: float = 10.0
    #: from dialling to a person in the room: ring time, Twilio's buffer, AMD, callbacks
    agent_timeout_s: float = 40.0
    #: for ``announcement-end``: a few sentences of summary at ~150 words a minute take 20-30 s.
    #: When it runs out the agent, already in the room, is joined anyway.
    briefing_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not 5 <= self.ring_timeout_s <= 600:
            raise ValueError("ring_timeout_s must be within 5-600 (Twilio's bounds)")
        if not 3 <= self.machine_detection_timeout_s <= 59:
            raise ValueError("machine_detection_timeout_s must be within 3-59 (Twilio's bounds)")
        if min(self.connect_timeout_s, self.agent_timeout_s, self.briefing_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferResult:
    outcome: TransferOutcome
    #: why, e.g. ``busy``, ``machine_start``, ``timeout``, ``add_agent:20503``; for ``joined``,
    #: empty unless the briefing's end was not confirmed
    detail: str
    conference_sid: str | None
    agent_call_sid: str | None
    #: the caller was redirected back to the bot's stream (only ever after a failed transfer)
    returned_to_bot: bool


class WarmTransfer:
    """One caller's transfer to one agent number; ``start`` then ``finish``, once each.

    ``callbacks`` must be mounted on the server at ``public_url`` (``TransferCallbacks``): it
    builds the callback URLs and routes Twilio's callbacks to ``deliver``.
    """

    def __init__(
        self,
        rest: TwilioRest,
        callbacks: TransferCallbacks,
        *,
        call_sid: str,
        agent_number: str,
        caller_id: str,
        briefing: str,
        return_twiml: ReturnTwiml,
        options: TransferOptions | None = None,
    ) -> None:
        if not briefing.strip():
            raise ValueError("the agent needs a briefing")
        self._rest = rest
        self._callbacks = callbacks
        self._call_sid = call_sid
        self._agent_number = agent_number
        self._caller_id = caller_id
        self._briefing = briefing
        self._return_twiml = return_twiml
        self._options = options or TransferOptions()
        self._lifecycle = TransferLifecycle()
        self._changed = asyncio.Event()
        self._agent_call_sid: str | None = None
        self._phase: _Phase = "new"

    @property
    def call_sid(self) -> str:
        return self._call_sid

    @property
    def briefing(self) -> str:
        return self._briefing

    @property
    def stage(self) -> Stage:
        return self._lifecycle.stage

    def deliver(self, event: TransferEvent) -> None:
        """Apply one callback's event; raises ``IllegalTransferEvent`` for an impossible one."""
        self._apply(event)

    async def start(self) -> None:
        """Move the caller from the bot's stream into the room.

        Raises ``TwilioRestError`` when Twilio refuses the redirect: the caller is then still
        talking to the bot, which should say so and offer a callback.
        """
        self._advance("new", "starting")
        self._callbacks.register(self)
        twiml = conference_twiml(
            f"transfer-{self._call_sid}",
            label=CALLER_LABEL,
            status_callback=self._callbacks.url(CONFERENCE_PATH, self._call_sid),
        )
        try:
            await self._rest.update_twiml(self._call_sid, twiml)
        except BaseException:
            self._callbacks.unregister(self._call_sid)
            self._phase = "refused"
            raise
        self._phase = "started"
        log.info("transfer started", extra={"call_sid": self._call_sid, "pii.agent": self._agent_number})

    async def finish(self) -> TransferResult:
        """See the transfer through (bounded by ``TransferOptions``) and report how it ended.

        Never raises for Twilio's failures: they are outcomes, after which the caller is sent
        back to the bot unless they hung up.
        """
        self._advance("started", "finished")
        try:
            await self._drive()
        finally:
            self._callbacks.unregister(self._call_sid)
        outcome = self._lifecycle.outcome
        assert outcome is not None, "every path through _drive ends the lifecycle"
        returned = False if outcome is TransferOutcome.JOINED else await self._fall_back(outcome)
        result = TransferResult(
            outcome=outcome,
            detail=self._lifecycle.detail,
            conference_sid=self._lifecycle.conference_sid,
            agent_call_sid=self._agent_call_sid,
            returned_to_bot=returned,
        )
        log.info(
            "transfer finished",
            extra={
                "call_sid": self._call_sid,
                "outcome": outcome.value,
                "detail": result.detail,
                "agent_call_sid": result.agent_call_sid,
                "returned_to_bot": returned,
            },
        )
        return result

    # --- the steps ------------------------------------------------------------------------------

    async def _drive(self) -> None:
        options = self._options
        await self._settle({Stage.CONNECTING}, options.connect_timeout_s)
        if self.stage is Stage.DIALING:
            await self._dial_agent()
        await self._settle({Stage.DIALING, Stage.SCREENING}, options.agent_timeout_s)
        if self.stage is Stage.BRIEFING:
            await self._brief_agent()
            await self._settle({Stage.BRIEFING}, options.briefing_timeout_s)
        if self.stage is Stage.BRIEFED:
            await self._join()

    async def _dial_agent(self) -> None:
        """Hold the caller, then ring the agent into the room."""
        room = self._room()
        held = await self._request("hold_caller", self._rest.update_participant(room, self._call_sid, hold=True))
        if held is None:
            return
        if self.stage is not Stage.DIALING:
            return  # the caller left while being held
        agent = await self._request(
            "add_agent",
            self._rest.add_participant(
                room,
                to=self._agent_number,
                from_=self._caller_id,
                label=AGENT_LABEL,
                status_callback=self._callbacks.url(AGENT_STATUS_PATH, self._call_sid),
                timeout_s=self._options.ring_timeout_s,
                machine_detection=MACHINE_DETECTION,
                machine_detection_timeout_s=self._options.machine_detection_timeout_s,
                amd_status_callback=self._callbacks.url(AGENT_AMD_PATH, self._call_sid),
            ),
        )
        if agent is not None:
            self._agent_call_sid = agent.call_sid

    async def _brief_agent(self) -> None:
        url = self._callbacks.url(BRIEFING_PATH, self._call_sid)
        await self._request("brief_agent", self._rest.update_participant(self._room(), self._agent(), announce_url=url))

    async def _join(self) -> None:
        """Let either party's leaving end the room (no one is left alone on hold), then release
        the caller: from that request on, caller and agent hear each other."""
        room = self._room()
        ends_room = self._rest.update_participant(room, self._agent(), end_conference_on_exit=True)
        if await self._request("agent_ends_room", ends_room) is None:
            return
        release = self._rest.update_participant(room, self._call_sid, hold=False, end_conference_on_exit=True)
        if await self._request("release_caller", release) is not None:
            self._apply(CallerReleased())

    async def _fall_back(self, outcome: TransferOutcome) -> bool:
        """Hang up the agent's leg and return the caller to the bot; True if the caller was sent."""
        if self._agent_call_sid is not None:
            await self._quietly("hang_up_agent", self._rest.hang_up(self._agent_call_sid))
        if outcome is TransferOutcome.CALLER_HUNG_UP:
            return False
        twiml = self._return_twiml({OUTCOME_PARAMETER: outcome.value, DETAIL_PARAMETER: self._lifecycle.detail})
        return await self._quietly("return_caller", self._rest.update_twiml(self._call_sid, twiml))

    # --- plumbing -------------------------------------------------------------------------------

    async def _settle(self, stages: Collection[Stage], timeout_s: float) -> None:
        """Wait while the transfer is in ``stages``; past ``timeout_s`` the stage times out."""
        try:
            async with asyncio.timeout(timeout_s):
                while self.stage in stages:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            self._apply(TimedOut())

    async def _request(self, operation: str, request: Awaitable[T]) -> T | None:
        """Await one of our REST requests; a failure ends the transfer as ``failed``."""
        try:
            return await request
        except TwilioRestError as e:
            self._apply(RequestFailed(f"{operation}:{e.code or e.status or 'no_response'}"))
            return None

    async def _quietly(self, operation: str, request: Awaitable[object]) -> bool:
        """A clean-up request: its failure is logged, since nothing more can be done about it."""
        try:
            await request
        except TwilioRestError as e:
            log.error(
                "transfer clean-up failed", extra={"call_sid": self._call_sid, "operation": operation, "error": str(e)}
            )
            return False
        return True

    def _apply(self, event: TransferEvent) -> None:
        if self._lifecycle.apply(event):
            log.info("transfer stage", extra={"call_sid": self._call_sid, "stage": self.stage.value})
        self._changed.set()

    def _room(self) -> str:
        sid = self._lifecycle.conference_sid
        assert sid is not None, "the caller joined the room before anything is done in it"
        return sid

    def _agent(self) -> str:
        sid = self._lifecycle.agent_call_sid
        assert sid is not None, "briefing starts only once the agent has joined the room"
        return sid

    def _advance(self, expected: _Phase, to: _Phase) -> None:
        if self._phase != expected:
            raise RuntimeError(f"a transfer {self._phase} cannot be {to}")
        self._phase = to
