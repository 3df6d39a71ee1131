"""Twilio emulator: the REST Calls and conference resources, and each call played as Twilio plays it.

``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` creates a call (HTTP Basic
``AccountSid:AuthToken``, form-encoded, 201 with the resource's snake_case JSON);
``GET``/``POST .../Calls/{CallSid}.json`` fetch and update it. Each call then runs as
``emulators.twilio_flow`` describes: signed status callbacks, AMD, the voice webhook, and a
simulated callee on the Media Stream. Errors use Twilio's shape and codes (protocols.md §9).

``GET .../Conferences/{ConferenceSid}.json`` fetches a room made by ``<Dial><Conference>``;
``POST .../Conferences/{ConferenceSid}/Participants.json`` dials a number into it (the SID, or
a friendly name, which creates the room) and ``GET``/``POST .../Participants/{CallSid}.json``
fetch and update one (hold, mute, announce), as ``emulators.twilio_conference`` describes.

Every REST request first draws a fault from the shared ``EmulatorControl`` (RATE_LIMIT -> 429
code 20429 with ``Retry-After``; OVERLOADED -> 503; AUTH -> 401; STALL -> held until the client
gives up; DISCONNECT -> connection dropped; MALFORMED -> a truncated JSON body), then waits the
``rest`` latency; ``/_emulator/twilio/faults`` schedules a fault for the next requests to one
resource (``calls``, ``conferences``, ``participants``) instead. ``/_emulator/twilio/calls[/{sid}]``
and ``/_emulator/twilio/conferences[/{sid}]`` show what each call and room did, and
``/_emulator/twilio/callee`` sets who answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import encode_basic_auth, web
from multidict import MultiDict

from emulators.control import EmulatorControl, Fault, FaultInjector, LatencyProfile, add_control_routes
from emulators.twilio_calls import (
    API_VERSION,
    CreateRequest,
    EmulatedCall,
    Instructions,
    TwilioApiError,
    authenticate_error,
    new_sid,
    not_found,
    parse_create,
    parse_update,
)
from emulators.twilio_conference import (
    Conference,
    ConferenceRooms,
    Participant,
    parse_participant_create,
    parse_participant_update,
    seat_twiml,
)
from emulators.twilio_flow import AnsweredBy, CalleeOptions, CallFlow, Outcome

__all__ = ["TWILIO", "AnsweredBy", "CalleeOptions", "Outcome", "TwilioEmulator", "build_app"]

log = logging.getLogger("emulators.twilio")

API_PREFIX = f"/{API_VERSION}/"
#: Twilio's REST API answers in ~100-300 ms from outside its data centres.
DEFAULT_REST_LATENCY = LatencyProfile(median_ms=120, p95_ms=300)
#: What a rate-limited client is told to wait, in seconds.
RETRY_AFTER_S = 1
#: How often a stalled request checks whether its client gave up.
STALL_POLL_S = 0.05

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(kw_only=True)
class TwilioEmulator:
    """One emulated account: its calls, who answers them, and the shared HTTP client."""

    account_sid: str
    auth_token: str
    control: EmulatorControl
    #: who answers a number not listed in ``callees``
    callee: CalleeOptions
    #: who answers at a given ``To`` number, so one emulator can serve different callees
    callees: dict[str, CalleeOptions] = field(default_factory=dict)
    calls: dict[str, EmulatedCall] = field(default_factory=dict)
    flows: dict[str, CallFlow] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    http: aiohttp.ClientSession | None = None
    #: faults for the next requests to one resource (``calls``, ``conferences``, ``participants``)
    resource_faults: dict[str, deque[Fault]] = field(default_factory=dict)
    rooms: ConferenceRooms = field(init=False)

    def __post_init__(self) -> None:
        self.rooms = ConferenceRooms(account_sid=self.account_sid, auth_token=self.auth_token, tasks=self.tasks)

    def callee_for(self, to: str) -> CalleeOptions:
        return self.callees.get(to, self.callee)

    def next_fault(self, resource: str) -> Fault | None:
        """The fault scheduled for this resource, else the shared injector's (both counted)."""
        scheduled = self.resource_faults.get(resource)
        if not scheduled:
            return self.control.faults.next_fault()
        fault = scheduled.popleft()
        self.control.faults.injected[fault.value] += 1
        return fault

    def start(self, call: EmulatedCall) -> CallFlow:
        """Run a new call as its callee answers it."""
        http = self.http
        assert http is not None, "the emulator's HTTP client lives as long as the app runs"
        flow = CallFlow(call, self.callee_for(call.request.to), auth_token=self.auth_token, http=http, rooms=self.rooms)
        self.calls[call.sid] = call
        self.flows[call.sid] = flow
        task = asyncio.create_task(flow.run(), name=f"twilio-call-{call.sid}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return flow

    async def wait_finished(self, call_sid: str) -> EmulatedCall:
        """Wait until the call has ended and its last callback was delivered."""
        flow = self.flows[call_sid]
        await flow.finished.wait()
        return flow.call


TWILIO = web.AppKey("twilio_emulator", TwilioEmulator)


def build_app(
    *,
    account_sid: str,
    auth_token: str,
    control: EmulatorControl | None = None,
    callee: CalleeOptions | None = None,
) -> web.Application:
    """The emulator for one account; its calls are answered as ``callee`` says (a person by default)."""
    if not account_sid.startswith("AC") or not auth_token:
        raise ValueError("account_sid must be an AC... SID and auth_token must not be empty")
    control = control or EmulatorControl("twilio", {"rest": DEFAULT_REST_LATENCY}, FaultInjector())
    app = web.Application(middlewares=[_rest_middleware])
    app[TWILIO] = TwilioEmulator(
        account_sid=account_sid, auth_token=auth_token, control=control, callee=callee or CalleeOptions()
    )
    calls = f"{API_PREFIX}Accounts/{{account_sid}}/Calls"
    app.router.add_post(f"{calls}.json", create_call)
    app.router.add_get(f"{calls}/{{call_sid}}.json", fetch_call)
    app.router.add_post(f"{calls}/{{call_sid}}.json", update_call)
    conference = f"{API_PREFIX}Accounts/{{account_sid}}/Conferences/{{conference_sid}}"
    app.router.add_get(f"{conference}.json", fetch_conference)
    app.router.add_post(f"{conference}/Participants.json", create_participant)
    app.router.add_get(f"{conference}/Participants/{{call_sid}}.json", fetch_participant)
    app.router.add_post(f"{conference}/Participants/{{call_sid}}.json", update_participant)
    app.router.add_get("/_emulator/twilio/calls", list_calls)
    app.router.add_get("/_emulator/twilio/calls/{call_sid}", get_call)
    app.router.add_get("/_emulator/twilio/conferences", list_conferences)
    app.router.add_get("/_emulator/twilio/conferences/{conference_sid}", get_conference)
    app.router.add_post("/_emulator/twilio/callee", set_callee)
    app.router.add_post("/_emulator/twilio/faults", schedule_resource_faults)
    add_control_routes(app, control)
    app.cleanup_ctx.append(_http_ctx)
    app.on_shutdown.append(_stop_calls)
    return app


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    emulator = app[TWILIO]
    async with aiohttp.ClientSession() as http:
        emulator.http = emulator.rooms.client = http
        yield
        emulator.http = emulator.rooms.client = None


async def _stop_calls(app: web.Application) -> None:
    """Release stalled requests and hang up every call still running."""
    emulator = app[TWILIO]
    emulator.closing.set()
    for task in emulator.tasks:
        task.cancel()
    await asyncio.gather(*emulator.tasks, return_exceptions=True)


# --- REST: auth, faults, latency --------------------------------------------------------------


@web.middleware
async def _rest_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    emulator = request.app[TWILIO]
    emulator.control.stats["rest_requests"] += 1
    fault = emulator.next_fault(_resource(request.path))
    await emulator.control.delay("rest")
    try:
        if fault is not None:
            return await _inject(request, fault)
        _authenticate(request, emulator)
        return await handler(request)
    except TwilioApiError as e:
        return e.response()
    except web.HTTPNotFound:
        return not_found(request.path).response()


def _resource(path: str) -> str:
    if "/Participants" in path:
        return "participants"
    return "conferences" if "/Conferences" in path else "calls"


async def _inject(request: web.Request, fault: Fault) -> web.StreamResponse:
    """Answer the request with ``fault`` instead of serving it."""
    if fault is Fault.RATE_LIMIT:
        raise TwilioApiError(429, 20429, "Too Many Requests", {"Retry-After": str(RETRY_AFTER_S)})
    if fault is Fault.OVERLOADED:
        raise TwilioApiError(503, 20503, "Service Unavailable")
    if fault is Fault.AUTH:
        raise authenticate_error()
    if fault is Fault.MALFORMED:
        return web.Response(status=200, text='{"sid": "CA', content_type="application/json")
    if fault is Fault.STALL:
        await _until_client_leaves(request)
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)  # never reaches the client: the connection is gone


