"""Load generator: N simulated callers in one process, calling again and again until time is up.

Run by ``leadline bench`` in its own process, so its CPU never counts as the server's. Caller
audio comes from the scripted TTS (speech-like audio Silero detects as speech; no model), and the
script's lines line up with the scripted STT's transcripts, so the Lead bot walks through a whole
qualification, including one barge-in, in every call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from runtime.tts import ScriptedTts
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.result import CallResult
from telephony.simulator.script import CallerLine, CallerScript
from telephony.simulator.turns import CallerTiming

log = logging.getLogger(__name__)

#: A buyer's qualification call with the bot core: name and intent (the Lead bot hands over to
#: the Buyer bot), price and financing, timeline and motivation, a must-have, no sale first, then
#: a showing booked. Matches runtime.engines.DEFAULT_SCRIPTED_TRANSCRIPTS turn by turn. The
#: second line cuts into the Buyer bot's introduction, to measure barge-in under load.
BENCH_SCRIPT = CallerScript(
    name="bench-buyer",
    steps=(
        CallerLine("Hi, I'm Sarah Jones and I want to buy a three bedroom house in Austin.", pause_ms=600),
        CallerLine("About four hundred thousand dollars, we still need a lender.", barge_in_after_ms=800),
        CallerLine("In the next two months, we're relocating for work.", pause_ms=600),
        CallerLine("A garage, ideally.", pause_ms=600),
        CallerLine("No, we don't need to sell first.", pause_ms=600),
        CallerLine("The first one works.", pause_ms=600),
        CallerLine("Yes, please book it.", pause_ms=600),
    ),
)


#: A caller who hears a short "Okay." and a pause as the bot still thinking (a booking turn is
#: two Claude requests around a calendar look-up), and who stays on the line for the goodbye.
PATIENT = CallerTiming(bot_done_gap_ms=1000, linger_ms=3000)


@dataclass
class LoadReport:
    calls: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, result: CallResult) -> None:
        self.calls.append(
            {
                "call_sid": result.call_sid,
                "end_reason": result.end_reason,
                "error": result.error,
                "duration_s": result.duration_s,
                "greeting_ms": result.greeting_ms,
                "turn_latency_ms": [t.latency_ms for t in result.turns if t.latency_ms is not None],
                "barge_in_clear_ms": [b.clear_after_ms for b in result.barge_ins],
                "underruns": result.counts.underruns,
                "max_tick_lag_ms": result.counts.max_tick_lag_ms,
                "media_received": result.counts.media_received,
                "clears": result.counts.clears,
            }
        )


async def _caller_slot(
    slot: int,
    url: str,
    token: str,
    deadline: float,
    delay: float,
    audio: dict[str, bytes],
    report: LoadReport,
    http: aiohttp.ClientSession,
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay)
    tts = ScriptedTts()
    calls = 0
    while loop.time() < deadline:
        calls += 1
        options = SimulatedCallOptions(
            public_url=url,
            auth_token=token,
            account_sid="AC" + secrets.token_hex(16),
            # A new lead every call: the same number again would resume its finished session.
            from_number=f"+1512{slot:03d}{calls:04d}",
            to_number="+15125550199",
            script=BENCH_SCRIPT,
            max_duration_s=max(5.0, deadline - loop.time() + 30.0),
            timing=PATIENT,
        )
        try:
            result = await run_simulated_call(options, tts=tts, session=http, prerendered=audio)
        except Exception as e:  # a broken call must not stop the run; it is reported
            report.errors.append(f"{type(e).__name__}: {e}")
            await asyncio.sleep(1.0)
            continue
        report.add(result)


async def generate_load(url: str, token: str, calls: int, seconds: float, ramp_s: float) -> LoadReport:
    """Keep ``calls`` calls in flight for ``seconds``, starting them evenly over ``ramp_s``."""
    tts = ScriptedTts()
    audio = {line: await tts.render(line) for line in BENCH_SCRIPT.lines()}
    report = LoadReport()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(
            *(_caller_slot(i, url, token, deadline, ramp_s * i / calls, audio, report, http) for i in range(calls))
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leadline-loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True, help="the server's TWILIO_AUTH_TOKEN")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--ramp-s", type=float, default=5.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from runtime.cli import run_async

    report = run_async(generate_load(args.url, args.token, args.calls, args.seconds, args.ramp_s))
    args.out.write_text(json.dumps({"calls": report.calls, "errors": report.errors}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
