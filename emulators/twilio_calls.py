"""The Twilio emulator's Calls resource: what a call holds, its JSON, and the REST requests' rules.

Shapes follow protocols.md §1.7 and the SDK's ``CallInstance``: snake_case JSON, RFC 2822
dates, ``duration`` and ``price`` as strings, errors as ``{code, message, more_info, status}``.
Validation error codes are the documented ones where known (21201, 21213, 20003, 20404); the
rest use Twilio's generic invalid-parameter code 20001.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from multidict import MultiMapping

from telephony.call_state import CallStatus
from telephony.signature import compute_signature

log = logging.getLogger("emulators.twilio")

API_VERSION = "2010-04-01"
#: The REST status of a call Twilio has not started dialling (``initiated`` exists only in callbacks).
QUEUED = "queued"
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
#: Twilio sends only ``completed`` when ``StatusCallbackEvent`` is not given (protocols.md §1.5).
DEFAULT_STATUS_EVENTS = ("completed",)
MACHINE_DETECTION_MODES = ("Enable", "DetectMessageEnd")
#: Twilio gives up on a webhook after 15 s.
WEBHOOK_TIMEOUT_S = 15.0
#: Twilio's ring timeout when ``Timeout`` is not given, and its maximum.
DEFAULT_RING_TIMEOUT_S = 60
MAX_RING_TIMEOUT_S = 600
#: Twilio's limit on an inline ``Twiml`` document.
MAX_TWIML_CHARS = 4000
#: The call's subresources, by the path each has under the call (as the real resource lists them).
_SUBRESOURCES = {
    "feedback": "Feedback",
    "notifications": "Notifications",
    "recordings": "Recordings",
    "streams": "Streams",
    "payments": "Payments",
    "siprec": "Siprec",
    "events": "Events",
    "transcriptions": "Transcriptions",
    "user_defined_message_subscriptions": "UserDefinedMessageSubscriptions",
    "user_defined_messages": "UserDefinedMessages",
}


class TwilioApiError(Exception):
    """An error response in Twilio's shape."""

    def __init__(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return web.json_response(body, status=self.status, headers=self.headers)


def authenticate_error() -> TwilioApiError:
    return TwilioApiError(401, 20003, "Authenticate")


def not_found(path: str) -> TwilioApiError:
    return TwilioApiError(404, 20404, f"The requested resource {path} was not found")


def invalid(message: str) -> TwilioApiError:
    return TwilioApiError(400, 20001, message)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime | None) -> str | None:
    return None if moment is None else format_datetime(moment.astimezone(UTC))


@dataclass(frozen=True, slots=True, kw_only=True)
class Instructions:
    """Where a call's TwiML comes from: fetched from ``url`` or given inline."""

    url: str | None = None
    method: Literal["GET", "POST"] = "POST"
    twiml: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRequest:
    """A validated ``POST .../Calls.json``."""

    to: str
    from_: str
    instructions: Instructions
    status_callback: str | None
    status_callback_events: frozenset[str]
    machine_detection: str | None
    async_amd: bool
    async_amd_status_callback: str | None
    ring_timeout_s: int
    #: a conference participant's ``AmdStatusCallback``. The emulator's reading of Twilio's docs:
    #: AMD holds the leg out of the room until it has decided, then posts the verdict here.
    amd_status_callback: str | None = None


CallbackKind = Literal["status", "amd", "voice", "action", "redirect", "conference", "announce"]


@dataclass(slots=True, kw_only=True)
class Callback:
    """One request the emulator made to the application, and how it was answered."""

    kind: CallbackKind
    url: str
    params: dict[str, str]
    #: HTTP status of the answer; 0 when the request failed or timed out
    http_status: int = 0


async def send_signed(
    http: aiohttp.ClientSession, auth_token: str, record: Callback, method: Literal["GET", "POST"] = "POST"
) -> tuple[int, str]:
    """Make ``record``'s request signed as Twilio signs it (protocols.md §1.6) and note its HTTP
    status; the status and body, or (0, "") if it failed."""
    url, params = record.url, record.params
    if method == "GET":
        url = url + ("&" if "?" in url else "?") + urlencode(params)
        params = {}
    headers = {"X-Twilio-Signature": compute_signature(auth_token, url, params)}
    try:
        async with asyncio.timeout(WEBHOOK_TIMEOUT_S):
            async with http.request(method, url, data=params or None, headers=headers) as response:
                record.http_status = response.status
                return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as e:
        extra = {"call_sid": record.params.get("CallSid"), "kind": record.kind, "error": repr(e)}
        log.warning("webhook request failed", extra=extra)
        return 0, ""


