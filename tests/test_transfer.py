"""Warm transfer: the outcome lifecycle as pure unit tests, then whole transfers over loopback.

End to end, the Twilio emulator places a call to a lead; the Leadline server answers it and the
bot talks over the Media Stream; ``WarmTransfer`` moves the caller into a conference, dials the
agent (a simulated callee per number), briefs them and joins them, or returns the caller to the
bot's stream with the reason. The server is the real app with ``TransferCallbacks`` mounted.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from emulators.twilio import CalleeOptions
from emulators.twilio_conference import Conference
from runtime.app_state import STATE
from runtime.engines import Engines
from runtime.server import create_app
from telephony.call_state import CallStatus
from telephony.conference import conference_twiml
from telephony.rest import TwilioRest, TwilioRestError
from telephony.signature import compute_signature
from telephony.stream_token import issue_stream_token
from telephony.transfer import (
    DETAIL_PARAMETER,
    OUTCOME_PARAMETER,
    TransferOptions,
    TransferResult,
    WarmTransfer,
)
from telephony.transfer_routes import BRIEFING_PATH, CONFERENCE_PATH, TransferCallbacks
from telephony.transfer_state import (
    AgentJoined,
    AgentLeft,
    AgentScreened,
    AgentStatus,
    BriefingEnded,
    CallerJoined,
    CallerLeft,
    CallerReleased,
    IllegalTransferEvent,
    RequestFailed,
    Stage,
    TimedOut,
    TransferEvent,
    TransferLifecycle,
    TransferOutcome,
    agent_status_event,
    amd_event,
    conference_event,
)
from telephony.twiml import connect_stream_twiml, parse_connect_stream
from tests.conftest import AUTH_TOKEN, RunningServer, free_port, make_settings
from tests.test_twilio_rest import (  # the Twilio emulator fixtures and helpers
    ACCOUNT_SID,
    LEAD,
    OUR_NUMBER,
    Emulator,
    StartEmulator,
    basic_auth,
    callee,
    eventually,
    start_emulator,
)

__all__ = ["start_emulator"]

CALLER = "CA" + "1" * 32
AGENT_LEG = "CA" + "2" * 32
ROOM = "CF" + "3" * 32
AGENT = "+15125550142"
BRIEFING = "Transfer from Leadline: Dana Reyes wants a three bedroom house in Austin, budget four hundred thousand."


# --- the lifecycle, pure ---------------------------------------------------------------------------


def run(*events: TransferEvent) -> TransferLifecycle:
    lifecycle = TransferLifecycle()
    for event in events:
        lifecycle.apply(event)
    return lifecycle


JOINED_ROOM = CallerJoined(ROOM)
ANSWERED = AgentStatus(CallStatus.IN_PROGRESS)
PERSON = AgentScreened("human")


def test_a_person_who_answers_is_briefed_before_the_caller_is_released() -> None:
    lifecycle = TransferLifecycle()
    steps: list[tuple[TransferEvent, Stage]] = [
        (JOINED_ROOM, Stage.DIALING),
        (AgentStatus(CallStatus.RINGING), Stage.DIALING),
        (ANSWERED, Stage.SCREENING),
        (PERSON, Stage.SCREENING),  # a person, but not in the room yet: nothing to brief
        (AgentJoined(AGENT_LEG), Stage.BRIEFING),
        (BriefingEnded(failed=False), Stage.BRIEFED),
        (CallerReleased(), Stage.DONE),
    ]
    for event, stage in steps:
        lifecycle.apply(event)
        assert lifecycle.stage is stage, event
    assert (lifecycle.outcome, lifecycle.detail) == (TransferOutcome.JOINED, "")
    assert (lifecycle.conference_sid, lifecycle.agent_call_sid) == (ROOM, AGENT_LEG)


def test_the_join_may_be_reported_before_the_verdict_and_the_answer() -> None:
    assert run(JOINED_ROOM, AgentJoined(AGENT_LEG)).stage is Stage.SCREENING
    # A silent agent: AMD cannot tell, which counts as a person.
    lifecycle = run(JOINED_ROOM, AgentJoined(AGENT_LEG), AgentScreened("unknown"))
    assert lifecycle.stage is Stage.BRIEFING
    assert lifecycle.apply(ANSWERED) is False  # late in-progress callback: no change


@pytest.mark.parametrize(
    ("events", "outcome", "detail"),
    [
        ((AgentStatus(CallStatus.RINGING), AgentStatus(CallStatus.NO_ANSWER)), TransferOutcome.NO_ANSWER, "no-answer"),
        ((AgentStatus(CallStatus.BUSY),), TransferOutcome.BUSY, "busy"),
        ((AgentStatus(CallStatus.FAILED),), TransferOutcome.FAILED, "failed"),
        ((AgentStatus(CallStatus.CANCELED),), TransferOutcome.FAILED, "canceled"),
        ((AgentLeft(CallStatus.NO_ANSWER),), TransferOutcome.NO_ANSWER, "no-answer"),
        ((ANSWERED, AgentScreened("machine_start")), TransferOutcome.VOICEMAIL, "machine_start"),
        ((AgentScreened("machine_end_beep"),), TransferOutcome.VOICEMAIL, "machine_end_beep"),
        ((ANSWERED, AgentScreened("fax")), TransferOutcome.FAILED, "fax"),
        ((ANSWERED, AgentStatus(CallStatus.COMPLETED)), TransferOutcome.FAILED, "agent_hung_up"),
        ((ANSWERED, PERSON, AgentJoined(AGENT_LEG), AgentLeft(None)), TransferOutcome.FAILED, "agent_left"),
        ((TimedOut(),), TransferOutcome.NO_ANSWER, "timeout"),  # still ringing at the bound
        ((ANSWERED, TimedOut()), TransferOutcome.FAILED, "timeout_screening"),
        ((RequestFailed("add_agent:20503"),), TransferOutcome.FAILED, "add_agent:20503"),
        ((AgentStatus(CallStatus.RINGING), CallerLeft()), TransferOutcome.CALLER_HUNG_UP, ""),
    ],
)
def test_how_a_transfer_that_reached_the_room_ends(
    events: tuple[TransferEvent, ...], outcome: TransferOutcome, detail: str
) -> None:
    lifecycle = run(JOINED_ROOM, *events)
    assert (lifecycle.stage, lifecycle.outcome, lifecycle.detail) == (Stage.DONE, outcome, detail)


def test_a_caller_who_never_reaches_the_room_times_out_as_failed() -> None:
    lifecycle = run(TimedOut())
    assert (lifecycle.outcome, lifecycle.detail) == (TransferOutcome.FAILED, "timeout_connecting")


@pytest.mark.parametrize(
    ("ending", "detail"),
    [(BriefingEnded(failed=True), "briefing_failed"), (TimedOut(), "briefing_unconfirmed")],
)
def test_a_person_in_the_room_is_joined_even_when_the_briefing_is_not_confirmed(
    ending: TransferEvent, detail: str
) -> None:
    lifecycle = run(JOINED_ROOM, ANSWERED, PERSON, AgentJoined(AGENT_LEG), ending)
    assert lifecycle.stage is Stage.BRIEFED
    lifecycle.apply(CallerReleased())
    assert (lifecycle.outcome, lifecycle.detail) == (TransferOutcome.JOINED, detail)


def test_news_after_the_outcome_is_ignored() -> None:
    lifecycle = run(JOINED_ROOM, AgentStatus(CallStatus.BUSY))
    for event in (CallerLeft(), AgentStatus(CallStatus.COMPLETED), TimedOut(), CallerReleased()):
        assert lifecycle.apply(event) is False
    assert (lifecycle.outcome, lifecycle.detail) == (TransferOutcome.BUSY, "busy")


@pytest.mark.parametrize(
    ("before", "event"),
    [
        ((), AgentJoined(AGENT_LEG)),  # no agent is dialled before the caller is in the room
        ((), BriefingEnded(failed=False)),
        ((JOINED_ROOM,), BriefingEnded(failed=False)),  # nothing was announced yet
        ((JOINED_ROOM, ANSWERED, PERSON, AgentJoined(AGENT_LEG)), CallerReleased()),  # before the briefing
        ((JOINED_ROOM, ANSWERED, PERSON, AgentJoined(AGENT_LEG), BriefingEnded(failed=False)), TimedOut()),
        ((JOINED_ROOM,), CallerJoined("CF" + "4" * 32)),  # one caller, one room
    ],
)
def test_impossible_events_raise(before: tuple[TransferEvent, ...], event: TransferEvent) -> None:
    lifecycle = run(*before)
    stage = lifecycle.stage
    with pytest.raises(IllegalTransferEvent):
        lifecycle.apply(event)
    assert lifecycle.stage is stage and lifecycle.outcome is None


def test_conference_callbacks_become_events() -> None:
    def form(event: str, call_sid: str = CALLER, **extra: str) -> dict[str, str]:
        return {"StatusCallbackEvent": event, "ConferenceSid": ROOM, "CallSid": call_sid, **extra}

    assert conference_event(form("participant-join"), CALLER) == CallerJoined(ROOM)
    assert conference_event(form("participant-leave"), CALLER) == CallerLeft()
    assert conference_event(form("participant-join", AGENT_LEG), CALLER) == AgentJoined(AGENT_LEG)
    left = form("participant-leave", AGENT_LEG, ParticipantCallStatus="busy")
    assert conference_event(left, CALLER) == AgentLeft(CallStatus.BUSY)
    assert conference_event(form("participant-leave", AGENT_LEG), CALLER) == AgentLeft(None)
    assert conference_event(form("announcement-fail", AGENT_LEG), CALLER) == BriefingEnded(failed=True)
    for quiet in ("conference-start", "participant-hold", "participant-unhold", "conference-end"):
        assert conference_event(form(quiet), CALLER) is None
    with pytest.raises(ValueError, match="CallSid"):
        conference_event({"StatusCallbackEvent": "participant-join", "ConferenceSid": ROOM}, CALLER)
    assert agent_status_event({"CallStatus": "no-answer"}) == AgentStatus(CallStatus.NO_ANSWER)
    assert amd_event({"AnsweredBy": "machine_end_silence"}) == AgentScreened("machine_end_silence")
    with pytest.raises(ValueError):
        amd_event({"AnsweredBy": "robot"})
    with pytest.raises(ValueError):
        agent_status_event({"CallStatus": "answered"})  # an event name, not a CallStatus


def test_the_callers_conference_twiml_starts_the_room_silently_and_reports_what_a_transfer_needs() -> None:
    url = "https://leadline.example/twilio/transfer/conference?call=" + CALLER
    root = ET.fromstring(conference_twiml("transfer-" + CALLER, label="caller", status_callback=url))
    conference = root.find("Dial/Conference")
    assert conference is not None and conference.text == "transfer-" + CALLER
    assert conference.attrib == {
        "participantLabel": "caller",
        "beep": "false",
        "startConferenceOnEnter": "true",
        "endConferenceOnExit": "false",
        "statusCallback": url,
        "statusCallbackMethod": "POST",
        "statusCallbackEvent": "start end join leave hold announcement",
    }


def test_options_keep_to_twilios_bounds() -> None:
    with pytest.raises(ValueError, match="ring_timeout_s"):
        TransferOptions(ring_timeout_s=4)
    with pytest.raises(ValueError, match="machine_detection_timeout_s"):
        TransferOptions(machine_detection_timeout_s=60)


# --- end to end over loopback ---------------------------------------------------------------------

#: Small bounds so the suite stays quick; ring and AMD times come from each agent's CalleeOptions.
FAST = TransferOptions(
    ring_timeout_s=5, machine_detection_timeout_s=3, connect_timeout_s=5, agent_timeout_s=5, briefing_timeout_s=5
)
WAIT_S = 30.0


@dataclass
class Leadline:
    """The real server, whose transfer routes the test's own ``WarmTransfer``s use."""

    server: RunningServer
    callbacks: TransferCallbacks

    def return_twiml(self, call_sid: str) -> Callable[[Mapping[str, str]], str]:
        """What the server hands a transfer: its voice-webhook stream TwiML, with a fresh token."""
        settings = self.server.settings

        def build(transfer: Mapping[str, str]) -> str:
            token = issue_stream_token(settings.stream_secret, call_sid, now=time.time(), ttl_s=300)
            parameters = {"direction": "outbound-api", "bot": settings.starting_bot, "token": token, **transfer}
            return connect_stream_twiml(settings.stream_url, parameters, stream_name=f"leadline-{call_sid}")

        return build


