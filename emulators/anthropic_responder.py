"""What the emulated Claude says to the bot core's LLM brain: what the scripted core would do,
as text and tool calls, so a conversation through the real Anthropic client reaches the same
answers, score, hand-offs and appointment as the scripted brain.

Stateless, like the API: every request is answered from what it carries. The caller's turns in
``messages`` are replayed through a fresh ``QualifyingBot``; its calendar is the tool results
already in the history (``find_slots`` and ``book_appointment``, in order), and a calendar request
not answered yet becomes the tool call to make now. The replayed turn becomes a series of model
steps, each some text and the tool calls that end it (``record_answers`` with what was learned
and is not recorded by a call in the history yet, ``hand_off``, ``find_slots``,
``book_appointment``, ``transfer_to_human``, ``end_call``); the assistant messages since the
caller spoke say how many steps were taken.
The day and the caller's time zone come from the system prompt (bots/llm_bot.py ``CALL_FACTS``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

from bots.base import BotAction, CallContext, EndCall, HandedOff, Say, TransferOutcome, TransferToHuman
from bots.calendar import Appointment, Calendar, CalendarError, Contact, Slot, SlotTaken
from bots.conversation_state import QualifierOptions
from bots.llm_bot import CALL_EVENT, CALL_FACTS, TRANSFER_NOTE
from bots.persona import DEFAULT_PERSONA, ROLES, BotRole, Persona
from bots.qualifier import QualifyingBot
from emulators.anthropic import MessagesRequest, ReplyBlock, ScriptedBrainResponder, TextReply, ToolUseReply
from runtime.clock import MonotonicClock

_CALENDAR_TOOLS = ("find_slots", "book_appointment")
_OUTCOMES: Mapping[str, TransferOutcome] = {o: o for o in ("joined", "no_answer", "busy", "voicemail", "failed")}
_CONTEXT = CallContext(call_sid="", from_number="", to_number="", direction="inbound", tenant="", bot="lead")

Answers = dict[BotRole, dict[str, Any]]


class NeedsTool(Exception):
    """The replayed bot asked the calendar something the history has no answer to yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Entry:
    """One thing the replayed bot did, with its bot and answers at that moment."""

    kind: Literal["say", "tool", "handed_off", "transfer", "end"]
    role: BotRole
    answers: Answers
    text: str = ""
    name: str = ""
    input: Mapping[str, Any] = field(default_factory=dict)


def _no_answers() -> Answers:
    return {role: {} for role in ROLES}


@dataclass(kw_only=True)
class _Transcript:
    """What a request carries, as the replay needs it. ``recorded`` is what the model's
    ``record_answers`` calls that ran saved, per bot: a call cut off with its reply (the caller
    barged in) is not in the history, so what it would have saved is still to record."""

    events: list[str] = field(default_factory=list)
    results: list[tuple[str, str, bool]] = field(default_factory=list)
    steps_taken: int = 0
    recorded: Answers = field(default_factory=_no_answers)
    role: BotRole = "lead"

    @classmethod
    def of(cls, request: MessagesRequest) -> _Transcript:
        transcript, calls = cls(), {}
        for message in request.messages:
            if message["role"] == "assistant":
                transcript.steps_taken += 1
                calls.update({b["id"]: b for b in message["content"] if b["type"] == "tool_use"})
                continue
            for block in message["content"]:
                transcript.add(block, calls)
        return transcript

    def add(self, block: Mapping[str, Any], calls: Mapping[str, Mapping[str, Any]]) -> None:
        if block["type"] == "text":
            self.events.append(block["text"])
            self.steps_taken = 0
            return
        call = calls.get(block.get("tool_use_id", "")) if block["type"] == "tool_result" else None
        if call is None:
            return
        if call["name"] in _CALENDAR_TOOLS:
            self.results.append((call["name"], _result_text(block.get("content", "")), bool(block.get("is_error"))))
        elif not block.get("is_error"):
            self._ran(call["name"], call["input"])

    def _ran(self, name: str, given: Mapping[str, Any]) -> None:
        """A state tool the brain carried out: answers saved for the bot speaking, or a new bot."""
        if name == "record_answers":
            self.recorded[self.role].update(given)
        elif name == "hand_off":
            self.role = next((role for role in ROLES if role == given.get("to")), self.role)


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


