"""Twilio emulator: the REST Calls resource, and each outbound call played as Twilio plays it.

``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` creates a call (HTTP Basic
``AccountSid:AuthToken``, form-encoded, 201 with the resource's snake_case JSON);
``GET``/``POST .../Calls/{CallSid}.json`` fetch and update it. Each call then runs as
``emulators.twilio_flow`` describes: signed status callbacks, AMD, the voice webhook, and a
simulated callee on the Media Stream. Errors use Twilio's shape and codes (protocols.md §9).

Every REST request first draws a fault from the shared ``EmulatorControl`` (RATE_LIMIT -> 429
code 20429 with ``Retry-After``; OVERLOADED -> 503; AUTH -> 401; STALL -> held until the client
gives up; DISCONNECT -> connection dropped; MALFORMED -> a truncated JSON body), then waits the
``rest`` latency. ``/_emulator/twilio/calls[/{sid}]`` shows what each call did, and
``/_emulator/twilio/callee`` sets who answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import encode_basic_auth, web
from multidict import MultiDict

from emulators.control import EmulatorControl, Fault, FaultInjector, LatencyProfile, add_control_routes
from emulators.twilio_calls import (
    API_VERSION,
    EmulatedCall,
    TwilioApiError,
    authenticate_error,
    new_sid,
    not_found,
    parse_create,
    parse_update,
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

    def callee_for(self, to: str) -> CalleeOptions:
        return self.callees.get(to, self.callee)

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
    app.router.add_get("/_emulator/twilio/calls", list_calls)
    app.router.add_get("/_emulator/twilio/calls/{call_sid}", get_call)
    app.router.add_post("/_emulator/twilio/callee", set_callee)
    add_control_routes(app, control)
    app.cleanup_ctx.append(_http_ctx)
    app.on_shutdown.append(_stop_calls)
    return app


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    emulator = app[TWILIO]
    async with aiohttp.ClientSession() as http:
        emulator.http = http
        yield
        emulator.http = None


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
    fault = emulator.control.faults.next_fault()
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
    http = emulator.http
    assert http is not None, "the emulator's HTTP client lives as long as the app runs"
    call = EmulatedCall(sid=new_sid("CA"), account_sid=emulator.account_sid, request=create)
    flow = CallFlow(call, emulator.callee_for(create.to), auth_token=emulator.auth_token, http=http)
    emulator.calls[call.sid] = call
    emulator.flows[call.sid] = flow
    task = asyncio.create_task(flow.run(), name=f"twilio-call-{call.sid}")
    emulator.tasks.add(task)
    task.add_done_callback(emulator.tasks.discard)
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


# --- emulator-only views and settings --------------------------------------------------------


async def list_calls(request: web.Request) -> web.Response:
    calls = request.app[TWILIO].calls.values()
    return web.json_response({"calls": [call.emulator_view() for call in calls]})


async def get_call(request: web.Request) -> web.Response:
    call = request.app[TWILIO].calls.get(request.match_info["call_sid"])
    if call is None:
        raise web.HTTPNotFound(text="no such call")
    return web.json_response(call.emulator_view())


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