@pytest.fixture
async def leadline(scripted_engines: Engines) -> AsyncIterator[Leadline]:
    port = free_port()
    settings = make_settings(port)
    app = create_app(settings, scripted_engines)
    callbacks = app[STATE].transfers.callbacks  # the routes the app mounts for its own transfers
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield Leadline(RunningServer(app, f"http://127.0.0.1:{port}", settings), callbacks)
    await runner.cleanup()


@dataclass
class Scene:
    emulator: Emulator
    rest: TwilioRest
    leadline: Leadline
    caller_sid: str

    def transfer(self, options: TransferOptions = FAST) -> WarmTransfer:
        return WarmTransfer(
            self.rest,
            self.leadline.callbacks,
            call_sid=self.caller_sid,
            agent_number=AGENT,
            caller_id=OUR_NUMBER,
            briefing=BRIEFING,
            return_twiml=self.leadline.return_twiml(self.caller_sid),
            options=options,
        )

    def room(self) -> Conference:
        (conference,) = self.emulator.state.rooms.conferences.values()
        return conference

    def agent_leg(self) -> str:
        (sid,) = [sid for sid, call in self.emulator.state.calls.items() if call.request.to == AGENT]
        return sid

    async def run(self, transfer: WarmTransfer) -> TransferResult:
        async with asyncio.timeout(WAIT_S):
            await transfer.start()
            return await transfer.finish()


