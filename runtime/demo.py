"""``leadline demo``: start the server, place one scripted call against it, show what happened.

The server runs in its own process on the embedded offline engines and the scripted bot core,
exactly as ``leadline serve`` would; this process plays Twilio and the caller
(``telephony.simulator``), transcribing the bot's audio with the local Whisper so the live
transcript is what a caller would have heard. The summary after the call is read from the
server's own report (``GET /api/calls/{sid}``): the conversation turn by turn, the hand-off
between bots, the booked appointment and the lead score. The demo fails (exit status 1) unless
the call ended with a hand-off and a booking, so a broken demo is noticed.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import shutil
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import aiohttp

from bots.persona import DEFAULT_PERSONA, BotRole, Persona
from runtime.console import latency_table, live_printer
from runtime.engines import DEFAULT_VOICES, EngineOptions, load_engines
from runtime.server_process import local_server
from telephony.simulator.caller import SimulatedCallOptions, run_simulated_call
from telephony.simulator.events import BargeIn, BotSpoke, CallEnded, CallerSpoke, CallEvent, DigitsSent
from telephony.simulator.result import CallResult
from telephony.simulator.script import HOME_BUYER_SCRIPT

DEMO_PORT = 18080

#: The demo's script is written for the default persona and the scripted bot core on the
#: offline engines; settings in the user's shell must not turn it into a different call.
DEMO_SERVER_ENV = {
    "LEADLINE_BOTS": "qualifier",
    "LEADLINE_LLM": "scripted",
    "LEADLINE_STT": "whisper",
    "LEADLINE_TTS": "piper",
    "LEADLINE_PERSONA_FILE": "",
    "LEADLINE_BUSINESS_NAME": "",
    "LEADLINE_BOT_NAME": "",
    "LEADLINE_AGENT_NUMBER": "",
    "GHL_API_TOKEN": "",
    "DATABASE_URL": "",
    "REDIS_URL": "",
}

#: The script plays about 80 s of conversation; room for a slow, shared machine.
MAX_CALL_S = 150.0

#: Width of the printed conversation (a terminal's, less a margin).
WIDTH = 100


async def run_demo(output_dir: Path, out: TextIO = sys.stdout, port: int = DEMO_PORT) -> int:
    """Run the demo call and print it; 0 if it ended with a hand-off and a booking, else 1."""
    output_dir.mkdir(parents=True, exist_ok=True)
    data_dir = fresh_data_dir(output_dir)
    print(f"starting the server on port {port} (offline engines: Silero VAD, Whisper tiny.en, Piper) ...", file=out)
    loop = asyncio.get_running_loop()
    engines_loading = loop.run_in_executor(None, load_engines, EngineOptions(stt="whisper", tts="piper"))
    log_path = output_dir / "server.log"
    env = DEMO_SERVER_ENV | {"LEADLINE_DATA_DIR": str(data_dir)}
    async with local_server(port, log_path, **env) as server, aiohttp.ClientSession() as http:
        engines = await engines_loading
        print("server ready; placing the call (the bot's lines as the caller heard them, through Whisper)\n", file=out)
        options = SimulatedCallOptions(
            public_url=server.url,
            auth_token=server.auth_token,
            account_sid="AC" + secrets.token_hex(16),
            from_number="+15125550123",
            to_number="+15125550100",
            script=HOME_BUYER_SCRIPT,
            output_dir=output_dir,
            max_duration_s=MAX_CALL_S,
            transcribe_bot=True,
        )
        printer = InCallOrder(live_printer(out))
        result = await run_simulated_call(options, tts=engines.tts, stt=engines.stt, session=http, on_event=printer)
        await engines.aclose()
        await asyncio.sleep(0.5)  # let the server finish the call's report
        report: dict[str, Any] = await server.api_get(http, f"/api/calls/{result.call_sid}")
    (output_dir / f"{result.call_sid}.server.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + summary(result, report, DEFAULT_PERSONA), file=out)
    return verdict(result, report, out)


def fresh_data_dir(output_dir: Path) -> Path:
    """An empty directory for the server's store and recordings. The caller must be new to the
    server: a caller it knows is welcomed back to their earlier conversation instead."""
    data_dir = output_dir / "server-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir()
    return data_dir


class InCallOrder:
    """Prints the simulator's events in the order they happened in the call.

    A bot utterance is reported once it has played and been transcribed, by which time the
    caller may have started the next line; so what the caller does is held back until the bot
    audio before it has been printed (or the call ends).
    """

    def __init__(self, show: Callable[[CallEvent], None]) -> None:
        self._show = show
        self._held: list[CallerSpoke | DigitsSent | BargeIn] = []

    def __call__(self, event: CallEvent) -> None:
        if isinstance(event, CallerSpoke | DigitsSent | BargeIn):
            self._held.append(event)
            return
        if isinstance(event, BotSpoke):
            self._release(until_s=event.at_s)
        if isinstance(event, CallEnded):
            self._release(until_s=math.inf)
        self._show(event)

    def _release(self, until_s: float) -> None:
        for event in [e for e in self._held if e.at_s <= until_s]:
            self._show(event)
        self._held = [e for e in self._held if e.at_s > until_s]


def verdict(result: CallResult, report: dict[str, Any], out: TextIO) -> int:
    """0 if the call is the one the demo shows; else 1, with every reason printed."""
    problems = demo_problems(result, report)
    if problems:
        print("\nDEMO FAILED: " + "; ".join(problems), file=out)
        return 1
    print("\ndemo OK: the caller was handed to the buyer bot and booked a showing", file=out)
    return 0


def demo_problems(result: CallResult, report: dict[str, Any]) -> list[str]:
    """What makes this call not the demo: an error, no hand-off, no booking, no hang-up."""
    state = report["bot_state"]
    problems = []
    if result.error is not None:
        problems.append(f"the call failed ({result.error})")
    if not any(event["kind"] == "hand_off" for event in report["events"]):
        problems.append("no hand-off between bots")
    if not state.get("appointment"):
        problems.append(f"no appointment booked (server end reason {report['end_reason']!r})")
    if result.end_reason != "server_hung_up":
        problems.append(f"the bot did not end the call ({result.end_reason})")
    return problems


def summary(result: CallResult, report: dict[str, Any], persona: Persona) -> str:
    """What the demo prints after the call: the server's view of it, then the call's numbers."""
    sections = [
        "the call as the server heard and answered it (latency: end of the caller's speech -> first bot audio)",
        *conversation(report, persona),
        "",
        "what came of it",
        *outcome(report, persona),
        "",
        "server-side latency per turn",
        latency_table(report),
        "",
        *call_numbers(result, report),
    ]
    return "\n".join(sections)


def conversation(report: dict[str, Any], persona: Persona) -> list[str]:
    """One block per turn: what the caller said, which bot answered what, and how fast."""
    lines: list[str] = []
    bot: BotRole = "lead"
    callers = 0
    for turn in _by_turn(report["events"]):
        if turn.get("caller_utterance"):
            callers += 1
            lines += _said(str(callers), "caller", turn["caller_utterance"][0]["text"])
        bot, said = _bot_turn(turn, bot, persona)
        lines += said
    return lines


def _by_turn(events: list[dict[str, Any]]) -> list[dict[str, list[dict[str, Any]]]]:
    """The report's per-turn events (turn 0: the greeting), grouped by kind, in turn order."""
    turns: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for event in events:
        if "turn" in event:
            turns.setdefault(event["turn"], {}).setdefault(event["kind"], []).append(event)
    return [turns[number] for number in sorted(turns)]


