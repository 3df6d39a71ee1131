"""Who may call a route: the JSON API's bearer token and Twilio's ``X-Twilio-Signature``.

Shared by every module that adds routes (``runtime.server``, ``runtime.dialer``), so each
checks credentials the same way.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from runtime.app_state import STATE
from telephony.signature import public_url_for

log = logging.getLogger(__name__)


def authorised(request: web.Request) -> bool:
    """The request carries the API's bearer token (never true while the API is closed)."""
    token = request.app[STATE].settings.api_token
    sent = request.headers.get("Authorization", "").encode()
    # Constant time: a byte-by-byte comparison would leak how much of a guess was right.
    return bool(token) and hmac.compare_digest(sent, f"Bearer {token}".encode())


async def verified_form(request: web.Request) -> dict[str, str]:
    """The webhook's form parameters, or 403 when ``X-Twilio-Signature`` does not match."""
    state = request.app[STATE]
    form = await request.post()
    url = public_url_for(state.settings.public_url, request.raw_path)
    if not state.validator.validate(url, form, request.headers.get("X-Twilio-Signature")):
        log.warning("webhook signature rejected", extra={"path": request.path})
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature")
    return {k: v for k, v in form.items() if isinstance(v, str)}
