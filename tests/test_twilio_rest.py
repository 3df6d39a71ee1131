"""The Twilio REST client against the Twilio emulator over loopback, and outbound calls end to end:
the official SDK places the call, the emulator plays Twilio and the callee, the Leadline server
answers the signed voice webhook and talks to the callee over the Media Stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from emulators.control import EmulatorControl, FaultInjector, LatencyProfile
from emulators.twilio import TWILIO, CalleeOptions, TwilioEmulator, build_app
from emulators.twilio_calls import EmulatedCall
from runtime.engines import Engines
from telephony.rest import CallInfo, TwilioRest, TwilioRestError
from telephony.simulator import CallerScript, CallerTiming, Hangup
from tests.conftest import AUTH_TOKEN, RunningServer, StartServer, free_port

ACCOUNT_SID = "AC" + "1" * 32
LEAD = "+15125550123"
OUR_NUMBER = "+15125550100"
UNKNOWN_CALL = "CA" + "0" * 32
#: generous: the test machine is small and shared
WAIT_S = 30.0


def callee(hangup_after_ms: int = 2_000, **overrides: object) -> CalleeOptions:
    """A quick callee: answers at once, listens, hangs up after ``hangup_after_ms``."""
    options: dict[str, object] = {
        "ring_s": 0.2,
        "script": CallerScript("listener", (Hangup(after_ms=hangup_after_ms),)),
        "timing": CallerTiming(reply_timeout_ms=1_000, linger_ms=200),
        "max_duration_s": 60.0,
    }
    return CalleeOptions(**(options | overrides))  # type: ignore[arg-type]  # keys are CalleeOptions fields


@dataclass
class Emulator:
    app: web.Application
    base_url: str

    @property
    def state(self) -> TwilioEmulator:
        return self.app[TWILIO]

    async def finished(self, call_sid: str) -> EmulatedCall:
        async with asyncio.timeout(WAIT_S):
            return await self.state.wait_finished(call_sid)


StartEmulator = Callable[[CalleeOptions], Awaitable[Emulator]]


@pytest.fixture
async def start_emulator() -> AsyncIterator[StartEmulator]:
    runners: list[web.AppRunner] = []

    async def start(answering: CalleeOptions) -> Emulator:
        # Low REST latency keeps the suite fast; the default profile is exercised by the demo.
        control = EmulatorControl("twilio", {"rest": LatencyProfile(median_ms=5, p95_ms=20)}, FaultInjector())
        app = build_app(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, control=control, callee=answering)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return Emulator(app, f"http://127.0.0.1:{port}")

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def emulator(start_emulator: StartEmulator) -> Emulator:
    return await start_emulator(callee())


@pytest.fixture
async def rest(emulator: Emulator) -> AsyncIterator[TwilioRest]:
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    yield client
    await client.aclose()


@dataclass
class Capture:
    """A stand-in application: records what Twilio sent and answers the voice webhook."""

    base_url: str = ""
    twiml: str = "<Response><Pause length='30'/></Response>"
    requests: list[tuple[str, MultiDict[str], str]] = field(default_factory=list)

    def forms(self, path: str) -> list[MultiDict[str]]:
        return [form for p, form, _ in self.requests if p == path]

    def valid(self, path: str) -> bool:
        validator = RequestValidator(AUTH_TOKEN)
        found = [(form, sig) for p, form, sig in self.requests if p == path]
        return bool(found) and all(validator.validate(self.base_url + path, form, sig) for form, sig in found)


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    recorded = Capture()

    async def record(request: web.Request) -> web.Response:
        form = await request.post()
        texts = MultiDict((k, v) for k, v in form.items() if isinstance(v, str))
        recorded.requests.append((request.path, texts, request.headers.get("X-Twilio-Signature", "")))
        if request.path == "/voice":
            return web.Response(text=recorded.twiml, content_type="text/xml")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{name}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    recorded.base_url = f"http://127.0.0.1:{port}"
    yield recorded
    await runner.cleanup()


async def call_server(rest: TwilioRest, server: RunningServer, **options: object) -> CallInfo:
    return await rest.create_call(
        to=LEAD,
        from_=OUR_NUMBER,
        url=server.base_url + "/twilio/voice",
        status_callback=server.base_url + "/twilio/status",
        **options,  # type: ignore[arg-type]  # keyword arguments of create_call
    )


def basic_auth(token: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, token)}


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# --- the Calls resource as the SDK sees it -------------------------------------------------------


async def test_create_returns_a_queued_outbound_call_shaped_like_twilios(
    rest: TwilioRest, emulator: Emulator, capture: Capture, http: aiohttp.ClientSession
) -> None:
    info = await rest.create_call(
        to=LEAD, from_=OUR_NUMBER, url=capture.base_url + "/voice", status_callback=capture.base_url + "/status"
    )
    assert re.fullmatch(r"CA[0-9a-f]{32}", info.sid)
    assert (info.status, info.direction, info.to, info.from_) == ("queued", "outbound-api", LEAD, OUR_NUMBER)
    url = f"{emulator.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{info.sid}.json"
    async with http.get(url, headers=basic_auth(AUTH_TOKEN)) as r:
        body = await r.json()
    assert body["sid"] == info.sid and body["account_sid"] == ACCOUNT_SID and body["from"] == OUR_NUMBER
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{info.sid}.json"
    assert body["to_formatted"] == "(512) 555-0123" and body["api_version"] == "2010-04-01"
    assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} \+0000", body["date_created"])
    assert {"start_time", "end_time", "duration", "price", "answered_by", "subresource_uris"} <= body.keys()
    await rest.hang_up(info.sid)


async def test_twilio_error_shapes(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    calls = f"{emulator.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"
    auth = basic_auth(AUTH_TOKEN)
    async with http.post(f"{calls}.json", data={"To": LEAD}, headers=basic_auth("wrong")) as r:
        assert r.status == 401
        assert await r.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
    async with http.post(f"{calls}.json", data={"From": OUR_NUMBER, "Url": "http://x/"}, headers=auth) as r:
        assert (r.status, (await r.json())["code"]) == (400, 21201)
    async with http.post(f"{calls}.json", data={"To": LEAD, "Url": "http://x/"}, headers=auth) as r:
        assert (r.status, (await r.json())["code"]) == (400, 21213)
    async with http.get(f"{calls}/{UNKNOWN_CALL}.json", headers=auth) as r:
        body = await r.json()
        assert (r.status, body["code"], body["status"]) == (404, 20404, 404)
        assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"
    slow = "+15125550177"
    async with http.post(emulator.base_url + "/_emulator/twilio/callee", json={"to": slow, "ring_s": 30}) as r:
        assert (await r.json())["ring_s"] == 30
    create = {"To": slow, "From": OUR_NUMBER, "Twiml": "<Response><Pause length='30'/></Response>"}
    async with http.post(f"{calls}.json", data=create, headers=auth) as r:
        sid = (await r.json())["sid"]
    both = {"Twiml": "<Response><Hangup/></Response>", "Url": "http://x/"}
    async with http.post(f"{calls}/{sid}.json", data=both, headers=auth) as r:
        assert r.status == 400
    async with http.post(f"{calls}/{sid}.json", data={"Status": "completed"}, headers=auth) as r:
        assert (r.status, (await r.json())["status"]) == (200, "canceled")  # still ringing: canceled
    await emulator.finished(sid)
    async with http.get(f"{emulator.base_url}/_emulator/twilio/calls/{sid}") as r:
        view = await r.json()
    assert view["resource"]["status"] == "canceled" and view["twiml_executed"] == []


async def test_auth_failure_is_not_retryable(emulator: Emulator) -> None:
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token="not-the-token", base_url=emulator.base_url)
    try:
        with pytest.raises(TwilioRestError) as caught:
            await client.fetch_call(UNKNOWN_CALL)
    finally:
        await client.aclose()
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (401, 20003, False)


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("rate_limit", 429, 20429), ("overloaded", 503, 20503), ("disconnect", None, None), ("stall", None, None)],
)
async def test_injected_faults_are_retryable_errors(
    emulator: Emulator, http: aiohttp.ClientSession, fault: str, status: int | None, code: int | None
) -> None:
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url, timeout_s=1.0)
    schedule = {"schedule": [{"fault": fault, "count": 1}]}
    async with http.post(emulator.base_url + "/_emulator/faults", json=schedule) as r:
        assert r.status == 200
    try:
        with pytest.raises(TwilioRestError) as caught:
            await client.hang_up(UNKNOWN_CALL)  # a POST: never retried by the transport
        assert await client.hang_up(UNKNOWN_CALL) is False  # the fault was for one request only
    finally:
        await client.aclose()
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (status, code, True)
    assert emulator.state.control.faults.injected[fault] == 1


async def test_hang_up_of_an_unknown_call_is_false(rest: TwilioRest) -> None:
    assert await rest.hang_up(UNKNOWN_CALL) is False


# --- callbacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "statuses"),
    [
        ("no-answer", ["initiated", "ringing", "no-answer"]),
        ("busy", ["initiated", "busy"]),
        ("failed", ["initiated", "failed"]),
    ],
)
async def test_unanswered_calls_end_with_their_outcome(
    start_emulator: StartEmulator,
    capture: Capture,
    outcome: str,
    statuses: list[str],
) -> None:
    emulator = await start_emulator(callee(outcome=outcome))
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    try:
        info = await client.create_call(
            to=LEAD,
            from_=OUR_NUMBER,
            url=capture.base_url + "/voice",
            status_callback=capture.base_url + "/status",
            timeout_s=1,
        )
        await emulator.finished(info.sid)
        assert (await client.fetch_call(info.sid)).status == outcome
    finally:
        await client.aclose()
    forms = capture.forms("/status")
    assert [f["CallStatus"] for f in forms] == statuses
    assert [f["SequenceNumber"] for f in forms] == [str(i) for i in range(len(statuses))]
    assert forms[-1]["CallDuration"] == "0" and forms[-1]["Direction"] == "outbound-api"
    assert not capture.forms("/voice")  # never answered, so no TwiML was asked for
    assert capture.valid("/status")


async def test_async_amd_result_and_callbacks_are_signed_as_twilio_signs(
    start_emulator: StartEmulator, capture: Capture
) -> None:
    emulator = await start_emulator(callee(answered_by="machine_start", amd_duration_ms=100))
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    try:
        info = await client.create_call(
            to=LEAD,
            from_=OUR_NUMBER,
            url=capture.base_url + "/voice",
            status_callback=capture.base_url + "/status",
            machine_detection="Enable",
            async_amd=True,
            async_amd_status_callback=capture.base_url + "/amd",
        )
        await eventually(lambda: bool(capture.forms("/amd")), "the AMD callback")
        assert await client.hang_up(info.sid) is True
        await emulator.finished(info.sid)
        assert await client.hang_up(info.sid) is False  # already ended
    finally:
        await client.aclose()
    (amd,) = capture.forms("/amd")
    assert (amd["CallSid"], amd["AnsweredBy"], amd["MachineDetectionDuration"]) == (info.sid, "machine_start", "100")
    (voice,) = capture.forms("/voice")
    assert (voice["CallStatus"], voice["Direction"], voice["From"], voice["To"]) == (
        "in-progress",
        "outbound-api",
        OUR_NUMBER,
        LEAD,
    )
    assert "AnsweredBy" not in voice  # asynchronous AMD does not hold the TwiML back
    statuses = [f["CallStatus"] for f in capture.forms("/status")]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert capture.valid("/status") and capture.valid("/amd") and capture.valid("/voice")


# --- end to end with a Leadline server -------------------------------------------------------------


async def test_outbound_call_reaches_the_server_and_the_callee_hears_the_greeting(
    start_server: StartServer, scripted_engines: Engines, emulator: Emulator, rest: TwilioRest
) -> None:
    server = await start_server(scripted_engines)
    info = await call_server(rest, server)
    call = await emulator.finished(info.sid)
    assert call.errors == []
    (stream,) = call.streams
    assert stream["end_reason"] == "caller_hung_up" and stream["greeting_ms"] is not None
    assert stream["bot_utterances"] and stream["counts"]["media_received"] > 0
    assert [c.http_status for c in call.callbacks if c.kind == "status"] == [204] * 4
    report = server.state.reports.get(info.sid)
    assert report is not None and report.context.direction == "outbound-api"
    assert [str(status) for status, _ in report.lifecycle.history] == [
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert report.end_reason == "stream_stopped" and info.sid not in server.state.live
    assert (await rest.fetch_call(info.sid)).status == "completed"


async def test_hang_up_ends_a_live_call(
    start_server: StartServer,
    scripted_engines: Engines,
    start_emulator: StartEmulator,
) -> None:
    server = await start_server(scripted_engines)
    emulator = await start_emulator(callee(hangup_after_ms=60_000))
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    try:
        info = await call_server(client, server)
        await eventually(lambda: info.sid in server.state.live, "the call's session")
        assert await client.hang_up(info.sid) is True
        call = await emulator.finished(info.sid)
        assert await client.hang_up(info.sid) is False
    finally:
        await client.aclose()
    assert call.status == "completed" and call.streams[0]["end_reason"] == "ended_by_twilio"
    await eventually(lambda: info.sid not in server.state.live, "the session's end")
    report = server.state.reports.get(info.sid)
    assert report is not None and report.end_reason == "stream_stopped"
    assert report.lifecycle.status == "completed"


async def test_update_twiml_stops_the_stream_and_runs_the_new_twiml(
    start_server: StartServer,
    scripted_engines: Engines,
    start_emulator: StartEmulator,
) -> None:
    server = await start_server(scripted_engines)
    emulator = await start_emulator(callee(hangup_after_ms=60_000))
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    transfer = "<Response><Dial>+15125550199</Dial></Response>"
    try:
        info = await call_server(client, server)
        await eventually(lambda: info.sid in server.state.live, "the call's session")
        assert (await client.update_twiml(info.sid, transfer)).status == "in-progress"
        call = emulator.state.calls[info.sid]
        await eventually(lambda: call.twiml_executed[-1] == transfer, "the new TwiML")
        await eventually(lambda: info.sid not in server.state.live, "the stream's stop")
        report = server.state.reports.get(info.sid)
        assert report is not None and report.end_reason == "stream_stopped"
        assert call.streams[0]["end_reason"] == "ended_by_twilio"
        assert (await client.fetch_call(info.sid)).status == "in-progress"  # held on <Dial>
        await client.update_twiml(info.sid, "<Response><Hangup/></Response>")
        await emulator.finished(info.sid)
    finally:
        await client.aclose()
    assert call.status == "completed" and len(call.twiml_executed) == 3
