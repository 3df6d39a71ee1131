"""Twilio's requests about warm transfers: signed form POSTs, routed to the transfer they concern.

Every URL carries the caller's CallSid as ``?call=``: the agent leg's callbacks name only the
agent's own call, and Twilio signs the query string with the rest of the URL (protocols.md §1.6),
so it cannot be swapped. A callback for no pending transfer (the agent hanging up after the
transfer is over, a late retry) is answered 204: there is nothing left to do with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlencode

from aiohttp import web

from telephony.conference import briefing_twiml
from telephony.signature import WebhookValidator, public_url_for
from telephony.transfer_state import (
    IllegalTransferEvent,
    TransferEvent,
    agent_status_event,
    amd_event,
    conference_event,
)

log = logging.getLogger(__name__)

CONFERENCE_PATH = "/twilio/transfer/conference"
AGENT_STATUS_PATH = "/twilio/transfer/agent-status"
AGENT_AMD_PATH = "/twilio/transfer/agent-amd"
BRIEFING_PATH = "/twilio/transfer/briefing"


class PendingTransfer(Protocol):
    """What the routes need of a transfer (``telephony.transfer.WarmTransfer``)."""

    @property
    def call_sid(self) -> str: ...

    @property
    def briefing(self) -> str: ...

    def deliver(self, event: TransferEvent) -> None: ...


Parse = Callable[[dict[str, str], PendingTransfer], TransferEvent | None]


class TransferCallbacks:
    """The transfer routes of one server, and the transfers waiting on them by caller CallSid."""

    def __init__(self, validator: WebhookValidator, public_url: str) -> None:
        public_url_for(public_url, "/")  # raises ValueError for a base URL Twilio could not call
        self._validator = validator
        self._public_url = public_url
        self._pending: dict[str, PendingTransfer] = {}

    def url(self, path: str, call_sid: str) -> str:
        """The public URL Twilio calls for the transfer of ``call_sid``."""
        return public_url_for(self._public_url, f"{path}?{urlencode({'call': call_sid})}")

    def register(self, transfer: PendingTransfer) -> None:
        """Route callbacks to ``transfer``; a call can be in one transfer at a time."""
        if transfer.call_sid in self._pending:
            raise ValueError(f"call {transfer.call_sid} is already being transferred")
        self._pending[transfer.call_sid] = transfer

    def unregister(self, call_sid: str) -> None:
        self._pending.pop(call_sid, None)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(CONFERENCE_PATH, self.conference_status)
        router.add_post(AGENT_STATUS_PATH, self.agent_status)
        router.add_post(AGENT_AMD_PATH, self.agent_amd)
        router.add_post(BRIEFING_PATH, self.briefing)

    async def conference_status(self, request: web.Request) -> web.Response:
        """The room's ``statusCallback``: joins, leaves, announcements."""
        return await self._deliver(request, lambda form, transfer: conference_event(form, transfer.call_sid))

    async def agent_status(self, request: web.Request) -> web.Response:
        """The agent leg's call-progress callbacks."""
        return await self._deliver(request, lambda form, _: agent_status_event(form))

    async def agent_amd(self, request: web.Request) -> web.Response:
        """The agent leg's ``AmdStatusCallback``."""
        return await self._deliver(request, lambda form, _: amd_event(form))

    async def briefing(self, request: web.Request) -> web.Response:
        """The agent's ``AnnounceUrl``: the briefing as ``<Say>``, served only to Twilio."""
        await self._verified_form(request)
        transfer = self._pending.get(request.query.get("call", ""))
        if transfer is None:
            raise web.HTTPNotFound(text="no transfer pending for this call")
        return web.Response(text=briefing_twiml(transfer.briefing), content_type="text/xml")

    async def _deliver(self, request: web.Request, parse: Parse) -> web.Response:
        form = await self._verified_form(request)
        transfer = self._pending.get(request.query.get("call", ""))
        if transfer is None:
            return web.Response(status=204)
        try:
            event = parse(form, transfer)
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from e
        if event is not None:
            try:
                transfer.deliver(event)
            except IllegalTransferEvent as e:
                # Twilio must not retry it, and one odd callback must not derail the transfer.
                log.warning("transfer callback ignored", extra={"call_sid": transfer.call_sid, "error": str(e)})
        return web.Response(status=204)

    async def _verified_form(self, request: web.Request) -> dict[str, str]:
        """The form, or 403 when ``X-Twilio-Signature`` does not sign it and the URL."""
        form = await request.post()
        url = public_url_for(self._public_url, request.raw_path)
        if not self._validator.validate(url, form, request.headers.get("X-Twilio-Signature")):
            log.warning("webhook signature rejected", extra={"path": request.path})
            raise web.HTTPForbidden(text="invalid X-Twilio-Signature")
        return {name: value for name, value in form.items() if isinstance(value, str)}