def agent_callee(**overrides: object) -> CalleeOptions:
    """An agent who picks up quickly; AMD decides in 100 ms."""
    options: dict[str, object] = {"ring_s": 0.3, "amd_duration_ms": 100, "max_duration_s": 60.0}
    return CalleeOptions(**(options | overrides))  # type: ignore[arg-type]  # keys are CalleeOptions fields


@pytest.fixture
async def scene(
    request: pytest.FixtureRequest, start_emulator: StartEmulator, leadline: Leadline
) -> AsyncIterator[Scene]:
    """A lead on a live call with the bot; parametrize indirectly with the agent's ``CalleeOptions``."""
    emulator = await start_emulator(callee(hangup_after_ms=60_000))
    emulator.state.callees[AGENT] = agent_callee(**getattr(request, "param", {}))
    emulator.state.rooms.say_words_per_s = 40.0  # the briefing takes ~0.4 s instead of ~6 s
    rest = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    server = leadline.server
    try:
        info = await rest.create_call(
            to=LEAD,
            from_=OUR_NUMBER,
            url=server.base_url + "/twilio/voice",
            status_callback=server.base_url + "/twilio/status",
        )
        await eventually(lambda: info.sid in server.state.live, "the bot's stream")
        yield Scene(emulator, rest, leadline, info.sid)
    finally:
        await rest.aclose()


