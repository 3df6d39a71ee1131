"""Conversation analytics on a hand-computed call: interruptions, silences, dead air, latency."""

from __future__ import annotations

import json

import pytest

from analytics.call_analytics import analyse_call
from analytics.conversation import (
    CallerSilence,
    ConversationOptions,
    DeadAir,
    analyse_conversation,
    caller_silences,
)
from bots.base import CallContext
from runtime.events import (
    BotUtterance,
    CallEnded,
    CallerUtterance,
    CallEvent,
    FillerPlayed,
    GreetingLatency,
    Interruption,
    ReplyResumed,
    Silence,
    TurnLatency,
    VendorDegraded,
)
from runtime.report import CallReport
from telephony.call_state import CallLifecycle

ANSWER_1 = "Buying a house in Austin, great. What budget do you have in mind?"
GOODBYE = "Thank you! One of our agents will call you back shortly with homes that match. Goodbye!"


def latency(
    turn: int, speech_end_at: float, first_frame_at: float, filler_frame_at: float | None = None
) -> TurnLatency:
    return TurnLatency(
        turn=turn,
        speech_end_at=speech_end_at,
        turn_end_at=speech_end_at + 0.5,
        stt_done_at=speech_end_at + 0.6,
        first_text_at=speech_end_at + 0.8,
        first_audio_at=first_frame_at - 0.05,
        first_frame_at=first_frame_at,
        stt_engine_ms=100.0,
        bot_ms=200.0,
        tts_engine_ms=100.0,
        filler_queued_at=None if filler_frame_at is None else filler_frame_at - 0.01,
        filler_frame_at=filler_frame_at,
    )


def qualification_call() -> list[CallEvent]:
    """A 42 s call, in the order the session emits its events.

    Greeting heard after 620 ms. Turn 1 answered after 1100 ms; the caller cuts into that answer
    half-way (2000 of 4000 ms heard). Turn 2 late, covered by an acknowledgement after 700 ms.
    Then 8.1 s of caller silence and the prompt (turn 3). Turn 4 waits 2500 ms (dead air, the LLM
    fell back); a cough cuts into the goodbye, which resumes (turn 5).
    """
    return [
        GreetingLatency(at=0.62, latency_ms=620.0),
        BotUtterance(at=1.0, turn=0, text="Hi, thanks for calling Lakeside Realty!", audio_ms=5200.0),
        CallerUtterance(at=9.0, turn=1, text="I want to buy a three bedroom house in Austin.", speech_ms=2400.0),
        latency(1, speech_end_at=8.4, first_frame_at=9.5),
        BotUtterance(at=9.8, turn=1, text=ANSWER_1, audio_ms=4000.0),
        Interruption(
            at=11.5,
            turn=1,
            reply_text=ANSWER_1,
            heard_text="Buying a house in Austin, great.",
            reply_audio_ms=4000.0,
            heard_ms=2000.0,
            reaction_ms=240.0,
        ),
        CallerUtterance(at=13.6, turn=2, text="About four hundred fifty thousand.", speech_ms=1500.0),
        FillerPlayed(at=13.65, turn=2, text="Okay.", purpose="ack"),
        latency(2, speech_end_at=13.0, first_frame_at=15.6, filler_frame_at=13.7),
        BotUtterance(at=16.0, turn=2, text="Around 450 thousand, got it. And when?", audio_ms=3500.0),
        Silence(at=27.6, action="prompt", silent_s=8.1),
        BotUtterance(at=27.7, turn=3, text="Are you still there?", audio_ms=1500.0),
        CallerUtterance(at=32.7, turn=4, text="Sorry, yes. In about three months.", speech_ms=2000.0),
        VendorDegraded(at=33.0, turn=4, stage="llm", reason="first token timeout"),
        latency(4, speech_end_at=32.0, first_frame_at=34.5),
        BotUtterance(at=35.0, turn=4, text=GOODBYE, audio_ms=5000.0),
        Interruption(
            at=36.0,
            turn=4,
            reply_text=GOODBYE,
            heard_text="Thank you!",
            reply_audio_ms=5000.0,
            heard_ms=1000.0,
            reaction_ms=235.0,
        ),
        ReplyResumed(at=36.8, turn=5, text="One of our agents will call you back shortly. Goodbye!"),
        BotUtterance(at=36.9, turn=5, text="One of our agents will call you back shortly. Goodbye!", audio_ms=4000.0),
        CallEnded(at=42.0, reason="qualification complete"),
    ]


def test_the_qualification_call() -> None:
    stats = analyse_conversation(qualification_call())
    assert stats.duration_s == 42.0
    assert (stats.caller_turns, stats.bot_turns) == (3, 6)  # bot turns 0..5
    assert stats.first_audio_ms == (1100.0, 700.0, 2500.0)
    assert stats.latency_p95_ms == 2500.0  # nearest rank of three: the slowest
    assert stats.covered_turns == 1
    assert stats.vendor_fallbacks == {"llm": 1}


def test_interruptions_who_how_much_and_rate() -> None:
    stats = analyse_conversation(qualification_call())
    real, cough = stats.interruptions
    assert (real.interrupter, real.interrupted, real.turn, real.at) == ("caller", "bot", 1, 11.5)
    assert real.heard_fraction == 0.5
    assert real.heard_text == "Buying a house in Austin, great."
    assert not real.resumed
    assert (cough.turn, cough.heard_fraction, cough.resumed) == (4, 0.2, True)
    # one interruption with words over six bot turns; the cough is not counted
    assert stats.interruption_rate == round(1 / 6, 4)


