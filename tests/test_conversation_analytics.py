"""Conversation analytics on hand-computed calls: interruptions, silences, dead air, latency."""

from __future__ import annotations

import json

import pytest

from analytics.call_analytics import analyse_call
from analytics.conversation import (
    BotInterruption,
    CallerSilence,
    ConversationOptions,
    DeadAir,
    InterruptionStat,
    analyse_conversation,
    caller_silences,
)
from bots.base import CallContext
from runtime.events import (
    BotTalkedOver,
    BotUtterance,
    CallEnded,
    CallerUtterance,
    CallEvent,
    FillerPlayed,
    GreetingLatency,
    Interruption,
    ReplyHeard,
    ReplyResumed,
    Silence,
    TransferEvent,
    TurnLatency,
    TurnUnanswered,
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


# --- old events (before the speech bounds were recorded) give what they always gave -------------


def test_old_style_events_give_the_same_figures_as_before() -> None:
    stats = analyse_conversation(qualification_call())
    # every figure as the analytics computed it before ReplyHeard, BotTalkedOver, TurnUnanswered
    # and the caller's speech bounds existed
    assert (stats.duration_s, stats.caller_turns, stats.bot_turns) == (42.0, 3, 6)
    assert stats.interruptions == (
        InterruptionStat(
            at=11.5,
            turn=1,
            interrupter="caller",
            interrupted="bot",
            reply_text=ANSWER_1,
            heard_text="Buying a house in Austin, great.",
            heard_fraction=0.5,
            reaction_ms=240.0,
        ),
        InterruptionStat(
            at=36.0,
            turn=4,
            interrupter="caller",
            interrupted="bot",
            reply_text=GOODBYE,
            heard_text="Thank you!",
            heard_fraction=0.2,
            reaction_ms=235.0,
            resumed=True,
        ),
    )
    assert (stats.interruption_rate, stats.silence_rate) == (0.1667, 0.1667)
    assert stats.caller_silences == (CallerSilence(started_at=19.5, ended_at=27.6, silent_s=8.1, hung_up=False),)
    assert stats.dead_air == (DeadAir(turn=4, started_at=32.0, ended_at=34.5, wait_ms=2500.0),)
    assert (stats.first_audio_ms, stats.latency_p95_ms, stats.covered_turns) == ((1100.0, 700.0, 2500.0), 2500.0, 1)
    assert (stats.bot_interruptions, stats.bot_interruption_rate) == ((), 0.0)


def test_speech_bounds_without_heard_replies_still_use_the_watchdog() -> None:
    events: list[CallEvent] = [
        CallerUtterance(at=3.0, turn=1, text="Hello?", speech_ms=600.0, onset_at=2.0, speech_end_at=2.6),
        Silence(at=20.0, action="prompt", silent_s=8.0),
    ]
    assert caller_silences(events) == (CallerSilence(started_at=12.0, ended_at=20.0, silent_s=8.0, hung_up=False),)


# --- events with the speech bounds: both-way interruptions, heard silences, unanswered turns -----

ANSWER_4 = "Got it, a condo. Which part of town?"


def spoken_call() -> list[CallEvent]:
    """A 41 s call with every fact the session now records, in the order it emits them.

    Greeting 0.62-5.82 s; the caller starts 0.18 s after it. Answer 1 heard to its end at 13.5 s;
    the caller says nothing, the prompt (turn 2) goes out at 21.6 s and is heard at 23.3 s, and the
    caller speaks at 25.0 s: 11.5 s of silence. Turn 3 (speech end 26.2 s) gets no reply; the caller
    tries again (turn 4), and the answer's first audio at 32.4 s lands over them (they started
    again at 32.1 s), so they cut it short. Turn 5 is answered and the goodbye heard at 39.4 s.
    """
    return [
        GreetingLatency(at=0.62, latency_ms=620.0),
        BotUtterance(at=1.0, turn=0, text="Hi, thanks for calling Lakeside Realty!", audio_ms=5200.0),
        ReplyHeard(at=5.82, turn=0),
        said(1, "I want to buy a condo in Austin.", onset_at=6.0, speech_end_at=8.4, at=9.0),
        latency(1, speech_end_at=8.4, first_frame_at=9.5),
        BotUtterance(at=9.8, turn=1, text=ANSWER_1, audio_ms=4000.0),
        ReplyHeard(at=13.5, turn=1),
        Silence(at=21.6, action="prompt", silent_s=8.1),
        BotUtterance(at=21.7, turn=2, text="Are you still there?", audio_ms=1500.0),
        ReplyHeard(at=23.3, turn=2),
        said(3, "Yes, about four hundred thousand.", onset_at=25.0, speech_end_at=26.2, at=26.6),
        TurnUnanswered(at=27.9, turn=3, reason="the bot failed"),
        said(4, "Hello? I said four hundred thousand.", onset_at=30.0, speech_end_at=31.2, at=31.6),
        latency(4, speech_end_at=31.2, first_frame_at=32.4),
        BotTalkedOver(at=32.4, turn=4),
        Interruption(
            at=32.7,
            turn=4,
            reply_text=ANSWER_4,
            heard_text="Got",
            reply_audio_ms=3000.0,
            heard_ms=300.0,
            reaction_ms=600.0,
        ),
        BotUtterance(at=32.8, turn=4, text=ANSWER_4, audio_ms=3000.0),
        said(5, "Downtown, near the lake.", onset_at=32.1, speech_end_at=33.6, at=34.0),
        latency(5, speech_end_at=33.6, first_frame_at=34.4),
        BotUtterance(at=34.6, turn=5, text=GOODBYE, audio_ms=5000.0),
        ReplyHeard(at=39.4, turn=5),
        CallEnded(at=41.0, reason="qualification complete"),
    ]


def said(turn: int, text: str, *, onset_at: float, speech_end_at: float, at: float) -> CallerUtterance:
    speech_ms = round((speech_end_at - onset_at) * 1000, 1)
    return CallerUtterance(
        at=at, turn=turn, text=text, speech_ms=speech_ms, onset_at=onset_at, speech_end_at=speech_end_at
    )


def test_interruptions_both_ways_each_with_its_rate() -> None:
    stats = analyse_conversation(spoken_call())
    assert (stats.caller_turns, stats.bot_turns) == (4, 5)  # caller 1, 3, 4, 5; bot 0, 1, 2, 4, 5
    assert stats.bot_interruptions == (BotInterruption(at=32.4, turn=4),)
    assert (stats.bot_interruptions[0].interrupter, stats.bot_interruptions[0].interrupted) == ("bot", "caller")
    assert stats.bot_interruption_rate == 0.25  # one per four caller turns
    (caller_cut_in,) = stats.interruptions
    assert (caller_cut_in.turn, caller_cut_in.heard_fraction) == (4, 0.1)
    assert stats.interruption_rate == 0.2  # one per five bot turns


def test_silences_run_from_the_reply_heard_to_the_callers_onset() -> None:
    events = spoken_call()
    # every silence: after the greeting, after answer 1 through the prompt, after the goodbye
    assert caller_silences(events) == (
        CallerSilence(started_at=5.82, ended_at=6.0, silent_s=0.18, hung_up=False),
        CallerSilence(started_at=13.5, ended_at=25.0, silent_s=11.5, hung_up=False),
        CallerSilence(started_at=39.4, ended_at=41.0, silent_s=1.6, hung_up=False),
    )
    stats = analyse_conversation(events)
    assert stats.caller_silences == (CallerSilence(started_at=13.5, ended_at=25.0, silent_s=11.5, hung_up=False),)
    assert stats.silence_rate == 0.2


def test_an_unanswered_turn_is_dead_air_until_the_bot_is_next_heard() -> None:
    stats = analyse_conversation(spoken_call())
    # turn 3: the caller stopped at 26.2 s; the bot next spoke with turn 4's first audio at 32.4 s.
    # The answered turns (620, 1100, 1200, 800 ms) are all within 2 s.
    assert stats.dead_air == (DeadAir(turn=3, started_at=26.2, ended_at=32.4, wait_ms=6200.0, unanswered=True),)


def test_an_unanswered_turn_at_the_end_runs_to_the_calls_end() -> None:
    events: list[CallEvent] = [
        said(2, "Are you there?", onset_at=10.0, speech_end_at=11.0, at=11.4),
        FillerPlayed(at=11.7, turn=2, text="Okay.", purpose="ack"),  # heard, but no answer followed
        TurnUnanswered(at=12.5, turn=2, reason="the bot said nothing"),
        CallEnded(at=15.0, reason="caller_hung_up"),
    ]
    assert analyse_conversation(events).dead_air == (
        DeadAir(turn=2, started_at=11.0, ended_at=15.0, wait_ms=4000.0, unanswered=True),
    )


def test_a_turn_lost_before_its_transcript_counts_from_when_the_bot_gave_up() -> None:
    events: list[CallEvent] = [
        ReplyHeard(at=4.0, turn=0),
        TurnUnanswered(at=9.0, turn=1, reason="the bot failed"),
        Silence(at=17.0, action="prompt", silent_s=8.0),
        BotUtterance(at=17.1, turn=2, text="Are you still there?", audio_ms=1500.0),
    ]
    stats = analyse_conversation(events)
    assert stats.dead_air == (DeadAir(turn=1, started_at=9.0, ended_at=17.0, wait_ms=8000.0, unanswered=True),)
    assert stats.caller_silences == (CallerSilence(started_at=4.0, ended_at=17.1, silent_s=13.1, hung_up=False),)


def test_a_silence_the_runtime_hung_up_on_runs_to_the_calls_end() -> None:
    events: list[CallEvent] = [
        ReplyHeard(at=10.0, turn=1),
        Silence(at=18.0, action="prompt", silent_s=8.0),
        ReplyHeard(at=19.6, turn=2),
        Silence(at=26.6, action="hangup", silent_s=7.0),
        ReplyHeard(at=28.5, turn=3),
        CallEnded(at=29.0, reason="silence"),
    ]
    assert caller_silences(events) == (CallerSilence(started_at=10.0, ended_at=29.0, silent_s=19.0, hung_up=True),)


def test_a_transfer_ends_the_callers_silence() -> None:
    events: list[CallEvent] = [
        ReplyHeard(at=10.0, turn=3),
        TransferEvent(at=10.2, phase="started", reason="wants an agent"),
        TransferEvent(at=95.0, phase="ended", outcome="joined"),
        CallEnded(at=95.0, reason="transferred"),
    ]
    assert caller_silences(events) == (CallerSilence(started_at=10.0, ended_at=10.2, silent_s=0.2, hung_up=False),)


def test_speech_begun_before_the_reply_ended_is_no_silence() -> None:
    events: list[CallEvent] = [
        ReplyHeard(at=10.0, turn=1),
        said(2, "Yes.", onset_at=9.8, speech_end_at=10.4, at=10.8),
    ]
    assert caller_silences(events) == ()


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