def moments(room: Conference, event: str, call_sid: str | None = None) -> list[int]:
    return [i for i, m in enumerate(room.timeline) if m.event == event and call_sid in (None, m.call_sid, m.detail)]


async def test_a_person_is_briefed_then_joined_and_the_bot_has_left(scene: Scene, http: aiohttp.ClientSession) -> None:
    result = await scene.run(scene.transfer())
    assert (result.outcome, result.detail, result.returned_to_bot) == (TransferOutcome.JOINED, "", False)
    room = scene.room()
    assert (result.conference_sid, result.agent_call_sid) == (room.sid, scene.agent_leg())
    caller, agent = room.participants[scene.caller_sid], room.participants[scene.agent_leg()]
    assert agent.announcements == [BRIEFING] and caller.announcements == []
    # Held before the agent was dialled; the agent briefed before anyone could hear anyone.
    (held,) = moments(room, "hold", scene.caller_sid)
    (agent_joined,) = moments(room, "join", agent.call_sid)
    (briefed,) = moments(room, "announcement-end", agent.call_sid)
    (connected,) = moments(room, "connected")
    assert held < agent_joined < briefed < connected
    assert {room.timeline[connected].call_sid, room.timeline[connected].detail} == {caller.call_sid, agent.call_sid}
    # As Twilio reports it to the SDK: caller off hold, and either leaving ends the room.
    released = await scene.rest.fetch_participant(room.sid, scene.caller_sid)
    assert (released.hold, released.end_conference_on_exit, released.label) == (False, True, "caller")
    assert (await scene.rest.fetch_participant(room.sid, "agent")).end_conference_on_exit is True
    assert scene.emulator.state.calls[agent.call_sid].answered_by == "human"
    base = scene.emulator.base_url
    resource = f"{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Conferences/{room.sid}.json"
    async with http.get(resource, headers=basic_auth(AUTH_TOKEN)) as response:
        body = await response.json()
    assert (body["friendly_name"], body["status"]) == (f"transfer-{scene.caller_sid}", "in-progress")
    async with http.get(f"{base}/_emulator/twilio/conferences/{room.sid}") as response:
        view = await response.json()
    assert {p["label"]: p["announcements"] for p in view["participants"]} == {"caller": [], "agent": [BRIEFING]}
    # The bot left when the caller was moved, and the caller was never sent back to it.
    call = scene.emulator.state.calls[scene.caller_sid]
    assert [s["end_reason"] for s in call.streams] == ["ended_by_twilio"]
    await eventually(lambda: scene.caller_sid not in scene.leadline.server.state.live, "the bot's session end")
    assert all(c.http_status == 204 for c in room.callbacks if c.kind == "conference")
    assert [c.http_status for c in room.callbacks if c.kind == "announce"] == [200]
    # The agent hanging up ends the room, and with it the caller's call.
    assert await scene.rest.hang_up(agent.call_sid) is True
    assert (await scene.emulator.finished(scene.caller_sid)).status == "completed"
    await scene.emulator.finished(agent.call_sid)
    assert (room.status, room.reason_ended) == ("completed", "participant-with-end-conference-on-exit-left")