async def _until_client_leaves(request: web.Request) -> None:
    """Hold the request until its client gives up or the emulator shuts down (then drop it)."""
    closing = request.app[TWILIO].closing
    while not closing.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(STALL_POLL_S)


def _authenticate(request: web.Request, emulator: TwilioEmulator) -> None:
    """HTTP Basic ``AccountSid:AuthToken``; the path's account must be the caller's own."""
    expected = encode_basic_auth(emulator.account_sid, emulator.auth_token)
    if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
        raise authenticate_error()
    if request.match_info.get("account_sid") != emulator.account_sid:
        raise not_found(request.path)


# --- REST: the Calls resource ----------------------------------------------------------------


async def create_call(request: web.Request) -> web.Response:
    emulator = request.app[TWILIO]
    create = parse_create(await _form(request))
    call = EmulatedCall(sid=new_sid("CA"), account_sid=emulator.account_sid, request=create)
    emulator.start(call)
    emulator.control.stats["calls_created"] += 1
    log.info("emulated call created", extra={"call_sid": call.sid, "pii.to": create.to})
    return web.json_response(call.resource(), status=201)


async def _form(request: web.Request) -> MultiDict[str]:
    """The form's text fields, repeats kept (``StatusCallbackEvent``); the API takes no files."""
    form = await request.post()
    return MultiDict((name, value) for name, value in form.items() if isinstance(value, str))