def _bot_turn(turn: dict[str, list[dict[str, Any]]], bot: BotRole, persona: Persona) -> tuple[BotRole, list[str]]:
    """The bot's side of one turn, split at a hand-off; returns the bot speaking afterwards."""
    text = " ".join(u["text"] for u in turn.get("bot_utterance", []))
    for interruption in turn.get("interruption", []):
        text = interruption["heard_text"] + " [cut off by the caller]"
    note = _latency_note(turn)
    lines: list[str] = []
    for handoff in turn.get("hand_off", []):
        before, text = _split_at(text, persona.greeting(handoff["to_bot"]))
        if before:
            lines += _said("", persona.bot(bot).name, before, note)
            note = ""
        lines += textwrap.wrap(
            f"~~ hand-off: {_handoff(handoff, persona)}", WIDTH, initial_indent=" " * 5, subsequent_indent=" " * 18
        )
        bot = handoff["to_bot"]
    if text:
        lines += _said("", persona.bot(bot).name, text, note)
    return bot, lines


def _split_at(text: str, greeting: str) -> tuple[str, str]:
    """The bridge the old bot says, and the new bot's words from its greeting on."""
    at = text.find(greeting)
    return (text[:at].strip(), text[at:]) if at > 0 else ("", text)


def _latency_note(turn: dict[str, list[dict[str, Any]]]) -> str:
    """The caller-heard latency of a turn; when an acknowledgement covered it, when the answer came."""
    latencies = turn.get("turn_latency")
    if not latencies:
        return ""
    latency = latencies[0]
    acks = [f["text"] for f in turn.get("filler", [])]
    if not acks:
        return f"({latency['first_audio_ms']:.0f} ms)"
    return f"({latency['first_audio_ms']:.0f} ms: {' '.join(acks)!r}, the answer at {latency['total_ms']:.0f} ms)"


