"""Twilio Media Streams wire format, sans-IO: JSON text in, frozen events out, and back.

Both roles are here: the server's (parse what Twilio sends, build ``media``/``mark``/``clear``)
and Twilio's (build ``connected``/``start``/``media``/... and parse what the server sends), so the
simulated caller and the tests speak exactly the format the server parses. Shapes follow
protocols.md §1.4: every message is a JSON text frame; ``sequenceNumber``, ``chunk`` and
``timestamp`` are strings; payloads are base64 of raw 8 kHz mu-law with no header.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Largest inbound media payload accepted. Twilio sends 20 ms (160 bytes); anything above
#: 200 ms in one message is not something Twilio produces and would distort turn timing.
MAX_MEDIA_PAYLOAD_BYTES = 1600

ErrorKind = Literal["bad_json", "not_an_object", "unknown_event", "missing_field", "bad_base64", "bad_frame_size"]


class MediaStreamProtocolError(ValueError):
    """A message from the peer does not follow the Media Streams protocol.

    ``kind`` is a short, stable label suitable for a metrics counter.
    """

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: ErrorKind = kind
        self.detail = detail


# --- Twilio -> server ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str
    event: Literal["connected"] = "connected"


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    channels: int
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sequence_number: int = 0
    event: Literal["start"] = "start"


@dataclass(frozen=True, slots=True)
class Media:
    stream_sid: str
    track: str
    chunk: int
    timestamp_ms: int
    payload: bytes
    sequence_number: int = 0
    event: Literal["media"] = "media"


@dataclass(frozen=True, slots=True)
class Dtmf:
    stream_sid: str
    digit: str
    track: str
    sequence_number: int = 0
    event: Literal["dtmf"] = "dtmf"


@dataclass(frozen=True, slots=True)
class Mark:
    stream_sid: str
    name: str
    sequence_number: int = 0
    event: Literal["mark"] = "mark"


@dataclass(frozen=True, slots=True)
class Stop:
    stream_sid: str
    call_sid: str
    account_sid: str
    sequence_number: int = 0
    event: Literal["stop"] = "stop"


InboundEvent = Connected | Start | Media | Dtmf | Mark | Stop


def _load_object(text: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise MediaStreamProtocolError("bad_json", str(e)) from e
    if not isinstance(message, dict):
        raise MediaStreamProtocolError("not_an_object", type(message).__name__)
    return message


def _get(obj: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise MediaStreamProtocolError("missing_field", f"{where}.{key} missing or not {kind.__name__}")
    return value


def _int_field(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key, "0")
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise MediaStreamProtocolError("missing_field", f"{where}.{key} is not a number") from e


def _decode_payload(payload: str) -> bytes:
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise MediaStreamProtocolError("bad_base64", str(e)) from e
    if not 0 < len(audio) <= MAX_MEDIA_PAYLOAD_BYTES:
        raise MediaStreamProtocolError("bad_frame_size", f"{len(audio)} bytes")
    return audio


def _parse_start(m: Mapping[str, Any], seq: int) -> Start:
    start = _get(m, "start", dict, "start")
    fmt = start.get("mediaFormat") or {}
    params = start.get("customParameters") or {}
    if not isinstance(fmt, dict) or not isinstance(params, dict):
        raise MediaStreamProtocolError("missing_field", "start.mediaFormat/customParameters not objects")
    return Start(
        stream_sid=_get(start, "streamSid", str, "start"),
        call_sid=_get(start, "callSid", str, "start"),
        account_sid=str(start.get("accountSid", "")),
        tracks=tuple(str(t) for t in start.get("tracks", ("inbound",))),
        encoding=str(fmt.get("encoding", "audio/x-mulaw")),
        sample_rate=int(fmt.get("sampleRate", 8000)),
        channels=int(fmt.get("channels", 1)),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        sequence_number=seq,
    )


def _parse_media(m: Mapping[str, Any], seq: int) -> Media:
    media = _get(m, "media", dict, "media")
    return Media(
        stream_sid=str(m.get("streamSid", "")),
        track=str(media.get("track", "inbound")),
        chunk=_int_field(media, "chunk", "media"),
        timestamp_ms=_int_field(media, "timestamp", "media"),
        payload=_decode_payload(_get(media, "payload", str, "media")),
        sequence_number=seq,
    )


def parse_inbound(text: str | bytes) -> InboundEvent:
    """Parse one message Twilio sent to the server.

    Raises ``MediaStreamProtocolError`` for anything that is not a valid Media Streams message.
    """
    m = _load_object(text)
    event = m.get("event")
    seq = _int_field(m, "sequenceNumber", "message")
    if event == "media":
        return _parse_media(m, seq)
    if event == "start":
        return _parse_start(m, seq)
    if event == "connected":
        return Connected(protocol=str(m.get("protocol", "")), version=str(m.get("version", "")))
    if event == "mark":
        mark = _get(m, "mark", dict, "mark")
        return Mark(str(m.get("streamSid", "")), _get(mark, "name", str, "mark"), seq)
    if event == "dtmf":
        dtmf = _get(m, "dtmf", dict, "dtmf")
        digit = _get(dtmf, "digit", str, "dtmf")
        return Dtmf(str(m.get("streamSid", "")), digit, str(dtmf.get("track", "inbound_track")), seq)
    if event == "stop":
        raw_stop = m.get("stop")
        stop: Mapping[str, Any] = raw_stop if isinstance(raw_stop, dict) else {}
        return Stop(str(m.get("streamSid", "")), str(stop.get("callSid", "")), str(stop.get("accountSid", "")), seq)
    raise MediaStreamProtocolError("unknown_event", repr(event)[:40])


# --- server -> Twilio ---------------------------------------------------------------------


def media_message(stream_sid: str, ulaw: bytes) -> str:
    """An outbound ``media`` message carrying raw 8 kHz mu-law.

    Formatted by hand rather than ``json.dumps``: it is sent 50 times a second per call, and
    both the SID and base64 need no escaping.
    """
    payload = base64.b64encode(ulaw).decode("ascii")
    return f'{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{payload}"}}}}'


def mark_message(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})


@dataclass(frozen=True, slots=True)
class OutMedia:
    stream_sid: str
    payload: bytes
    event: Literal["media"] = "media"


@dataclass(frozen=True, slots=True)
class OutMark:
    stream_sid: str
    name: str
    event: Literal["mark"] = "mark"


@dataclass(frozen=True, slots=True)
class OutClear:
    stream_sid: str
    event: Literal["clear"] = "clear"


OutboundEvent = OutMedia | OutMark | OutClear


def parse_outbound(text: str | bytes) -> OutboundEvent:
    """Parse one message the server sent to Twilio (Twilio's side of the socket)."""
    m = _load_object(text)
    event = m.get("event")
    stream_sid = _get(m, "streamSid", str, "message")
    if event == "media":
        media = _get(m, "media", dict, "media")
        return OutMedia(stream_sid, _decode_payload(_get(media, "payload", str, "media")))
    if event == "mark":
        return OutMark(stream_sid, _get(_get(m, "mark", dict, "mark"), "name", str, "mark"))
    if event == "clear":
        return OutClear(stream_sid)
    raise MediaStreamProtocolError("unknown_event", repr(event)[:40])


# --- Twilio's side: building what Twilio sends --------------------------------------------


def connected_message() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start_message(*, stream_sid: str, call_sid: str, account_sid: str, custom_parameters: Mapping[str, str]) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": stream_sid,
            "start": {
                "accountSid": account_sid,
                "streamSid": stream_sid,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": dict(custom_parameters),
            },
        }
    )


def inbound_media_message(*, stream_sid: str, sequence: int, chunk: int, timestamp_ms: int, ulaw: bytes) -> str:
    payload = base64.b64encode(ulaw).decode("ascii")
    return (
        f'{{"event":"media","sequenceNumber":"{sequence}","media":{{"track":"inbound",'
        f'"chunk":"{chunk}","timestamp":"{timestamp_ms}","payload":"{payload}"}},'
        f'"streamSid":"{stream_sid}"}}'
    )


def inbound_mark_message(*, stream_sid: str, sequence: int, name: str) -> str:
    return json.dumps(
        {"event": "mark", "sequenceNumber": str(sequence), "streamSid": stream_sid, "mark": {"name": name}}
    )


def dtmf_message(*, stream_sid: str, sequence: int, digit: str) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "streamSid": stream_sid,
            "sequenceNumber": str(sequence),
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    )


def stop_message(*, stream_sid: str, sequence: int, call_sid: str, account_sid: str) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": str(sequence),
            "streamSid": stream_sid,
            "stop": {"accountSid": account_sid, "callSid": call_sid},
        }
    )
