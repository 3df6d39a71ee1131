"""The Twilio emulator's conferences: rooms, participants, hold, announcements and the room's
signed status callbacks (protocols.md §1.8).

A room comes into being when a call runs ``<Dial><Conference>name</Conference></Dial>`` (or the
Participants API names it) and completes when its last participant leaves, or one with
``endConferenceOnExit`` does. Participants added through the API are calls whose TwiML is that
same ``<Dial><Conference>`` (``seat_twiml``), so they ring, answer and run AMD like any call.

The room keeps a ``timeline`` for tests: joins, leaves, holds, announcements and, recomputed at
every change, who hears whom. Two participants hear each other while both are in a started room
and neither is on hold (mute is recorded but not modelled: it only silences one direction).
An announcement is "heard" by the participant it was played to: its ``<Say>`` texts are kept in
``Participant.announcements`` and it lasts as long as the words take at ``say_words_per_s``.

Callback parameters follow Twilio's conference ``statusCallback``: ``ConferenceSid``,
``FriendlyName``, ``StatusCallbackEvent``, ``SequenceNumber``, ``Timestamp``, and for participant
events ``CallSid``, ``ParticipantLabel``, ``Hold``, ``Muted``, ``EndConferenceOnExit``,
``StartConferenceOnEnter``, ``Coaching``; ``participant-leave`` adds ``ParticipantCallStatus`` and
``ReasonParticipantLeft`` (its values, like the announce request's parameters, are from memory
of Twilio's documentation, not a captured payload). They are delivered one at a time, in order;
Twilio's may overtake each other, which their ``SequenceNumber`` reveals.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

import aiohttp
from multidict import MultiMapping
from twilio.twiml.voice_response import Dial, VoiceResponse

from emulators.twilio_calls import (
    API_VERSION,
    DEFAULT_STATUS_EVENTS,
    MACHINE_DETECTION_MODES,
    STATUS_EVENTS,
    Callback,
    EmulatedCall,
    TwilioApiError,
    invalid,
    new_sid,
    rfc2822,
    send_signed,
)

ConferenceStatus = Literal["init", "in-progress", "completed"]
#: ``statusCallbackEvent`` values and the ``StatusCallbackEvent`` names each turns on.
EVENT_GROUPS: dict[str, tuple[str, ...]] = {
    "start": ("conference-start",),
    "end": ("conference-end",),
    "join": ("participant-join",),
    "leave": ("participant-leave",),
    "mute": ("participant-mute", "participant-unmute"),
    "hold": ("participant-hold", "participant-unhold"),
    "modify": ("participant-modify",),
    "speaker": ("participant-speech-start", "participant-speech-stop"),
    "announcement": ("announcement-end", "announcement-fail"),
}
#: Twilio's default when ``statusCallbackEvent`` is not given.
DEFAULT_EVENT_GROUPS = ("start", "end")
#: Twilio's ``<Say>`` voices speak about 150 words a minute.
DEFAULT_SAY_WORDS_PER_S = 2.5
#: ``<Play>`` of a URL the emulator does not download: assume a short clip.
PLAY_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Seat:
    """How a participant sits in the room: ``<Conference>`` attributes or Participants API values."""

    label: str | None = None
    start_conference_on_enter: bool = True
    end_conference_on_exit: bool = False
    muted: bool = False
    #: the room's ``statusCallback``; only the first participant's counts
    status_callback: str | None = None
    status_callback_events: tuple[str, ...] = DEFAULT_EVENT_GROUPS


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value.strip().lower() == "true"


def _event_groups(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_EVENT_GROUPS
    groups = tuple(raw.replace(",", " ").split())
    unknown = set(groups) - EVENT_GROUPS.keys()
    if unknown:
        raise ValueError(f"unknown statusCallbackEvent {sorted(unknown)}")
    return groups


def parse_seat(conference: ET.Element) -> Seat:
    """A ``<Conference>`` noun's attributes; ``ValueError`` for events Twilio does not define."""
    return Seat(
        label=conference.get("participantLabel"),
        start_conference_on_enter=_flag(conference.get("startConferenceOnEnter"), True),
        end_conference_on_exit=_flag(conference.get("endConferenceOnExit"), False),
        muted=_flag(conference.get("muted"), False),
        status_callback=conference.get("statusCallback") or None,
        status_callback_events=_event_groups(conference.get("statusCallbackEvent")),
    )


