"""Outbound dialling: ``POST /api/calls`` places a call over Twilio REST, and ``POST /twilio/amd``
takes Twilio's asynchronous answering-machine detection verdict (protocols.md §1.5, §1.7).

A dialled call then runs like any other: Twilio fetches ``/twilio/voice`` when it is answered,
posts ``/twilio/status`` as it progresses and streams to ``/twilio/media``. Its report is opened
here, under the SID Twilio returns, so those handlers find it as an ``outbound-api`` call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

from aiohttp import web

from bots.base import CallContext
from runtime.app_state import STATE, ServerState
from runtime.compliance import CALLING_HOURS, next_calling_window, within_calling_hours
from runtime.config import BOT_NAMES
from runtime.report import AmdResult, CallReport
from runtime.web_auth import authorised, verified_form
from telephony.call_state import CallLifecycle
from telephony.e164 import is_e164
from telephony.rest import TwilioRestError
from telephony.signature import public_url_for

log = logging.getLogger(__name__)

#: ``DetectMessageEnd`` reports a machine only once its greeting has ended (the beep), so the
#: voicemail is recorded whole instead of being spoken over the greeting.
MACHINE_DETECTION = "DetectMessageEnd"
#: Told to a client refused at capacity. With the default 60 calls of a few minutes each, a slot
#: frees every few seconds at full load; asking much sooner mostly fails again.
CAPACITY_RETRY_AFTER_S = 10
#: Told to a client refused while the speech models load (tens of seconds on a small machine).
LOADING_RETRY_AFTER_S = 30
#: A dial counts against ``max_calls`` until its stream starts or it ends. One whose callbacks
#: never came stops counting after this: 30 s of ringing plus queueing and answering, with margin.
PENDING_DIAL_TTL_S = 120.0

AnsweredBy = Literal[
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"
]
#: Verdicts after a machine's greeting has ended: the moment to leave the message.
MACHINE_ENDS = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})
AmdAction = Literal["leave_message", "hang_up"]

_FIELDS = ("bot", "machine_detection", "to")


@dataclass(frozen=True, slots=True, kw_only=True)
class DialRequest:
    """A validated ``POST /api/calls`` body."""

    to: str
    bot: str
    machine_detection: bool


def parse_dial_request(body: object, default_bot: str) -> DialRequest:
    """The request in ``body`` (decoded JSON); ``ValueError`` says what the client got wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; allowed: {list(_FIELDS)}")
    to = body.get("to")
    if not isinstance(to, str) or not is_e164(to):
        raise ValueError("'to' must be a phone number in E.164 form, e.g. +15125550123")
    bot = body.get("bot", default_bot)
    if bot not in BOT_NAMES:
        raise ValueError(f"'bot' must be one of {list(BOT_NAMES)}")
    machine_detection = body.get("machine_detection", True)
    if not isinstance(machine_detection, bool):
        raise ValueError("'machine_detection' must be true or false")
    return DialRequest(to=to, bot=str(bot), machine_detection=machine_detection)


def amd_action(previous: str | None, answered_by: str) -> AmdAction | None:
    """What a verdict asks of the call, given the verdict before it (None: carry on).

    A person (or ``unknown``) gets the bot; ``machine_start`` only says a machine picked up, and
    with ``DetectMessageEnd`` a ``machine_end_*`` follows at the beep. A repeated verdict asks
    nothing, so a callback Twilio delivers twice does not leave the message twice.
    """
    if answered_by in MACHINE_ENDS and previous not in MACHINE_ENDS:
        return "leave_message"
    if answered_by == "fax" and previous != "fax":
        return "hang_up"
    return None


@dataclass
class _Dials:
    """Calls being placed or ringing: they count against ``max_calls`` like live ones, or a
    burst of dials would all be answered into a full server."""

    placing: int = 0
    sids: set[str] = field(default_factory=set)

    def waiting(self, state: ServerState) -> int:
        """Dials not yet connected; forgets those that connected, ended or went quiet."""
        now = time.time()
        self.sids = {sid for sid in self.sids if _connecting(state, sid, now)}
        return self.placing + len(self.sids)


