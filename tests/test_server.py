"""The server driven over real sockets exactly as Twilio drives it (scripted engines)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from runtime.config import TurnOptions
from runtime.engines import Engines
from runtime.events import DtmfReceived, GreetingLatency, ProtocolViolation, TurnLatency
from runtime.stt import ScriptedStt
from runtime.tts import ScriptedTts
from telephony import media_stream as ms
from telephony.call_state import CallStatus
from tests.conftest import API_TOKEN, AUTH_TOKEN, StartServer
from tests.twilio_driver import StreamDriver, new_call_sid, post_signed, voice_params


async def wait_for(predicate: object, limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_health_reports_ready_with_preloaded_engines(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    async with http.get(server.base_url + "/health") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"


async def test_voice_webhook_rejects_bad_or_missing_signature(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    params = voice_params(new_call_sid())
    async with http.post(server.base_url + "/twilio/voice", data=params) as response:
        assert response.status == 403
    response = await post_signed(http, server.base_url, "/twilio/voice", params, "wrong-token")
    assert response.status == 403
    tampered = await post_signed(http, server.base_url, "/twilio/voice", params, AUTH_TOKEN)
    assert tampered.status == 200
    signed_other = dict(params, From="+19995550000")
    from telephony.signature import compute_signature

    signature = compute_signature(AUTH_TOKEN, server.base_url + "/twilio/voice", params)
    async with http.post(
        server.base_url + "/twilio/voice", data=signed_other, headers={"X-Twilio-Signature": signature}
    ) as response:
        assert response.status == 403


async def test_voice_webhook_returns_connect_stream_with_call_context(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    call_sid = new_call_sid()
    response = await post_signed(http, server.base_url, "/twilio/voice", voice_params(call_sid), AUTH_TOKEN)
    assert response.headers["Content-Type"].startswith("text/xml")
    from telephony.twiml import parse_connect_stream

    instruction = parse_connect_stream(await response.text())
    assert instruction.url == server.base_url.replace("http://", "ws://") + "/twilio/media"
    params = instruction.parameters
    assert params["from"] == "+15125550100" and params["to"] == "+15125550199"
    assert params["direction"] == "inbound" and params["bot"] == "lead" and params["tenant"] == "default"
    assert params["token"].startswith("v1.")
    assert server.state.reports.get(call_sid) is not None


async def test_stream_start_without_valid_token_is_refused(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    driver = await StreamDriver.open(http, server.base_url, AUTH_TOKEN)
    forged = dict(driver.parameters, token=driver.parameters["token"][:-2] + "AA")
    await driver.start(forged)
    await driver.close()
    assert driver.ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert driver.received == []
    assert server.state.protocol_errors["bad_stream_token"] == 1
    assert server.state.live == {}


async def test_greeting_plays_at_once_paced_and_marked(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    driver = await StreamDriver.open(http, server.base_url, AUTH_TOKEN)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await driver.start()
    await driver.send_silence(1.0)
    media_arrivals = [t for e, t in zip(driver.received, driver.arrival, strict=True) if isinstance(e, ms.OutMedia)]
    assert media_arrivals and media_arrivals[0] - started < 1.0
    # Paced: about 1 s of audio plus the lead after 1 s, not the whole greeting at once.
    assert 45 <= len(media_arrivals) <= 62
    assert all(len(e.payload) == 160 for e in driver.received if isinstance(e, ms.OutMedia))
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    greeting = [e for e in report.events if isinstance(e, GreetingLatency)]
    assert len(greeting) == 1 and greeting[0].latency_ms < 1000


async def test_stop_tears_the_call_down(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.send_silence(0.2)
    assert driver.call_sid in server.state.live
    await driver.stop()
    await driver.close()
    await wait_for(lambda: driver.call_sid not in server.state.live)
    report = server.state.reports.get(driver.call_sid)
    assert report is not None and report.end_reason == "stream_stopped"
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith(("listen", "send", "watch", "reply-"))]


async def test_dtmf_is_received_and_recorded(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.send_silence(0.1)
    for digit in "1#":
        await driver.ws.send_str(ms.dtmf_message(stream_sid=driver.stream_sid, sequence=99, digit=digit))
    await driver.send_silence(0.1)
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    assert [e.digit for e in report.events if isinstance(e, DtmfReceived)] == ["1", "#"]
    await driver.stop()
    await driver.close()


GARBAGE = [
    "{not json",
    "[]",
    '{"event":"media","media":{"payload":"%%%"}}',
    '{"event":"media","media":{"payload":"' + "A" * 4000 + '"}}',
    '{"event":"teleport"}',
    '{"event":"start"}',
]


async def test_garbage_on_one_call_leaves_a_concurrent_call_unharmed(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    good = await StreamDriver.open(http, server.base_url, AUTH_TOKEN)
    bad = await StreamDriver.open(http, server.base_url, AUTH_TOKEN)
    await good.start()
    await bad.start()

    async def spray() -> None:
        for _ in range(20):
            for text in GARBAGE:
                await bad.ws.send_str(text)
            await bad.ws.send_bytes(b"\x00\x01binary")
            await asyncio.sleep(0.02)

    await asyncio.gather(good.send_silence(1.0), spray())
    good_media = good.count(ms.OutMedia)
    assert 45 <= good_media <= 62  # the good call's audio kept flowing at pace
    assert bad.count(ms.OutMedia) > 0  # the bad call survived too
    assert not bad.ws.closed
    bad_report = server.state.reports.get(bad.call_sid)
    good_report = server.state.reports.get(good.call_sid)
    assert bad_report is not None and good_report is not None
    assert sum(isinstance(e, ProtocolViolation) for e in bad_report.events) == 20 * (len(GARBAGE) + 1)
    assert not any(isinstance(e, ProtocolViolation) for e in good_report.events)
    errors = server.state.protocol_errors
    assert errors["bad_json"] == 20 and errors["binary_frame"] == 20 and errors["duplicate_start"] == 0
    for driver in (good, bad):
        await driver.stop()
        await driver.close()


async def test_status_callbacks_drive_the_lifecycle_idempotently(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    call_sid = new_call_sid()
    await post_signed(http, server.base_url, "/twilio/voice", voice_params(call_sid), AUTH_TOKEN)
    report = server.state.reports.get(call_sid)
    assert report is not None
    lifecycle = report.lifecycle
    assert lifecycle.status is CallStatus.RINGING

    async def status(value: str, sequence: int) -> int:
        params = dict(voice_params(call_sid), CallStatus=value, SequenceNumber=str(sequence))
        response = await post_signed(http, server.base_url, "/twilio/status", params, AUTH_TOKEN)
        return response.status

    assert await status("in-progress", 1) == 204
    assert await status("in-progress", 1) == 204  # repeat
    assert await status("completed", 2) == 204
    assert await status("ringing", 0) == 204  # late, out of order
    assert report.lifecycle.status.value == "completed"
    assert [s for s, _ in report.lifecycle.history] == [
        CallStatus.QUEUED,
        CallStatus.RINGING,
        CallStatus.IN_PROGRESS,
        CallStatus.COMPLETED,
    ]
    assert await status("teleported", 3) == 400
    unsigned = await http.post(server.base_url + "/twilio/status", data={"CallSid": call_sid, "CallStatus": "failed"})
    assert unsigned.status == 403
    assert report.lifecycle.status is CallStatus.COMPLETED


async def test_completed_status_ends_a_live_call(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.send_silence(0.1)
    params = dict(voice_params(driver.call_sid), CallStatus="completed", SequenceNumber="3")
    await post_signed(http, server.base_url, "/twilio/status", params, AUTH_TOKEN)
    await wait_for(lambda: driver.ws.closed or driver.call_sid not in server.state.live)
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None and report.end_reason == "call_completed"


@pytest.mark.parametrize("header", [None, "Bearer nope"])
async def test_call_api_requires_the_bearer_token(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession, header: str | None
) -> None:
    server = await start_server(scripted_engines)
    headers = {"Authorization": header} if header else {}
    async with http.get(server.base_url + "/api/calls", headers=headers) as response:
        assert response.status == 401


async def test_call_api_returns_the_report(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.send_silence(0.3)
    await driver.stop()
    await driver.close()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with http.get(f"{server.base_url}/api/calls/{driver.call_sid}", headers=headers) as response:
        body = await response.json()
    assert body["call_sid"] == driver.call_sid and body["end_reason"] == "stream_stopped"
    assert body["summary"]["frames_sent"] > 0
    assert any(e["kind"] == "greeting_latency" for e in body["events"])
    async with http.get(f"{server.base_url}/api/calls/CAnope", headers=headers) as response:
        assert response.status == 404


async def speak_one_turn(
    start_server: StartServer, engines: Engines, http: aiohttp.ClientSession, **overrides: object
) -> TurnLatency:
    server = await start_server(engines, **overrides)
    driver = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await driver.ws.send_str(ms.clear_message(driver.stream_sid))  # not Twilio's to send: counted, ignored
    speech = await ScriptedTts().render("I am looking to buy a house in Austin.")
    await driver.send_silence(0.2)
    await driver.send_audio(speech)
    await driver.send_silence(1.2)
    await driver.stop()
    await driver.close()
    report = server.state.reports.get(driver.call_sid)
    assert report is not None
    turns = report.turn_latencies()
    assert len(turns) == 1
    return turns[0]


async def test_speculative_stt_hides_recogniser_time_behind_endpointing(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    slow_stt = Engines(
        vad=scripted_engines.vad, stt=ScriptedStt(["a house in Austin"], latency_s=0.25), tts=ScriptedTts()
    )
    turn = await speak_one_turn(start_server, slow_stt, http)
    assert turn.stt_speculative
    # 250 ms of recognition started 224 ms into the silence and the turn ended at 512 ms.
    assert (turn.stt_done_at - turn.turn_end_at) * 1000 < 100
    assert turn.stt_engine_ms < 100


async def test_without_speculation_the_recogniser_starts_at_turn_end(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    slow_stt = Engines(
        vad=scripted_engines.vad, stt=ScriptedStt(["a house in Austin"], latency_s=0.25), tts=ScriptedTts()
    )
    settings_turn = TurnOptions(speculate_after_ms=0)
    turn = await speak_one_turn(start_server, slow_stt, http, turn=settings_turn)
    assert not turn.stt_speculative
    assert (turn.stt_done_at - turn.turn_end_at) * 1000 >= 240
    assert turn.stt_engine_ms >= 240
    assert 0 <= turn.runtime_overhead_ms < 100


async def test_socket_without_start_is_closed(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines, stream_start_timeout_s=0.3)
    ws = await http.ws_connect(server.base_url.replace("http", "ws") + "/twilio/media")
    await ws.send_str(ms.connected_message())
    message = await asyncio.wait_for(ws.receive(), timeout=3)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert server.state.protocol_errors["no_start"] == 1


async def test_second_stream_for_a_live_call_is_refused(
    start_server: StartServer, scripted_engines: Engines, http: aiohttp.ClientSession
) -> None:
    server = await start_server(scripted_engines)
    first = await StreamDriver.started(http, server.base_url, AUTH_TOKEN)
    await first.send_silence(0.1)
    replay = StreamDriver(
        await http.ws_connect(server.base_url.replace("http", "ws") + "/twilio/media"), first.call_sid
    )
    replay.reader = asyncio.create_task(replay._read())
    await replay.start(first.parameters)  # same call, same (valid) token
    await replay.close()
    assert replay.ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert server.state.protocol_errors["call_already_streaming"] == 1
    before = first.count(ms.OutMedia)
    await first.send_silence(0.3)
    assert first.count(ms.OutMedia) > before  # the real call goes on
    assert server.state.live[first.call_sid] is not None
    await first.stop()
    await first.close()
