"""The Media Streams codec against the documented message shapes (protocols.md §1.4)."""

from __future__ import annotations

import base64
import json

import pytest

from telephony import media_stream as ms

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA" + "a" * 32

DOC_START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": STREAM,
        "start": {
            "accountSid": "AC" + "b" * 32,
            "streamSid": STREAM,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"tenant_id": "t_123", "from_number": "+14155550100"},
        },
    }
)


def test_parses_documented_start() -> None:
    event = ms.parse_inbound(DOC_START)
    assert isinstance(event, ms.Start)
    assert event.call_sid == CALL and event.stream_sid == STREAM
    assert event.sample_rate == 8000 and event.encoding == "audio/x-mulaw"
    assert dict(event.custom_parameters) == {"tenant_id": "t_123", "from_number": "+14155550100"}


def test_parses_documented_media_with_string_numbers() -> None:
    audio = bytes(range(160))
    text = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {
                "track": "inbound",
                "chunk": "1",
                "timestamp": "5",
                "payload": base64.b64encode(audio).decode(),
            },
            "streamSid": STREAM,
        }
    )
    event = ms.parse_inbound(text)
    assert event == ms.Media(STREAM, "inbound", 1, 5, audio, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"event":"connected","protocol":"Call","version":"1.0.0"}', ms.Connected("Call", "1.0.0")),
        (
            '{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}',
            ms.Dtmf("MZ1", "1", "inbound_track", 5),
        ),
        (
            '{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"utt-42"}}',
            ms.Mark("MZ1", "utt-42", 4),
        ),
        (
            '{"event":"stop","sequenceNumber":"5","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}',
            ms.Stop("MZ1", "CA1", "AC1", 5),
        ),
    ],
)
def test_parses_other_documented_events(text: str, expected: ms.InboundEvent) -> None:
    assert ms.parse_inbound(text) == expected


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        ("[1, 2]", "not_an_object"),
        ('{"event":"hello"}', "unknown_event"),
        ('{"event":"media","streamSid":"MZ1"}', "missing_field"),
        ('{"event":"media","media":{"payload":"!!!not base64"}}', "bad_base64"),
        ('{"event":"media","media":{"payload":""}}', "bad_frame_size"),
        (
            '{"event":"media","media":{"payload":"' + base64.b64encode(b"x" * 1601).decode() + '"}}',
            "bad_frame_size",
        ),
        ('{"event":"media","sequenceNumber":"x","media":{"payload":"AA=="}}', "missing_field"),
        ('{"event":"start","start":{"streamSid":"MZ1"}}', "missing_field"),
        ('{"event":"mark","mark":{}}', "missing_field"),
    ],
)
def test_malformed_messages_raise_a_typed_error(text: str | bytes, kind: str) -> None:
    with pytest.raises(ms.MediaStreamProtocolError) as error:
        ms.parse_inbound(text)
    assert error.value.kind == kind
    assert isinstance(error.value, ValueError)


def test_outbound_messages_are_valid_json_with_stream_sid() -> None:
    media = json.loads(ms.media_message(STREAM, b"\x00\xff" * 80))
    assert media == {
        "event": "media",
        "streamSid": STREAM,
        "media": {"payload": base64.b64encode(b"\x00\xff" * 80).decode()},
    }
    assert json.loads(ms.mark_message(STREAM, 't1."0"')) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": 't1."0"'},
    }
    assert json.loads(ms.clear_message(STREAM)) == {"event": "clear", "streamSid": STREAM}


def test_both_roles_round_trip() -> None:
    audio = b"\x7f" * 160
    assert ms.parse_outbound(ms.media_message(STREAM, audio)) == ms.OutMedia(STREAM, audio)
    assert ms.parse_outbound(ms.mark_message(STREAM, "t0.0")) == ms.OutMark(STREAM, "t0.0")
    assert ms.parse_outbound(ms.clear_message(STREAM)) == ms.OutClear(STREAM)
    inbound = ms.inbound_media_message(stream_sid=STREAM, sequence=7, chunk=6, timestamp_ms=100, ulaw=audio)
    assert ms.parse_inbound(inbound) == ms.Media(STREAM, "inbound", 6, 100, audio, 7)
    start = ms.start_message(stream_sid=STREAM, call_sid=CALL, account_sid="AC1", custom_parameters={"token": "v1.x"})
    parsed = ms.parse_inbound(start)
    assert isinstance(parsed, ms.Start) and parsed.custom_parameters == {"token": "v1.x"}
    assert ms.parse_inbound(ms.dtmf_message(stream_sid=STREAM, sequence=9, digit="#")) == ms.Dtmf(
        STREAM, "#", "inbound_track", 9
    )
    stop = ms.stop_message(stream_sid=STREAM, sequence=10, call_sid=CALL, account_sid="AC1")
    assert ms.parse_inbound(stop) == ms.Stop(STREAM, CALL, "AC1", 10)
