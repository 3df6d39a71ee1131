"""A local stand-in for GoHighLevel API v2 (protocols.md §6): one location with one calendar
and one pipeline.

Free slots come from the location's business hours (``bots.business_hours``) minus what is
booked, in the documented shapes (epoch-ms ranges of at most 31 days, ``{"YYYY-MM-DD":
{"slots": [...]}}``). Requests need the Bearer token and the ``Version`` of their API, count
against a sliding-window burst limit (429 with ``Retry-After``, ``X-RateLimit-*`` on every
answer), and errors have GoHighLevel's ``{"statusCode", "message"}`` bodies. Tests book slots
behind a client's back with ``book_behind`` or ``POST /_emulator/ghl/appointments``.
"""

from __future__ import annotations

import asyncio
import math
import random
import string
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from aiohttp import web

from bots.business_hours import BusinessHours
from bots.calendar import Slot, is_timezone
from bots.ghl_wire import CALENDARS_VERSION, CONTACTS_VERSION, MAX_FREE_SLOTS_SPAN
from bots.rate_limit import RateLimit
from emulators.control import EmulatorControl, Fault, LatencyProfile, add_control_routes

#: Assumed, not measured: a CRM REST API behind a CDN, a few hundred ms with a tail.
DEFAULT_LATENCY = LatencyProfile(median_ms=150, p95_ms=400)
#: ``Retry-After`` of an injected RATE_LIMIT fault, in whole seconds as HTTP has them.
RETRY_AFTER_S = 1
#: The documented daily allowance per app and location.
DAILY_LIMIT = 200_000
#: How often a stalled request looks whether its client has hung up.
STALL_POLL_S = 0.05
#: Ids look like GoHighLevel's: 20 letters and digits.
ID_CHARS = string.ascii_letters + string.digits
DEFAULT_LOCATION_ID = "ve9EPM428h8vShlRW1KT"
DEFAULT_CALENDAR_ID = "ocQHyuzHvysMo5N5VsXc"
DEFAULT_PIPELINE_ID = "VDm7RPYC2GLUvdpKmBfC"
SLOT_TAKEN_MESSAGE = "The slot you have selected is no longer available."
APPOINTMENT_STATUSES = ("new", "confirmed", "cancelled", "showed", "noshow", "invalid")
OPPORTUNITY_STATUSES = ("open", "won", "lost", "abandoned")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GhlApiError(Exception):
    """An error answer: ``{"statusCode", "message", "error"}``, as every API answers them
    (``message`` a list for 422)."""

    def __init__(self, status: int, message: str | list[str], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {"statusCode": self.status, "message": self.message, "error": HTTPStatus(self.status).phrase}
        return web.json_response(body, status=self.status, headers=self.headers)


def required_version(path: str) -> str | None:
    """The ``Version`` an API path needs; None for paths outside the API (``/_emulator``)."""
    if path.startswith("/calendars/"):
        return CALENDARS_VERSION
    if path.startswith(("/contacts/", "/opportunities/")):
        return CONTACTS_VERSION
    return None


def free_slots_body(slots: list[Slot], zone: ZoneInfo, trace_id: str) -> dict[str, Any]:
    """Slot starts grouped by their local date in ``zone``, with the answer's ``traceId``."""
    days: dict[str, Any] = {}
    for slot in slots:
        local = slot.start.astimezone(zone)
        days.setdefault(local.date().isoformat(), {"slots": []})["slots"].append(local.isoformat())
    return {**days, "traceId": trace_id}


def normalise_phone(phone: str) -> str:
    """E.164, as GoHighLevel stores numbers (US when no country code is given)."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(phone, "US"), phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return phone


def _time(value: Any, field: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise GhlApiError(422, [f"{field} must be a valid ISO 8601 date string with an offset"])
    return moment


def _require(body: Mapping[str, Any], *fields: str) -> None:
    missing = [f"{name} should not be empty" for name in fields if not body.get(name)]
    if missing:
        raise GhlApiError(422, missing)


class GhlEmulator:
    """The location's records, its burst window and its fault knobs."""

    def __init__(
        self,
        *,
        token: str,
        location_id: str,
        calendar_id: str,
        pipeline_id: str,
        hours: BusinessHours,
        rate_limit: RateLimit,
        control: EmulatorControl,
    ) -> None:
        self.token = token
        self.location_id = location_id
        self.calendar_id = calendar_id
        self.pipeline_id = pipeline_id
        self.hours = hours
        self.rate_limit = rate_limit
        self.control = control
        self.contacts: dict[str, dict[str, Any]] = {}
        self.appointments: dict[str, dict[str, Any]] = {}
        self.booked: dict[str, Slot] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.opportunities: dict[str, dict[str, Any]] = {}
        self.stopping = asyncio.Event()
        self._received: deque[float] = deque()
        self._daily_used = 0
        self._ids = random.Random(control.faults.seed)

    def new_id(self) -> str:
        return "".join(self._ids.choices(ID_CHARS, k=20))

    # --- the burst limit ---

    def admit(self, now: float) -> dict[str, str]:
        """Count a request in the sliding window; its ``X-RateLimit-*`` headers, or 429."""
        interval = self.rate_limit.interval_s
        while self._received and self._received[0] <= now - interval:
            self._received.popleft()
        full = len(self._received) >= self.rate_limit.max_requests
        if not full:
            self._received.append(now)
            self._daily_used += 1
        headers = self.limit_headers(self.rate_limit.max_requests - len(self._received))
        if full:
            self.control.stats["rate_limited"] += 1
            retry_after = math.ceil(self._received[0] + interval - now)
            raise GhlApiError(429, "Too many requests", {**headers, "Retry-After": str(max(retry_after, 1))})
        return headers

    def limit_headers(self, remaining: int) -> dict[str, str]:
        return {
            "X-RateLimit-Limit-Daily": str(DAILY_LIMIT),
            "X-RateLimit-Daily-Remaining": str(DAILY_LIMIT - self._daily_used),
            "X-RateLimit-Interval-Milliseconds": str(round(self.rate_limit.interval_s * 1000)),
            "X-RateLimit-Max": str(self.rate_limit.max_requests),
            "X-RateLimit-Remaining": str(remaining),
        }

    # --- the calendar ---

    def free(self, start: datetime, end: datetime) -> list[Slot]:
        """Grid slots in ``[start, end)`` that are neither booked nor past."""
        now = datetime.now(UTC)
        return [
            s
            for s in self.hours.slots(start, end)
            if s.start > now and not any(s.overlaps(b) for b in self.booked.values())
        ]

    def book_behind(self, start: datetime) -> str:
        """Book the free slot starting at ``start`` for another caller (tests: "taken
        meanwhile"); returns the appointment id. ValueError if the slot is not free."""
        slot = next((s for s in self.free(start, start + self.hours.length) if s.start == start), None)
        if slot is None:
            raise ValueError(f"no free slot starts at {start.isoformat()}")
        return self._store_appointment(slot, {"contactId": "someone-else", "title": "Booked elsewhere"})

    def _store_appointment(self, slot: Slot, body: Mapping[str, Any]) -> str:
        event_id = self.new_id()
        self.booked[event_id] = slot
        self.appointments[event_id] = {
            "id": event_id,
            "calendarId": self.calendar_id,
            "locationId": self.location_id,
            "contactId": body["contactId"],
            "startTime": body.get("startTime", slot.start.isoformat()),
            "endTime": body.get("endTime", slot.end.isoformat()),
            "title": body.get("title", ""),
            "appointmentStatus": body.get("appointmentStatus", "new"),
        }
        return event_id

    def create_appointment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _require(body, "calendarId", "locationId", "contactId", "startTime")
        self.check_location(body["locationId"])
        if body["calendarId"] != self.calendar_id:
            raise GhlApiError(400, "Calendar not found")
        if body["contactId"] not in self.contacts:
            raise GhlApiError(400, "Contact not found")
        if body.get("appointmentStatus", "new") not in APPOINTMENT_STATUSES:
            raise GhlApiError(422, [f"appointmentStatus must be one of: {', '.join(APPOINTMENT_STATUSES)}"])
        start = _time(body["startTime"], "startTime")
        end = _time(body["endTime"], "endTime") if "endTime" in body else start + self.hours.length
        if end <= start:
            raise GhlApiError(422, ["endTime must be after startTime"])
        slot = Slot(start, end)
        # Checked and stored without an await in between: of concurrent requests for one slot,
        # exactly one wins, as on the live service.
        if not body.get("ignoreFreeSlotValidation") and slot not in self.free(start, end):
            raise GhlApiError(400, SLOT_TAKEN_MESSAGE)
        return self.appointments[self._store_appointment(slot, body)]

    def appointment(self, event_id: str) -> dict[str, Any]:
        if event_id not in self.appointments:
            raise GhlApiError(404, "Appointment not found")
        return self.appointments[event_id]

    def update_appointment(self, event_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT``: every field optional; a new time must be free, ``cancelled`` frees the slot."""
        event = self.appointment(event_id)
        status = body.get("appointmentStatus", event["appointmentStatus"])
        if status not in APPOINTMENT_STATUSES:
            raise GhlApiError(422, [f"appointmentStatus must be one of: {', '.join(APPOINTMENT_STATUSES)}"])
        slot = self.booked.get(event_id)
        if "startTime" in body:
            start = _time(body["startTime"], "startTime")
            end = _time(body["endTime"], "endTime") if "endTime" in body else start + self.hours.length
            slot = Slot(start, end)
            others = [b for key, b in self.booked.items() if key != event_id]
            if status != "cancelled" and any(slot.overlaps(b) for b in others):
                raise GhlApiError(400, SLOT_TAKEN_MESSAGE)
            event.update(startTime=start.isoformat(), endTime=end.isoformat())
        if status == "cancelled":
            self.booked.pop(event_id, None)
        elif slot is not None:
            self.booked[event_id] = slot
        event["appointmentStatus"] = status
        if "title" in body:
            event["title"] = str(body["title"])
        return event

    # --- contacts and opportunities ---

    def check_location(self, location_id: Any) -> None:
        if location_id != self.location_id:
            raise GhlApiError(403, "The token does not have access to this location.")

    def upsert_contact(self, body: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Deduplicated by email first, then phone, as the location's duplicate setting says."""
        _require(body, "locationId")
        self.check_location(body["locationId"])
        fields = {k: body[k] for k in ("firstName", "lastName", "name", "email", "phone", "timezone") if body.get(k)}
        if "phone" in fields:
            fields["phone"] = normalise_phone(fields["phone"])
        if "timezone" in fields and not is_timezone(fields["timezone"]):
            raise GhlApiError(422, ["timezone must be a valid IANA time zone"])
        existing = self._match(fields.get("email"), fields.get("phone"))
        contact = existing or {"id": self.new_id(), "locationId": self.location_id}
        contact.update(fields)
        if "name" not in fields and ("firstName" in fields or "lastName" in fields):
            contact["name"] = f"{contact.get('firstName', '')} {contact.get('lastName', '')}".strip()
        self.contacts[contact["id"]] = contact
        return existing is None, contact

    def _match(self, email: str | None, phone: str | None) -> dict[str, Any] | None:
        for key, value in (("email", email.lower() if email else None), ("phone", phone)):
            found = next((c for c in self.contacts.values() if value and str(c.get(key, "")).lower() == value), None)
            if found is not None:
                return found
        return None

    def contact(self, contact_id: str) -> dict[str, Any]:
        if contact_id not in self.contacts:
            raise GhlApiError(400, "Contact not found")
        return self.contacts[contact_id]

    def create_opportunity(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _require(body, "pipelineId", "locationId", "name", "status", "contactId")
        self.check_location(body["locationId"])
        if body["pipelineId"] != self.pipeline_id:
            raise GhlApiError(400, "Pipeline not found")
        if body["status"] not in OPPORTUNITY_STATUSES:
            raise GhlApiError(422, [f"status must be one of: {', '.join(OPPORTUNITY_STATUSES)}"])
        self.contact(body["contactId"])
        opportunity = {
            "id": self.new_id(),
            "locationId": self.location_id,
            "createdAt": datetime.now(UTC).isoformat(),
            **{
                k: body[k]
                for k in ("name", "status", "contactId", "pipelineId", "pipelineStageId", "monetaryValue")
                if k in body
            },
        }
        self.opportunities[opportunity["id"]] = opportunity
        return opportunity


GHL = web.AppKey("ghl_emulator", GhlEmulator)


# --- the gateway: latency, faults, auth, version, burst limit ---


@web.middleware
async def _gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = required_version(request.path)
    if version is None:
        return await handler(request)
    ghl = request.app[GHL]
    ghl.control.stats["requests"] += 1
    await ghl.control.delay("request")
    fault = ghl.control.faults.next_fault()
    headers: dict[str, str] = {}
    try:
        if fault in (Fault.STALL, Fault.DISCONNECT):
            return await _drop(request, ghl, fault)
        _authenticate(request, ghl, version, fault)
        headers = ghl.admit(asyncio.get_running_loop().time())
        if fault is Fault.RATE_LIMIT:
            raise GhlApiError(
                429, "Too many requests", {"X-RateLimit-Remaining": "0", "Retry-After": str(RETRY_AFTER_S)}
            )
        if fault is Fault.OVERLOADED:
            raise GhlApiError(503, "Service Unavailable")
        response = await handler(request)
    except GhlApiError as e:
        response = e.response()
    except web.HTTPNotFound:
        response = GhlApiError(404, f"Cannot {request.method} {request.path}").response()
    for name, value in headers.items():  # on every admitted answer, errors too; an error's own win
        response.headers.setdefault(name, value)
    if fault is Fault.MALFORMED:  # the request took effect; its answer is cut short
        return web.Response(status=response.status, text='{"id": "', content_type="application/json", headers=headers)
    return response


def _authenticate(request: web.Request, ghl: GhlEmulator, version: str, fault: Fault | None) -> None:
    if fault is Fault.AUTH or request.headers.get("Authorization") != f"Bearer {ghl.token}":
        raise GhlApiError(401, "Invalid token: access token is invalid")
    # Live GoHighLevel answers a missing or unknown Version with 401 and these messages (third-party
    # probes); the per-API check is stricter than the live service, as the OpenAPI enums are.
    sent = request.headers.get("Version")
    if sent is None:
        raise GhlApiError(401, "version header was not found.")
    if sent != version:
        raise GhlApiError(401, "version header is invalid")


async def _drop(request: web.Request, ghl: GhlEmulator, fault: Fault) -> web.StreamResponse:
    """STALL: send nothing until the client gives up; DISCONNECT: hang up at once."""
    # Polling, because aiohttp offers no disconnect notification to wait on.
    while fault is Fault.STALL and not ghl.stopping.is_set() and _connected(request):  # noqa: ASYNC110
        await asyncio.sleep(STALL_POLL_S)
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)  # never reaches the client: the connection is gone


def _connected(request: web.Request) -> bool:
    return request.transport is not None and not request.transport.is_closing()


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as e:
        raise GhlApiError(400, "Unexpected token in JSON body") from e
    if not isinstance(body, dict):
        raise GhlApiError(400, "Request body must be a JSON object")
    return body


# --- the API ---


def _epoch_ms(request: web.Request, name: str) -> datetime:
    value = request.query.get(name, "")
    if not value.isdigit():
        raise GhlApiError(422, [f"{name} must be a number string (epoch milliseconds)"])
    return datetime.fromtimestamp(int(value) / 1000, UTC)


async def get_free_slots(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    if request.match_info["calendar_id"] != ghl.calendar_id:
        raise GhlApiError(400, "Calendar not found")
    start, end = _epoch_ms(request, "startDate"), _epoch_ms(request, "endDate")
    if end < start or end - start > MAX_FREE_SLOTS_SPAN:
        raise GhlApiError(400, "endDate must be after startDate and at most 31 days later")
    tz = request.query.get("timezone", ghl.hours.timezone)
    if not is_timezone(tz):
        raise GhlApiError(400, f"Invalid timezone: {tz}")
    slots = ghl.free(start, end + timedelta(milliseconds=1))  # endDate is inclusive
    return web.json_response(free_slots_body(slots, ZoneInfo(tz), ghl.new_id()))


async def post_appointment(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    ghl.control.stats["appointments"] += 1
    return web.json_response(ghl.create_appointment(await _json_body(request)))


async def get_appointment(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    return web.json_response(ghl.appointment(request.match_info["event_id"]))


async def put_appointment(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    body = await _json_body(request)
    return web.json_response(ghl.update_appointment(request.match_info["event_id"], body))


async def post_upsert_contact(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    new, contact = ghl.upsert_contact(await _json_body(request))
    return web.json_response({"new": new, "contact": contact, "traceId": ghl.new_id()})


async def post_note(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    contact_id = request.match_info["contact_id"]
    ghl.contact(contact_id)
    body = await _json_body(request)
    _require(body, "body")
    note = {
        "id": ghl.new_id(),
        "body": body["body"],
        "contactId": contact_id,
        "dateAdded": datetime.now(UTC).isoformat(),
    }
    ghl.notes.setdefault(contact_id, []).append(note)
    return web.json_response({"note": note}, status=201)


async def post_opportunity(request: web.Request) -> web.Response:
    ghl = request.app[GHL]
    return web.json_response({"opportunity": ghl.create_opportunity(await _json_body(request))}, status=201)


async def post_book_behind(request: web.Request) -> web.Response:
    """``{"startTime": "2026-11-26T17:30:00-06:00"}``: someone else books that slot."""
    ghl = request.app[GHL]
    try:
        event_id = ghl.book_behind(_time((await _json_body(request)).get("startTime"), "startTime"))
    except (ValueError, GhlApiError) as e:
        raise web.HTTPBadRequest(text=str(e)) from e
    return web.json_response(ghl.appointments[event_id])


def default_control() -> EmulatorControl:
    return EmulatorControl(name="ghl", latency={"request": DEFAULT_LATENCY})


def build_app(
    *,
    token: str,
    location_id: str = DEFAULT_LOCATION_ID,
    calendar_id: str = DEFAULT_CALENDAR_ID,
    pipeline_id: str = DEFAULT_PIPELINE_ID,
    hours: BusinessHours | None = None,
    rate_limit: RateLimit | None = None,
    control: EmulatorControl | None = None,
) -> web.Application:
    """The API routes the bots use, ``POST /_emulator/ghl/appointments`` and ``/_emulator/*``."""
    if not token:
        raise ValueError("token must not be empty")
    ghl = GhlEmulator(
        token=token,
        location_id=location_id,
        calendar_id=calendar_id,
        pipeline_id=pipeline_id,
        hours=hours or BusinessHours(),
        rate_limit=rate_limit or RateLimit(),
        control=control or default_control(),
    )
    app = web.Application(middlewares=[_gateway])
    app[GHL] = ghl
    app.router.add_get("/calendars/{calendar_id}/free-slots", get_free_slots)
    app.router.add_post("/calendars/events/appointments", post_appointment)
    app.router.add_get("/calendars/events/appointments/{event_id}", get_appointment)
    app.router.add_put("/calendars/events/appointments/{event_id}", put_appointment)
    app.router.add_post("/contacts/upsert", post_upsert_contact)
    app.router.add_post("/contacts/{contact_id}/notes", post_note)
    app.router.add_post("/opportunities/", post_opportunity)
    app.router.add_post("/_emulator/ghl/appointments", post_book_behind)
    add_control_routes(app, ghl.control)

    async def release_stalls(_: web.Application) -> None:
        ghl.stopping.set()

    app.on_shutdown.append(release_stalls)
    return app
