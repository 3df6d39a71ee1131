"""Twilio's REST API for calls: place an outbound call, hang up, redirect, fetch (protocols.md §1.7),
and conference participants: add a phone to a room, hold, brief, fetch (§1.8).

The official SDK does the wire work (parameter names, repeated ``StatusCallbackEvent``, error
parsing) over an aiohttp transport of ours; ``base_url`` points it at the Twilio emulator in
tests, the demo and the benchmarks. Every SDK or transport failure leaves this module as one
``TwilioRestError`` saying whether retrying may help.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.response import Response
from twilio.rest import Client

log = logging.getLogger(__name__)

TWILIO_API_BASE_URL = "https://api.twilio.com"
#: Twilio answers REST requests in a few hundred ms; ten seconds without an answer is an outage.
DEFAULT_TIMEOUT_S = 10.0
#: Every call-progress event: the call's lifecycle is driven by them (telephony.call_state).
ALL_STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
#: Twilio's code for a resource that does not exist; for a call, also one that has ended.
NOT_FOUND_CODE = 20404
MACHINE_DETECTION_MODES = ("Enable", "DetectMessageEnd")
#: Twilio's bounds on a participant leg's ``Timeout`` (ring time, seconds).
PARTICIPANT_TIMEOUT_RANGE = (5, 600)


class TwilioRestError(Exception):
    """A Twilio REST request failed.

    ``status`` is the HTTP status (None when no response came back), ``code`` Twilio's error
    code (https://www.twilio.com/docs/errors/<code>). ``retryable`` is true for 408, 429, 5xx,
    timeouts and dropped connections: the same request may succeed later. Retrying a
    ``create_call`` whose response was lost may place the call twice.
    """

    def __init__(self, status: int | None, code: int | None, message: str, *, retryable: bool) -> None:
        super().__init__(f"Twilio REST error (HTTP {status}, code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    """A Call resource as Twilio reports it; ``status`` is the REST status (never ``initiated``)."""

    sid: str
    status: str
    direction: str
    to: str
    from_: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantInfo:
    """A conference Participant as Twilio reports it; ``call_sid`` is the participant's own leg."""

    call_sid: str
    conference_sid: str
    label: str | None
    status: str
    hold: bool
    muted: bool
    end_conference_on_exit: bool


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


#: What a request can fail with: Twilio's error (legacy or RFC 9457 shape), the transport, or a
#: body that is not JSON (``json.JSONDecodeError`` is a ``ValueError``).
_FAILURES = (TwilioRestException, TwilioServiceException, aiohttp.ClientError, TimeoutError, OSError, ValueError)


def _error_from(e: Exception) -> TwilioRestError:
    if isinstance(e, TwilioRestException):
        return TwilioRestError(e.status, e.code, str(e.msg), retryable=_retryable(e.status))
    if isinstance(e, TwilioServiceException):
        return TwilioRestError(e.status, e.code, str(e.detail or e.title), retryable=_retryable(e.status))
    if isinstance(e, aiohttp.ClientError | TimeoutError | OSError):
        return TwilioRestError(None, None, f"no response from Twilio: {e!r}", retryable=True)
    # A body that is not JSON cannot tell us whether the request took effect.
    return TwilioRestError(None, None, f"unreadable response from Twilio: {e!r}", retryable=False)


def _info(call: Any) -> CallInfo:
    return CallInfo(
        sid=str(call.sid),
        status=str(call.status),
        direction=str(call.direction),
        to=str(call.to),
        from_=str(call._from),
    )


def _participant(participant: Any) -> ParticipantInfo:
    return ParticipantInfo(
        call_sid=str(participant.call_sid),
        conference_sid=str(participant.conference_sid),
        label=participant.label,
        status=str(participant.status),
        hold=bool(participant.hold),
        muted=bool(participant.muted),
        end_conference_on_exit=bool(participant.end_conference_on_exit),
    )


class _Transport:
    """The SDK's HTTP client interface (``is_async`` + ``request``) on one aiohttp session.

    Stands in for the SDK's ``AsyncTwilioHttpClient``, which builds ``aiohttp.BasicAuth``
    (deprecated in aiohttp 3.14: a warning on every request) and drops its ``timeout`` on async
    requests, leaving a stalled API call waiting forever.
    """

    is_async = True

    def __init__(self, timeout_s: float) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the SDK passes it by name; the session's timeout applies
        allow_redirects: bool = False,
    ) -> Response:
        """One request; the session's timeout applies (the Calls methods never pass one)."""
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = aiohttp.encode_basic_auth(*auth)
        async with self._session.request(
            method.upper(),
            url,
            params=params,
            data=data,
            headers=sent,
            allow_redirects=allow_redirects,
        ) as response:
            return Response(response.status, await response.text(), response.headers)

    async def close(self) -> None:
        await self._session.close()


