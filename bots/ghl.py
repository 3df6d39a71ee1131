"""The GoHighLevel (LeadConnector) API v2 as a ``Calendar`` (protocols.md §6), over aiohttp.

Requests are paced to stay under the burst limit (``bots.rate_limit``); a 429 anyway is
retried a bounded number of times after the wait the API asks for. Every failure leaves as
one ``CalendarError`` saying whether retrying may help (``SlotTaken`` for a slot booked
meanwhile). ``base_url`` points the client at ``leadline emulate ghl`` in tests and demos.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import aiohttp

from bots import ghl_wire as wire
from bots.calendar import Appointment, Calendar, CalendarError, Contact, Slot, SlotTaken
from bots.rate_limit import RateLimit, RequestWindow

log = logging.getLogger(__name__)

T = TypeVar("T")

GHL_BASE_URL = "https://services.leadconnectorhq.com"


@dataclass(frozen=True, kw_only=True)
class GhlOptions:
    """One location's calendar and pipeline, and how patient to be with the API."""

    token: str
    location_id: str
    calendar_id: str
    #: Where ``create_opportunity`` opens deals.
    pipeline_id: str
    base_url: str = GHL_BASE_URL
    #: The calendar's slot duration: free-slots reports start times only.
    slot_minutes: int = 30
    #: The API answers in a few hundred ms; a caller on the line cannot wait much longer than this.
    timeout_s: float = 5.0
    rate_limit: RateLimit = field(default_factory=RateLimit)
    #: Retries of a request answered 429, each after the wait the API asked for.
    max_rate_limit_retries: int = 3
    #: A 429 asking for a longer wait than this fails at once (retryable): the call moves on.
    max_retry_wait_s: float = 5.0

    def __post_init__(self) -> None:
        if not all((self.token, self.location_id, self.calendar_id, self.pipeline_id)):
            raise ValueError("token, location_id, calendar_id and pipeline_id are required")
        if self.slot_minutes <= 0 or self.timeout_s <= 0 or self.max_retry_wait_s < 0:
            raise ValueError("need slot_minutes > 0, timeout_s > 0 and max_retry_wait_s >= 0")
        if self.max_rate_limit_retries < 0:
            raise ValueError("max_rate_limit_retries must be >= 0")