async def assert_returned_to_bot(scene: Scene, result: TransferResult, outcome: TransferOutcome, detail: str) -> None:
    """The caller's call was redirected to our stream TwiML with the reason, and a new stream came."""
    assert (result.outcome, result.detail, result.returned_to_bot) == (outcome, detail, True)
    call = scene.emulator.state.calls[scene.caller_sid]
    await eventually(lambda: "<Connect>" in call.twiml_executed[-1], "the caller's return to the stream")
    returned = parse_connect_stream(call.twiml_executed[-1])
    assert returned.url == scene.leadline.server.settings.stream_url
    assert returned.parameters[OUTCOME_PARAMETER] == outcome.value
    assert returned.parameters[DETAIL_PARAMETER] == detail
    await eventually(lambda: scene.caller_sid in scene.leadline.server.state.live, "the bot's new stream")
    assert call.status == "in-progress" and call.streams[0]["end_reason"] == "ended_by_twilio"
    assert not moments(scene.room(), "connected")  # caller and agent never heard each other
    assert scene.caller_sid not in scene.room().participants
    await scene.rest.hang_up(scene.caller_sid)
    assert len((await scene.emulator.finished(scene.caller_sid)).streams) == 2


@pytest.mark.parametrize("scene", [{"outcome": "busy"}], indirect=True)
async def test_a_busy_agent_sends_the_caller_back_to_the_bot(scene: Scene) -> None:
    result = await scene.run(scene.transfer())
    await assert_returned_to_bot(scene, result, TransferOutcome.BUSY, "busy")
    assert scene.emulator.state.calls[scene.agent_leg()].status == "busy"


@pytest.mark.parametrize("scene", [{"ring_s": 30.0}], indirect=True)
async def test_an_agent_who_does_not_answer_within_the_bound_is_hung_up(scene: Scene) -> None:
    options = TransferOptions(ring_timeout_s=30, connect_timeout_s=5, agent_timeout_s=1.0)
    started = asyncio.get_running_loop().time()
    result = await scene.run(scene.transfer(options))
    assert asyncio.get_running_loop().time() - started < 5.0  # our bound, not Twilio's 30 s of ringing
    await assert_returned_to_bot(scene, result, TransferOutcome.NO_ANSWER, "timeout")
    agent = await scene.emulator.finished(scene.agent_leg())
    assert agent.status == "canceled"  # the agent's phone stopped ringing


