"""The Twilio emulator playing one outbound call, from ringing to the ``completed`` callback.

Twilio's side (protocols.md §1.2-§1.8): signed status callbacks for the requested events with a
``SequenceNumber`` from 0, answering-machine detection (blocking, or posted to
``AsyncAmdStatusCallback``), the signed voice webhook on answer, and the TwiML it returns. A
``<Connect><Stream>`` is played by the simulated callee (``telephony.simulator``), so the
application's server sees exactly what Twilio and a person would send. REST updates interrupt
whatever verb is running: the stream gets ``stop`` and the new TwiML runs, or the call ends.

``<Dial><Conference>`` seats the call in a room (``emulators.twilio_conference``) until it is
redirected, hangs up, or the room ends; then the call goes on to the next verb.

Not emulated: ``FallbackUrl``, ``ApplicationSid``, recordings, other ``<Dial>`` nouns,
``<Say>``/``<Gather>`` and other verbs beyond ``<Connect><Stream>``, ``<Pause>``, ``<Redirect>``
and ``<Hangup>``: those are recorded and hold the call until the REST API ends or redirects it,
or the callee hangs up after ``max_duration_s``.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal, get_args
from urllib.parse import urlsplit

import aiohttp

from emulators.twilio_calls import (
    API_VERSION,
    WEBHOOK_TIMEOUT_S,
    Callback,
    CallbackKind,
    EmulatedCall,
    Instructions,
    send_signed,
)
from emulators.twilio_conference import ConferenceRooms, parse_seat
from runtime.speech import TextToSpeech
from runtime.tts import ScriptedTts
from telephony.call_state import CallStatus
from telephony.simulator import (
    HOME_BUYER_SCRIPT,
    CallerScript,
    CallerTiming,
    SimulatedCallOptions,
    run_simulated_stream,
)
from telephony.twiml import StreamInstruction, parse_connect_stream

log = logging.getLogger("emulators.twilio")

Outcome = Literal["answer", "no-answer", "busy", "failed"]
AnsweredBy = Literal[
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax", "unknown"
]
#: ``<Pause>`` without ``length`` pauses one second.
DEFAULT_PAUSE_S = 1.0


@dataclass(frozen=True, kw_only=True)
class CalleeOptions:
    """Who picks up at the dialled number, and how."""

    outcome: Outcome = "answer"
    #: time from ``ringing`` to the callee answering (or the line reporting busy/failed); a
    #: person picks up within a couple of rings. Beyond the call's ``Timeout`` it is no-answer.
    ring_s: float = 3.0
    #: what answering-machine detection reports when the call asked for it
    answered_by: AnsweredBy = "human"
    #: ``MachineDetectionDuration``: AMD needs a few seconds of the callee's audio
    amd_duration_ms: int = 2500
    #: a home buyer, the lead an outbound qualification call reaches
    script: CallerScript = HOME_BUYER_SCRIPT
    #: what the callee says on the call's later streams (the caller back with the bot after a
    #: failed transfer), one script per stream; past the last, ``script`` again
    later_scripts: tuple[CallerScript, ...] = ()
    timing: CallerTiming = field(default_factory=CallerTiming)
    #: renders the callee's lines; the scripted voice needs no model
    tts: TextToSpeech = field(default_factory=ScriptedTts)
    #: the callee hangs up a stream or a held verb after this long, so no call runs forever
    max_duration_s: float = 120.0
    #: makes the stream's SIDs reproducible; None draws fresh ones
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in get_args(Outcome):
            raise ValueError(f"outcome must be one of {get_args(Outcome)}")
        if self.answered_by not in get_args(AnsweredBy):
            raise ValueError(f"answered_by must be one of {get_args(AnsweredBy)}")
        if self.ring_s < 0 or self.amd_duration_ms < 0 or self.max_duration_s <= 0:
            raise ValueError("ring_s and amd_duration_ms must be >= 0 and max_duration_s > 0")


class _Hangup:
    """The call is over: the callee hung up, ``<Hangup/>`` ran, or the TwiML ran out."""


_HANGUP = _Hangup()


class CallFlow:
    """One outbound call's life at Twilio, driven by its callee and by REST updates."""

    def __init__(
        self,
        call: EmulatedCall,
        callee: CalleeOptions,
        *,
        auth_token: str,
        http: aiohttp.ClientSession,
        rooms: ConferenceRooms,
    ) -> None:
        self.call = call
        self._callee = callee
        self._auth_token = auth_token
        self._http = http
        self._rooms = rooms
        self._instructions = call.request.instructions
        self._interrupt = asyncio.Event()
        self._redirect: Instructions | None = None
        self._sequence = 0
        self._amd: asyncio.Task[None] | None = None
        #: set once the call has ended and its last callback was delivered
        self.finished = asyncio.Event()

    # --- REST updates -------------------------------------------------------------------

    def end(self, status: Literal["completed", "canceled"]) -> None:
        """``Status=completed|canceled``: ``canceled`` only stops a call not yet answered."""
        if self.call.status in (CallStatus.QUEUED, CallStatus.RINGING):
            self.call.set_status(CallStatus.CANCELED)
        elif status == "completed":
            self.call.set_status(CallStatus.COMPLETED)
        else:
            return
        self._interrupt.set()

    def redirect(self, instructions: Instructions) -> None:
        """New ``Twiml``/``Url``: replaces the running verb, or the TwiML fetched on answer."""
        if self.call.status == CallStatus.IN_PROGRESS:
            self._redirect = instructions
            self._interrupt.set()
        else:
            self._instructions = instructions

    # --- the call -------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if await self._ring():
                await self._converse()
            self._end(CallStatus.COMPLETED)
            await self._status_callback("completed")
        finally:
            if self._amd is not None:
                self._amd.cancel()
                await asyncio.gather(self._amd, return_exceptions=True)
            self.finished.set()
            log.info("emulated call ended", extra={"call_sid": self.call.sid, "call_status": self.call.status})

    async def _ring(self) -> bool:
        """Dial the callee; True once answered. A REST cancel ends it at any await."""
        await self._status_callback("initiated")
        outcome, timeout_s = self._callee.outcome, self.call.request.ring_timeout_s
        if outcome in ("busy", "failed"):
            if not await self._wait(self._callee.ring_s):
                self._end(CallStatus.BUSY if outcome == "busy" else CallStatus.FAILED)
            return False
        if not self.call.is_live:
            return False
        self.call.set_status(CallStatus.RINGING)
        await self._status_callback("ringing")
        answers = outcome == "answer" and self._callee.ring_s < timeout_s
        if await self._wait(self._callee.ring_s if answers else timeout_s):
            return False
        if not answers:
            self._end(CallStatus.NO_ANSWER)
            return False
        self.call.set_status(CallStatus.IN_PROGRESS)
        return True

    async def _converse(self) -> None:
        await self._status_callback("answered")
        await self._detect_machine()
        document = await self._fetch("voice", self._instructions) if self.call.is_live else None
        while document is not None and self.call.is_live:
            document = await self._execute(document)

    async def _detect_machine(self) -> None:
        """AMD: in the background (``AsyncAmd``), or holding the TwiML until it has decided (a
        conference participant's verdict is then also posted to its ``AmdStatusCallback``)."""
        request = self.call.request
        if request.machine_detection is None:
            return
        if request.async_amd:
            self._amd = asyncio.create_task(self._async_amd(), name=f"twilio-amd-{self.call.sid}")
        elif not await self._wait(self._callee.amd_duration_ms / 1000):
            self.call.answered_by = self._callee.answered_by
            await self._report_amd(request.amd_status_callback)

    async def _async_amd(self) -> None:
        await asyncio.sleep(self._callee.amd_duration_ms / 1000)
        self.call.answered_by = self._callee.answered_by
        await self._report_amd(self.call.request.async_amd_status_callback)

    async def _report_amd(self, url: str | None) -> None:
        if url is not None and self.call.is_live:
            params = {
                "CallSid": self.call.sid,
                "AccountSid": self.call.account_sid,
                "AnsweredBy": self._callee.answered_by,
                "MachineDetectionDuration": str(self._callee.amd_duration_ms),
            }
            await self._send("amd", url, params)

    def _end(self, status: CallStatus) -> None:
        if self.call.is_live:
            self.call.set_status(status)

    async def _wait(self, seconds: float) -> bool:
        """Sleep, unless a REST update comes first; True if one did."""
        try:
            async with asyncio.timeout(seconds):
                await self._interrupt.wait()
        except TimeoutError:
            return False
        return True

    # --- TwiML ----------------------------------------------------------------------------

    async def _execute(self, document: str) -> str | None:
        """Run a TwiML document; returns the next document, or None when the call is over."""
        self.call.twiml_executed.append(document)
        try:
            verbs = _verbs(document)
        except ValueError as e:
            # Twilio's "application error" (12100): it apologises and hangs up.
            self.call.errors.append(f"unusable TwiML: {e}")
            return None
        for verb in verbs:
            outcome = await self._verb(verb)
            if not self.call.is_live or outcome is _HANGUP:
                return None
            if self._interrupt.is_set():
                self._interrupt.clear()
                redirect, self._redirect = self._redirect, None
                return await self._fetch("redirect", redirect)
            if isinstance(outcome, str):
                return outcome
        return None  # out of verbs: Twilio hangs up

    async def _verb(self, verb: ET.Element) -> str | _Hangup | None:
        """Run one verb: the next document, ``_HANGUP``, or None to go on to the next verb."""
        if verb.tag == "Hangup":
            return _HANGUP
        if verb.tag == "Connect" and verb.find("Stream") is not None:
            return await self._connect(verb)
        if verb.tag == "Dial" and verb.find("Conference") is not None:
            return await self._conference(verb)
        if verb.tag == "Redirect" and verb.text:
            return await self._fetch("redirect", Instructions(url=verb.text.strip(), method=_method(verb)))
        seconds = _pause_s(verb) if verb.tag == "Pause" else self._callee.max_duration_s
        interrupted = await self._wait(seconds)
        return None if interrupted or verb.tag == "Pause" else _HANGUP

    async def _connect(self, verb: ET.Element) -> str | _Hangup | None:
        """``<Connect><Stream>``: blocks until the stream ends, then ``action`` or the next verb."""
        try:
            instruction = parse_connect_stream(f"<Response>{ET.tostring(verb, encoding='unicode')}</Response>")
            reason = await self._stream(instruction)
        except ValueError as e:
            self.call.errors.append(f"stream not started: {e}")
            reason = "error"
        if reason in ("script_finished", "caller_hung_up", "max_duration"):
            return _HANGUP  # the callee hung up
        action = verb.get("action")
        if action and reason != "ended_by_twilio":
            return await self._fetch("action", Instructions(url=action, method=_method(verb)))
        return None

    async def _conference(self, dial: ET.Element) -> _Hangup | None:
        """``<Dial><Conference>``: in the room until redirected, hung up or the room ends."""
        noun = dial.find("Conference")
        assert noun is not None, "_verb checked it"
        try:
            room = self._rooms.room((noun.text or "").strip())
            participant = room.join(self.call, parse_seat(noun))
        except ValueError as e:
            self.call.errors.append(f"conference not joined: {e}")
            return _HANGUP
        left = await self._in_room(participant.removed)
        if left == "removed":
            return None  # the room ended: on to the verb after <Dial>
        hung_up = left == "max_duration" or not self.call.is_live
        room.leave(
            self.call.sid,
            reason="participant_hung_up" if hung_up else "participant_updated_via_api",
            call_status=CallStatus.COMPLETED if hung_up else self.call.status,
        )
        return _HANGUP if left == "max_duration" else None

    async def _in_room(self, removed: asyncio.Event) -> Literal["removed", "interrupted", "max_duration"]:
        """Wait for the room to drop the call, a REST update, or the callee to give up."""
        waits = [asyncio.ensure_future(removed.wait()), asyncio.ensure_future(self._interrupt.wait())]
        try:
            done, _ = await asyncio.wait(
                waits, timeout=self._callee.max_duration_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waits:
                waiter.cancel()
        if removed.is_set():
            return "removed"
        return "interrupted" if done else "max_duration"

    def _script_for_stream(self, index: int) -> CallerScript:
        later = self._callee.later_scripts
        return later[index - 1] if 0 < index <= len(later) else self._callee.script

    async def _stream(self, instruction: StreamInstruction) -> str:
        parts = urlsplit(instruction.url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"stream URL must be ws:// or wss://, got {instruction.url!r}")
        callee = self._callee
        options = SimulatedCallOptions(
            # Only the signature key and SIDs matter to a stream; the origin stands in for the
            # public URL the simulator would post inbound webhooks to.
            public_url=f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}",
            auth_token=self._auth_token,
            account_sid=self.call.account_sid,
            from_number=self.call.request.from_,
            to_number=self.call.request.to,
            script=self._script_for_stream(len(self.call.streams)),
            max_duration_s=callee.max_duration_s,
            call_sid=self.call.sid,
            seed=callee.seed,
            timing=callee.timing,
            http_timeout_s=WEBHOOK_TIMEOUT_S,
        )
        result = await run_simulated_stream(
            instruction, options, tts=callee.tts, session=self._http, stop=self._interrupt
        )
        self.call.streams.append(result.to_dict())
        return result.end_reason

    # --- requests to the application ------------------------------------------------------

    async def _fetch(self, kind: Literal["voice", "action", "redirect"], where: Instructions | None) -> str | None:
        """The TwiML of ``where``: inline, or from the signed webhook; None if unusable."""
        if where is None or where.twiml is not None:
            return None if where is None else where.twiml
        assert where.url is not None
        status, body = await self._send(kind, where.url, self._call_params(), where.method)
        if status != 200:
            # No FallbackUrl emulated: Twilio then plays its application error and hangs up.
            self.call.errors.append(f"{kind} webhook answered HTTP {status}")
            return None
        return body

    def _call_params(self, status: str | None = None) -> dict[str, str]:
        """The parameters of every request about this call (protocols.md §1.2)."""
        request = self.call.request
        params = {
            "CallSid": self.call.sid,
            "AccountSid": self.call.account_sid,
            "From": request.from_,
            "To": request.to,
            "Caller": request.from_,
            "Called": request.to,
            "CallStatus": status or self.call.status,
            "Direction": "outbound-api",
            "ApiVersion": API_VERSION,
        }
        if self.call.answered_by is not None:
            params["AnsweredBy"] = self.call.answered_by
        return params

    async def _status_callback(self, event: Literal["initiated", "ringing", "answered", "completed"]) -> None:
        request = self.call.request
        if request.status_callback is None or event not in request.status_callback_events:
            return
        params = self._call_params("initiated" if event == "initiated" else None)
        params |= {
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(self._sequence),
            "Timestamp": format_datetime(datetime.now(UTC)),
        }
        self._sequence += 1
        duration = self.call.duration_s
        if event == "completed" and duration is not None:
            params["CallDuration"] = str(duration)
        await self._send("status", request.status_callback, params)

    async def _send(
        self, kind: CallbackKind, url: str, params: dict[str, str], method: Literal["GET", "POST"] = "POST"
    ) -> tuple[int, str]:
        """A request signed as Twilio signs it, recorded on the call; (0, "") if it failed."""
        record = Callback(kind=kind, url=url, params=params)
        self.call.callbacks.append(record)
        return await send_signed(self._http, self._auth_token, record, method)


def _pause_s(verb: ET.Element) -> float:
    try:
        return max(0.0, float(verb.get("length", DEFAULT_PAUSE_S)))
    except ValueError:
        return DEFAULT_PAUSE_S


def _method(verb: ET.Element) -> Literal["GET", "POST"]:
    return "GET" if verb.get("method", "POST").upper() == "GET" else "POST"


def _verbs(document: str) -> list[ET.Element]:
    try:
        root = ET.fromstring(document)
    except ET.ParseError as e:
        raise ValueError(f"not well-formed XML: {e}") from e
    if root.tag != "Response":
        raise ValueError(f"root is <{root.tag}>, not <Response>")
    return list(root)
