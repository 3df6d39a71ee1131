"""Whole calls with every vendor emulated over real sockets: Deepgram, Anthropic (via the LLM
brain) and ElevenLabs behind the production clients, and the call surviving a vendor's death."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bots.business_hours import BusinessHours
from bots.fallback import FallbackBotFactory
from bots.llm_bot import LlmBotFactory
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBotFactory
from emulators import anthropic as anthropic_emulator
from emulators import deepgram as deepgram_emulator
from emulators import elevenlabs as elevenlabs_emulator
from emulators.control import CONTROL, Fault
from loadtests.loadgen import BENCH_SCRIPT
from runtime.anthropic_llm import AnthropicLlm
from runtime.deepgram_stt import DeepgramStt
from runtime.elevenlabs_tts import ElevenLabsTts
from runtime.engines import DEFAULT_SCRIPTED_TRANSCRIPTS, Engines
from runtime.events import BotUtterance, CallerUtterance, TurnLatency, VendorDegraded
from runtime.fallback import CircuitBreaker, FallbackStt, FallbackTts
from runtime.report import CallReport
from runtime.stt import ScriptedStt
from runtime.tts import ScriptedTts
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.turns import CallerTiming
from tests.conftest import AUTH_TOKEN, RunningServer, StartServer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KEY = "test-vendor-key"
#: A caller who takes a cached "Okay." followed by a pause as the bot still thinking (a booking
#: turn is two Claude requests around a calendar look-up), not as its whole answer.
#: After the last line it stays on the line for the booking's answer and goodbye: two Claude
#: requests around the calendar, whose tails can leave seconds of quiet after the filler.
PATIENT = CallerTiming(bot_done_gap_ms=1500, linger_ms=8000)
#: Monday 7 December 2026, 9:00 in Austin: a day with free slots ahead.
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


@dataclass
class Vendors:
    apps: dict[str, web.Application]
    urls: dict[str, str]


@pytest.fixture
async def vendors() -> AsyncIterator[Vendors]:
    apps = {
        "deepgram": deepgram_emulator.build_app(
            api_key=KEY, recogniser=deepgram_emulator.ScriptedRecogniser(DEFAULT_SCRIPTED_TRANSCRIPTS)
        ),
        "anthropic": anthropic_emulator.build_app(api_key=KEY),
        # A quick speaker, so a whole qualification call fits the test's time.
        "elevenlabs": elevenlabs_emulator.build_app(api_key=KEY, synthesiser=ScriptedTts(ms_per_char=20)),
    }
    runners, urls = [], {}
    for name, app in apps.items():
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        urls[name] = f"127.0.0.1:{port}"
    yield Vendors(apps, urls)
    for runner in runners:
        await runner.cleanup()


async def start_vendor_server(start_server: StartServer, scripted_engines: Engines, vendors: Vendors) -> RunningServer:
    stt = FallbackStt(
        DeepgramStt(api_key=KEY, base_url=f"ws://{vendors.urls['deepgram']}"),
        ScriptedStt(DEFAULT_SCRIPTED_TRANSCRIPTS),
        CircuitBreaker("deepgram"),
    )
    tts = FallbackTts(
        ElevenLabsTts(api_key=KEY, voice_id="test-voice", base_url=f"ws://{vendors.urls['elevenlabs']}"),
        ScriptedTts(),
        CircuitBreaker("elevenlabs"),
    )
    llm = AnthropicLlm(api_key=KEY, base_url=f"http://{vendors.urls['anthropic']}")
    calendar = LocalCalendar(BusinessHours())
    bots = FallbackBotFactory(
        LlmBotFactory(llm, persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW),
        QualifyingBotFactory(persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW),
        CircuitBreaker("anthropic"),
    )
    engines = Engines(vad=scripted_engines.vad, stt=stt, tts=tts)
    server = await start_server(engines, bots)
    server.state.closers.extend([llm.aclose, stt.aclose, tts.aclose])
    return server


def conversation(report: CallReport) -> str:
    """The call as it went, for a failing assertion's message: who said what, when."""
    lines = []
    for e in report.events:
        if isinstance(e, CallerUtterance | BotUtterance):
            who = "caller" if isinstance(e, CallerUtterance) else "bot"
            lines.append(f"{e.at:7.2f} {who:6} {e.text}")
        elif not isinstance(e, TurnLatency):
            lines.append(f"{getattr(e, 'at', 0.0):7.2f} {type(e).__name__}")
    return "\n".join([f"end: {report.end_reason}", *lines])