def seat_twiml(room: str, seat: Seat) -> str:
    """The ``<Dial><Conference>`` a Participants-API leg runs once answered."""
    dial = Dial()
    dial.conference(
        room,
        participant_label=seat.label,
        start_conference_on_enter=seat.start_conference_on_enter,
        end_conference_on_exit=seat.end_conference_on_exit,
        muted=seat.muted,
        status_callback=seat.status_callback,
        status_callback_event=" ".join(seat.status_callback_events),
    )
    return str(VoiceResponse().append(dial).to_xml())


# --- the Participants resource's requests --------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantCreate:
    """A validated ``POST .../Conferences/{ConferenceSid}/Participants.json``."""

    to: str
    from_: str
    seat: Seat
    ring_timeout_s: int
    status_callback: str | None
    status_callback_events: frozenset[str]
    machine_detection: str | None
    amd_status_callback: str | None


def parse_participant_create(form: MultiMapping[str]) -> ParticipantCreate:
    """Validate as Twilio does; raises ``TwilioApiError``."""
    to, from_ = form.get("To", ""), form.get("From", "")
    if not to:
        raise TwilioApiError(400, 21201, "No 'To' number is specified")
    if not from_:
        raise TwilioApiError(400, 21213, "No 'From' number is specified")
    events = form.getall("StatusCallbackEvent", [])
    if set(events) - set(STATUS_EVENTS):
        raise invalid(f"StatusCallbackEvent must be one of {STATUS_EVENTS}")
    machine_detection = form.get("MachineDetection")
    if machine_detection is not None and machine_detection not in MACHINE_DETECTION_MODES:
        raise invalid(f"MachineDetection must be one of {MACHINE_DETECTION_MODES}")
    try:
        groups = _event_groups(" ".join(form.getall("ConferenceStatusCallbackEvent", [])) or None)
    except ValueError as e:
        raise invalid(str(e)) from None
    seat = Seat(
        label=form.get("Label") or None,
        start_conference_on_enter=_flag(form.get("StartConferenceOnEnter"), True),
        end_conference_on_exit=_flag(form.get("EndConferenceOnExit"), False),
        muted=_flag(form.get("Muted"), False),
        status_callback=form.get("ConferenceStatusCallback") or None,
        status_callback_events=groups,
    )
    return ParticipantCreate(
        to=to,
        from_=from_,
        seat=seat,
        ring_timeout_s=_ring_timeout(form.get("Timeout")),
        status_callback=form.get("StatusCallback") or None,
        status_callback_events=frozenset(events or DEFAULT_STATUS_EVENTS),
        machine_detection=machine_detection,
        amd_status_callback=form.get("AmdStatusCallback") or None,
    )


def _ring_timeout(raw: str | None) -> int:
    """Participants ring 5-600 s, 60 by default."""
    try:
        value = 60 if raw is None else int(raw)
    except ValueError:
        raise invalid("Timeout must be an integer") from None
    if not 5 <= value <= 600:
        raise invalid("Timeout must be between 5 and 600")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantUpdate:
    """A validated ``POST .../Participants/{CallSid}.json``; None leaves a setting as it is."""

    hold: bool | None
    muted: bool | None
    end_conference_on_exit: bool | None
    announce_url: str | None
    announce_method: Literal["GET", "POST"]


def parse_participant_update(form: MultiMapping[str]) -> ParticipantUpdate:
    def flag(name: str) -> bool | None:
        raw = form.get(name)
        return None if raw is None else _flag(raw, False)

    method = form.get("AnnounceMethod", "POST").upper()
    if method not in ("GET", "POST"):
        raise invalid("AnnounceMethod must be GET or POST")
    return ParticipantUpdate(
        hold=flag("Hold"),
        muted=flag("Muted"),
        end_conference_on_exit=flag("EndConferenceOnExit"),
        announce_url=form.get("AnnounceUrl") or None,
        announce_method="GET" if method == "GET" else "POST",
    )


# --- rooms ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Moment:
    """One thing that happened in a room; ``at`` is the event loop's clock."""

    at: float
    event: str
    call_sid: str = ""
    detail: str = ""


