"""The ``leadline`` command: serve, call, demo, bench, emulate, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from runtime import logs
from runtime.config import ConfigError, Settings
from runtime.server import create_app

log = logging.getLogger(__name__)
T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (lower per-message overhead at 50 calls)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


async def serve(settings: Settings, ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; ``ready`` gets the bound port."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = runner.addresses[0][1]
    log.info("listening", extra={"host": settings.host, "port": port, "public_url": settings.public_url})
    if ready is not None:
        ready(port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()


def _cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = Settings.from_env(None, **overrides)
    except ConfigError as e:
        print(f"leadline: {e}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    run_async(serve(settings))
    return 0


def _cmd_call(args: argparse.Namespace) -> int:
    from runtime.console import live_printer
    from runtime.engines import EngineOptions, load_engines
    from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call

    token = args.auth_token or os.environ.get("TWILIO_AUTH_TOKEN", "")
    if not token:
        print("leadline: pass --auth-token or set TWILIO_AUTH_TOKEN (the server's token)", file=sys.stderr)
        return 2
    logs.configure("WARNING")
    engines = load_engines(EngineOptions(stt="whisper" if args.transcribe else "scripted", tts="piper"))
    options = SimulatedCallOptions(
        public_url=args.url.rstrip("/"),
        auth_token=token,
        account_sid="AC" + secrets.token_hex(16),
        from_number=args.from_number,
        to_number=args.to_number,
        output_dir=Path(args.out),
        transcribe_bot=args.transcribe,
    )

    async def call() -> int:
        result = await run_simulated_call(options, tts=engines.tts, stt=engines.stt, on_event=live_printer(sys.stdout))
        await engines.aclose()
        print(f"recording {result.wav_path}\nreport    {result.report_path}")
        return 0 if result.error is None else 1

    return run_async(call())


def _cmd_demo(args: argparse.Namespace) -> int:
    from runtime.demo import run_demo

    logs.configure("WARNING")
    return run_async(run_demo(Path(args.out)))


def _cmd_bench(args: argparse.Namespace) -> int:
    from loadtests.bench import BenchOptions, format_result, run_bench

    logs.configure("WARNING")
    options = BenchOptions(
        calls=args.calls,
        seconds=args.seconds,
        ramp_s=args.ramp_s,
        output_dir=Path(args.out),
        port=args.port,
        vendors=args.vendors,
    )
    what = "vendors emulated" if args.vendors == "emulated" else "scripted STT/TTS"
    print(f"bench: {options.calls} calls for {options.seconds:.0f} s ({what}) ...", flush=True)
    result = run_async(run_bench(options))
    print(format_result(result))
    print(f"details: {options.output_dir / 'bench.json'}")
    return 0


def _cmd_emulate(args: argparse.Namespace) -> int:
    from emulators.cli import VENDORS, serve

    logs.configure("INFO")
    run_async(serve(list(VENDORS) if args.vendor == "all" else [args.vendor], args))
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from analytics.migrate import MigrationError, migrate
    from analytics.store import embedded_url
    from runtime.env_reader import EnvReader
    from runtime.storage_config import read_storage

    reader = EnvReader(os.environ)
    storage = read_storage(reader)  # the server's own reading of DATABASE_URL and LEADLINE_DATA_DIR
    if reader.problems and not args.database_url:
        print(f"leadline: {ConfigError(reader.problems)}", file=sys.stderr)
        return 2
    url = args.database_url or storage.database_url or embedded_url(storage.data_dir)
    logs.configure("WARNING")
    try:
        applied = run_async(migrate(url))
    except (MigrationError, ValueError) as e:
        print(f"leadline: {e}", file=sys.stderr)
        return 1
    print("\n".join(f"applied {name}" for name in applied) if applied else "schema up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("serve", help="run the voice agent server")
    p.add_argument("--host", default="")
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=_cmd_serve)

    p = commands.add_parser("call", help="place one simulated call (plays Twilio and the caller)")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the server's LEADLINE_PUBLIC_URL")
    p.add_argument("--auth-token", default="", help="the server's TWILIO_AUTH_TOKEN (default: from env)")
    p.add_argument("--from", dest="from_number", default="+15125550123")
    p.add_argument("--to", dest="to_number", default="+15125550100")
    p.add_argument("--out", default="call-output", help="where the WAV and JSON report go")
    p.add_argument("--no-transcribe", dest="transcribe", action="store_false", help="skip Whisper on bot audio")
    p.set_defaults(func=_cmd_call)

    p = commands.add_parser("demo", help="start the server and run a complete scripted call against it")
    p.add_argument("--out", default="demo-output")
    p.set_defaults(func=_cmd_demo)

    p = commands.add_parser("migrate", help="apply pending database migrations (Postgres or the embedded SQLite)")
    p.add_argument(
        "--database-url",
        default="",
        help="postgresql://... or sqlite:///path (default: DATABASE_URL, else SQLite under LEADLINE_DATA_DIR)",
    )
    p.set_defaults(func=_cmd_migrate)

    p = commands.add_parser("emulate", help="run local emulators of the vendors (Deepgram, Anthropic, ...)")
    from emulators.cli import add_arguments

    add_arguments(p)
    p.set_defaults(func=_cmd_emulate)

    p = commands.add_parser("bench", help="concurrent simulated calls against a real server on loopback")
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--ramp-s", type=float, default=5.0)
    p.add_argument("--port", type=int, default=18480)
    p.add_argument("--out", default="bench-output")
    p.add_argument(
        "--vendors",
        choices=("local", "emulated"),
        default="local",
        help="local: scripted engines in the server; emulated: Deepgram/Anthropic/ElevenLabs/Twilio emulators",
    )
    p.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