@pytest.mark.parametrize("scene", [{"answered_by": "machine_start"}], indirect=True)
async def test_voicemail_is_hung_up_unbriefed(scene: Scene) -> None:
    result = await scene.run(scene.transfer())
    agent_sid = scene.agent_leg()
    await assert_returned_to_bot(scene, result, TransferOutcome.VOICEMAIL, "machine_start")
    agent = await scene.emulator.finished(agent_sid)
    assert (agent.status, agent.answered_by) == ("completed", "machine_start")
    assert not [c for c in scene.room().callbacks if c.kind == "announce"]  # the machine heard no briefing


async def test_a_rest_failure_ends_the_transfer_and_returns_the_caller(
    scene: Scene, http: aiohttp.ClientSession
) -> None:
    fault = {"resource": "participants", "fault": "overloaded", "count": 1}
    async with http.post(scene.emulator.base_url + "/_emulator/twilio/faults", json=fault) as response:
        assert response.status == 200
    result = await scene.run(scene.transfer())
    await assert_returned_to_bot(scene, result, TransferOutcome.FAILED, "hold_caller:20503")
    assert result.agent_call_sid is None
    assert [call.request.to for call in scene.emulator.state.calls.values()] == [LEAD]  # no agent dialled


@pytest.mark.parametrize("scene", [{"ring_s": 30.0}], indirect=True)
async def test_a_caller_who_hangs_up_on_hold_is_not_called_back_and_the_agent_is_released(scene: Scene) -> None:
    transfer = scene.transfer(TransferOptions(ring_timeout_s=30, agent_timeout_s=10))
    await transfer.start()
    finishing = asyncio.create_task(transfer.finish())
    await eventually(lambda: transfer.stage is Stage.DIALING and len(scene.emulator.state.calls) == 2, "ringing")
    await scene.rest.hang_up(scene.caller_sid)
    async with asyncio.timeout(WAIT_S):
        result = await finishing
    assert (result.outcome, result.returned_to_bot) == (TransferOutcome.CALLER_HUNG_UP, False)
    assert (await scene.emulator.finished(scene.agent_leg())).status == "canceled"
    assert len(scene.emulator.state.calls[scene.caller_sid].twiml_executed) == 2  # voice, then the room


async def test_a_refused_redirect_leaves_the_caller_with_the_bot(scene: Scene, http: aiohttp.ClientSession) -> None:
    fault = {"resource": "calls", "fault": "rate_limit", "count": 1}
    async with http.post(scene.emulator.base_url + "/_emulator/twilio/faults", json=fault) as response:
        assert response.status == 200
    transfer = scene.transfer()
    with pytest.raises(TwilioRestError) as refused:
        await transfer.start()
    assert (refused.value.status, refused.value.code) == (429, 20429)
    with pytest.raises(RuntimeError):
        await transfer.finish()  # there is nothing to see through
    assert scene.caller_sid in scene.leadline.server.state.live  # still talking to the bot
    assert not scene.emulator.state.rooms.conferences
    assert len(scene.emulator.state.calls[scene.caller_sid].twiml_executed) == 1
    # Nothing was left registered: the same call can be transferred again.
    assert (await scene.run(scene.transfer())).outcome is TransferOutcome.JOINED


async def test_transfer_callbacks_must_be_signed_by_twilio(leadline: Leadline, http: aiohttp.ClientSession) -> None:
    base = leadline.server.base_url
    url = leadline.callbacks.url(CONFERENCE_PATH, CALLER)
    form = {"StatusCallbackEvent": "participant-join", "ConferenceSid": ROOM, "CallSid": CALLER}
    path = url.removeprefix(leadline.server.settings.public_url)
    async with http.post(base + path, data=form, headers={"X-Twilio-Signature": "forged"}) as response:
        assert response.status == 403
    signed = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, url, form)}
    async with http.post(base + path, data=form, headers=signed) as response:
        assert response.status == 204  # no transfer pending for that call: nothing to do
    briefing = leadline.callbacks.url(BRIEFING_PATH, CALLER)
    signed = {"X-Twilio-Signature": compute_signature(AUTH_TOKEN, briefing, {})}
    async with http.post(base + briefing.removeprefix(leadline.server.settings.public_url), headers=signed) as r:
        assert r.status == 404  # the briefing is only served while its transfer runs