class HistoryCalendar(Calendar):
    """The replayed bot's calendar: answers are the tool results in the history, in order; the
    first request without one raises ``NeedsTool`` after ``observe`` saw it. The times a lost
    slot's error listed answer the bot's search for replacements, as the real tool did."""

    def __init__(
        self, results: list[tuple[str, str, bool]], *, now: datetime, observe: Callable[[str, dict[str, Any]], None]
    ) -> None:
        self._results = list(results)
        self._now = now
        self.observe = observe
        self.kind: Callable[[], str] = lambda: "callback"
        self._listed: list[Slot] = []
        self._replaced: dict[str, Any] = {}

    async def upsert_contact(
        self, *, name: str, phone: str, email: str | None = None, timezone: str | None = None
    ) -> Contact:
        return Contact(id="contact", name=name, phone=phone, email=email, timezone=timezone)

    async def free_slots(self, start: datetime, end: datetime, tz: str) -> list[Slot]:
        listed = [s for s in self._listed if start <= s.start < end]
        if listed:
            self._listed = []
            return listed
        window = {"from": start.isoformat()} if start > self._now else {}
        content, _ = self._take("find_slots", {"kind": self.kind(), **window, "to": end.isoformat()})
        return _slots(json.loads(content))

    async def cancel(self, appointment_id: str) -> None:
        """As the booking's tool result says it went (the bot cancels right after booking)."""
        if self._replaced.get("cancelled") is False:
            raise CalendarError("the replaced appointment was not cancelled", retryable=False)

    async def book(self, contact: Contact, slot: Slot, *, title: str, notes: str = "") -> Appointment:
        content, failed = self._take("book_appointment", {"kind": self.kind(), "start": slot.start.isoformat()})
        if failed:
            return self._failed(content)
        result = json.loads(content)
        booked, self._replaced = result["booked"], result.get("replaced", {})
        start, end = datetime.fromisoformat(booked["start"]), datetime.fromisoformat(booked["end"])
        return Appointment(
            id=booked["id"], calendar="", contact=contact, start=start, end=end, title=title, status="confirmed"
        )

    def _failed(self, content: str) -> Appointment:
        try:
            error = json.loads(content)
        except ValueError:
            raise CalendarError(content, retryable=False) from None
        self._listed = _slots(error)
        raise SlotTaken()

    async def add_note(self, contact_id: str, body: str) -> None:
        return

    async def create_opportunity(
        self, contact_id: str, *, name: str, value: float | None = None, stage: str | None = None
    ) -> str:
        return "opportunity"

    def _take(self, name: str, given: dict[str, Any]) -> tuple[str, bool]:
        self.observe(name, given)
        if not self._results or self._results[0][0] != name:
            raise NeedsTool(name)
        _, content, failed = self._results.pop(0)
        return content, failed