def _call(request: web.Request) -> EmulatedCall:
    call = request.app[TWILIO].calls.get(request.match_info["call_sid"])
    if call is None:
        raise not_found(request.path)
    return call


async def fetch_call(request: web.Request) -> web.Response:
    return web.json_response(_call(request).resource())


async def update_call(request: web.Request) -> web.Response:
    """``Status`` ends the call, ``Twiml``/``Url`` redirects it; a call that has ended is gone (404)."""
    call = _call(request)
    update = parse_update(await _form(request))
    if not call.is_live:
        raise not_found(request.path)
    flow = request.app[TWILIO].flows[call.sid]
    if update.status is not None:
        flow.end(update.status)
    elif update.instructions is not None:
        flow.redirect(update.instructions)
    request.app[TWILIO].control.stats["calls_updated"] += 1
    return web.json_response(call.resource())


# --- REST: conferences and their participants --------------------------------------------------


def _conference(request: web.Request) -> Conference:
    conference = request.app[TWILIO].rooms.find(request.match_info["conference_sid"])
    if conference is None:
        raise not_found(request.path)
    return conference


def _participant(request: web.Request) -> Participant:
    participant = _conference(request).find(request.match_info["call_sid"])
    if participant is None:
        raise not_found(request.path)
    return participant


async def fetch_conference(request: web.Request) -> web.Response:
    return web.json_response(_conference(request).resource())


async def create_participant(request: web.Request) -> web.Response:
    """Dial a number into a room: a call whose TwiML seats it there once answered.

    A ``CF`` SID must name an existing room; any other name is a friendly name, whose live room
    is used or created.
    """
    emulator = request.app[TWILIO]
    name = request.match_info["conference_sid"]
    create = parse_participant_create(await _form(request))
    conference = emulator.rooms.find(name)
    if conference is None or conference.status == "completed":
        if name.startswith("CF"):
            raise not_found(request.path)
        conference = emulator.rooms.room(name)
    twiml = seat_twiml(conference.friendly_name, create.seat)
    leg = CreateRequest(
        to=create.to,
        from_=create.from_,
        instructions=Instructions(twiml=twiml),
        status_callback=create.status_callback,
        status_callback_events=create.status_callback_events,
        machine_detection=create.machine_detection,
        async_amd=False,
        async_amd_status_callback=None,
        amd_status_callback=create.amd_status_callback,
        ring_timeout_s=create.ring_timeout_s,
    )
    call = EmulatedCall(sid=new_sid("CA"), account_sid=emulator.account_sid, request=leg)
    participant = conference.expect(call, create.seat)
    flow = emulator.start(call)
    emulator.rooms.spawn(_forget_unjoined(flow, conference), f"twilio-participant-{call.sid}")
    emulator.control.stats["participants_created"] += 1
    log.info("emulated participant dialled", extra={"call_sid": call.sid, "pii.to": create.to})
    return web.json_response(participant.resource(), status=201)


