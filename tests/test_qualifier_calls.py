"""Whole calls with the bot core, through the real pipeline: a simulated caller over the Twilio
protocols, Silero turn-taking, and the scripted engines (the recogniser hears each caller line as
written, so what is tested is the conversation and the pipeline, not the speech models).

Inbound calls come from the simulated caller; calls that transfer to a person are placed through
the Twilio emulator, whose conference, agent leg and callbacks the server's warm transfer drives.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from analytics.records import CallRecord, RecordingRecord
from analytics.store import open_store
from bots.business_hours import BusinessHours
from bots.calendar import Appointment, Contact, Slot
from bots.fallback import FallbackBotFactory
from bots.flows import build_flows
from bots.handoff import HandoffRules
from bots.llm_bot import LlmBotFactory
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBotFactory
from bots.session_state import MemoryBotSessionStore
from runtime.bot_config import BotCoreOptions
from runtime.engines import Engines
from runtime.events import BotUtterance, HandOff, TransferEvent, TurnLatency
from runtime.fallback import CircuitBreaker
from runtime.report import CallReport
from runtime.storage_config import StorageOptions
from runtime.stt import ScriptedStt, ScriptedSttStream
from runtime.tts import ScriptedTts
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.script import CallerLine, CallerScript, Hangup
from telephony.simulator.turns import CallerTiming
from telephony.transfer import TransferOptions
from tests.conftest import AUTH_TOKEN, RunningServer, StartServer
from tests.test_anthropic import Emulator as AnthropicEmulator
from tests.test_anthropic import running_emulator as running_anthropic
from tests.test_outbound_dial import dialling
from tests.test_twilio_rest import (  # the Twilio emulator fixtures and helpers
    ACCOUNT_SID,
    LEAD,
    OUR_NUMBER,
    Emulator,
    StartEmulator,
    callee,
    eventually,
    start_emulator,
)

__all__ = ["start_emulator"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: Monday 7 December 2026, 9:00 in Austin: the calendar offers that day's late morning first.
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
AUSTIN = ZoneInfo("America/Chicago")
CALLER = "+15125550123"  # 512: Austin, so times are offered in Central time
AGENT = "+15125550142"
#: The bot speaks fast in these tests (the scripted voice's pace); the caller at a normal pace.
BOT_MS_PER_CHAR = 12.0

BUYER = (
    "Hi, I'm Sarah Jones",
    "We want to buy a house in Austin",
    "three bedrooms and two baths",
    "around 450 thousand",
    "we still need a lender",
    "in about 2 months",
    "We're relocating for a new job",
    "a garage and a big yard",
    "no, we don't need to sell first",
    "the first one works",
    "yes, please book it",
)


class ContinuingStt(ScriptedStt):
    """The scripted recogniser, going on with a call's script on the call's next stream (the
    caller back with the bot after a failed transfer) rather than starting it again."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__(lines)
        self._lines = tuple(lines)
        self._streams: dict[str, ScriptedSttStream] = {}

    def open_stream(self, call_sid: str) -> ScriptedSttStream:
        previous = self._streams.get(call_sid)
        stream = ScriptedSttStream(self._lines, 0.0, start=previous.position if previous else 0)
        self._streams[call_sid] = stream
        return stream


class RacedCalendar(LocalCalendar):
    """The embedded calendar, where someone else books the first slot a caller confirms a moment
    before the caller's booking arrives (two callers, one slot)."""

    async def book(self, contact: Contact, slot: Slot, *, title: str, notes: str = "") -> Appointment:
        if not self.appointments:
            rival = await self.upsert_contact(name="Someone Else", phone="+15125550999")
            await super().book(rival, slot, title="Showing: Someone Else")
        return await super().book(contact, slot, title=title, notes=notes)


@dataclass
class Office:
    """One tenant's server with the bot core, and what the bots book into."""

    server: RunningServer
    calendar: LocalCalendar


Brain = Literal["scripted", "llm"]
#: The whole-call scenarios run with each brain: the LLM brain is Claude as the Anthropic
#: emulator plays it (its responder answers like the scripted core), over the real client.
BRAINS: tuple[Brain, ...] = ("scripted", "llm")