def _slots(result: Mapping[str, Any]) -> list[Slot]:
    return [Slot(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in result.get("slots", [])]


class _Replay:
    """A fresh scripted core taken through the request's caller turns, noting what it does."""

    def __init__(self, persona: Persona, options: QualifierOptions, transcript: _Transcript, now: datetime) -> None:
        self.entries: list[_Entry] = []
        self.calendar = HistoryCalendar(transcript.results, now=now, observe=self._tool)
        self.bot = QualifyingBot(
            persona=persona,
            calendar=self.calendar,
            context=_CONTEXT,
            now=lambda: now,
            clock=MonotonicClock(),
            options=options,
        )
        self.calendar.kind = lambda: str((self.bot.snapshot()["booking"] or {}).get("kind", "callback"))

    async def last_turn(self, events: list[str]) -> list[_Entry]:
        """What the bot did on the last event."""
        for event in events[:-1]:
            await self._event(event)
        self.entries = []
        await self._event(events[-1])
        return self.entries

    async def _event(self, text: str) -> None:
        """One caller turn or call event; a turn left half-done in the history stops early."""
        try:
            async for action in self._actions(text):
                self._note(action)
        except NeedsTool:
            return

    def _actions(self, text: str) -> Any:
        outcome = TRANSFER_NOTE.match(text)
        if outcome and outcome.group(1) in _OUTCOMES:
            return self.bot.after_transfer(_OUTCOMES[outcome.group(1)])
        if text.startswith(CALL_EVENT):
            return _nothing()
        return self.bot.respond(text)

    def _note(self, action: BotAction) -> None:
        match action:
            case Say(text=text):
                self.entries.append(self._entry("say", text=text))
            case HandedOff(to_bot=to, reason=reason):
                self.entries.append(self._entry("handed_off", name=to, input={"to": to, "reason": reason}))
            case TransferToHuman(reason=reason):
                self.entries.append(self._entry("transfer", input={"reason": reason.removeprefix("transfer: ")}))
            case EndCall(reason=reason):
                self.entries.append(self._entry("end", input={"reason": reason}))

    def _tool(self, name: str, given: dict[str, Any]) -> None:
        self.entries.append(self._entry("tool", name=name, input=given))

    def _entry(self, kind: Literal["say", "tool", "handed_off", "transfer", "end"], **values: Any) -> _Entry:
        snapshot = self.bot.snapshot()
        return _Entry(kind=kind, role=snapshot["bot"], answers=self._answers(), **values)

    def _answers(self) -> Answers:
        answers: Answers = copy.deepcopy(self.bot.snapshot()["answers"])
        return answers


async def _nothing() -> Any:
    return
    yield  # an async generator that yields nothing


_TOOL_OF: Mapping[str, str] = {"transfer": "transfer_to_human", "end": "end_call"}


def model_steps(entries: list[_Entry], recorded: Answers) -> list[list[ReplyBlock]]:
    """The replayed turn as model responses: text, then the tool calls that end each one. The
    hand-off bridge is left out (the LLM brain says it); what the model records is what the
    bot learned since ``recorded`` (updated)."""
    steps: list[list[ReplyBlock]] = []
    text: list[str] = []
    role: BotRole | None = None

    def close(entry: _Entry, calls: list[ReplyBlock], speaker: BotRole) -> None:
        blocks: list[ReplyBlock] = [TextReply("".join(text).strip())] if "".join(text).strip() else []
        new = {k: v for k, v in entry.answers[speaker].items() if recorded[speaker].get(k, ...) != v}
        recorded[speaker].update(new)
        steps.append([*blocks, *([ToolUseReply("record_answers", new)] if new else []), *calls])
        text.clear()

    for n, entry in enumerate(entries):
        if entry.kind == "say" and role is not None and entry.role != role:
            text.pop()  # the bridge, said by the LLM brain itself
            handed = next(e for e in entries[n:] if e.kind == "handed_off")
            close(entry, [ToolUseReply("hand_off", handed.input)], role)
        if entry.kind == "say":
            text.append(entry.text)
            role = entry.role
        elif entry.kind in ("tool", "transfer", "end"):
            close(entry, [ToolUseReply(entry.name or _TOOL_OF[entry.kind], entry.input)], entry.role)
    if "".join(text).strip():
        close(entries[-1], [], entries[-1].role)
    return steps


class CoreResponder:
    """Claude as the bot core's LLM brain would have it answer, from the scripted core."""

    def __init__(self, persona: Persona = DEFAULT_PERSONA, options: QualifierOptions | None = None) -> None:
        self.persona = persona
        self.options = options or QualifierOptions()

    async def reply(self, request: MessagesRequest) -> list[ReplyBlock]:
        transcript = _Transcript.of(request)
        if not transcript.events:
            return []
        today, tz = self._facts(request.system)
        persona = dataclasses.replace(self.persona, timezone=tz)
        now = datetime.combine(today, time(0), tzinfo=ZoneInfo(tz))
        entries = await _Replay(persona, self.options, transcript, now).last_turn(transcript.events)
        steps = model_steps(entries, transcript.recorded)
        return steps[transcript.steps_taken] if transcript.steps_taken < len(steps) else []

    def _facts(self, system: str) -> tuple[date, str]:
        """The day and the caller's zone the prompt states; the tenant's zone and today without."""
        facts = CALL_FACTS.search(system)
        if facts is None:
            return datetime.now(ZoneInfo(self.persona.timezone)).date(), self.persona.timezone
        return datetime.strptime(facts.group(1), "%B %d, %Y").date(), facts.group(2)


class DefaultResponder:
    """The emulator's default: the bot core's brain for requests offering its tools (``hand_off``),
    the Lead bot's for the rest (the lead-only brain and plain requests)."""

    def __init__(self) -> None:
        self.core = CoreResponder()
        self.lead = ScriptedBrainResponder()

    async def reply(self, request: MessagesRequest) -> list[ReplyBlock]:
        if request.tool("hand_off") is not None:
            return await self.core.reply(request)
        return await self.lead.reply(request)
