"""Twilio's HTTP side of a simulated call: the signed voice webhook and status callbacks.

Parameters and signing follow protocols.md §1.2, §1.5 and §1.6, so the server's signature
check and parameter parsing are exercised exactly as Twilio would exercise them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp

from telephony.signature import compute_signature
from telephony.twiml import StreamInstruction, parse_connect_stream

API_VERSION = "2010-04-01"


class SimulatorError(Exception):
    """Root of the simulated caller's errors."""


class CallSetupError(SimulatorError):
    """The server did not let the call start (webhook refused, bad TwiML, socket refused)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallIdentity:
    """The call as Twilio describes it in every webhook."""

    public_url: str
    auth_token: str
    call_sid: str
    account_sid: str
    from_number: str
    to_number: str

    def params(self, call_status: str) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "Caller": self.from_number,
            "Called": self.to_number,
            "CallStatus": call_status,
            "Direction": "inbound",
            "ApiVersion": API_VERSION,
        }


def status_params(
    identity: CallIdentity, status: str, *, sequence: int, duration_s: int | None, now: datetime
) -> dict[str, str]:
    """A call-progress status callback body; ``CallDuration`` only on ``completed``."""
    params = identity.params(status)
    params |= {
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(sequence),
        "Timestamp": format_datetime(now.astimezone(UTC)),
    }
    if duration_s is not None:
        params["CallDuration"] = str(duration_s)
    return params


async def post_signed(
    http: aiohttp.ClientSession,
    identity: CallIdentity,
    path: str,
    params: Mapping[str, str],
    timeout_s: float,
) -> tuple[int, str]:
    """POST a form to ``public_url + path`` signed as Twilio signs it; return status and body."""
    url = identity.public_url + path
    headers = {"X-Twilio-Signature": compute_signature(identity.auth_token, url, params)}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with http.post(url, data=dict(params), headers=headers, timeout=timeout) as response:
        return response.status, await response.text()


def socket_signature(identity: CallIdentity, url: str) -> str:
    """Twilio signs the socket upgrade too: the ``wss://`` URL with no parameters (§1.6)."""
    return compute_signature(identity.auth_token, url, {})


async def request_stream(http: aiohttp.ClientSession, identity: CallIdentity, timeout_s: float) -> StreamInstruction:
    """Ring the server's voice webhook and return the ``<Connect><Stream>`` it answers with."""
    try:
        status, body = await post_signed(http, identity, "/twilio/voice", identity.params("ringing"), timeout_s)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise CallSetupError(f"voice webhook failed: {e!r}") from e
    if status != 200:
        raise CallSetupError(f"voice webhook refused: HTTP {status}")
    try:
        return parse_connect_stream(body)
    except (ValueError, SyntaxError) as e:  # xml.etree's ParseError is a SyntaxError
        raise CallSetupError(f"voice webhook returned unusable TwiML: {e}") from e
