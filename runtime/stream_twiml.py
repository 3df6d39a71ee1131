"""The ``<Connect><Stream>`` TwiML that puts a call (back) on this server's Media Streams socket,
with the call's context and a fresh stream token as stream parameters."""

from __future__ import annotations

import time
from collections.abc import Mapping

from bots.base import CallContext
from runtime.config import Settings
from telephony.stream_token import issue_stream_token
from telephony.twiml import connect_stream_twiml

#: How long after the TwiML the stream may start. Twilio connects within a second or two of
#: fetching it; minutes of slack cover slow networks without keeping tokens alive.
STREAM_TOKEN_TTL_S = 300.0


def stream_twiml(settings: Settings, context: CallContext, extra: Mapping[str, str] | None = None) -> str:
    """``extra`` parameters ride along (e.g. how a transfer ended, for the caller coming back)."""
    parameters = {
        "from": context.from_number,
        "to": context.to_number,
        "direction": context.direction,
        "tenant": context.tenant,
        "bot": context.bot,
        "token": issue_stream_token(
            settings.stream_secret, context.call_sid, now=time.time(), ttl_s=STREAM_TOKEN_TTL_S
        ),
        **(extra or {}),
    }
    return connect_stream_twiml(settings.stream_url, parameters, stream_name=f"leadline-{context.call_sid}")
