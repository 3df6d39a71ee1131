"""Outbound dialling through ``POST /api/calls`` and answering-machine handling (``/twilio/amd``):
the real server, the official Twilio SDK and the Twilio emulator over loopback, which calls the
server back, plays the callee and posts the signed AMD verdict."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from bots.business_hours import BusinessHours
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBotFactory
from bots.session_state import MemoryBotSessionStore
from emulators.control import CONTROL, Fault
from emulators.twilio_calls import EmulatedCall
from loadtests.loadgen import BENCH_SCRIPT
from runtime.compliance import next_calling_window
from runtime.config import ConfigError, DialOptions, PersonaOptions, Settings, default_voicemail_text
from runtime.dialer import amd_action, parse_dial_request
from runtime.engines import EngineOptions, Engines
from runtime.events import BotUtterance, ComplianceCheck, VendorDegraded
from runtime.report import CallReport
from runtime.tts import ScriptedTts
from runtime.vendors import VendorOptions
from tests.conftest import API_TOKEN, AUTH_TOKEN, DAYTIME, RunningServer, StartServer
from tests.test_twilio_rest import (  # the Twilio emulator fixtures and helpers
    ACCOUNT_SID,
    LEAD,
    OUR_NUMBER,
    UNKNOWN_CALL,
    Emulator,
    StartEmulator,
    callee,
    eventually,
    start_emulator,
)
from tests.test_vendor_call import (  # the vendor emulators
    PATIENT,
    Vendors,
    assert_every_line_answered,
    assert_qualified_by_claude,
    conversation,
    start_vendor_server,
    vendors,
)
from tests.twilio_driver import post_signed

__all__ = ["start_emulator", "vendors"]

#: Short, so a test waits ~3 s for it to play rather than the default's ~11 s.
VOICEMAIL = "Please call Lakeside Realty back. Thank you!"
BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


def dialling(emulator: Emulator | None, caller_id: str = OUR_NUMBER, **overrides: Any) -> dict[str, Any]:
    """Server settings with Twilio REST pointed at the emulator (None: REST not configured)."""
    twilio = (
        VendorOptions(twilio_account_sid=ACCOUNT_SID, twilio_api_base_url=emulator.base_url)
        if emulator is not None
        else VendorOptions()
    )
    return {
        "engines": EngineOptions(stt="scripted", tts="scripted", vendors=twilio),
        "dial": DialOptions(caller_id=caller_id, voicemail_text=VOICEMAIL),
        **overrides,
    }


async def dial(
    http: aiohttp.ClientSession, server: RunningServer, body: object, headers: dict[str, str] = BEARER
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    async with http.post(server.base_url + "/api/calls", json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def dialled(http: aiohttp.ClientSession, server: RunningServer, emulator: Emulator) -> tuple[str, EmulatedCall]:
    """Dial LEAD and wait for the call to end at the emulator."""
    status, body, _ = await dial(http, server, {"to": LEAD})
    assert status == 201, body
    return body["call_sid"], await emulator.finished(body["call_sid"])


def report_of(server: RunningServer, call_sid: str) -> CallReport:
    report = server.state.reports.get(call_sid)
    assert report is not None
    return report


def utterances(report: CallReport) -> list[str]:
    return [e.text for e in report.events if isinstance(e, BotUtterance)]


# --- whole calls ---------------------------------------------------------------------------------


async def test_a_dialled_call_to_a_person_runs_end_to_end(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    emulator = await start_emulator(callee(hangup_after_ms=3_000, answered_by="human", amd_duration_ms=300))
    server = await start_server(scripted_engines, **dialling(emulator))
    status, body, headers = await dial(http, server, {"to": LEAD})
    assert status == 201 and body == {"call_sid": body["call_sid"], "status": "queued", "to": LEAD}
    call_sid = body["call_sid"]
    assert headers["Location"] == f"/api/calls/{call_sid}"
    call = await emulator.finished(call_sid)
    request = call.request
    assert (request.from_, request.machine_detection, request.async_amd) == (OUR_NUMBER, "DetectMessageEnd", True)
    assert request.instructions.url == server.base_url + "/twilio/voice"
    assert request.async_amd_status_callback == server.base_url + "/twilio/amd"
    assert call.errors == [] and call.status == "completed"
    (stream,) = call.streams
    assert stream["end_reason"] == "caller_hung_up" and stream["greeting_ms"] is not None
    assert [(c.kind, c.http_status) for c in call.callbacks if c.kind in ("status", "amd", "voice")] == [
        ("status", 204),
        ("status", 204),
        ("status", 204),
        ("voice", 200),
        ("amd", 204),
        ("status", 204),
    ]
    report = report_of(server, call_sid)
    context = report.context
    assert (context.direction, context.from_number, context.to_number) == ("outbound-api", OUR_NUMBER, LEAD)
    # The lead's local time when they were reached is on record (TCPA: 8 am to 9 pm theirs).
    (hours,) = [e for e in report.events if isinstance(e, ComplianceCheck) and e.rule == "calling_hours"]
    assert (hours.ok, hours.detail) == (True, "13:00 America/Chicago")  # LEAD is an Austin (512) number
    assert [str(s) for s, _ in report.lifecycle.history] == [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert report.amd is not None and (report.amd.answered_by, report.amd.duration_ms) == ("human", 300)
    assert report.end_reason == "stream_stopped" and VOICEMAIL not in utterances(report)
    async with http.get(f"{server.base_url}/api/calls/{call_sid}", headers=BEARER) as response:
        assert (await response.json())["amd"]["answered_by"] == "human"


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_machine_gets_the_voicemail_once_and_the_call_is_hung_up(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    emulator = await start_emulator(
        callee(hangup_after_ms=60_000, answered_by="machine_end_beep", amd_duration_ms=1_000)
    )
    server = await start_server(scripted_engines, **dialling(emulator))
    _, body, _ = await dial(http, server, {"to": LEAD})
    call_sid = body["call_sid"]
    await eventually(lambda: report_of(server, call_sid).amd is not None, "the AMD verdict")
    # Twilio delivering the verdict again must not restart the message.
    (amd,) = [c for c in emulator.state.calls[call_sid].callbacks if c.kind == "amd"]
    async with await post_signed(http, server.base_url, "/twilio/amd", amd.params, AUTH_TOKEN) as response:
        assert response.status == 204
    call = await emulator.finished(call_sid)
    assert call.status == "completed" and emulator.state.control.stats["calls_updated"] == 1  # our REST hang-up
    (stream,) = call.streams
    # Twilio stops the stream for the REST update while the server closes it: either may win.
    assert stream["end_reason"] in ("ended_by_twilio", "server_hung_up")
    assert stream["counts"]["clears"] == 1  # the greeting was cut off, once
    last = stream["bot_utterances"][-1]
    voicemail_s = len(await ScriptedTts().render(VOICEMAIL)) / 8000
    assert not last["interrupted"] and abs(last["ended_s"] - last["started_s"] - voicemail_s) < 0.15
    report = report_of(server, call_sid)
    assert report.amd is not None and (report.amd.answered_by, report.amd.duration_ms) == ("machine_end_beep", 1000)
    assert report.end_reason == "voicemail" and utterances(report)[-1] == VOICEMAIL
    assert report.lifecycle.status == "completed"


async def test_a_fax_is_hung_up_without_a_word(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    emulator = await start_emulator(callee(hangup_after_ms=60_000, answered_by="fax", amd_duration_ms=300))
    server = await start_server(scripted_engines, **dialling(emulator))
    call_sid, call = await dialled(http, server, emulator)
    assert call.status == "completed" and call.streams[0]["end_reason"] == "ended_by_twilio"
    assert emulator.state.control.stats["calls_updated"] == 1
    report = report_of(server, call_sid)
    assert report.amd is not None and report.amd.answered_by == "fax"
    assert VOICEMAIL not in utterances(report)


async def test_without_machine_detection_twilio_is_not_asked_for_it(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    emulator = await start_emulator(callee(hangup_after_ms=500, answered_by="machine_end_beep", amd_duration_ms=100))
    server = await start_server(scripted_engines, **dialling(emulator))
    status, body, _ = await dial(http, server, {"to": LEAD, "machine_detection": False, "bot": "lead"})
    assert status == 201
    call = await emulator.finished(body["call_sid"])
    assert (call.request.machine_detection, call.request.async_amd, call.request.async_amd_status_callback) == (
        None,
        False,
        None,
    )
    assert not [c for c in call.callbacks if c.kind == "amd"] and call.streams[0]["end_reason"] == "caller_hung_up"
    assert report_of(server, body["call_sid"]).amd is None


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_dialled_qualification_call_with_every_vendor_emulated(
    start_server: StartServer,
    scripted_engines: Engines,
    start_emulator: StartEmulator,
    vendors: Vendors,
    http: aiohttp.ClientSession,
) -> None:
    emulator = await start_emulator(callee(script=BENCH_SCRIPT, max_duration_s=90.0, timing=PATIENT))

    async def start_dialling_server(*args: Any, **kwargs: Any) -> RunningServer:
        return await start_server(*args, **dialling(emulator), **kwargs)

    server = await start_vendor_server(start_dialling_server, scripted_engines, vendors)
    status, body, _ = await dial(http, server, {"to": LEAD})
    assert status == 201, body
    call_sid = body["call_sid"]
    async with asyncio.timeout(90):  # a whole qualification: greeting, three answers, goodbye
        call = await emulator.state.wait_finished(call_sid)
    report = report_of(server, call_sid)
    assert call.errors == [], call.errors
    assert call.streams[0]["end_reason"] in ("server_hung_up", "ended_by_twilio"), conversation(report)
    assert report.context.direction == "outbound-api" and report.lifecycle.status == "completed"
    assert report.amd is not None and report.amd.answered_by == "human"
    assert not [e for e in report.events if isinstance(e, VendorDegraded)]
    turns = assert_every_line_answered(report)
    assert all(t.bot_ms > 150 for t in turns)  # Claude's first token, from the emulator
    assert all(t.tts_engine_ms > 50 for t in turns)  # ElevenLabs' first byte, from the emulator
    assert_qualified_by_claude(report.bot_state)
    for name in ("anthropic", "elevenlabs", "deepgram"):
        assert sum(vendors.apps[name][CONTROL].stats.values()) > 0, name


# --- refusals --------------------------------------------------------------------------------------


@pytest.fixture
async def emulator_and_server(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator
) -> tuple[Emulator, RunningServer]:
    """A server that may have one call at a time, dialling a callee who never picks up."""
    emulator = await start_emulator(callee(ring_s=30.0))
    return emulator, await start_server(scripted_engines, **dialling(emulator, max_calls=1))


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": API_TOKEN}])
async def test_dialling_needs_the_bearer_token(
    emulator_and_server: tuple[Emulator, RunningServer], http: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    emulator, server = emulator_and_server
    status, body, _ = await dial(http, server, {"to": LEAD}, headers)
    assert status == 401 and "bearer" in body["error"]
    assert emulator.state.calls == {}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([LEAD], "JSON object"),
        ({}, "'to'"),
        ({"to": "5125550123"}, "E.164"),
        ({"to": "+0125550123"}, "E.164"),
        ({"to": "+1512555012345678"}, "E.164"),
        ({"to": 15125550123}, "E.164"),
        ({"to": LEAD, "bot": "sales"}, "'bot'"),
        ({"to": LEAD, "machine_detection": "yes"}, "'machine_detection'"),
        ({"to": LEAD, "from": OUR_NUMBER}, "unknown fields ['from']"),
    ],
)
async def test_bad_dial_requests_are_refused_with_the_reason(
    emulator_and_server: tuple[Emulator, RunningServer], http: aiohttp.ClientSession, body: object, complaint: str
) -> None:
    emulator, server = emulator_and_server
    status, answer, _ = await dial(http, server, body)
    assert status == 400 and complaint in answer["error"]
    assert emulator.state.calls == {} and server.state.reports.recent(10) == []


async def test_a_body_that_is_not_json_is_refused(
    emulator_and_server: tuple[Emulator, RunningServer], http: aiohttp.ClientSession
) -> None:
    _, server = emulator_and_server
    async with http.post(server.base_url + "/api/calls", data=b"to=+15125550123", headers=BEARER) as response:
        assert response.status == 400 and (await response.json())["error"] == "the body must be JSON"


@pytest.mark.parametrize(
    ("rest", "caller_id", "variable"), [(True, "", "LEADLINE_CALLER_ID"), (False, OUR_NUMBER, "TWILIO_ACCOUNT_SID")]
)
async def test_dialling_is_off_until_configured(
    start_server: StartServer,
    scripted_engines: Engines,
    start_emulator: StartEmulator,
    http: aiohttp.ClientSession,
    rest: bool,
    caller_id: str,
    variable: str,
) -> None:
    emulator = await start_emulator(callee())
    server = await start_server(scripted_engines, **dialling(emulator if rest else None, caller_id=caller_id))
    status, body, _ = await dial(http, server, {"to": LEAD})
    assert status == 503 and variable in body["error"]
    assert emulator.state.calls == {}


@pytest.fixture
def slow_load(scripted_engines: Engines) -> Iterator[tuple[threading.Event, Any]]:
    """An engine loader that blocks (in the executor) until released."""
    release = threading.Event()

    def load(options: EngineOptions) -> Engines:
        release.wait(30)
        return scripted_engines

    yield release, load
    release.set()


async def test_no_dialling_while_the_models_load(
    start_server: StartServer,
    start_emulator: StartEmulator,
    slow_load: tuple[threading.Event, Any],
    http: aiohttp.ClientSession,
) -> None:
    emulator = await start_emulator(callee())
    server = await start_server(None, load=slow_load[1], **dialling(emulator))
    status, body, headers = await dial(http, server, {"to": LEAD})
    assert status == 503 and "loading" in body["error"] and int(headers["Retry-After"]) > 0
    assert emulator.state.calls == {}


async def test_dials_not_yet_connected_count_against_capacity(
    emulator_and_server: tuple[Emulator, RunningServer], http: aiohttp.ClientSession
) -> None:
    emulator, server = emulator_and_server
    status, first, _ = await dial(http, server, {"to": LEAD})
    assert status == 201  # ringing for 30 s: no stream yet, but the slot is taken
    status, body, headers = await dial(http, server, {"to": LEAD})
    assert status == 503 and "capacity" in body["error"] and int(headers["Retry-After"]) > 0
    assert len(emulator.state.calls) == 1
    assert server.state.rest is not None and await server.state.rest.hang_up(first["call_sid"])
    await emulator.finished(first["call_sid"])
    assert report_of(server, first["call_sid"]).lifecycle.status == "canceled"
    status, again, _ = await dial(http, server, {"to": LEAD})  # the slot is free again
    assert status == 201
    await server.state.rest.hang_up(again["call_sid"])
    await emulator.finished(again["call_sid"])


@pytest.mark.parametrize(("fault", "retryable"), [(Fault.OVERLOADED, True), (Fault.AUTH, False)])
async def test_a_twilio_failure_is_a_502_that_leaves_nothing_behind(
    emulator_and_server: tuple[Emulator, RunningServer], http: aiohttp.ClientSession, fault: Fault, retryable: bool
) -> None:
    emulator, server = emulator_and_server
    emulator.state.control.faults.schedule(fault)
    status, body, _ = await dial(http, server, {"to": LEAD})
    assert status == 502 and body["retryable"] is retryable and "Twilio REST error" in body["error"]
    assert server.state.reports.recent(10) == [] and emulator.state.calls == {}
    status, body, _ = await dial(http, server, {"to": LEAD})  # max_calls=1: the slot was given back
    assert status == 201
    assert server.state.rest is not None and await server.state.rest.hang_up(body["call_sid"])
    await emulator.finished(body["call_sid"])


# --- the AMD callback ------------------------------------------------------------------------------


async def test_amd_callback_checks_the_signature_and_ignores_unknown_calls(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    params = {"CallSid": UNKNOWN_CALL, "AccountSid": ACCOUNT_SID, "AnsweredBy": "machine_end_beep"}
    async with http.post(server.base_url + "/twilio/amd", data=params) as response:
        assert response.status == 403
    async with await post_signed(http, server.base_url, "/twilio/amd", params, "wrong-token") as response:
        assert response.status == 403
    async with await post_signed(http, server.base_url, "/twilio/amd", params, AUTH_TOKEN) as response:
        assert response.status == 204
    without_verdict = {"CallSid": UNKNOWN_CALL, "AccountSid": ACCOUNT_SID}
    async with await post_signed(http, server.base_url, "/twilio/amd", without_verdict, AUTH_TOKEN) as response:
        assert response.status == 400
    assert server.state.reports.get(UNKNOWN_CALL) is None


@pytest.mark.parametrize(
    ("previous", "answered_by", "action"),
    [
        (None, "human", None),
        (None, "unknown", None),
        (None, "machine_start", None),
        ("machine_start", "machine_end_beep", "leave_message"),
        (None, "machine_end_silence", "leave_message"),
        (None, "machine_end_other", "leave_message"),
        ("machine_end_beep", "machine_end_beep", None),
        ("machine_end_beep", "machine_end_other", None),
        (None, "fax", "hang_up"),
        ("fax", "fax", None),
        (None, "robot", None),
    ],
)
def test_amd_actions(previous: str | None, answered_by: str, action: str | None) -> None:
    assert amd_action(previous, answered_by) == action


#: 9:30 pm in Austin on Monday 7 December 2026; 10:30 pm in New York.
AUSTIN_EVENING = datetime(2026, 12, 8, 3, 30, tzinfo=UTC)


async def test_a_lead_is_not_dialled_outside_their_calling_hours(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    """TCPA: 8 am to 9 pm in the lead's time zone (their area code's), not the office's."""
    emulator = await start_emulator(callee())
    server = await start_server(scripted_engines, wall_clock=lambda: AUSTIN_EVENING, **dialling(emulator))
    status, body, headers = await dial(http, server, {"to": LEAD})
    assert status == 422, body
    assert body["lead_local_time"] == "21:30 America/Chicago" and "08:00-21:00" in body["error"]
    assert body["retry_at"] == "2026-12-08T08:00:00-06:00"  # tomorrow morning, the lead's time
    assert int(headers["Retry-After"]) == 10 * 3600 + 30 * 60
    assert emulator.state.calls == {} and server.state.reports.recent(10) == []

    honolulu = "+18085550123"  # 5:30 pm there: still inside the window
    status, body, _ = await dial(http, server, {"to": honolulu})
    assert status == 201, body
    await emulator.finished(body["call_sid"])


