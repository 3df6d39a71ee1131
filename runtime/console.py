"""Printing a simulated call as it happens: a live transcript with per-turn latency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from telephony.simulator.events import (
    BargeIn,
    BotSpoke,
    CallEnded,
    CallerSpoke,
    CallEvent,
    CallStarted,
    DigitsSent,
)


def live_printer(out: TextIO) -> Callable[[CallEvent], None]:
    """An ``on_event`` callback that prints each event as one line."""

    def show(event: CallEvent) -> None:
        line = format_event(event)
        if line:
            print(line, file=out, flush=True)

    return show


def format_event(event: CallEvent) -> str:
    if isinstance(event, CallStarted):
        return f"call {event.call_sid} connected (stream {event.stream_sid})"
    if isinstance(event, CallerSpoke):
        tag = " (talking over the bot)" if event.barge_in else ""
        return f"[{event.at_s:6.1f}s] caller: {event.text}{tag}"
    if isinstance(event, DigitsSent):
        return f"[{event.at_s:6.1f}s] caller pressed {event.digits}"
    if isinstance(event, BotSpoke):
        text = event.text if event.text is not None else f"<{event.duration_ms / 1000:.1f} s of speech>"
        notes = []
        if event.latency_ms is not None:
            notes.append(f"{event.latency_ms:.0f} ms after the caller stopped")
        if event.interrupted:
            notes.append("cut off")
        suffix = f"   ({', '.join(notes)})" if notes else ""
        return f"[{event.at_s:6.1f}s] bot:    {text}{suffix}"
    if isinstance(event, BargeIn):
        reaction = "no clear!" if event.clear_after_ms is None else f"bot silenced {event.clear_after_ms:.0f} ms later"
        return f"[{event.at_s:6.1f}s] -- barge-in: {reaction}"
    if isinstance(event, CallEnded):
        error = f": {event.error}" if event.error else ""
        return f"[{event.at_s:6.1f}s] call ended ({event.reason}{error})"
    return ""


def latency_table(report: dict[str, Any]) -> str:
    """The server's per-turn latency breakdown, one row per caller turn."""
    header = f"{'turn':>4} {'endpoint':>9} {'stt':>6} {'bot':>6} {'tts':>6} {'send':>6} {'total':>7} {'overhead':>9}"
    rows = [header, "-" * len(header)]
    for event in report["events"]:
        if event["kind"] != "turn_latency":
            continue
        rows.append(
            f"{event['turn']:>4} {event['endpointing_ms']:>9.0f} {event['stt_ms']:>6.0f} {event['bot_ms']:>6.0f}"
            f" {event['tts_ms']:>6.0f} {event['send_ms']:>6.0f} {event['total_ms']:>7.0f}"
            f" {event['runtime_overhead_ms']:>9.1f}"
        )
    rows.append("(ms; endpoint = end of speech -> end of turn decided; total = end of speech -> first frame sent)")
    return "\n".join(rows)