@pytest.fixture
async def claude() -> AsyncIterator[AnthropicEmulator]:
    """The Anthropic emulator, quick to answer (these tests are about the conversation)."""
    async with running_anthropic() as running:
        yield running


def bot_core(
    brain: Brain, calendar: LocalCalendar, claude: AnthropicEmulator | None
) -> QualifyingBotFactory | FallbackBotFactory:
    """The scripted core, or Claude with the scripted core as its fallback (as configured)."""
    store = MemoryBotSessionStore()
    scripted = QualifyingBotFactory(persona=DEFAULT_PERSONA, calendar=calendar, store=store, now=lambda: NOW)
    if brain == "scripted":
        return scripted
    assert claude is not None
    llm = LlmBotFactory(claude.llm(), persona=DEFAULT_PERSONA, calendar=calendar, store=store, now=lambda: NOW)
    return FallbackBotFactory(llm, scripted, CircuitBreaker("anthropic"))


async def open_office(
    start_server: StartServer,
    scripted_engines: Engines,
    lines: Sequence[str],
    *,
    calendar: LocalCalendar | None = None,
    brain: Brain = "scripted",
    claude: AnthropicEmulator | None = None,
    **overrides: object,
) -> Office:
    calendar = calendar or LocalCalendar(BusinessHours())
    voice = ScriptedTts(ms_per_char=BOT_MS_PER_CHAR)
    engines = Engines(
        vad=scripted_engines.vad,
        stt=ContinuingStt(lines),
        tts=voice,
        voices={
            "buyer": ScriptedTts(ms_per_char=BOT_MS_PER_CHAR, pitch=1.12),
            "seller": ScriptedTts(ms_per_char=BOT_MS_PER_CHAR, pitch=0.9),
        },
    )
    bots = bot_core(brain, calendar, claude)
    overrides = {"bot_core": BotCoreOptions(), **overrides}
    server = await start_server(engines, bots, **overrides)
    return Office(server, calendar)


async def call_in(office: Office, lines: Sequence[str], http: aiohttp.ClientSession) -> CallReport:
    """The caller says ``lines`` one turn at a time and the bot ends the call."""
    options = SimulatedCallOptions(
        public_url=office.server.base_url,
        auth_token=AUTH_TOKEN,
        account_sid=ACCOUNT_SID,
        from_number=CALLER,
        to_number=OUR_NUMBER,
        script=CallerScript("caller", tuple(CallerLine(line, pause_ms=300) for line in lines)),
        max_duration_s=100,
        timing=CallerTiming(linger_ms=5000),  # waits for the server to hang up, even on a busy machine
    )
    result = await run_simulated_call(options, tts=ScriptedTts(), session=http)
    assert result.error is None, result.error
    assert result.end_reason == "server_hung_up", result.end_reason
    report = office.server.state.reports.get(result.call_sid)
    assert report is not None
    return report


def hand_offs(report: CallReport) -> list[tuple[str, str]]:
    return [(e.from_bot, e.to_bot) for e in report.events if isinstance(e, HandOff)]


def local(appointment: Appointment) -> datetime:
    return appointment.start.astimezone(AUSTIN)