class GhlCalendar(Calendar):
    """A GoHighLevel location's calendar, contacts, notes and opportunities.

    Pass the application's shared ``session``; without one the calendar opens its own and
    ``aclose`` closes it. Construct it inside the event loop.
    """

    def __init__(self, options: GhlOptions, *, session: aiohttp.ClientSession | None = None) -> None:
        self.options = options
        self._owns_session = session is None
        self._session = session or aiohttp.ClientSession()
        self._window = RequestWindow(options.rate_limit)
        self._timeout = aiohttp.ClientTimeout(total=options.timeout_s)

    async def aclose(self) -> None:
        if self._owns_session:
            await self._session.close()

    async def upsert_contact(
        self, *, name: str, phone: str, email: str | None = None, timezone: str | None = None
    ) -> Contact:
        body = wire.contact_body(self.options.location_id, name=name, phone=phone, email=email, timezone=timezone)
        return await self._request(
            "upsert_contact", "POST", "/contacts/upsert", wire.CONTACTS_VERSION, wire.parse_contact, json=body
        )

    async def free_slots(self, start: datetime, end: datetime, tz: str) -> list[Slot]:
        """One request per 31 days of range (the API's limit), merged."""
        zone, length = ZoneInfo(tz), timedelta(minutes=self.options.slot_minutes)
        found: set[Slot] = set()
        for lo, hi in wire.spans(start, end):
            found.update(
                await self._request(
                    "free_slots",
                    "GET",
                    f"/calendars/{self.options.calendar_id}/free-slots",
                    wire.CALENDARS_VERSION,
                    lambda body: wire.parse_free_slots(body, length, zone),
                    params=wire.free_slots_query(lo, hi, tz),
                )
            )
        return sorted((s for s in found if start <= s.start < end), key=lambda s: s.start)

    async def book(self, contact: Contact, slot: Slot, *, title: str, notes: str = "") -> Appointment:
        body = wire.appointment_body(
            calendar_id=self.options.calendar_id,
            location_id=self.options.location_id,
            contact_id=contact.id,
            slot=slot,
            title=title,
            notes=notes,
        )
        return await self._request(
            "book",
            "POST",
            "/calendars/events/appointments",
            wire.CALENDARS_VERSION,
            lambda reply: wire.parse_appointment(reply, contact, slot, title),
            json=body,
            booking=True,
        )

    async def cancel(self, appointment_id: str) -> None:
        """The appointment's status set to ``cancelled`` (GoHighLevel keeps the event)."""
        await self._request(
            "cancel",
            "PUT",
            f"/calendars/events/appointments/{appointment_id}",
            wire.CALENDARS_VERSION,
            lambda reply: wire.check_status(reply, "cancelled"),
            json={"appointmentStatus": "cancelled"},
        )

    async def add_note(self, contact_id: str, body: str) -> None:
        await self._request(
            "add_note",
            "POST",
            f"/contacts/{contact_id}/notes",
            wire.CONTACTS_VERSION,
            lambda reply: wire.parse_created_id(reply, "note"),
            json={"body": body},
        )

    async def create_opportunity(
        self, contact_id: str, *, name: str, value: float | None = None, stage: str | None = None
    ) -> str:
        body = wire.opportunity_body(
            pipeline_id=self.options.pipeline_id,
            location_id=self.options.location_id,
            contact_id=contact_id,
            name=name,
            value=value,
            stage=stage,
        )
        # The trailing slash is part of the documented path.
        return await self._request(
            "create_opportunity",
            "POST",
            "/opportunities/",
            wire.CONTACTS_VERSION,
            lambda reply: wire.parse_created_id(reply, "opportunity"),
            json=body,
        )

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        version: str,
        parse: Callable[[bytes], T],
        *,
        params: Mapping[str, str] | None = None,
        json: dict[str, Any] | None = None,
        booking: bool = False,
    ) -> T:
        """One API call, 429s retried; every failure becomes a ``CalendarError``, logged once."""
        try:
            reply = await self._send(method, path, version, params, json)
            if not 200 <= reply.status < 300:
                raise wire.error_for(reply, booking=booking)
            try:
                return parse(reply.body)
            except wire.MalformedReply as e:
                # A read can be repeated; a write whose answer is unreadable may have taken effect.
                raise CalendarError(f"unreadable GoHighLevel reply: {e}", retryable=method == "GET") from e
        except CalendarError as e:
            log.log(
                logging.INFO if isinstance(e, SlotTaken) else logging.WARNING,  # a lost race is business as usual
                "ghl request failed",
                extra={"operation": operation, "http_status": e.status, "retryable": e.retryable, "error": str(e)},
            )
            raise

    async def _send(
        self, method: str, path: str, version: str, params: Mapping[str, str] | None, json: dict[str, Any] | None
    ) -> wire.Reply:
        """Send until the reply is not a 429, within the retry budget."""
        attempt = 0
        while True:
            reply = await self._exchange(method, path, version, params, json)
            if reply.status != 429:
                return reply
            wait_s = wire.retry_delay_s(reply.headers, attempt)
            if attempt >= self.options.max_rate_limit_retries or wait_s > self.options.max_retry_wait_s:
                return reply
            log.info("ghl rate limited: retrying", extra={"wait_s": wait_s, "attempt": attempt + 1})
            await asyncio.sleep(wait_s)
            attempt += 1

    async def _exchange(
        self, method: str, path: str, version: str, params: Mapping[str, str] | None, json: dict[str, Any] | None
    ) -> wire.Reply:
        headers = {"Authorization": f"Bearer {self.options.token}", "Version": version, "Accept": "application/json"}
        async with self._window.slot():
            try:
                async with self._session.request(
                    method,
                    self.options.base_url.rstrip("/") + path,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=self._timeout,
                ) as response:
                    return wire.Reply(response.status, response.headers, await response.read())
            except TimeoutError as e:
                raise CalendarError(
                    f"GoHighLevel did not answer within {self.options.timeout_s} s", retryable=True
                ) from e
            except (aiohttp.ClientError, OSError) as e:
                raise CalendarError(f"no response from GoHighLevel: {e!r}", retryable=True) from e
