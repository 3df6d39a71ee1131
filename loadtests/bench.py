"""``leadline bench``: N concurrent simulated calls against a real server on loopback.

Three processes: the server (``leadline serve`` with scripted STT/TTS, so the figures are the
runtime's own and not the models'), the load generator (``loadtests.loadgen``), and this one,
which samples the server's CPU and memory and then reads every call's report over the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from runtime.histogram import MsHistogram, percentile
from runtime.server_process import LocalServer, child_process, local_server

#: Samples taken during the ramp and the last seconds are left out of the steady-state figures.
SAMPLE_PERIOD_S = 1.0


@dataclass
class ResourceSamples:
    cpu_percent: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    active_calls: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    calls: int = 50
    seconds: float = 60.0
    ramp_s: float = 5.0
    output_dir: Path = Path("bench-output")
    port: int = 18480
    #: "local": scripted STT/TTS in the server (the runtime alone); "emulated": Deepgram,
    #: Anthropic, ElevenLabs and Twilio emulators at their published median latencies, one
    #: process each (the production pipeline with the vendors simulated)
    vendors: str = "local"


def _summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(list(values), 50), 2),
        "p95": round(percentile(list(values), 95), 2),
        "p99": round(percentile(list(values), 99), 2),
        "max": round(max(values), 2),
    }


async def _sample(process: psutil.Process, http: aiohttp.ClientSession, url: str, samples: ResourceSamples) -> None:
    process.cpu_percent(None)
    while True:
        await asyncio.sleep(SAMPLE_PERIOD_S)
        samples.cpu_percent.append(process.cpu_percent(None))
        samples.rss_mb.append(process.memory_info().rss / 2**20)
        async with http.get(url + "/health") as response:
            samples.active_calls.append(int((await response.json())["active_calls"]))


async def _reports(http: aiohttp.ClientSession, server: LocalServer) -> list[dict[str, Any]]:
    calls = (await server.api_get(http, "/api/calls?limit=1000"))["calls"]
    return [await server.api_get(http, f"/api/calls/{call['call_sid']}") for call in calls]


def aggregate(
    reports: list[dict[str, Any]],
    load: dict[str, Any],
    samples: ResourceSamples,
    idle_rss_mb: float,
    options: BenchOptions,
) -> dict[str, Any]:
    """Turn raw reports and samples into the benchmark's figures."""
    turns = [e for r in reports for e in r["events"] if e["kind"] == "turn_latency"]
    interruptions = [e for r in reports for e in r["events"] if e["kind"] == "interruption"]
    jitter = MsHistogram()
    for report in reports:
        jitter.merge(MsHistogram.from_dict(report["pacing_jitter_ms"]))
    calls = load["calls"]
    # Steady state: after the ramp, before the last 5 s.
    first = int(options.ramp_s / SAMPLE_PERIOD_S) + 1
    steady = slice(first, max(first + 1, len(samples.cpu_percent) - 5))
    cpu = samples.cpu_percent[steady] or samples.cpu_percent
    rss = samples.rss_mb[steady] or samples.rss_mb
    active = samples.active_calls[steady] or samples.active_calls
    mean_active = statistics.mean(active) if active else 0.0
    return {
        "options": {k: str(v) for k, v in vars(options).items()},
        "calls_completed": len(calls),
        "call_end_reasons": _count(c["end_reason"] for c in calls),
        "load_errors": load["errors"][:10],
        "turns": len(turns),
        "runtime_overhead_ms": _summary([t["runtime_overhead_ms"] for t in turns]),
        "stages_ms": {
            "endpointing": _summary([t["endpointing_ms"] for t in turns]),
            "stt_after_turn_end": _summary([t["stt_engine_ms"] for t in turns]),
            "llm_first_text": _summary([t["bot_ms"] for t in turns]),
            "tts_first_byte": _summary([t["tts_engine_ms"] for t in turns]),
        },
        "first_audio_ms": _summary([t["first_audio_ms"] for t in turns]),
        "covers": _count(e.get("purpose", "filler") for r in reports for e in r["events"] if e["kind"] == "filler"),
        "vendor_degraded": sum(e["kind"] == "vendor_degraded" for r in reports for e in r["events"]),
        "turn_latency_server_ms": _summary([t["total_ms"] for t in turns]),
        "endpointing_ms": _summary([t["endpointing_ms"] for t in turns]),
        "turn_latency_caller_ms": _summary([v for c in calls for v in c["turn_latency_ms"]]),
        "pacing": {
            "frames": jitter.total,
            "jitter_ms_p50": round(jitter.percentile(50), 2),
            "jitter_ms_p99": round(jitter.percentile(99), 2),
            "jitter_ms_max": round(jitter.max_ms, 2),
            "late_frames": sum(r["summary"]["late_frames"] for r in reports),
            "caller_underruns": sum(c["underruns"] for c in calls),
        },
        "barge_in": {
            "interruptions": len(interruptions),
            "server_reaction_ms": _summary([i["reaction_ms"] for i in interruptions]),
            "caller_clear_after_ms": _summary([v for c in calls for v in c["barge_in_clear_ms"] if v is not None]),
            "missed_clears": sum(v is None for c in calls for v in c["barge_in_clear_ms"]),
        },
        "server": {
            "cpu_percent_of_one_core_mean": round(statistics.mean(cpu), 1) if cpu else 0.0,
            "cpu_percent_of_one_core_max": round(max(cpu), 1) if cpu else 0.0,
            "active_calls_mean": round(mean_active, 1),
            "rss_mb_idle": round(idle_rss_mb, 1),
            "rss_mb_under_load": round(statistics.mean(rss), 1) if rss else 0.0,
            "rss_mb_per_call": round((statistics.mean(rss) - idle_rss_mb) / mean_active, 2)
            if rss and mean_active
            else 0.0,
            "protocol_errors": sum(r["summary"]["protocol_errors"] for r in reports),
            "dropped_inbound_frames": sum(r["summary"]["dropped_inbound_frames"] for r in reports),
        },
        "load_generator_max_tick_lag_ms": round(max((c["max_tick_lag_ms"] for c in calls), default=0.0), 2),
    }


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