@dataclass(slots=True, kw_only=True)
class EmulatedCall:
    """One call: the REST resource plus what the emulator did with it."""

    sid: str
    account_sid: str
    request: CreateRequest
    status: str = QUEUED
    answered_by: str | None = None
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    start_time: datetime | None = None
    end_time: datetime | None = None
    #: every TwiML document the call executed, in order
    twiml_executed: list[str] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    #: what the callee heard and measured, one entry per ``<Connect><Stream>`` (``CallResult.to_dict``)
    streams: list[dict[str, Any]] = field(default_factory=list)
    #: why a voice webhook or TwiML could not be used (Twilio reports these as notifications)
    errors: list[str] = field(default_factory=list)

    @property
    def is_live(self) -> bool:
        return not CallStatus(self.status).is_terminal

    def set_status(self, status: str) -> None:
        now = datetime.now(UTC)
        self.status = status
        self.date_updated = now
        if status == CallStatus.IN_PROGRESS:
            self.start_time = now
        elif CallStatus(status).is_terminal:
            self.end_time = now

    @property
    def duration_s(self) -> int | None:
        if self.end_time is None:
            return None
        if self.start_time is None:
            return 0
        return round((self.end_time - self.start_time).total_seconds())

    def resource(self) -> dict[str, Any]:
        """The call as ``GET .../Calls/{sid}.json`` returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        duration = self.duration_s
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "to": self.request.to,
            "to_formatted": _formatted(self.request.to),
            "from": self.request.from_,
            "from_formatted": _formatted(self.request.from_),
            "phone_number_sid": None,
            "status": self.status,
            "direction": "outbound-api",
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "annotation": None,
            "caller_name": None,
            "forwarded_from": None,
            "group_sid": None,
            "trunk_sid": None,
            "queue_time": "0",
            "start_time": rfc2822(self.start_time),
            "end_time": rfc2822(self.end_time),
            "duration": None if duration is None else str(duration),
            "price": None,
            "price_unit": "USD",
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "uri": uri + ".json",
            "subresource_uris": {
                **{name: f"{uri}/{path}.json" for name, path in _SUBRESOURCES.items()},
                "feedback_summaries": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/FeedbackSummary.json",
            },
        }

    def emulator_view(self) -> dict[str, Any]:
        """The resource plus what only the emulator knows (``GET /_emulator/twilio/calls/{sid}``)."""
        return {
            "resource": self.resource(),
            "twiml_executed": list(self.twiml_executed),
            "callbacks": [
                {"kind": c.kind, "url": c.url, "params": c.params, "http_status": c.http_status} for c in self.callbacks
            ],
            "streams": list(self.streams),
            "errors": list(self.errors),
        }


def _formatted(number: str) -> str:
    """Twilio's display form of a North American number, ``(512) 555-0100``; others as given."""
    digits = number[2:]
    if number.startswith("+1") and len(digits) == 10 and digits.isdigit():
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return number


def parse_create(form: MultiMapping[str]) -> CreateRequest:
    """Validate a create request as Twilio does; raises ``TwilioApiError``."""
    to, from_ = form.get("To", ""), form.get("From", "")
    if not to:
        raise TwilioApiError(400, 21201, "No 'To' number is specified")
    if not from_:
        raise TwilioApiError(400, 21213, "No 'From' number is specified")
    url, twiml = form.get("Url"), form.get("Twiml")
    if not url and not twiml:
        raise invalid("Either Url, Twiml or ApplicationSid is required")
    events = form.getall("StatusCallbackEvent", [])
    unknown = set(events) - set(STATUS_EVENTS)
    if unknown:
        raise invalid(f"StatusCallbackEvent must be one of {STATUS_EVENTS}, got {sorted(unknown)}")
    machine_detection = form.get("MachineDetection")
    if machine_detection is not None and machine_detection not in MACHINE_DETECTION_MODES:
        raise invalid(f"MachineDetection must be one of {MACHINE_DETECTION_MODES}")
    return CreateRequest(
        to=to,
        from_=from_,
        # On create, Twiml is ignored when Url is also given (protocols.md §1.7).
        instructions=_instructions(form, url, None if url else twiml),
        status_callback=form.get("StatusCallback") or None,
        status_callback_events=frozenset(events or DEFAULT_STATUS_EVENTS),
        machine_detection=machine_detection,
        async_amd=form.get("AsyncAmd", "false").lower() == "true",
        async_amd_status_callback=form.get("AsyncAmdStatusCallback") or None,
        ring_timeout_s=_ring_timeout(form.get("Timeout")),
    )


def _ring_timeout(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_RING_TIMEOUT_S
    try:
        value = int(raw)
    except ValueError:
        raise invalid("Timeout must be an integer") from None
    if not 0 < value <= MAX_RING_TIMEOUT_S:
        raise invalid(f"Timeout must be between 1 and {MAX_RING_TIMEOUT_S}")
    return value


def _instructions(form: MultiMapping[str], url: str | None, twiml: str | None) -> Instructions:
    method = form.get("Method", "POST").upper()
    if method not in ("GET", "POST"):
        raise invalid("Method must be GET or POST")
    if twiml is not None and len(twiml) > MAX_TWIML_CHARS:
        raise invalid(f"Twiml must be at most {MAX_TWIML_CHARS} characters")
    return Instructions(url=url or None, method="GET" if method == "GET" else "POST", twiml=twiml)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateRequest:
    """A validated ``POST .../Calls/{sid}.json``: end the call, or give it new instructions."""

    status: Literal["completed", "canceled"] | None
    instructions: Instructions | None


def parse_update(form: MultiMapping[str]) -> UpdateRequest:
    url, twiml, status = form.get("Url"), form.get("Twiml"), form.get("Status")
    if url and twiml:
        raise invalid("Url and Twiml are mutually exclusive")
    if status is not None and status not in ("completed", "canceled"):
        raise invalid("Status must be completed or canceled")
    if status is None and not url and not twiml:
        raise invalid("Nothing to update: give Status, Url or Twiml")
    instructions = _instructions(form, url, twiml) if url or twiml else None
    if status == "completed":
        return UpdateRequest(status="completed", instructions=instructions)
    return UpdateRequest(status="canceled" if status else None, instructions=instructions)