def _said(number: str, who: str, text: str, note: str = "") -> list[str]:
    head = f"{number:>3}  {who:<7} "
    return textwrap.wrap(f"{text} {note}".strip(), WIDTH, initial_indent=head, subsequent_indent=" " * len(head))


def _handoff(handoff: dict[str, Any], persona: Persona) -> str:
    source, target = persona.bot(handoff["from_bot"]), persona.bot(handoff["to_bot"])
    return (
        f"{source.name} ({source.role} bot) -> {target.name} ({target.role} bot),"
        f" {handoff['reason']!r}, {handoff['latency_ms']:.0f} ms; {_voice(target.voice)}"
    )


def _voice(name: str) -> str:
    pitch = dict(DEFAULT_VOICES).get(name)
    return f"'{name}' voice (Piper, pitch {pitch.pitch:g})" if pitch else f"'{name}' voice (the default Piper voice)"


def outcome(report: dict[str, Any], persona: Persona) -> list[str]:
    """The hand-offs, transfers, appointment, score and answers the call ended with."""
    state = report["bot_state"]
    handoffs = [event for event in report["events"] if event["kind"] == "hand_off"]
    transfers = [event for event in report["events"] if event["kind"] == "transfer"]
    rows = [
        *(_fact("hand-off", _handoff(h, persona)) for h in handoffs),
        *([] if handoffs else [_fact("hand-off", "none")]),
        _fact("transfers", ", ".join(f"{t['phase']} {t['outcome'] or t['reason']}" for t in transfers) or "none"),
        _fact("appointment", _appointment(state)),
        _fact("lead score", _score(state.get("score"))),
        _fact("next step", str(state.get("next_step"))),
        _fact("call ended", f"{report['end_reason']}, by {persona.bot(state.get('bot', 'lead')).name}"),
    ]
    return rows + [
        _fact(f"{role} answers", json.dumps(answers)) for role, answers in state["answers"].items() if answers
    ]


def _fact(label: str, value: object) -> str:
    head = f"  {label:<15}"
    return textwrap.fill(
        "none" if value is None else str(value), WIDTH, initial_indent=head, subsequent_indent=" " * 17
    )


def _appointment(state: dict[str, Any]) -> str:
    appointment = state.get("appointment")
    if not appointment:
        return "none booked"
    zone = ZoneInfo((state.get("booking") or {}).get("tz") or DEFAULT_PERSONA.timezone)
    start = datetime.fromisoformat(appointment["start"]).astimezone(zone)
    end = datetime.fromisoformat(appointment["end"]).astimezone(zone)
    when = f"{start:%a %d %b %Y, %H:%M}-{end:%H:%M} {start:%Z} ({zone.key}, the caller's time zone)"
    return f"{appointment['kind']}, {when}: {appointment['title']!r}, said as {appointment['spoken']!r}"


def _score(score: dict[str, Any] | None) -> str:
    if not score:
        return "none"
    return f"{score['temperature']} ({score['points']} points): {'; '.join(score['reasons'])}"


def call_numbers(result: CallResult, report: dict[str, Any]) -> list[str]:
    """The call as the simulated caller measured it, and where its files are."""
    summary = report["summary"]
    heard = [t.latency_ms for t in result.turns if t.latency_ms is not None and not t.barge_in]
    greeting = f"{result.greeting_ms:.0f} ms" if result.greeting_ms is not None else "never"
    return [
        f"greeting played after        {greeting}",
        "caller-heard turn latency    " + (", ".join(f"{v:.0f}" for v in heard) + " ms" if heard else "n/a"),
        f"interruptions                {summary['interruptions']}",
        f"frames sent / late           {summary['frames_sent']} / {summary['late_frames']}"
        f"   (pacing jitter p99 {summary['pacing_jitter_ms_p99']} ms)",
        f"call ended                   {result.end_reason} (server: {report['end_reason']})",
        "",
        f"recording   {result.wav_path}",
        f"call report {result.report_path}",
        f"server view {result.report_path.with_suffix('.server.json') if result.report_path else ''}",
    ]