async def run_bench(options: BenchOptions) -> dict[str, Any]:
    out = options.output_dir
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "server-data"
    shutil.rmtree(data_dir, ignore_errors=True)  # a fresh store: no caller resumes an earlier run
    env = {
        "LEADLINE_MAX_CALLS": str(options.calls + 10),
        "LEADLINE_LOG_LEVEL": "WARNING",
        # Calls are kept (store, live bus, recordings) as in production: part of what is measured.
        "LEADLINE_DATA_DIR": str(data_dir),
    }
    async with contextlib.AsyncExitStack() as stack:
        if options.vendors == "emulated":
            env.update(await _start_emulators(stack, options))
        else:
            env.update(LEADLINE_STT="scripted", LEADLINE_TTS="scripted")
        server = await stack.enter_async_context(local_server(options.port, out / "server.log", **env))
        return await _drive(options, server)


async def _start_emulators(stack: contextlib.AsyncExitStack, options: BenchOptions) -> dict[str, str]:
    """One emulator process per vendor; returns the server settings that point at them."""
    key, token, sid = secrets.token_hex(8), secrets.token_hex(8), "AC" + secrets.token_hex(16)
    ports = {vendor: options.port + 1 + i for i, vendor in enumerate(("deepgram", "anthropic", "elevenlabs", "twilio"))}
    for vendor, port in ports.items():
        args = ["runtime.cli", "emulate", vendor, "--port", str(port), "--engines", "scripted", "--api-key", key]
        args += ["--account-sid", sid, "--auth-token", token]
        ready = f"http://127.0.0.1:{port}/_emulator/state"
        await stack.enter_async_context(child_process(args, ready, options.output_dir / f"{vendor}.log"))
    return {
        "LEADLINE_STT": "deepgram",
        "DEEPGRAM_API_KEY": key,
        "DEEPGRAM_BASE_URL": f"ws://127.0.0.1:{ports['deepgram']}",
        "LEADLINE_STT_FALLBACK": "scripted",
        "LEADLINE_LLM": "anthropic",
        "ANTHROPIC_API_KEY": key,
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{ports['anthropic']}",
        "LEADLINE_TTS": "elevenlabs",
        "ELEVENLABS_API_KEY": key,
        "ELEVENLABS_VOICE_ID": "bench-voice",
        "ELEVENLABS_BASE_URL": f"ws://127.0.0.1:{ports['elevenlabs']}",
        "LEADLINE_TTS_FALLBACK": "scripted",
        "TWILIO_ACCOUNT_SID": sid,
        "TWILIO_API_BASE_URL": f"http://127.0.0.1:{ports['twilio']}",
    }