@dataclass(kw_only=True)
class Participant:
    call_sid: str
    conference_sid: str
    account_sid: str
    label: str | None
    start_conference_on_enter: bool
    end_conference_on_exit: bool
    muted: bool
    hold: bool = False
    #: ``queued`` from the API request until the leg answers and joins, then ``connected``
    status: Literal["queued", "connected"] = "queued"
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: what was announced to this participant alone, in order: ``<Say>`` texts, ``<Play>`` URLs
    announcements: list[str] = field(default_factory=list)
    #: set when the room drops the participant (the room ended)
    removed: asyncio.Event = field(default_factory=asyncio.Event)

    def resource(self) -> dict[str, Any]:
        """The participant as ``GET .../Participants/{CallSid}.json`` returns it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Conferences/{self.conference_sid}/Participants"
        return {
            "account_sid": self.account_sid,
            "call_sid": self.call_sid,
            "label": self.label,
            "call_sid_to_coach": None,
            "coaching": False,
            "conference_sid": self.conference_sid,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "end_conference_on_exit": self.end_conference_on_exit,
            "muted": self.muted,
            "hold": self.hold,
            "start_conference_on_enter": self.start_conference_on_enter,
            "status": self.status,
            "queue_time": "0",
            "uri": f"{uri}/{self.call_sid}.json",
        }

    def sit(self, seat: Seat) -> None:
        """Take the seat's settings on joining (a dialled leg's label is kept)."""
        self.label = seat.label or self.label
        self.start_conference_on_enter = seat.start_conference_on_enter
        self.end_conference_on_exit = seat.end_conference_on_exit
        self.muted = seat.muted


class Conference:
    """One room: its participants, its history, and its status callbacks."""

    def __init__(self, rooms: ConferenceRooms, friendly_name: str) -> None:
        self.sid = new_sid("CF")
        self.friendly_name = friendly_name
        self.status: ConferenceStatus = "init"
        self.participants: dict[str, Participant] = {}
        self.timeline: list[Moment] = []
        self.callbacks: list[Callback] = []
        self.date_created = self.date_updated = datetime.now(UTC)
        self.reason_ended: str | None = None
        self.call_sid_ending: str | None = None
        self._rooms = rooms
        self._status_callback: str | None = None
        self._events: frozenset[str] = frozenset()
        self._sequence = 0
        self._links: set[tuple[str, str]] = set()
        self._delivery: asyncio.Task[None] | None = None

    def find(self, call_sid_or_label: str) -> Participant | None:
        """A participant by CallSid or by label, as the REST API addresses them."""
        found = self.participants.get(call_sid_or_label)
        if found is None:
            found = next((p for p in self.participants.values() if p.label == call_sid_or_label), None)
        return found

    # --- comings and goings ------------------------------------------------------------------

    def expect(self, call: EmulatedCall, seat: Seat) -> Participant:
        """A leg the Participants API is dialling: listed (``queued``) before it answers."""
        participant = self._participant(call.sid, seat)
        self.participants[call.sid] = participant
        return participant

    def forget(self, call_sid: str) -> None:
        """Drop a dialled leg that never joined (busy, no answer, canceled)."""
        participant = self.participants.get(call_sid)
        if participant is not None and participant.status == "queued":
            del self.participants[call_sid]

    def join(self, call: EmulatedCall, seat: Seat) -> Participant:
        if self.status == "completed":
            raise ValueError(f"conference {self.sid} has ended")
        participant = self.participants.get(call.sid) or self._participant(call.sid, seat)
        participant.sit(seat)
        participant.status = "connected"
        self.participants[call.sid] = participant
        if self._status_callback is None and not self.timeline:
            self._status_callback = seat.status_callback
            self._events = frozenset(e for group in seat.status_callback_events for e in EVENT_GROUPS[group])
        self._note("join", call.sid)
        self._post("participant-join", participant)
        if self.status == "init" and participant.start_conference_on_enter:
            self.status = "in-progress"
            self._note("start", call.sid)
            self._post("conference-start")
        self._relink()
        return participant

    def leave(self, call_sid: str, *, reason: str, call_status: str) -> None:
        """The participant's leg left (hung up, redirected, removed); a no-op once it is gone."""
        participant = self.participants.get(call_sid)
        if participant is None or participant.status != "connected":
            return
        del self.participants[call_sid]
        self._note("leave", call_sid, reason)
        self._post("participant-leave", participant, _left(call_status, reason))
        self._relink()
        if participant.end_conference_on_exit:
            self._end("participant-with-end-conference-on-exit-left", participant)
        elif not any(p.status == "connected" for p in self.participants.values()):
            self._end("last-participant-left", participant)

    def _end(self, reason: str, ending: Participant) -> None:
        for other in [p for p in self.participants.values() if p.status == "connected"]:
            del self.participants[other.call_sid]
            self._note("leave", other.call_sid, "conference_ended")
            self._post("participant-leave", other, _left("in-progress", "conference_ended"))
            other.removed.set()
        self.status = "completed"
        self.reason_ended, self.call_sid_ending = reason, ending.call_sid
        self.date_updated = datetime.now(UTC)
        self._note("end", ending.call_sid, reason)
        extra = {"ReasonConferenceEnded": reason, "CallSidEndingConference": ending.call_sid}
        if ending.label:
            extra["ParticipantLabelEndingConference"] = ending.label
        self._post("conference-end", extra=extra)
        self._relink()
        self._rooms.closed(self)

    # --- REST updates ----------------------------------------------------------------------------

    def update(self, participant: Participant, update: ParticipantUpdate) -> None:
        """Apply a Participants update; an announcement plays in the background."""
        if update.end_conference_on_exit is not None:
            participant.end_conference_on_exit = update.end_conference_on_exit
        if update.hold is not None and update.hold != participant.hold:
            participant.hold = update.hold
            self._note("hold" if update.hold else "unhold", participant.call_sid)
            self._post("participant-hold" if update.hold else "participant-unhold", participant)
            self._relink()
        if update.muted is not None and update.muted != participant.muted:
            participant.muted = update.muted
            self._post("participant-mute" if update.muted else "participant-unmute", participant)
        participant.date_updated = datetime.now(UTC)
        if update.announce_url is not None:
            announcement = self._announce(participant, update.announce_url, update.announce_method)
            self._rooms.spawn(announcement, f"twilio-announce-{participant.call_sid}")

    async def _announce(self, participant: Participant, url: str, method: Literal["GET", "POST"]) -> None:
        """Fetch the announcement's TwiML as Twilio does, play it to the participant, report."""
        params = {
            "AccountSid": participant.account_sid,
            "ConferenceSid": self.sid,
            "FriendlyName": self.friendly_name,
            "CallSid": participant.call_sid,
        }
        record = Callback(kind="announce", url=url, params=params)
        self.callbacks.append(record)
        status, body = await send_signed(self._rooms.http(), self._rooms.auth_token, record, method)
        try:
            if status != 200:
                raise ValueError(f"announce URL answered HTTP {status}")
            lines = _announcement(body, self._rooms.say_words_per_s)
        except ValueError as e:
            self._note("announcement-fail", participant.call_sid, str(e))
            self._post("announcement-fail", participant)
            return
        heard = [text for text, _ in lines if text is not None]
        self._note("announcement-start", participant.call_sid, " ".join(heard))
        for text, seconds in lines:
            if text is not None:
                participant.announcements.append(text)
            await asyncio.sleep(seconds)
        if participant.call_sid in self.participants:
            self._note("announcement-end", participant.call_sid)
            self._post("announcement-end", participant)

    # --- callbacks and the timeline --------------------------------------------------------------

    def _participant(self, call_sid: str, seat: Seat) -> Participant:
        return Participant(
            call_sid=call_sid,
            conference_sid=self.sid,
            account_sid=self._rooms.account_sid,
            label=seat.label,
            start_conference_on_enter=seat.start_conference_on_enter,
            end_conference_on_exit=seat.end_conference_on_exit,
            muted=seat.muted,
        )

    def _note(self, event: str, call_sid: str = "", detail: str = "") -> None:
        self.timeline.append(
            Moment(at=asyncio.get_running_loop().time(), event=event, call_sid=call_sid, detail=detail)
        )

    def _relink(self) -> None:
        """Record who started or stopped hearing whom."""
        live = self.status == "in-progress"
        audible = sorted(
            p.call_sid for p in self.participants.values() if live and p.status == "connected" and not p.hold
        )
        links = {(a, b) for i, a in enumerate(audible) for b in audible[i + 1 :]}
        for a, b in sorted(links - self._links):
            self._note("connected", a, b)
        for a, b in sorted(self._links - links):
            self._note("disconnected", a, b)
        self._links = links

    def _post(self, event: str, participant: Participant | None = None, extra: Mapping[str, str] | None = None) -> None:
        """Queue a status callback behind the room's earlier ones, if the room asked for it."""
        if self._status_callback is None or event not in self._events:
            return
        params = {
            "AccountSid": self._rooms.account_sid,
            "ConferenceSid": self.sid,
            "FriendlyName": self.friendly_name,
            "StatusCallbackEvent": event,
            "SequenceNumber": str(self._sequence),
            "Timestamp": format_datetime(datetime.now(UTC)),
        }
        self._sequence += 1
        if participant is not None:
            params |= _participant_params(participant)
        record = Callback(kind="conference", url=self._status_callback, params=params | dict(extra or {}))
        self.callbacks.append(record)
        self._delivery = self._rooms.spawn(self._deliver(self._delivery, record), f"twilio-conference-{self.sid}")

    async def _deliver(self, previous: asyncio.Task[None] | None, record: Callback) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await send_signed(self._rooms.http(), self._rooms.auth_token, record)

    def resource(self) -> dict[str, Any]:
        """The room as ``GET .../Conferences/{ConferenceSid}.json`` returns it."""
        uri = f"/{API_VERSION}/Accounts/{self._rooms.account_sid}/Conferences/{self.sid}"
        return {
            "account_sid": self._rooms.account_sid,
            "api_version": API_VERSION,
            "call_sid_ending_conference": self.call_sid_ending,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "friendly_name": self.friendly_name,
            "reason_conference_ended": self.reason_ended,
            "region": "us1",
            "sid": self.sid,
            "status": self.status,
            "uri": uri + ".json",
            "subresource_uris": {"participants": f"{uri}/Participants.json", "recordings": f"{uri}/Recordings.json"},
        }

    def emulator_view(self) -> dict[str, Any]:
        """The resource plus what only the emulator knows (``GET /_emulator/twilio/conferences``)."""
        return {
            "resource": self.resource(),
            "participants": [p.resource() | {"announcements": p.announcements} for p in self.participants.values()],
            "timeline": [
                {"at": m.at, "event": m.event, "call_sid": m.call_sid, "detail": m.detail} for m in self.timeline
            ],
            "callbacks": [
                {"kind": c.kind, "url": c.url, "params": c.params, "http_status": c.http_status} for c in self.callbacks
            ],
        }