def assert_every_line_answered(report: CallReport) -> list[TurnLatency]:
    """Every line of the script was heard and every caller turn answered (a line said while the
    bot was still thinking is answered together with the one before it, as one turn)."""
    heard = [e.text for e in report.events if isinstance(e, CallerUtterance)]
    said = conversation(report)
    assert all(any(line.rstrip(".") in text for text in heard) for line in BENCH_SCRIPT.lines()), said
    turns = [e for e in report.events if isinstance(e, TurnLatency)]
    assert len(turns) == len(heard), said
    return turns


def assert_qualified_by_claude(state: dict[str, Any]) -> None:
    """BENCH_SCRIPT's answers, as Claude (the emulator) recorded them through its tools, and the
    showing it booked (the first turn's areas and rooms too: the caller's barge-in cuts the reply
    in which the model would record them, so it records them on its next turn)."""
    assert state["brain"] == "llm", state
    buyer = state["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["rooms"]["bedrooms"] == 3
    assert buyer["price"]["target"] == 400_000
    assert buyer["financing"] == "needs lender" and buyer["timeline"]["bucket"] == "0-3 months"
    assert state["appointment"]["kind"] == "showing"
    assert [h["to"] for h in state["handoffs"]] == ["buyer"]


async def place_call(server: RunningServer, http: aiohttp.ClientSession) -> str:
    """Call in as BENCH_SCRIPT's buyer; the call's SID once the server has hung up."""
    tts = ScriptedTts()
    audio = {line: await tts.render(line) for line in BENCH_SCRIPT.lines()}
    options = SimulatedCallOptions(
        public_url=server.base_url,
        auth_token=AUTH_TOKEN,
        account_sid="AC" + "1" * 32,
        from_number="+15125550100",
        to_number="+15125550199",
        script=BENCH_SCRIPT,
        max_duration_s=90,
        timing=PATIENT,
    )
    result = await run_simulated_call(options, tts=tts, session=http, prerendered=audio)
    assert result.error is None, result.error
    report = server.state.reports.get(result.call_sid)
    assert result.end_reason == "server_hung_up", conversation(report) if report else result.end_reason
    return result.call_sid


async def test_a_full_call_with_every_vendor_emulated(
    start_server: StartServer, scripted_engines: Engines, vendors: Vendors, http: aiohttp.ClientSession
) -> None:
    server = await start_vendor_server(start_server, scripted_engines, vendors)
    call_sid = await place_call(server, http)
    report = server.state.reports.get(call_sid)
    assert report is not None
    assert not [e for e in report.events if isinstance(e, VendorDegraded)]
    turns = assert_every_line_answered(report)
    # Each stage was really served by its emulator, at roughly its published latency.
    assert all(t.bot_ms > 150 for t in turns)  # Claude's first token (median 380 ms)
    assert all(t.tts_engine_ms > 50 for t in turns)  # ElevenLabs' first byte (median 140 ms)
    assert_qualified_by_claude(report.bot_state)
    for name in ("anthropic", "elevenlabs", "deepgram"):
        assert sum(vendors.apps[name][CONTROL].stats.values()) > 0, name


async def test_the_call_finishes_on_the_local_engine_when_the_stt_vendor_dies(
    start_server: StartServer, scripted_engines: Engines, vendors: Vendors, http: aiohttp.ClientSession
) -> None:
    faults = vendors.apps["deepgram"][CONTROL].faults
    faults.schedule(Fault.DISCONNECT)  # the first connection drops once audio flows
    faults.schedule(Fault.AUTH, count=20)  # ...and every reconnect is refused
    server = await start_vendor_server(start_server, scripted_engines, vendors)
    call_sid = await place_call(server, http)
    report = server.state.reports.get(call_sid)
    assert report is not None
    degraded = [e for e in report.events if isinstance(e, VendorDegraded)]
    assert degraded and {e.stage for e in degraded} == {"stt"}
    assert_every_line_answered(report)
