"""Deepgram's live messages parsed from recorded fixtures, and the turn bookkeeping on made-up
timelines: synchronous and mock-free."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime.deepgram_stt import (
    Metadata,
    Results,
    ServerError,
    SpeechStarted,
    Unrecognised,
    UtteranceEnd,
    UtteranceTracker,
    listen_url,
    parse_message,
)

# Shaped exactly like protocols.md §2 (the Results example, with its metadata block).
RESULTS_FINAL = json.dumps(
    {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 1.04,
        "start": 3.12,
        "is_final": True,
        "speech_final": True,
        "from_finalize": False,
        "channel": {
            "alternatives": [
                {
                    "transcript": "I'd like to book a cleaning",
                    "confidence": 0.987,
                    "words": [
                        {"word": "i'd", "start": 3.16, "end": 3.40, "confidence": 0.99, "punctuated_word": "I'd"}
                    ],
                }
            ]
        },
        "metadata": {
            "request_id": "5d5a2b1c-0000-4000-8000-000000000001",
            "model_info": {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"},
            "model_uuid": "2f1b9c3e-0000-4000-8000-000000000002",
        },
    }
)
RESULTS_INTERIM = (
    '{"type":"Results","channel_index":[0,1],"duration":0.5,"start":3.12,"is_final":false,'
    '"speech_final":false,"channel":{"alternatives":[{"transcript":"I\'d like","confidence":0.8,"words":[]}]},'
    '"metadata":{"request_id":"r","model_info":{"name":"general-nova-3","version":"v","arch":"nova-3"},'
    '"model_uuid":"u"}}'
)
RESULTS_FROM_FINALIZE = (
    '{"type":"Results","channel_index":[0,1],"duration":0.3,"start":4.16,"is_final":true,'
    '"speech_final":false,"from_finalize":true,"channel":{"alternatives":[{"transcript":"","confidence":0.0,'
    '"words":[]}]},"metadata":{"request_id":"r","model_info":{"name":"n","version":"v","arch":"a"},'
    '"model_uuid":"u"}}'
)
UTTERANCE_END = '{"type":"UtteranceEnd","channel":[0,1],"last_word_end":4.16}'
SPEECH_STARTED = '{"type":"SpeechStarted","channel":[0,1],"timestamp":2.98}'
METADATA = (
    '{"type":"Metadata","transaction_key":"deprecated","request_id":"r-1","sha256":"ab",'
    '"created":"2026-08-01T10:00:00.000Z","duration":12.4,"channels":1}'
)
ERROR = (
    '{"type":"Error","variant":"SchemaError","description":"could not parse the control message",'
    '"message":"{\\"type\\":\\"Nope\\"}"}'
)


def test_final_results() -> None:
    event = parse_message(RESULTS_FINAL)
    assert event == Results(
        start=3.12,
        duration=1.04,
        is_final=True,
        speech_final=True,
        from_finalize=False,
        transcript="I'd like to book a cleaning",
        confidence=0.987,
    )
    assert isinstance(event, Results) and event.end == pytest.approx(4.16)


def test_interim_results_without_from_finalize() -> None:
    event = parse_message(RESULTS_INTERIM)
    assert isinstance(event, Results)
    assert (event.is_final, event.speech_final, event.from_finalize, event.transcript) == (
        False,
        False,
        False,
        "I'd like",
    )


def test_from_finalize_results() -> None:
    event = parse_message(RESULTS_FROM_FINALIZE)
    assert isinstance(event, Results) and event.from_finalize and event.is_final and event.transcript == ""


def test_the_other_messages() -> None:
    assert parse_message(UTTERANCE_END) == UtteranceEnd(last_word_end=4.16)
    assert parse_message(SPEECH_STARTED) == SpeechStarted(timestamp=2.98)
    assert parse_message(METADATA) == Metadata(request_id="r-1", duration=12.4)
    assert parse_message(ERROR) == ServerError(variant="SchemaError", description="could not parse the control message")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{this is not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"type": "Flux"}', "unknown message type"),
        ('{"no": "type"}', "unknown message type"),
    ],
)
def test_anything_else_is_unrecognised(text: str, reason: str) -> None:
    assert parse_message(text) == Unrecognised(reason=reason)


@pytest.mark.parametrize(
    "broken",
    [
        {"start": "soon"},
        {"channel": {}},
        {"is_final": "yes"},
        {"channel": {"alternatives": [{"transcript": 7, "confidence": 1.0}]}},
    ],
)
def test_malformed_results_are_unrecognised_and_never_quote_the_frame(broken: dict[str, Any]) -> None:
    event = parse_message(json.dumps({**json.loads(RESULTS_FINAL), **broken}))
    assert isinstance(event, Unrecognised)
    assert "cleaning" not in event.reason


def test_listen_url_carries_the_twilio_audio_format() -> None:
    url = listen_url("wss://api.deepgram.com/", model="nova-3", endpointing_ms=300, utterance_end_ms=1000)
    assert url == (
        "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw&sample_rate=8000&channels=1"
        "&interim_results=true&endpointing=300&utterance_end_ms=1000&vad_events=true&smart_format=true"
    )


# --- the tracker: positions are seconds of audio sent ----------------------------------------


def final(start: float, end: float, text: str, *, speech_final: bool = False, from_finalize: bool = False) -> Results:
    return Results(
        start=start,
        duration=end - start,
        is_final=True,
        speech_final=speech_final,
        from_finalize=from_finalize,
        transcript=text,
        confidence=0.9,
    )


def interim(start: float, end: float, text: str) -> Results:
    return Results(
        start=start,
        duration=end - start,
        is_final=False,
        speech_final=False,
        from_finalize=False,
        transcript=text,
        confidence=0.9,
    )


def test_speech_final_settles_the_turn_at_once() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.6)
    tracker.on_results(interim(0.0, 1.0, "book a"), 0.0)
    assert not tracker.settled
    tracker.on_results(final(0.0, 2.3, "book a viewing", speech_final=True), 0.0)
    assert tracker.settled and not tracker.needs_finalize()
    closed = tracker.close(2.5)
    assert closed.done and closed.text == "book a viewing" and not closed.speculative


def test_a_mid_speech_final_does_not_settle() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    tracker.on_results(final(0.0, 2.0, "first half"), 0.0)
    assert not tracker.settled and tracker.needs_finalize()


def test_a_finalize_answer_before_a_resume_does_not_settle() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    tracker.finalize_sent(1.2, at_pause=True)
    tracker.speech(1.5)  # the caller went on
    tracker.on_results(final(0.0, 1.2, "I want", from_finalize=True), 0.0)
    assert not tracker.settled and tracker.needs_finalize()


def test_a_pause_finalize_is_the_cut_and_makes_the_turn_speculative() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    tracker.finalize_sent(1.2, at_pause=True)
    assert not tracker.needs_finalize()  # the pause's Finalize is already on its way
    closed = tracker.close(1.5)
    assert not closed.done and closed.cut == 1.2 and closed.speculative
    tracker.on_results(final(0.0, 1.2, "three bedrooms", from_finalize=True), 0.0)
    assert closed.done and closed.text == "three bedrooms"


def test_results_after_the_cut_go_to_the_next_turn() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    tracker.on_results(final(0.0, 1.0, "in Austin"), 0.0)
    closed = tracker.close(1.6)
    tracker.speech(1.7)  # the caller starts again before Deepgram answered
    tracker.on_results(final(1.0, 1.6, "please", from_finalize=True), 0.0)
    tracker.on_results(final(1.6, 2.8, "and a garden", speech_final=True), 0.0)
    assert closed.done and closed.text == "in Austin please"
    assert tracker.close(3.0).text == "and a garden"


def test_a_late_final_of_an_abandoned_turn_is_dropped() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    closed = tracker.close(1.0)
    tracker.abandon(closed)  # finalize_timeout_s passed
    tracker.on_results(final(0.0, 1.0, "too late", from_finalize=True), 0.0)
    assert tracker.late_finals == 1 and tracker.close(1.5).text == ""


def test_utterance_end_settles_by_position() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    tracker.on_results(final(0.0, 1.5, "yes"), 0.0)
    tracker.on_utterance_end(0.9 + 1.0)  # last word at 0.9, utterance_end_ms 1000
    assert tracker.settled


def test_offsets_map_a_new_connection_onto_the_stream() -> None:
    tracker = UtteranceTracker()
    tracker.speech(10.2)
    tracker.on_results(final(0.0, 1.0, "hello", speech_final=True), 10.0)
    assert tracker.settled and tracker.close(11.2).text == "hello"


def test_a_lost_connection_loses_an_unfinished_turn_only() -> None:
    tracker = UtteranceTracker()
    tracker.speech(0.1)
    tracker.on_results(final(0.0, 1.0, "done", speech_final=True), 0.0)
    tracker.connection_lost(1.2)
    assert not tracker.close(1.3).lost
    tracker.speech(2.0)
    tracker.connection_lost(2.5)
    assert tracker.close(3.0).lost
    tracker.speech(3.5)
    assert not tracker.close(4.0).lost
