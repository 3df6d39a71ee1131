from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from telephony.twiml import (
    StreamInstruction,
    connect_stream_twiml,
    parse_connect_stream,
    reject_twiml,
    stream_url_from_public_url,
)

STREAM_URL = "wss://app.example.com/twilio/media"


def test_round_trip_preserves_url_name_and_parameters() -> None:
    parameters = {
        "tenant_id": "t_123",
        "from_number": "+14155550100",
        "tricky": "a&b <c> \"d\" 'e' >",
        "unicode": "Zoë — 日本 ☎",
        "lines": "one\ntwo\tthree",
        "empty": "",
    }
    twiml = connect_stream_twiml(STREAM_URL, parameters, stream_name="agent-CA1")
    parsed = parse_connect_stream(twiml)
    assert parsed == StreamInstruction(url=STREAM_URL, parameters=parameters, name="agent-CA1")
    assert list(parsed.parameters) == list(parameters)


def test_structure_is_response_connect_stream_parameter() -> None:
    twiml = connect_stream_twiml(STREAM_URL, {"a": "1", "b": "2"})
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    assert [c.tag for c in root] == ["Connect"]
    connect = root[0]
    assert connect.attrib == {}
    assert [c.tag for c in connect] == ["Stream"]
    stream = connect[0]
    assert stream.attrib == {"url": STREAM_URL}
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "a", "value": "1"}),
        ("Parameter", {"name": "b", "value": "2"}),
    ]
    assert all(len(p) == 0 for p in stream)


def test_no_parameters_and_no_name() -> None:
    parsed = parse_connect_stream(connect_stream_twiml(STREAM_URL, {}))
    assert parsed == StreamInstruction(url=STREAM_URL, parameters={}, name=None)


def test_ws_url_allowed_for_local_runs() -> None:
    assert parse_connect_stream(connect_stream_twiml("ws://127.0.0.1:8080/twilio/media", {})).url == (
        "ws://127.0.0.1:8080/twilio/media"
    )


@pytest.mark.parametrize(
    "url",
    [
        "wss://app.example.com/twilio/media?token=x",
        "wss://app.example.com/twilio/media?",
        "wss://app.example.com/twilio/media#frag",
        "https://app.example.com/twilio/media",
        "http://app.example.com/twilio/media",
        "wss:///twilio/media",
        "/twilio/media",
    ],
)
def test_bad_stream_url_rejected(url: str) -> None:
    with pytest.raises(ValueError):
        connect_stream_twiml(url, {})


def test_empty_parameter_name_rejected() -> None:
    with pytest.raises(ValueError):
        connect_stream_twiml(STREAM_URL, {"": "x"})


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://app.example.com", "wss://app.example.com/twilio/media"),
        ("https://app.example.com/", "wss://app.example.com/twilio/media"),
        ("https://app.example.com/ll", "wss://app.example.com/ll/twilio/media"),
        ("http://localhost:8080", "ws://localhost:8080/twilio/media"),
    ],
)
def test_stream_url_from_public_url(public_url: str, expected: str) -> None:
    assert stream_url_from_public_url(public_url) == expected


def test_stream_url_from_public_url_custom_path() -> None:
    assert stream_url_from_public_url("https://a.example", "/ws") == "wss://a.example/ws"


def test_stream_url_from_public_url_rejects_non_http() -> None:
    with pytest.raises(ValueError):
        stream_url_from_public_url("ftp://a.example")


def test_reject_twiml() -> None:
    root = ET.fromstring(reject_twiml())
    assert root.tag == "Response"
    assert [(c.tag, c.attrib) for c in root] == [("Reject", {})]


def test_reject_twiml_busy() -> None:
    root = ET.fromstring(reject_twiml("busy"))
    assert [(c.tag, c.attrib) for c in root] == [("Reject", {"reason": "busy"})]


def test_reject_twiml_has_no_stream() -> None:
    with pytest.raises(ValueError, match="no <Connect>"):
        parse_connect_stream(reject_twiml())


@pytest.mark.parametrize(
    ("twiml", "match"),
    [
        ("not xml", "well-formed"),
        ("<Foo/>", "not <Response>"),
        ("<Response><Say>hi</Say></Response>", "no <Connect>"),
        ("<Response><Connect/></Response>", "no <Stream>"),
        ("<Response><Start><Stream url='wss://a/b'/></Start></Response>", "no <Connect>"),
        ("<Response><Connect><Stream/></Connect></Response>", "no url"),
        (
            "<Response><Connect><Stream url='wss://a/b'><Parameter value='x'/></Stream></Connect></Response>",
            "no name",
        ),
    ],
)
def test_parse_connect_stream_errors(twiml: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_connect_stream(twiml)