def _left(call_status: str, reason: str) -> dict[str, str]:
    return {"ParticipantCallStatus": call_status, "ReasonParticipantLeft": reason}


def _participant_params(participant: Participant) -> dict[str, str]:
    params = {
        "CallSid": participant.call_sid,
        "Hold": str(participant.hold).lower(),
        "Muted": str(participant.muted).lower(),
        "Coaching": "false",
        "EndConferenceOnExit": str(participant.end_conference_on_exit).lower(),
        "StartConferenceOnEnter": str(participant.start_conference_on_enter).lower(),
    }
    if participant.label:
        params["ParticipantLabel"] = participant.label
    return params


def _announcement(twiml: str, words_per_s: float) -> list[tuple[str | None, float]]:
    """What an announcement plays: (what is heard, for how long) per verb; a pause is heard as
    nothing. Only ``<Say>``, ``<Play>`` and ``<Pause>`` may be announced, as Twilio documents."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as e:
        raise ValueError(f"announcement is not well-formed XML: {e}") from e
    if root.tag != "Response":
        raise ValueError(f"announcement root is <{root.tag}>, not <Response>")
    lines: list[tuple[str | None, float]] = []
    for verb in root:
        text = (verb.text or "").strip()
        if verb.tag == "Say":
            lines.append((text, len(text.split()) / words_per_s))
        elif verb.tag == "Play":
            lines.append((text, PLAY_S))
        elif verb.tag == "Pause":
            lines.append((None, max(0.0, float(verb.get("length", "1")))))
        else:
            raise ValueError(f"<{verb.tag}> cannot be announced")
    return lines


class ConferenceRooms:
    """Every room of the account, by SID; live rooms also by friendly name."""

    def __init__(self, *, account_sid: str, auth_token: str, tasks: set[asyncio.Task[None]]) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.conferences: dict[str, Conference] = {}
        self.say_words_per_s = DEFAULT_SAY_WORDS_PER_S
        self.client: aiohttp.ClientSession | None = None
        self._live: dict[str, Conference] = {}
        self._tasks = tasks

    def room(self, friendly_name: str) -> Conference:
        """The live room of that name; a new one if there is none (names are reused once ended)."""
        conference = self._live.get(friendly_name)
        if conference is None:
            conference = Conference(self, friendly_name)
            self._live[friendly_name] = self.conferences[conference.sid] = conference
        return conference

    def find(self, sid_or_name: str) -> Conference | None:
        """A room by SID, or a live room by friendly name, as the Participants API accepts."""
        return self.conferences.get(sid_or_name) or self._live.get(sid_or_name)

    def closed(self, conference: Conference) -> None:
        if self._live.get(conference.friendly_name) is conference:
            del self._live[conference.friendly_name]

    def http(self) -> aiohttp.ClientSession:
        assert self.client is not None, "the emulator's HTTP client lives as long as the app runs"
        return self.client

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
