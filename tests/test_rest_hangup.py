"""When the bot ends a call, the phone call itself ends over Twilio REST, not only the stream."""

from __future__ import annotations

import pytest

from runtime.config import SilenceOptions
from runtime.engines import EngineOptions, Engines
from runtime.vendors import VendorOptions
from telephony.rest import TwilioRest
from tests.conftest import AUTH_TOKEN, StartServer
from tests.test_twilio_rest import (  # the Twilio emulator fixtures and helpers
    ACCOUNT_SID,
    StartEmulator,
    call_server,
    callee,
    eventually,
    start_emulator,
)

__all__ = ["start_emulator"]

pytestmark = pytest.mark.slow


async def test_the_bot_hanging_up_ends_the_phone_call_over_rest(
    start_server: StartServer, scripted_engines: Engines, start_emulator: StartEmulator
) -> None:
    emulator = await start_emulator(callee(hangup_after_ms=60_000))  # the callee never speaks
    vendors = VendorOptions(twilio_account_sid=ACCOUNT_SID, twilio_api_base_url=emulator.base_url)
    server = await start_server(
        scripted_engines,
        twilio_auth_token=AUTH_TOKEN,
        engines=EngineOptions(stt="scripted", tts="scripted", vendors=vendors),
        silence=SilenceOptions(prompt_after_s=0.5, hangup_after_prompt_s=0.5, goodbye_text="Goodbye!"),
    )
    assert server.state.rest is not None
    client = TwilioRest(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=emulator.base_url)
    try:
        info = await call_server(client, server)
        call = await emulator.finished(info.sid)
    finally:
        await client.aclose()
    assert emulator.state.control.stats["calls_updated"] == 1  # the server's REST hang-up
    assert call.status == "completed"
    # Twilio stops the stream for the REST update while the server closes it: either may win.
    assert call.streams[0]["end_reason"] in ("ended_by_twilio", "server_hung_up")
    await eventually(lambda: info.sid not in server.state.live, "the session's end")
    report = server.state.reports.get(info.sid)
    assert report is not None and report.end_reason == "silence"
