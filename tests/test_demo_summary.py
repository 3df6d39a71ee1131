"""The demo without its speech engines: the script's lines book a showing with the bot core, and
the summary, the verdict and the live transcript's order are built from the call's report.

The whole demo (server process, Whisper, Piper) runs in ``tests/test_demo.py``.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bots.base import CallContext, HandedOff, Say
from bots.business_hours import BusinessHours
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBotFactory
from runtime.demo import InCallOrder, conversation, demo_problems, outcome, verdict
from runtime.events import (
    BotUtterance,
    CallerUtterance,
    FillerPlayed,
    HandOff,
    Interruption,
    TurnLatency,
    event_to_dict,
)
from runtime.events import (
    CallEvent as ServerEvent,
)
from telephony.simulator.events import BargeIn, BotSpoke, CallEnded, CallerSpoke, CallEvent, CallStarted, EndReason
from telephony.simulator.result import CallCounts, CallResult
from telephony.simulator.script import HOME_BUYER_SCRIPT, CallerLine

#: Monday 7 December 2026, 9:00 in Austin: the first slot offered is that morning's.
NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
CALLER = "+15125550123"  # the demo's caller: 512, Austin, Central time


def script_lines() -> list[str]:
    return [step.text for step in HOME_BUYER_SCRIPT.steps if isinstance(step, CallerLine)]


async def demo_conversation() -> tuple[dict[str, Any], list[tuple[str, str]], list[str]]:
    """The script's lines through the scripted bot core: its snapshot, the hand-offs, what it said."""
    factory = QualifyingBotFactory(persona=DEFAULT_PERSONA, calendar=LocalCalendar(BusinessHours()), now=lambda: NOW)
    context = CallContext(
        call_sid="CA1", from_number=CALLER, to_number="+15125550100", direction="inbound", tenant="t1", bot="lead"
    )
    bot = factory.create(context)
    handoffs, replies = [], []
    for line in script_lines():
        actions = [action async for action in bot.respond(line)]
        handoffs += [(a.from_bot, a.to_bot) for a in actions if isinstance(a, HandedOff)]
        replies.append("".join(a.text for a in actions if isinstance(a, Say)))
    return bot.snapshot(), handoffs, replies


