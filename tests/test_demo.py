"""`make demo` must keep working: the whole demo, server process and all, on the offline engines."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import pytest

from runtime.demo import run_demo
from tests.conftest import free_port

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_demo_call_runs_end_to_end(tmp_path: Path) -> None:
    out = io.StringIO()
    assert await run_demo(tmp_path, out=out, port=free_port()) == 0
    printed = out.getvalue()
    assert "server-side latency per turn" in printed
    assert "caller: Hi, yes. I'm looking to buy a house in Austin." in printed
    assert "barge-in: bot silenced" in printed
    assert "call ended (server_hung_up)" in printed
    check_outputs(tmp_path)


def check_outputs(tmp_path: Path) -> None:
    [wav_path] = tmp_path.glob("CA*.wav")
    with wave.open(str(wav_path)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        assert wav.getnframes() / 8000 > 20
    [server_json] = tmp_path.glob("CA*.server.json")
    report = json.loads(server_json.read_text())
    assert report["summary"]["turns"] >= 3 and report["summary"]["interruptions"] == 1
    assert report["summary"]["late_frames"] == 0
    assert report["bot_state"]["answers"]["place"] == "Austin"
    assert report["bot_state"]["answers"]["budget"] == 400_000