@pytest.mark.parametrize("brain", BRAINS)
async def test_a_buyer_is_handed_to_the_buyer_bot_and_books_a_showing(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    office = await open_office(start_server, scripted_engines, BUYER, brain=brain, claude=claude)
    report = await call_in(office, BUYER, http)
    assert report.bot_state["brain"] == brain

    state = report.bot_state
    assert state["answers"]["lead"]["name"] == "Sarah Jones"
    buyer = state["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["rooms"]["bedrooms"] == 3
    assert buyer["price"]["target"] == 450_000 and buyer["financing"] == "needs lender"
    assert state["score"]["temperature"] == "warm"
    assert hand_offs(report) == [("lead", "buyer")]
    [appointment] = office.calendar.appointments
    assert local(appointment) == datetime(2026, 12, 7, 11, 15, tzinfo=AUSTIN)
    assert appointment.contact.phone == CALLER and appointment.title == "Showing: Sarah Jones"
    assert state["appointment"]["kind"] == "showing" and report.end_reason == "booked"
    # Every caller turn was answered, the hand-off turn within the normal turn latency.
    turns = [e for e in report.events if isinstance(e, TurnLatency)]
    assert len(turns) == len(BUYER)
    handoff_turn = next(e.turn for e in report.events if isinstance(e, HandOff))
    assert next(t for t in turns if t.turn == handoff_turn).first_audio_ms < 800


SELLER = (
    "Hi, this is John Smith, I'd like to sell my condo at 12 Elm Street",
    "it's in good shape, we redid the kitchen",
    "we're downsizing",
    "in about six months",
    "around 400 thousand",
    "no, it's not listed with anyone",
    "we still owe about 200 thousand",
    "the second one works",
    "yes, please book it",
)


@pytest.mark.parametrize("brain", BRAINS)
async def test_a_seller_books_a_listing_consultation(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    office = await open_office(start_server, scripted_engines, SELLER, brain=brain, claude=claude)
    report = await call_in(office, SELLER, http)
    assert report.bot_state["brain"] == brain

    seller = report.bot_state["answers"]["seller"]
    assert (seller["address"]["number"], seller["address"]["street"]) == ("12", "Elm Street")
    assert seller["property_type"] == ["condo"]
    assert seller["listed_with_agent"] == "no"
    assert hand_offs(report) == [("lead", "seller")]
    [appointment] = office.calendar.appointments
    assert appointment.title.startswith("Listing consultation") and appointment.contact.phone == CALLER
    assert report.bot_state["appointment"]["kind"] == "listing_consultation"


BOTH = (
    "I'm Dana Reyes, we want to buy a bigger place and sell our condo",
    "In Round Rock, ideally",
    "a house, please",
    "four bedrooms",
    "around 600 thousand",
    "we're pre-approved",
    "within three months",
    "we need more space for the kids",
    "a big yard",
    "yes, we have to sell our condo first",
    "it's at 40 Oak Lane",
    "good condition",
    "in about two months",
    "about 350 thousand",
    "no, it's not listed with anyone",
    "it's paid off",
    "no thanks, let's just book something",
    "the first one works",
    "yes, please book it",
)


@pytest.mark.parametrize("brain", BRAINS)
async def test_a_caller_who_buys_and_sells_meets_both_bots(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    office = await open_office(start_server, scripted_engines, BOTH, brain=brain, claude=claude)
    report = await call_in(office, BOTH, http)
    assert report.bot_state["brain"] == brain

    assert hand_offs(report) == [("lead", "buyer"), ("buyer", "seller")]
    answers = report.bot_state["answers"]
    assert answers["buyer"]["financing"] == "pre-approved" and answers["buyer"]["must_sell_first"] == "yes"
    assert (answers["seller"]["address"]["number"], answers["seller"]["address"]["street"]) == ("40", "Oak Lane")
    assert report.bot_state["score"]["temperature"] == "hot"
    assert len(office.calendar.appointments) == 1


VAGUE = (
    "This is Sam",
    "I want to buy",
    "I don't know",
    "no idea honestly",
    "I'm not sure",
    "I don't know",
    "no idea, sorry",
    "maybe, I guess",
    "I'm not sure",
    "I don't know",
    "no, not really",
    "I'm not sure",
    "I don't know",
    "no, not really",
    "no, we don't need to sell first",
    "I'm not ready to schedule",
    "no thanks, not now",
)


@pytest.mark.parametrize("brain", BRAINS)
async def test_vague_answers_are_asked_once_more_then_left_unknown(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    office = await open_office(start_server, scripted_engines, VAGUE, brain=brain, claude=claude)
    report = await call_in(office, VAGUE, http)
    assert report.bot_state["brain"] == brain

    state = report.bot_state
    assert state["score"] == {
        "temperature": "cold",
        "points": 0,
        "reasons": ["timeline unknown", "financing unknown", "motivation unknown"],
    }
    # Each was asked once more (Claude's re-asks are in its words, the scripted core counts them)...
    reasks = {q.slot: q.reask for q in build_flows(min_intent_confidence=HandoffRules().min_intent_confidence)["buyer"]}
    said = " ".join(e.text for e in report.events if isinstance(e, BotUtterance))
    assert all(reasks[slot] in said for slot in ("areas", "price", "financing", "timeline")), said
    progress = state["progress"]["buyer"]
    if brain == "scripted":
        assert {"areas", "price", "financing", "timeline"} <= set(progress["reasked"])
    assert {"areas", "price", "financing", "timeline", "motivation"} <= set(progress["unknown"])  # ...then left
    assert office.calendar.appointments == [] and state["next_step"] == "follow_up"
    assert report.end_reason == "follow-up"


@pytest.mark.parametrize("brain", BRAINS)
async def test_a_slot_taken_meanwhile_is_replaced_by_the_next_ones(
    start_server: StartServer,
    scripted_engines: Engines,
    http: aiohttp.ClientSession,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    lines = (*BUYER[:-1], "yes, please book it", "the first one works", "yes, please book it")
    calendar = RacedCalendar(BusinessHours())
    office = await open_office(start_server, scripted_engines, lines, calendar=calendar, brain=brain, claude=claude)
    report = await call_in(office, lines, http)
    assert report.bot_state["brain"] == brain

    rival, booked = office.calendar.appointments
    assert rival.contact.name == "Someone Else" and booked.contact.phone == CALLER
    assert booked.start != rival.start
    assert report.bot_state["appointment"]["id"] == booked.id


# --- transfer to a person, through the Twilio emulator ---------------------------------------------

ASKS_FOR_A_PERSON = ("Hi, this is Ana Lopez, can I talk to a real person?", "yes, please do")
#: Quick bounds: the agent's phone rings briefly, so a transfer that fails fails fast.
FAST = TransferOptions(
    ring_timeout_s=5, machine_detection_timeout_s=3, connect_timeout_s=5, agent_timeout_s=8, briefing_timeout_s=5
)


async def dial_lead(office: Office, http: aiohttp.ClientSession) -> str:
    async with http.post(
        office.server.base_url + "/api/calls",
        json={"to": LEAD},
        headers={"Authorization": "Bearer test-api-token"},
    ) as response:
        body = await response.json()
        assert response.status == 201, body
        return str(body["call_sid"])


async def transfer_office(
    start_server: StartServer,
    scripted_engines: Engines,
    emulator: Emulator,
    lines: Sequence[str],
    data_dir: Path,
    brain: Brain = "scripted",
    claude: AnthropicEmulator | None = None,
) -> Office:
    """An office whose bots transfer to ``AGENT`` over Twilio (the emulator) and dial out, and
    which keeps its calls (embedded store, recordings) under ``data_dir``."""
    return await open_office(
        start_server,
        scripted_engines,
        lines,
        brain=brain,
        claude=claude,
        storage=StorageOptions(data_dir=data_dir),
        **dialling(emulator, bot_core=BotCoreOptions(agent_number=AGENT, transfer=FAST)),
    )


async def kept_call(data_dir: Path, call_sid: str) -> tuple[CallRecord, RecordingRecord]:
    """The call as the store has it once it is over for us (and its recording)."""
    store = open_store(None, data_dir=data_dir)
    try:
        async with asyncio.timeout(30):
            while (call := await store.get_call(call_sid)) is None or call.state != "completed":  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # the write-behind buffer gets there on its own time
        recording = await store.call_recording(call_sid)
    finally:
        await store.aclose()
    assert recording is not None
    return call, recording


def lead_says(*lines: str, then_listen_ms: int = 30_000) -> CallerScript:
    return CallerScript("lead", (*(CallerLine(line, pause_ms=300) for line in lines), Hangup(then_listen_ms)))


@pytest.mark.parametrize("brain", BRAINS)
async def test_a_caller_asking_for_a_person_is_transferred_and_the_bot_leaves(
    start_server: StartServer,
    scripted_engines: Engines,
    start_emulator: StartEmulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    emulator = await start_emulator(callee(script=lead_says(*ASKS_FOR_A_PERSON), max_duration_s=60.0))
    emulator.state.callees[AGENT] = callee(ring_s=0.3, amd_duration_ms=100, max_duration_s=60.0)
    emulator.state.rooms.say_words_per_s = 40.0  # the briefing takes a moment, not ~6 s
    office = await transfer_office(
        start_server, scripted_engines, emulator, ASKS_FOR_A_PERSON, tmp_path, brain=brain, claude=claude
    )
    call_sid = await dial_lead(office, http)

    report = office.server.state.reports.get(call_sid)
    await eventually(lambda: report is not None and transfer_phases(report)[-1:] == ["ended:joined"], "the join")
    assert report is not None
    assert transfer_phases(report) == ["requested", "started", "ended:joined"]
    assert report.bot_state["brain"] == brain
    (room,) = emulator.state.rooms.conferences.values()
    (agent_leg,) = [sid for sid, call in emulator.state.calls.items() if call.request.to == AGENT]
    briefing = room.participants[agent_leg].announcements
    assert len(briefing) == 1 and "Ana Lopez" in briefing[0]  # the agent heard who is waiting
    assert [s["end_reason"] for s in emulator.state.calls[call_sid].streams] == ["ended_by_twilio"]
    await eventually(lambda: call_sid not in office.server.state.live, "the bot leaving the call")
    assert len(office.server.state.shelf) == 0  # nobody is coming back for the bot
    # The call is over for us once the person has it: kept with its outcome and recording.
    call, recording = await kept_call(tmp_path, call_sid)
    assert call.outcome == "transferred" and recording.size_bytes > 8000 * 4  # over a second of stereo audio
    assert office.server.state.recordings_on_hold == {}


@pytest.mark.parametrize("brain", BRAINS)
async def test_a_transfer_nobody_answers_brings_the_caller_back_to_book_a_callback(
    start_server: StartServer,
    scripted_engines: Engines,
    start_emulator: StartEmulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    claude: AnthropicEmulator,
    brain: Brain,
) -> None:
    back = CallerScript(
        "back", (CallerLine("the first one works", pause_ms=300), CallerLine("yes, please book it", pause_ms=300))
    )
    emulator = await start_emulator(
        callee(script=lead_says(*ASKS_FOR_A_PERSON), later_scripts=(back,), max_duration_s=60.0)
    )
    emulator.state.callees[AGENT] = callee(outcome="busy", ring_s=0.3, max_duration_s=60.0)
    lines = (*ASKS_FOR_A_PERSON, "the first one works", "yes, please book it")
    office = await transfer_office(
        start_server, scripted_engines, emulator, lines, tmp_path, brain=brain, claude=claude
    )
    call_sid = await dial_lead(office, http)

    async with asyncio.timeout(60):
        call = await emulator.state.wait_finished(call_sid)
    report = office.server.state.reports.get(call_sid)
    assert report is not None
    assert transfer_phases(report) == ["requested", "started", "ended:busy", "returned"]
    assert [s["end_reason"] for s in call.streams] == ["ended_by_twilio", "server_hung_up"]
    [appointment] = office.calendar.appointments
    assert appointment.title.startswith("Callback") and appointment.contact.phone == LEAD
    assert report.bot_state["appointment"]["kind"] == "callback" and report.bot_state["brain"] == brain
    # One recording for the whole call: both streams, the caller's time on hold between them.
    kept, recording = await kept_call(tmp_path, call_sid)
    assert kept.outcome == "booked" and kept.duration_s is not None
    with wave.open(recording.path) as wav:
        assert abs(wav.getnframes() / 8000 - kept.duration_s) < 4
    assert recording.duration_s > sum(s["duration_s"] for s in call.streams) - 1


async def test_a_caller_who_asks_not_to_be_called_again_is_kept_off_the_call_list(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    lines = ("Hi, I'm Sarah Jones", "I'm not interested, please stop calling me")
    office = await open_office(start_server, scripted_engines, lines)
    report = await call_in(office, lines, http)

    assert report.end_reason == "opted out" and report.bot_state["next_step"] == "do_not_call"
    # Saved with the session once the call is over for the server.
    await eventually(lambda: office.server.state.live == {}, "the call's end")
    assert await office.server.state.bots.opted_out(office.server.settings.tenant, CALLER)


async def test_without_an_agent_number_the_bot_offers_a_callback_instead(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    lines = (*ASKS_FOR_A_PERSON, "the first one works", "yes, please book it")
    office = await open_office(start_server, scripted_engines, lines)
    report = await call_in(office, lines, http)

    assert transfer_phases(report) == ["requested", "refused"]
    [appointment] = office.calendar.appointments
    assert appointment.title.startswith("Callback")


def transfer_phases(report: CallReport) -> list[str]:
    return [
        f"{e.phase}:{e.outcome}" if e.phase == "ended" else e.phase
        for e in report.events
        if isinstance(e, TransferEvent)
    ]