def _connecting(state: ServerState, call_sid: str, now: float) -> bool:
    report = state.reports.get(call_sid)
    return (
        report is not None
        and call_sid not in state.live
        and not report.end_reason
        and not report.lifecycle.status.is_terminal
        and now - report.started_wall < PENDING_DIAL_TTL_S
    )


DIALS = web.AppKey("dials", _Dials)


def add_dial_routes(app: web.Application) -> None:
    """``POST /api/calls`` and ``POST /twilio/amd``."""
    app[DIALS] = _Dials()
    app.router.add_post("/api/calls", dial)
    app.router.add_post("/twilio/amd", amd_callback)


# --- POST /api/calls ----------------------------------------------------------------------------


def _error(status: int, message: str, retry_after_s: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return web.json_response({"error": message}, status=status, headers=headers)


def _refusal(request: web.Request) -> web.Response | None:
    """Why the server cannot place a call now (503), or None."""
    state = request.app[STATE]
    if state.rest is None:
        return _error(503, "dialling is off: Twilio REST is not configured (set TWILIO_ACCOUNT_SID)")
    if not state.settings.dial.caller_id:
        return _error(503, "dialling is off: no caller ID is configured (set LEADLINE_CALLER_ID)")
    if state.engines is None:
        return _error(503, "still loading speech models", LOADING_RETRY_AFTER_S)
    calls = len(state.live) + request.app[DIALS].waiting(state)
    if calls >= state.settings.max_calls:
        log.warning("at capacity, not dialling", extra={"calls": calls})
        return _error(503, f"at capacity: {calls} calls live or connecting", CAPACITY_RETRY_AFTER_S)
    return None


def _outside_calling_hours(state: ServerState, to: str) -> web.Response | None:
    """A 422 when TCPA's calling window is closed where the lead is (and the tenant enforces it),
    saying when it opens; None when the call may be placed."""
    if state.settings.dial.calling_hours != "enforce":
        return None
    now = state.wall_clock()
    default_tz = state.settings.bot_core.persona.timezone
    ok, local = within_calling_hours(to, now, default_tz=default_tz)
    if ok:
        return None
    opens = next_calling_window(to, now, default_tz=default_tz)
    window = "-".join(f"{t:%H:%M}" for t in CALLING_HOURS)
    log.info("outside calling hours, not dialling", extra={"local_time": local})
    body = {
        "error": f"outside calling hours: it is {local} where {to} is; calls are allowed {window} there",
        "lead_local_time": local,
        "retry_at": opens.isoformat(),
    }
    retry_after_s = max(1, round((opens - now).total_seconds()))
    return web.json_response(body, status=422, headers={"Retry-After": str(retry_after_s)})


async def dial(request: web.Request) -> web.Response:
    """``{"to": "+1...", "bot": "lead", "machine_detection": true}`` -> 201 with the call's SID."""
    state = request.app[STATE]
    if not authorised(request):
        return _error(401, "bearer token required")
    try:
        body = await request.json()
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return _error(400, "the body must be JSON")
    try:
        order = parse_dial_request(body, state.settings.starting_bot)
    except ValueError as e:
        return _error(400, str(e))
    refusal = _refusal(request) or _outside_calling_hours(state, order.to)
    if refusal is not None:
        return refusal
    if await state.bots.opted_out(state.settings.tenant, order.to):
        return _error(409, f"{order.to} asked not to be called again (on the tenant's do-not-call list)")
    dials = request.app[DIALS]
    dials.placing += 1  # holds the slot while Twilio answers
    try:
        sid, status = await _place(state, order)
    except TwilioRestError as e:
        return web.json_response({"error": str(e), "retryable": e.retryable}, status=502)
    finally:
        dials.placing -= 1
    dials.sids.add(sid)
    created = {"call_sid": sid, "status": status, "to": order.to}
    return web.json_response(created, status=201, headers={"Location": f"/api/calls/{sid}"})


async def _place(state: ServerState, order: DialRequest) -> tuple[str, str]:
    """Create the call at Twilio and open its report; (SID, REST status)."""
    assert state.rest is not None
    settings = state.settings
    detect = order.machine_detection
    info = await state.rest.create_call(
        to=order.to,
        from_=settings.dial.caller_id,
        url=public_url_for(settings.public_url, "/twilio/voice"),
        status_callback=public_url_for(settings.public_url, "/twilio/status"),
        machine_detection=MACHINE_DETECTION if detect else None,
        async_amd=detect,
        async_amd_status_callback=public_url_for(settings.public_url, "/twilio/amd") if detect else None,
    )
    context = CallContext(
        call_sid=info.sid,
        from_number=settings.dial.caller_id,
        to_number=order.to,
        direction="outbound-api",
        tenant=settings.tenant,
        bot=order.bot,
    )
    report = state.reports.get(info.sid)
    if report is None:
        state.reports.open(CallReport(context, CallLifecycle()))
    else:  # a status callback came in before Twilio's answer and opened it
        report.context = context
    log.info(
        "call dialled", extra={"call_sid": info.sid, "pii.to": order.to, "machine_detection": order.machine_detection}
    )
    return info.sid, info.status


# --- POST /twilio/amd ---------------------------------------------------------------------------


async def amd_callback(request: web.Request) -> web.Response:
    """Twilio's ``AsyncAmdStatusCallback``: record the verdict and act on it (204 always once
    signed: Twilio does nothing with the answer, and an error would only fill its debugger)."""
    state = request.app[STATE]
    form = await verified_form(request)
    call_sid, answered_by = form.get("CallSid", ""), form.get("AnsweredBy", "")
    if not call_sid or not answered_by:
        raise web.HTTPBadRequest(text="CallSid and AnsweredBy are required")
    report = state.reports.get(call_sid)
    if report is None:
        log.warning("AMD result for an unknown call ignored", extra={"call_sid": call_sid})
        return web.Response(status=204)
    previous = report.amd.answered_by if report.amd is not None else None
    if answered_by != previous:
        report.amd = AmdResult(
            answered_by=answered_by, duration_ms=_ms(form.get("MachineDetectionDuration")), at=time.time()
        )
    extra = {"call_sid": call_sid, "answered_by": answered_by, "repeat": answered_by == previous}
    if answered_by not in get_args(AnsweredBy):
        log.warning("unknown AnsweredBy value; the bot carries on", extra=extra)
    else:
        log.info("answering machine detection result", extra=extra)
    action = amd_action(previous, answered_by)
    if action == "leave_message":
        _leave_voicemail(state, call_sid)
    elif action == "hang_up" and not report.lifecycle.status.is_terminal:
        state.spawn(_hang_up(state, call_sid))
    return web.Response(status=204)


def _ms(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


def _leave_voicemail(state: ServerState, call_sid: str) -> None:
    session = state.live.get(call_sid)
    if session is None:
        # DetectMessageEnd decides at the beep, seconds after the stream starts; a stream not
        # (or no longer) live has no one to speak.
        log.warning("machine answered but the call has no live stream: no voicemail left", extra={"call_sid": call_sid})
        return
    session.leave_message(state.settings.dial.voicemail_text)


async def _hang_up(state: ServerState, call_sid: str) -> None:
    """A fax answered: nothing to say to it. In the background, so Twilio's callback is
    answered at once; idempotent (a call that has ended is fine)."""
    if state.rest is None:
        log.warning("fax answered but Twilio REST is not configured: cannot hang up", extra={"call_sid": call_sid})
        return
    try:
        await state.rest.hang_up(call_sid)
    except TwilioRestError as e:
        log.warning("REST hang-up of a fax call failed", extra={"call_sid": call_sid, "error": str(e)})