def test_caller_silence_and_dead_air() -> None:
    stats = analyse_conversation(qualification_call())
    assert stats.caller_silences == (CallerSilence(started_at=19.5, ended_at=27.6, silent_s=8.1, hung_up=False),)
    assert stats.silence_rate == round(1 / 6, 4)
    assert stats.dead_air == (DeadAir(turn=4, started_at=32.0, ended_at=34.5, wait_ms=2500.0),)


def test_a_prompt_and_its_hang_up_are_one_silence() -> None:
    events: list[CallEvent] = [
        Silence(at=20.0, action="prompt", silent_s=8.0),
        BotUtterance(at=20.1, turn=3, text="Are you still there?", audio_ms=1500.0),
        Silence(at=30.0, action="hangup", silent_s=7.0),
    ]
    assert caller_silences(events) == (CallerSilence(started_at=12.0, ended_at=30.0, silent_s=18.0, hung_up=True),)


def test_caller_words_end_a_prompted_silence() -> None:
    events: list[CallEvent] = [
        Silence(at=20.0, action="prompt", silent_s=8.0),
        CallerUtterance(at=23.0, turn=4, text="Yes, sorry", speech_ms=800.0),
        Silence(at=40.0, action="prompt", silent_s=9.0),
    ]
    assert [s.hung_up for s in caller_silences(events)] == [False, False]
    assert [s.started_at for s in caller_silences(events)] == [12.0, 31.0]


def test_thresholds_are_options() -> None:
    events: list[CallEvent] = [Silence(at=10.0, action="prompt", silent_s=5.0), latency(1, 2.0, 3.5)]
    assert analyse_conversation(events).caller_silences == ()
    assert analyse_conversation(events).dead_air == ()
    lenient = analyse_conversation(events, ConversationOptions(caller_silence_s=5.0, dead_air_ms=1000.0))
    assert len(lenient.caller_silences) == 1
    assert [d.turn for d in lenient.dead_air] == [1]


def test_a_slow_greeting_is_dead_air() -> None:
    stats = analyse_conversation([GreetingLatency(at=2.4, latency_ms=2400.0)])
    assert stats.dead_air == (DeadAir(turn=0, started_at=0.0, ended_at=2.4, wait_ms=2400.0),)


def test_a_reply_cut_before_any_audio_was_synthesised() -> None:
    interruption = Interruption(
        at=3.0, turn=1, reply_text="", heard_text="", reply_audio_ms=0.0, heard_ms=0.0, reaction_ms=230.0
    )
    stats = analyse_conversation([interruption])
    assert stats.interruptions[0].heard_fraction == 0.0
    assert stats.bot_turns == 1  # no BotUtterance is emitted for a reply cancelled mid-synthesis


def test_an_empty_call() -> None:
    stats = analyse_conversation([])
    assert (stats.duration_s, stats.bot_turns, stats.interruption_rate, stats.latency_p95_ms) == (0.0, 0, 0.0, None)


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="positive"):
        ConversationOptions(dead_air_ms=0)


# --- the whole call, through analyse_call --------------------------------------------------------

LEAD_DONE = {
    "bot": "lead",
    "stage": "done",
    "answers": {"intent": "buy", "property": "house", "place": "Austin", "budget": 450000, "timeline": "soon"},
}


def report_of(events: list[CallEvent]) -> CallReport:
    context = CallContext(
        call_sid="CA1",
        from_number="+15128675309",
        to_number="+15125550100",
        direction="inbound",
        tenant="t",
        bot="lead",
    )
    report = CallReport(context, CallLifecycle(), bot_state=LEAD_DONE, end_reason="qualification complete")
    for event in events:
        report.add(event)
    return report


def test_analyse_call_combines_everything() -> None:
    analytics = analyse_call(report_of(qualification_call()))
    assert analytics.conversation == analyse_conversation(qualification_call())
    assert [t.language for t in analytics.language.turns] == ["en", "en", "en"]
    assert analytics.sentiment.direction == "improving"
    assert analytics.summary.outcome.result == "qualified"
    assert analytics.score.score == 47.3  # tests/test_voice_score.py: the qualification call, qualified


def test_events_utterances_and_snapshot_given_apart() -> None:
    events = qualification_call()
    spanish = [
        CallerUtterance(at=9.0, turn=1, text="Quiero comprar una casa de tres habitaciones en Austin.", speech_ms=1.0),
        CallerUtterance(at=13.6, turn=2, text="Unos cuatrocientos cincuenta mil dólares.", speech_ms=1.0),
    ]
    analytics = analyse_call(iter(events), spanish, {"answers": {"intent": "buy"}})
    assert analytics.language.primary == "es"
    assert analytics.sentiment.unscored_turns == (1, 2)
    assert analytics.summary.outcome.result == "partial"
    assert analytics.conversation.caller_turns == 3  # still from the events


def test_to_json_round_trips_and_holds_no_pii() -> None:
    events = [
        *qualification_call()[:-1],
        CallerUtterance(at=38.0, turn=6, text="my email is ann@example.org", speech_ms=1500.0),
        Interruption(
            at=39.0,
            turn=6,
            reply_text="I have ann@example.org, and your number 512-867-5309?",
            heard_text="I have ann@example.org",
            reply_audio_ms=3000.0,
            heard_ms=1000.0,
            reaction_ms=230.0,
        ),
    ]
    analytics = analyse_call(report_of(events))
    text = analytics.to_json()
    assert json.loads(text) == analytics.to_dict()
    assert json.loads(text)["score"]["score"] == analytics.score.score
    assert "ann@example.org" not in text and "867-5309" not in text
    assert json.loads(text)["conversation"]["interruptions"][-1]["heard_text"] == "I have [EMAIL]"