async def _forget_unjoined(flow: CallFlow, conference: Conference) -> None:
    await flow.finished.wait()
    conference.forget(flow.call.sid)


async def fetch_participant(request: web.Request) -> web.Response:
    return web.json_response(_participant(request).resource())


async def update_participant(request: web.Request) -> web.Response:
    participant = _participant(request)
    update = parse_participant_update(await _form(request))
    _conference(request).update(participant, update)
    request.app[TWILIO].control.stats["participants_updated"] += 1
    return web.json_response(participant.resource())


# --- emulator-only views and settings --------------------------------------------------------


async def list_calls(request: web.Request) -> web.Response:
    calls = request.app[TWILIO].calls.values()
    return web.json_response({"calls": [call.emulator_view() for call in calls]})


async def get_call(request: web.Request) -> web.Response:
    call = request.app[TWILIO].calls.get(request.match_info["call_sid"])
    if call is None:
        raise web.HTTPNotFound(text="no such call")
    return web.json_response(call.emulator_view())


async def list_conferences(request: web.Request) -> web.Response:
    conferences = request.app[TWILIO].rooms.conferences.values()
    return web.json_response({"conferences": [conference.emulator_view() for conference in conferences]})


async def get_conference(request: web.Request) -> web.Response:
    conference = request.app[TWILIO].rooms.conferences.get(request.match_info["conference_sid"])
    if conference is None:
        raise web.HTTPNotFound(text="no such conference")
    return web.json_response(conference.emulator_view())


_RESOURCES = ("calls", "conferences", "participants")


async def schedule_resource_faults(request: web.Request) -> web.Response:
    """``{"resource": "participants", "fault": "overloaded", "count": 1}``: the next requests to
    that resource get the fault; other resources are served as usual."""
    emulator = request.app[TWILIO]
    body: dict[str, Any] = await request.json()
    try:
        resource, fault, count = str(body["resource"]), Fault(body["fault"]), int(body.get("count", 1))
    except (KeyError, ValueError, TypeError) as e:
        raise web.HTTPBadRequest(text=f"bad fault request: {e!r}") from e
    if resource not in _RESOURCES:
        raise web.HTTPBadRequest(text=f"resource must be one of {_RESOURCES}")
    emulator.resource_faults.setdefault(resource, deque()).extend([fault] * count)
    return web.json_response({name: [f.value for f in faults] for name, faults in emulator.resource_faults.items()})


_CALLEE_FIELDS = {"outcome": str, "ring_s": float, "answered_by": str, "amd_duration_ms": int, "max_duration_s": float}


async def set_callee(request: web.Request) -> web.Response:
    """``{"to": "+1...", "outcome": "busy", "ring_s": 1, "answered_by": "machine_start", ...}``;
    without ``to`` it changes the default callee. The script and voice stay as they were."""
    emulator = request.app[TWILIO]
    body: dict[str, Any] = await request.json()
    to = body.pop("to", None)
    try:
        changes = {name: _CALLEE_FIELDS[name](value) for name, value in body.items()}
        callee = dataclasses.replace(emulator.callee_for(to) if to else emulator.callee, **changes)
    except (KeyError, ValueError, TypeError) as e:
        raise web.HTTPBadRequest(text=f"bad callee: {e!r}") from e
    if to:
        emulator.callees[str(to)] = callee
    else:
        emulator.callee = callee
    return web.json_response({"to": to, **{name: getattr(callee, name) for name in _CALLEE_FIELDS}})
