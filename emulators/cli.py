"""``leadline emulate deepgram|anthropic|elevenlabs|twilio|ghl|all --port N``: the vendor emulators as
servers on loopback, for the demo, manual testing and the benchmark (one process per vendor).

Each emulator accepts the key given by ``--api-key`` (Twilio: ``--account-sid``/``--auth-token``;
GoHighLevel: as its Bearer token, for the location, calendar and pipeline ids of ``emulators.ghl``)
and serves ``/_emulator/state``, ``/_emulator/faults`` and ``/_emulator/latency`` for control.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from emulators.control import CONTROL, FaultInjector

log = logging.getLogger(__name__)

VENDORS = ("deepgram", "anthropic", "elevenlabs", "twilio", "ghl")


def build(vendor: str, args: argparse.Namespace) -> web.Application:
    """The emulator app for ``vendor`` with the command line's options."""
    builders: dict[str, Callable[[argparse.Namespace], web.Application]] = {
        "deepgram": _deepgram,
        "anthropic": _anthropic,
        "elevenlabs": _elevenlabs,
        "twilio": _twilio,
        "ghl": _ghl,
    }
    app = builders[vendor](args)
    app[CONTROL].faults = FaultInjector(seed=args.seed)  # latency defaults: each vendor's published medians
    return app


def _deepgram(args: argparse.Namespace) -> web.Application:
    from emulators import deepgram

    recogniser: deepgram.Recogniser
    if args.engines == "offline":
        from runtime.stt import WhisperStt

        recogniser = deepgram.WhisperRecogniser(WhisperStt())
    else:
        from runtime.engines import DEFAULT_SCRIPTED_TRANSCRIPTS

        recogniser = deepgram.ScriptedRecogniser(DEFAULT_SCRIPTED_TRANSCRIPTS)
    return deepgram.build_app(api_key=args.api_key, recogniser=recogniser)


def _anthropic(args: argparse.Namespace) -> web.Application:
    from emulators import anthropic

    return anthropic.build_app(api_key=args.api_key)


def _elevenlabs(args: argparse.Namespace) -> web.Application:
    from emulators import elevenlabs
    from runtime.speech import TextToSpeech

    synthesiser: TextToSpeech
    if args.engines == "offline":
        from runtime.tts import PiperTts

        synthesiser = PiperTts()
    else:
        from runtime.tts import ScriptedTts

        synthesiser = ScriptedTts()
    return elevenlabs.build_app(api_key=args.api_key, synthesiser=synthesiser)


def _twilio(args: argparse.Namespace) -> web.Application:
    from emulators import twilio

    return twilio.build_app(account_sid=args.account_sid, auth_token=args.auth_token)


def _ghl(args: argparse.Namespace) -> web.Application:
    from emulators import ghl

    return ghl.build_app(token=args.api_key)


async def serve(vendors: list[str], args: argparse.Namespace) -> None:
    """Run the emulators (consecutive ports from ``--port``) until SIGINT/SIGTERM."""
    runners = []
    for offset, vendor in enumerate(vendors):
        runner = web.AppRunner(build(vendor, args), handle_signals=False, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port + offset).start()
        runners.append(runner)
        print(f"{vendor} emulator on http://{args.host}:{args.port + offset}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vendor", choices=[*VENDORS, "all"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="first port; 'all' uses one per vendor, in a row")
    parser.add_argument("--api-key", default="emulator-key", help="the key the emulator accepts")
    parser.add_argument("--account-sid", default="AC" + "0" * 32, help="Twilio emulator account")
    parser.add_argument("--auth-token", default="emulator-token", help="Twilio emulator auth token")
    parser.add_argument(
        "--engines",
        choices=("offline", "scripted"),
        default="offline",
        help="recognise/synthesise with Whisper and Piper, or scripted (load tests)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of latency and fault draws")