async def _drive(options: BenchOptions, server: LocalServer) -> dict[str, Any]:
    out = options.output_dir
    process = psutil.Process(server.pid)
    samples = ResourceSamples()
    async with aiohttp.ClientSession() as http:
        await asyncio.sleep(1.0)
        idle_rss_mb = process.memory_info().rss / 2**20
        sampler = asyncio.create_task(_sample(process, http, server.url, samples))
        load_path = out / "load.json"
        loadgen = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "loadtests.loadgen", "--url", server.url, "--token", server.auth_token,
            "--calls", str(options.calls), "--seconds", str(options.seconds),
            "--ramp-s", str(options.ramp_s), "--out", str(load_path),
        )  # fmt: skip
        await loadgen.wait()
        sampler.cancel()
        if loadgen.returncode != 0:
            raise RuntimeError(f"load generator failed with exit code {loadgen.returncode}")
        reports = await _reports(http, server)
    load = json.loads(load_path.read_text(encoding="utf-8"))
    result = aggregate(reports, load, samples, idle_rss_mb, options)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def format_result(result: dict[str, Any]) -> str:
    """The figures as a short human-readable table."""
    o, p, b, s = result["runtime_overhead_ms"], result["pacing"], result["barge_in"], result["server"]
    lines = [
        f"calls completed            {result['calls_completed']}  {result['call_end_reasons']}",
        f"turns measured             {result['turns']}",
        f"runtime overhead ms        p50 {o.get('p50')}  p95 {o.get('p95')}  p99 {o.get('p99')}  max {o.get('max')}",
        f"answer latency (server) ms {result['turn_latency_server_ms']}",
        f"  by stage ms              {result['stages_ms']}",
        f"first audio (acks count)   {result['first_audio_ms']}  acks/fillers played {result['covers']}"
        f"  degraded stages {result['vendor_degraded']}",
        f"turn latency (caller) ms   {result['turn_latency_caller_ms']}",
        f"pacing jitter ms           p50 {p['jitter_ms_p50']}  p99 {p['jitter_ms_p99']}  max {p['jitter_ms_max']}"
        f"  over {p['frames']} frames",
        f"late frames                {p['late_frames']}  (caller-side underruns {p['caller_underruns']})",
        f"barge-in reaction ms       server {b['server_reaction_ms']}",
        f"                           caller {b['caller_clear_after_ms']}  missed clears {b['missed_clears']}",
        f"server CPU % of one core   mean {s['cpu_percent_of_one_core_mean']}  max {s['cpu_percent_of_one_core_max']}"
        f"  at {s['active_calls_mean']} active calls",
        f"server RSS MB              idle {s['rss_mb_idle']}  loaded {s['rss_mb_under_load']}"
        f"  per call {s['rss_mb_per_call']}",
        f"protocol errors            {s['protocol_errors']}  dropped inbound frames {s['dropped_inbound_frames']}",
        f"load generator tick lag    max {result['load_generator_max_tick_lag_ms']} ms",
    ]
    return "\n".join(lines)