class TwilioRest:
    """The Calls and conference Participants resources of one Twilio account, over the official
    SDK's async client.

    Construct it inside the event loop (the SDK's aiohttp session binds to the running loop),
    e.g. in a ``cleanup_ctx``, and ``aclose`` it there.
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str = TWILIO_API_BASE_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("account_sid and auth_token are required")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._http = _Transport(timeout_s)
        client = Client(account_sid, auth_token, http_client=self._http)
        # The SDK also reads TWILIO_EDGE/TWILIO_REGION from os.environ and would then rewrite
        # base_url's host; only runtime/config reads the environment.
        client.edge = client.region = None
        client.api.base_url = base_url.rstrip("/")
        self._calls = client.api.account.calls
        self._conferences = client.api.account.conferences

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        status_callback_events: Sequence[str] = ALL_STATUS_EVENTS,
        machine_detection: str | None = None,
        async_amd: bool = False,
        async_amd_status_callback: str | None = None,
        timeout_s: int = 30,
    ) -> CallInfo:
        """Place an outbound call; Twilio requests ``url`` for TwiML once it is answered.

        ``timeout_s`` is how long it rings before ``no-answer`` (Twilio's default of 60 s
        mostly reaches voicemail; 30 s is about five rings). ``machine_detection`` is
        ``Enable`` or ``DetectMessageEnd``; with ``async_amd`` the result is posted to
        ``async_amd_status_callback`` while the call goes on instead of delaying the TwiML.
        """
        params = _amd_params(machine_detection, async_amd, async_amd_status_callback)
        request = self._calls.create_async(
            to=to,
            from_=from_,
            url=url,
            status_callback=status_callback,
            status_callback_event=list(status_callback_events),
            timeout=timeout_s,
            **params,
        )
        info = _info(await self._request("create_call", None, request))
        log.info(
            "outbound call created",
            extra={"call_sid": info.sid, "call_status": info.status, "pii.to": to, "pii.from": from_},
        )
        return info

    async def hang_up(self, call_sid: str) -> bool:
        """End a call, ringing or in progress; False if it had already ended (or never existed).

        Twilio answers 404 with code 20404 for a call that is no longer live, so a hang-up
        racing the callee's own is not an error.
        """
        try:
            await self._request("hang_up", call_sid, self._calls(call_sid).update_async(status="completed"))
        except TwilioRestError as e:
            if e.status == 404 and e.code == NOT_FOUND_CODE:
                log.info("call already ended", extra={"call_sid": call_sid})
                return False
            raise
        log.info("call hung up", extra={"call_sid": call_sid})
        return True

    async def update_twiml(self, call_sid: str, twiml: str) -> CallInfo:
        """Redirect a live call to new TwiML; a running ``<Connect><Stream>`` gets ``stop``."""
        call = await self._request("update_twiml", call_sid, self._calls(call_sid).update_async(twiml=twiml))
        log.info("call redirected", extra={"call_sid": call_sid})
        return _info(call)

    async def fetch_call(self, call_sid: str) -> CallInfo:
        return _info(await self._request("fetch_call", call_sid, self._calls(call_sid).fetch_async()))

    async def add_participant(
        self,
        conference_sid: str,
        *,
        to: str,
        from_: str,
        label: str,
        status_callback: str,
        status_callback_events: Sequence[str] = ALL_STATUS_EVENTS,
        timeout_s: int = 30,
        machine_detection: str | None = None,
        machine_detection_timeout_s: int | None = None,
        amd_status_callback: str | None = None,
    ) -> ParticipantInfo:
        """Dial ``to`` into a conference; the leg joins it when answered.

        Joins are silent (``Beep=false``) and do not end the conference on leaving; change that
        with ``update_participant`` once the participant should. ``amd_status_callback`` gets
        the ``AnsweredBy`` verdict when ``machine_detection`` is on.
        """
        params = _participant_params(timeout_s, machine_detection, machine_detection_timeout_s, amd_status_callback)
        request = self._conferences(conference_sid).participants.create_async(
            to=to,
            from_=from_,
            label=label,
            status_callback=status_callback,
            status_callback_event=list(status_callback_events),
            timeout=timeout_s,
            beep="false",
            end_conference_on_exit=False,
            **params,
        )
        info = _participant(await self._request("add_participant", None, request))
        log.info(
            "participant added",
            extra={"call_sid": info.call_sid, "conference_sid": conference_sid, "label": label, "pii.to": to},
        )
        return info

    async def update_participant(
        self,
        conference_sid: str,
        call_sid: str,
        *,
        hold: bool | None = None,
        announce_url: str | None = None,
        end_conference_on_exit: bool | None = None,
    ) -> ParticipantInfo:
        """Hold or release a participant, play it ``announce_url`` (TwiML or audio, heard by it
        alone), or make its leaving end the conference. ``call_sid`` may also be its label."""
        changes: dict[str, object] = {
            name: value
            for name, value in (
                ("hold", hold),
                ("announce_url", announce_url),
                ("end_conference_on_exit", end_conference_on_exit),
            )
            if value is not None
        }
        if not changes:
            raise ValueError("nothing to update")
        request = self._conferences(conference_sid).participants(call_sid).update_async(**changes)
        info = _participant(await self._request("update_participant", call_sid, request))
        log.info(
            "participant updated",
            extra={"call_sid": call_sid, "conference_sid": conference_sid, "changes": sorted(changes)},
        )
        return info

    async def fetch_participant(self, conference_sid: str, call_sid: str) -> ParticipantInfo:
        request = self._conferences(conference_sid).participants(call_sid).fetch_async()
        return _participant(await self._request("fetch_participant", call_sid, request))

    async def aclose(self) -> None:
        await self._http.close()

    async def _request(self, operation: str, call_sid: str | None, request: Awaitable[Any]) -> Any:
        """Await one SDK request, translating every failure once."""
        try:
            return await request
        except _FAILURES as e:
            error = _error_from(e)
            log.warning(
                "twilio request failed",
                extra={
                    "operation": operation,
                    "call_sid": call_sid,
                    "http_status": error.status,
                    "code": error.code,
                    "retryable": error.retryable,
                },
            )
            raise error from e


def _participant_params(
    timeout_s: int, machine_detection: str | None, machine_detection_timeout_s: int | None, callback: str | None
) -> dict[str, str | int]:
    """The ring and AMD parameters of a participant leg; mistakes are ours, so they raise ValueError."""
    low, high = PARTICIPANT_TIMEOUT_RANGE
    if not low <= timeout_s <= high:
        raise ValueError(f"timeout_s must be within {PARTICIPANT_TIMEOUT_RANGE}")
    if machine_detection is None:
        if machine_detection_timeout_s is not None or callback is not None:
            raise ValueError("machine detection settings need machine_detection")
        return {}
    if machine_detection not in MACHINE_DETECTION_MODES:
        raise ValueError(f"machine_detection must be one of {MACHINE_DETECTION_MODES}")
    params: dict[str, str | int] = {"machine_detection": machine_detection}
    if machine_detection_timeout_s is not None:
        params["machine_detection_timeout"] = machine_detection_timeout_s
    if callback is not None:
        params["amd_status_callback"] = callback
    return params


def _amd_params(machine_detection: str | None, async_amd: bool, callback: str | None) -> dict[str, str]:
    """The AMD parameters of a create request; mistakes are ours, so they raise ValueError."""
    if machine_detection is None:
        if async_amd or callback is not None:
            raise ValueError("async_amd and async_amd_status_callback need machine_detection")
        return {}
    if machine_detection not in MACHINE_DETECTION_MODES:
        raise ValueError(f"machine_detection must be one of {MACHINE_DETECTION_MODES}")
    if callback is not None and not async_amd:
        raise ValueError("async_amd_status_callback is only called with async_amd")
    params = {"machine_detection": machine_detection, "async_amd": "true" if async_amd else "false"}
    if callback is not None:
        params["async_amd_status_callback"] = callback
    return params
