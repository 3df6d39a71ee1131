"""TwiML for the voice webhook, and Twilio's reading of it (protocols.md §1.3).

Documents are built with the SDK's TwiML classes so escaping and element names match what
Twilio's own libraries emit. ``parse_connect_stream`` is Twilio's side: the simulated caller
uses it to learn where to open the Media Stream and which ``customParameters`` to send.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from twilio.twiml.voice_response import Connect, Parameter, Reject, Stream, VoiceResponse

from telephony.signature import public_url_for

RejectReason = Literal["rejected", "busy"]

_WS_SCHEMES = {"http": "ws", "https": "wss"}


def _check_stream_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"stream URL must be ws:// or wss://, got {url!r}")
    # Twilio does not support query strings on <Stream url>; values go in <Parameter>.
    if "?" in url or "#" in url:
        raise ValueError(f"stream URL must not carry a query string or fragment, got {url!r}")


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str], *, stream_name: str | None = None) -> str:
    """``<Response><Connect><Stream url><Parameter/>...</Stream></Connect></Response>``.

    ``parameters`` arrive in the Media Stream's ``start.customParameters``.
    """
    _check_stream_url(stream_url)
    stream = Stream(url=stream_url, name=stream_name)
    for name, value in parameters.items():
        if not name:
            raise ValueError("stream parameter names must not be empty")
        stream.append(Parameter(name=name, value=value))
    return str(VoiceResponse().append(Connect().append(stream)).to_xml())


def stream_url_from_public_url(public_url: str, path: str = "/twilio/media") -> str:
    """The Media Stream URL on our public host: ``https`` becomes ``wss``, ``http`` ``ws``."""
    parts = urlsplit(public_url_for(public_url, path))
    return urlunsplit(parts._replace(scheme=_WS_SCHEMES[parts.scheme]))


def reject_twiml(reason: RejectReason | None = None) -> str:
    """``<Response><Reject/></Response>``: refuse a call without answering (so it is not billed).

    ``<Reject>`` must be the only verb; the caller hears a busy signal (``busy``) or Twilio's
    "not in service" message (``rejected``, the default).
    """
    return str(VoiceResponse().append(Reject(reason=reason)).to_xml())


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamInstruction:
    """Where Twilio opens the Media Stream, and the custom parameters it sends in ``start``."""

    url: str
    parameters: Mapping[str, str]
    name: str | None


def _element(parent: ET.Element, tag: str, twiml: str) -> ET.Element:
    child = parent.find(tag)
    if child is None:
        raise ValueError(f"TwiML has no <{tag}> under <{parent.tag}>: {twiml[:200]!r}")
    return child


def parse_connect_stream(twiml: str) -> StreamInstruction:
    """Read the ``<Connect><Stream>`` out of a TwiML document as Twilio does.

    Raises ``ValueError`` if the document is not XML or has no ``<Connect><Stream url>``.
    """
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as e:
        raise ValueError(f"TwiML is not well-formed XML: {e}") from e
    if root.tag != "Response":
        raise ValueError(f"TwiML root is <{root.tag}>, not <Response>")
    stream = _element(_element(root, "Connect", twiml), "Stream", twiml)
    url = stream.get("url")
    if not url:
        raise ValueError("<Stream> has no url attribute")
    return StreamInstruction(url=url, parameters=_parameters(stream), name=stream.get("name"))


def _parameters(stream: ET.Element) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for parameter in stream.findall("Parameter"):
        name = parameter.get("name")
        if not name:
            raise ValueError("<Parameter> has no name attribute")
        parameters[name] = parameter.get("value", "")
    return parameters
