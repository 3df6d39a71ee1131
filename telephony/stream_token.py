"""Per-call tokens that authenticate the Media Stream WebSocket.

Twilio gives the socket no credentials of its own, so the voice webhook (whose signature we
check) puts a token in a ``<Parameter>``; it comes back in ``start.customParameters`` and is
checked against the ``callSid`` of that same ``start`` message.

Format: ``v1.<expiry unix seconds>.<urlsafe base64 HMAC-SHA256, unpadded>``. The MAC covers the
call SID and the expiry. The call SID is not in the token, so a token presented on another
call fails as ``bad_signature``: from the token alone a mix-up cannot be told from a forgery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal

StreamTokenFailure = Literal["malformed", "bad_signature", "expired"]

_VERSION = "v1"
# 43 characters: a 32-byte SHA-256 MAC in unpadded base64. 12 digits of expiry cover any date
# a sane TTL can reach and keep int() cheap on hostile input.
_TOKEN = re.compile(r"v1\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class StreamTokenError(Exception):
    """The stream token does not authorise this call; ``reason`` is a stable metrics label."""

    def __init__(self, reason: StreamTokenFailure) -> None:
        super().__init__(reason)
        self.reason: StreamTokenFailure = reason


def _mac(secret: bytes, call_sid: str, expiry: int) -> str:
    # Newline-separated: the expiry is all digits, so the message maps back to one (sid, expiry).
    message = f"{_VERSION}\n{call_sid}\n{expiry}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue_stream_token(secret: bytes, call_sid: str, *, now: float, ttl_s: float) -> str:
    """A token valid for ``call_sid`` until ``now + ttl_s`` (whole seconds, rounded down)."""
    if not secret or not call_sid:
        raise ValueError("secret and call_sid must not be empty")
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    expiry = int(now + ttl_s)
    return f"{_VERSION}.{expiry}.{_mac(secret, call_sid, expiry)}"


def verify_stream_token(secret: bytes, call_sid: str, token: str, *, now: float) -> None:
    """Raise ``StreamTokenError`` unless ``token`` was issued for ``call_sid`` and is unexpired.

    The MAC is checked before the expiry, so a token with an edited expiry is ``bad_signature``.
    """
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise StreamTokenError("malformed")
    expiry = int(match[1])
    if not hmac.compare_digest(_mac(secret, call_sid, expiry), match[2]):
        raise StreamTokenError("bad_signature")
    if now >= expiry:
        raise StreamTokenError("expired")