async def test_the_script_is_handed_to_the_buyer_bot_and_books_the_first_slot() -> None:
    state, handoffs, replies = await demo_conversation()

    assert handoffs == [("lead", "buyer")]
    assert state["answers"]["lead"]["name"] == "Sarah Miller"
    buyer = state["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["rooms"]["bedrooms"] == 3 and buyer["price"]["target"] == 400_000
    assert buyer["financing"] == "needs lender" and buyer["must_haves"] == ["garage", "yard"]
    assert buyer["must_sell_first"] == "no" and buyer["motivation"]["kind"] == "relocation"
    assert state["score"]["temperature"] == "warm"
    # Every line moved the call on: no question was asked twice, the first slot offered was booked.
    assert state["progress"]["buyer"]["reasked"] == [] and state["progress"]["buyer"]["unknown"] == []
    assert state["appointment"]["start"] == state["booking"]["offered"][0] == "2026-12-07T11:15:00-06:00"
    assert state["appointment"]["kind"] == "showing" and "Goodbye" in replies[-1]


def flat(lines: list[str]) -> str:
    """Printed lines as one line of text, so assertions do not depend on where lines wrap."""
    return " ".join(" ".join(lines).split())


def report_of(state: dict[str, Any], end_reason: str = "booked") -> dict[str, Any]:
    """A call report as ``GET /api/calls/{sid}`` gives it: a greeting, the hand-off turn, a turn
    cut short by the caller and the booking turn."""
    handoff_reply = (
        "Okay. Nice to meet you, Sarah Miller. I'll bring in Maya, who works with our buyers. "
        "Hi, this is Maya. I work with our buyers at Lakeside Realty. How many bedrooms do you need?"
    )
    question = "Got it. How are you planning to pay: are you pre-approved, paying cash, or still looking for a lender?"
    events: list[ServerEvent] = [
        BotUtterance(at=0.0, turn=0, text="Hi, thanks for calling Lakeside Realty!", audio_ms=2000.0),
        CallerUtterance(at=9.0, turn=1, text="Hi, this is Sarah Miller.", speech_ms=2000.0),
        FillerPlayed(at=9.1, turn=1, text="Okay.", purpose="ack"),
        latency(turn=1, speech_end_at=8.0, answer_after_ms=1210.0, ack=True),
        HandOff(at=9.5, turn=1, from_bot="lead", to_bot="buyer", reason="wants to buy", latency_ms=2.0),
        BotUtterance(at=9.5, turn=1, text=handoff_reply, audio_ms=9000.0),
        CallerUtterance(at=20.0, turn=2, text="Three bedrooms.", speech_ms=900.0),
        latency(turn=2, speech_end_at=19.4, answer_after_ms=615.0, ack=False),
        BotUtterance(at=20.1, turn=2, text=question, audio_ms=5000.0),
        Interruption(
            at=23.0,
            turn=2,
            reply_text=question,
            heard_text="Got it. How are you planning to pay:",
            reply_audio_ms=5000.0,
            heard_ms=2000.0,
            reaction_ms=250.0,
        ),
        CallerUtterance(at=30.0, turn=3, text="Yes, please book it.", speech_ms=1200.0),
        BotUtterance(at=30.7, turn=3, text="You're all set. Goodbye!", audio_ms=3000.0),
    ]
    return {
        "end_reason": end_reason,
        "bot_state": state,
        "events": [event_to_dict(event) for event in events],
        "summary": {"turns": 3},
    }


def latency(*, turn: int, speech_end_at: float, answer_after_ms: float, ack: bool) -> TurnLatency:
    at = speech_end_at
    answer = at + answer_after_ms / 1000
    return TurnLatency(
        turn=turn,
        speech_end_at=at,
        turn_end_at=at + 0.5,
        stt_done_at=at + 0.6,
        first_text_at=at + 0.6,
        first_audio_at=answer,
        first_frame_at=answer,
        stt_engine_ms=100.0,
        bot_ms=1.0,
        tts_engine_ms=100.0,
        filler_queued_at=at + 0.65 if ack else None,
        filler_frame_at=at + 0.65 if ack else None,
    )


async def test_the_conversation_names_each_bot_and_shows_the_hand_off_and_latency() -> None:
    state, _, _ = await demo_conversation()
    printed = conversation(report_of(state), DEFAULT_PERSONA)
    lines = flat(printed)

    ava, handoff, maya = lines.index("Ava Okay. Nice"), lines.index("~~ hand-off:"), lines.index("Maya Hi, this")
    assert lines.index("1 caller Hi, this is Sarah Miller.") < ava < handoff < maya
    assert printed[0].startswith("     Ava     Hi, thanks") and printed[1].startswith("  1  caller  Hi, this")
    assert "Ava (lead bot) -> Maya (buyer bot), 'wants to buy', 2 ms; 'buyer' voice (Piper, pitch 1.12)" in lines
    assert "(650 ms: 'Okay.', the answer at 1210 ms)" in lines  # the acknowledgement, then the answer
    assert "How are you planning to pay: [cut off by the caller] (615 ms)" in lines
    assert "3 caller Yes, please book it. Maya You're all set. Goodbye!" in lines


async def test_the_outcome_gives_the_appointment_in_the_callers_zone_and_the_score() -> None:
    state, _, _ = await demo_conversation()
    state["booking"]["tz"] = "America/New_York"  # a caller an hour ahead of the office
    facts = flat(outcome(report_of(state), DEFAULT_PERSONA))

    assert "showing, Mon 07 Dec 2026, 12:15-12:45 EST (America/New_York, the caller's time zone)" in facts
    assert "'Showing: Sarah Miller'" in facts
    assert "lead score warm (3 points): moving within 3 months; still needs a lender;" in facts
    assert "transfers none" in facts and "next step showing" in facts


def call_result(*, error: str | None = None, end_reason: EndReason = "server_hung_up") -> CallResult:
    return CallResult(
        call_sid="CA1",
        stream_sid="MZ1",
        end_reason=end_reason,
        error=error,
        duration_s=80.0,
        greeting_ms=1.0,
        turns=(),
        barge_ins=(),
        bot_utterances=(),
        counts=CallCounts(),
        wav_path=Path("CA1.wav"),
        report_path=Path("CA1.json"),
    )


async def test_a_call_with_a_hand_off_and_a_booking_passes() -> None:
    state, _, _ = await demo_conversation()
    out = io.StringIO()
    assert verdict(call_result(), report_of(state), out) == 0
    assert "demo OK" in out.getvalue()


async def test_a_call_without_a_booking_fails_loudly_with_every_reason() -> None:
    state, _, _ = await demo_conversation()
    state["appointment"] = None
    report = report_of(state, end_reason="follow-up")
    report["events"] = [e for e in report["events"] if e["kind"] != "hand_off"]
    out = io.StringIO()

    assert verdict(call_result(end_reason="max_duration"), report, out) == 1
    assert demo_problems(call_result(end_reason="max_duration"), report) == [
        "no hand-off between bots",
        "no appointment booked (server end reason 'follow-up')",
        "the bot did not end the call (max_duration)",
    ]
    assert "DEMO FAILED: no hand-off between bots; no appointment booked" in out.getvalue()
    assert demo_problems(call_result(error="webhook refused: 403"), report_of(state))[0] == (
        "the call failed (webhook refused: 403)"
    )


def test_the_live_transcript_prints_what_the_caller_did_after_the_bot_line_before_it() -> None:
    shown: list[CallEvent] = []
    printer = InCallOrder(shown.append)
    greeting = BotSpoke(text="Hi", at_s=0.0, duration_ms=5000.0, latency_ms=None, interrupted=False)
    first = CallerSpoke(text="Hi, I'm Sarah.", at_s=6.0, duration_ms=3000.0, barge_in=False)
    second = CallerSpoke(text="Three bedrooms.", at_s=24.0, duration_ms=3000.0, barge_in=True)
    cut_in = BargeIn(at_s=24.0, clear_after_ms=280.0)
    # The reply to the first line is transcribed only after the caller started the second one.
    reply = BotSpoke(text="Nice to meet you.", at_s=10.0, duration_ms=14000.0, latency_ms=700.0, interrupted=True)
    ended = CallEnded(reason="server_hung_up", at_s=30.0)
    for event in (CallStarted(call_sid="CA1", stream_sid="MZ1"), greeting, first, second, cut_in, reply, ended):
        printer(event)

    assert shown[1:] == [greeting, first, reply, second, cut_in, ended]
