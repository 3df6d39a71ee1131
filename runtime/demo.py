"""``leadline demo``: start the server, place one scripted call against it, show what happened.

The server runs in its own process on the embedded offline engines, exactly as ``leadline serve``
would; this process plays Twilio and the caller (``telephony.simulator``), transcribing the bot's
audio with the local Whisper so the printed conversation is what a caller would have heard.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from runtime.console import latency_table, live_printer
from runtime.engines import EngineOptions, load_engines
from runtime.server_process import local_server
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.result import CallResult

DEMO_PORT = 18080


async def run_demo(output_dir: Path, out: TextIO = sys.stdout, port: int = DEMO_PORT) -> int:
    output_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting the server on port {port} (offline engines: Silero VAD, Whisper tiny.en, Piper) ...", file=out)
    loop = asyncio.get_running_loop()
    engines_loading = loop.run_in_executor(None, load_engines, EngineOptions(stt="whisper", tts="piper"))
    async with local_server(port, output_dir / "server.log") as server, aiohttp.ClientSession() as http:
        engines = await engines_loading
        print("server ready; placing the call\n", file=out)
        options = SimulatedCallOptions(
            public_url=server.url,
            auth_token=server.auth_token,
            account_sid="AC" + secrets.token_hex(16),
            from_number="+15125550123",
            to_number="+15125550100",
            output_dir=output_dir,
            transcribe_bot=True,
        )
        result = await run_simulated_call(
            options, tts=engines.tts, stt=engines.stt, session=http, on_event=live_printer(out)
        )
        await engines.aclose()
        await asyncio.sleep(0.5)  # let the server finish the call's report
        report: dict[str, Any] = await server.api_get(http, f"/api/calls/{result.call_sid}")
    (output_dir / f"{result.call_sid}.server.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + _summary(result, report), file=out)
    return 0 if result.error is None and report["summary"]["turns"] > 0 else 1


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