async def test_a_tenant_may_only_record_the_calling_hours(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    """With ``LEADLINE_CALLING_HOURS=record`` (leads who consented) the call is placed and the
    failed check is kept with it."""
    emulator = await start_emulator(callee())
    server = await start_server(
        scripted_engines,
        wall_clock=lambda: AUSTIN_EVENING,
        **dialling(emulator, dial=DialOptions(caller_id=OUR_NUMBER, voicemail_text=VOICEMAIL, calling_hours="record")),
    )
    status, body, _ = await dial(http, server, {"to": LEAD})
    assert status == 201, body
    await emulator.finished(body["call_sid"])
    report = report_of(server, body["call_sid"])
    checks = [(e.ok, e.detail) for e in report.events if isinstance(e, ComplianceCheck) and e.rule == "calling_hours"]
    assert checks == [(False, "21:30 America/Chicago")]


async def test_a_lead_who_asked_not_to_be_called_is_not_dialled(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator, http: aiohttp.ClientSession
) -> None:
    """TCPA: a lead's do-not-call request (kept with their session) outlasts the conversation."""
    emulator = await start_emulator(callee())
    store = MemoryBotSessionStore()
    bots = QualifyingBotFactory(
        persona=DEFAULT_PERSONA, calendar=LocalCalendar(BusinessHours()), store=store, now=lambda: DAYTIME
    )
    server = await start_server(scripted_engines, bots, **dialling(emulator))
    await store.save(server.settings.tenant, LEAD, {"opted_out": True})
    status, body, _ = await dial(http, server, {"to": LEAD})
    assert status == 409 and "asked not to be called again" in body["error"]
    assert emulator.state.calls == {} and server.state.reports.recent(10) == []

    other = "+15125550177"  # someone else is dialled as usual
    status, body, _ = await dial(http, server, {"to": other})
    assert status == 201, body
    await emulator.finished(body["call_sid"])


@pytest.mark.parametrize(
    ("utc", "opens"),
    [
        (datetime(2026, 12, 7, 19, 0, tzinfo=UTC), "2026-12-07T19:00:00+00:00"),  # open: now
        (datetime(2026, 12, 7, 13, 59, tzinfo=UTC), "2026-12-07T08:00:00-06:00"),  # 7:59 am: this morning
        (datetime(2026, 12, 8, 3, 0, tzinfo=UTC), "2026-12-08T08:00:00-06:00"),  # 9 pm sharp: closed
        (datetime(2027, 3, 14, 5, 0, tzinfo=UTC), "2027-03-14T08:00:00-05:00"),  # the night clocks go forward
    ],
)
def test_the_calling_window_opens_at_8_am_the_leads_time(utc: datetime, opens: str) -> None:
    assert next_calling_window(LEAD, utc, default_tz="America/Denver").isoformat() == opens


def test_a_valid_dial_request_takes_the_defaults() -> None:
    order = parse_dial_request({"to": LEAD}, "lead")
    assert (order.to, order.bot, order.machine_detection) == (LEAD, "lead", True)


# --- configuration ----------------------------------------------------------------------------------


def test_dial_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"TWILIO_AUTH_TOKEN": "x", "LEADLINE_CALLER_ID": OUR_NUMBER, "LEADLINE_VOICEMAIL_TEXT": " Call us back. "}
    )
    assert settings.dial == DialOptions(caller_id=OUR_NUMBER, voicemail_text="Call us back.")
    assert settings.dial.calling_hours == "enforce"
    relaxed = Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_CALLING_HOURS": "record"})
    assert relaxed.dial.calling_hours == "record"
    off = Settings.from_env({"TWILIO_AUTH_TOKEN": "x", "LEADLINE_BOT_NAME": "Maya"})
    assert off.dial.caller_id == ""  # dialling disabled
    assert off.dial.voicemail_text == default_voicemail_text(PersonaOptions(bot_name="Maya"))
    assert off.dial.voicemail_text.startswith("Hi, this is Maya from Lakeside Realty")


def test_bad_dial_settings_are_reported_by_name() -> None:
    env = {
        "TWILIO_AUTH_TOKEN": "x",
        "LEADLINE_CALLER_ID": "512-555-0100",
        "LEADLINE_VOICEMAIL_TEXT": "  ",
        "LEADLINE_CALLING_HOURS": "ignore",
    }
    with pytest.raises(ConfigError) as error:
        Settings.from_env(env)
    assert len(error.value.problems) == 3 and "LEADLINE_CALLING_HOURS='ignore'" in str(error.value)
    assert "LEADLINE_CALLER_ID='512-555-0100'" in str(error.value) and "LEADLINE_VOICEMAIL_TEXT" in str(error.value)


async def test_the_voicemail_is_rendered_at_start_up(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator
) -> None:
    rendered: list[str] = []

    class RecordingTts(ScriptedTts):
        async def render(self, text: str) -> bytes:
            rendered.append(text)
            return await super().render(text)

    engines = Engines(vad=scripted_engines.vad, stt=scripted_engines.stt, tts=RecordingTts())
    await start_server(engines, **dialling(await start_emulator(callee())))
    await eventually(lambda: VOICEMAIL in rendered, "the voicemail's render")
