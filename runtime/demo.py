"""``leadline demo``: start the server, place one scripted call against it, show what happened.

The server runs in its own process on the embedded offline engines, exactly as ``leadline serve``
would; this process plays Twilio and the caller (``telephony.simulator``), transcribing the bot's
audio with the local Whisper so the printed conversation is what a caller would have heard.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from runtime.console import latency_table, live_printer
from runtime.engines import EngineOptions, load_engines
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.result import CallResult

DEMO_PORT = 18080


async def _wait_healthy(http: aiohttp.ClientSession, url: str, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError("the server exited during start-up; see demo-output/server.log")
        try:
            async with http.get(url + "/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become healthy in 3 minutes")


async def run_demo(output_dir: Path, out: TextIO = sys.stdout, port: int = DEMO_PORT) -> int:
    output_dir.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    token, api_token = secrets.token_hex(16), secrets.token_hex(16)
    env = dict(
        os.environ,
        TWILIO_AUTH_TOKEN=token,
        LEADLINE_API_TOKEN=api_token,
        LEADLINE_PUBLIC_URL=url,
        LEADLINE_PORT=str(port),
    )
    print(f"starting the server on {url} (offline engines: Silero VAD, Whisper tiny.en, Piper) ...", file=out)
    loop = asyncio.get_running_loop()
    engines_loading = loop.run_in_executor(None, load_engines, EngineOptions(stt="whisper", tts="piper"))
    with open(output_dir / "server.log", "wb") as server_log:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runtime.cli", "serve", env=env, stdout=server_log, stderr=server_log
        )
        try:
            async with aiohttp.ClientSession() as http:
                await _wait_healthy(http, url, server)
                engines = await engines_loading
                print("server ready; placing the call\n", file=out)
                options = SimulatedCallOptions(
                    public_url=url,
                    auth_token=token,
                    account_sid="AC" + secrets.token_hex(16),
                    from_number="+15125550123",
                    to_number="+15125550100",
                    output_dir=output_dir,
                    transcribe_bot=True,
                )
                result = await run_simulated_call(
                    options, tts=engines.tts, stt=engines.stt, session=http, on_event=live_printer(out)
                )
                await asyncio.sleep(0.5)  # let the server finish the call's report
                report = await _server_report(http, url, api_token, result.call_sid)
                await engines.aclose()
        finally:
            server.terminate()
            await server.wait()
    (output_dir / f"{result.call_sid}.server.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + _summary(result, report), file=out)
    return 0 if result.error is None and report["summary"]["turns"] > 0 else 1


async def _server_report(http: aiohttp.ClientSession, url: str, api_token: str, call_sid: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_token}"}
    async with http.get(f"{url}/api/calls/{call_sid}", headers=headers) as response:
        response.raise_for_status()
        report: dict[str, Any] = await response.json()
        return report


def _summary(result: CallResult, report: dict[str, Any]) -> str:
    summary = report["summary"]
    caller_latencies = [t.latency_ms for t in result.turns if t.latency_ms is not None and not t.barge_in]
    lines = [
        "server-side latency per turn",
        latency_table(report),
        "",
        f"greeting played after        {result.greeting_ms:.0f} ms" if result.greeting_ms is not None else "",
        "caller-heard turn latency    "
        + (", ".join(f"{v:.0f}" for v in caller_latencies) + " ms" if caller_latencies else "n/a"),
        f"interruptions                {summary['interruptions']}",
        f"frames sent / late           {summary['frames_sent']} / {summary['late_frames']}"
        f"   (pacing jitter p99 {summary['pacing_jitter_ms_p99']} ms)",
        f"call ended                   {result.end_reason} (server: {report['end_reason']})",
        f"what the bot learned         {json.dumps(report['bot_state'].get('answers', {}))}",
        "",
        f"recording   {result.wav_path}",
        f"call report {result.report_path}",
        f"server view {result.report_path.with_suffix('.server.json') if result.report_path else ''}",
    ]
    return "\n".join(line for line in lines if line is not None)
