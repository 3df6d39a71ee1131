"""The LLM brain of the bot core: Claude playing the Lead, Buyer and Seller bots, with tools for
everything that changes state.

The conversation state is the scripted core's (bots/qualifier.py): the bots' question flows hold
the answers, scoring, hand-off rules and records, appointments and the snapshot are the same, so
reports, analytics and session resume read either brain alike. The model decides what to say and
which tool to call; the tools (bots/llm_tools.py) check and carry out the state changes. Text is
handed on delta by delta, so the first sentence is spoken while the model writes the rest.

A hand-off switches the system prompt (and the tools' answer schema) to the new bot's persona:
the bridge line is said in the old bot's voice by the bot itself (only once the rules allowed the
hand-off), and the model's next words come in the new voice. Failures of the model are raised,
not hidden: retry and fallback are ``FallbackBot``'s decision, and a failed turn that said nothing
leaves the history as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from bots.base import (
    BotAction,
    CallContext,
    EndCall,
    HandedOff,
    Say,
    TransferOutcome,
    TransferToHuman,
)
from bots.booking import cancel_replaced
from bots.calendar import Calendar, CalendarError, Slot, timezone_for_phone
from bots.conversation_state import (
    ConversationBot,
    ConversationBotFactory,
    ConversationState,
    QualifierOptions,
    lead_phone,
)
from bots.flows import FlowState, Question
from bots.handoff import HandoffRecord
from bots.llm_tools import (
    BookingKind,
    ToolError,
    book_slot,
    booking_kind,
    decode_answers,
    find_offers,
    moment,
    slot_json,
    slots_result,
    text_field,
    tools_for,
)
from bots.persona import ROLES, BotRole, Persona
from bots.qualifier import booked_for, wants_person
from bots.session_state import BotSessionStore
from bots.understanding import wants_no_more_calls
from runtime.clock import Clock
from runtime.llm import (
    ChatMessage,
    ContentBlock,
    LanguageModel,
    LlmError,
    LlmEvent,
    TextBlock,
    TextDelta,
    ToolCall,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)

log = logging.getLogger(__name__)

#: Model requests per caller turn. A turn may record answers, hand off, look up slots and book,
#: each a round trip, plus the final reply; a model that keeps calling tools beyond this is looping.
DEFAULT_MAX_ROUNDS = 6

Stage = Literal["qualifying", "booking", "transferring", "done"]

#: Marks what happened on the call rather than what the caller said (a model reads it as such).
CALL_EVENT = "[call event]"
#: What the model is told when the caller is back after a transfer that did not connect.
TRANSFER_NOTE = re.compile(re.escape(CALL_EVENT) + r" The transfer to an agent ended: (\w+)\.")
#: The line of the system prompt with the day and the caller's zone (the model needs both for
#: timelines and times; the Anthropic emulator reads them back).
CALL_FACTS = re.compile(r"Today is \w+, (\w+ \d{1,2}, \d{4})\. The caller's time zone is ([\w/+-]+);")

_GOALS: dict[BotRole, str] = {
    "lead": (
        "Learn the caller's name and whether they want to buy, sell, both, rent or something else. "
        "Then hand_off: buyers and callers doing both to buyer, sellers to seller. For renters and "
        "anything else, offer a callback from one of our agents."
    ),
    "buyer": "Qualify the buyer. If they must sell a home first, or also sell one, hand_off to seller at the end.",
    "seller": "Qualify the seller. If they also want to buy, hand_off to buyer at the end.",
}
_NEXT_STEP = (
    "When your questions are done: if record_answers reports a hot lead, offer to connect them with an "
    "agent now and call transfer_to_human once they agree. Otherwise, or if they decline, offer two or "
    "three times from find_slots (a showing for buyers, a listing consultation for sellers, a callback "
    "otherwise), confirm the chosen date and time back, and call book_appointment once they say yes. "
    "Whenever the caller asks for a person, offer to connect them. Once booked, or if they decline, "
    "thank them, say goodbye, then call end_call."
)


def call_facts(today: date, tz: str) -> str:
    return f"Today is {today:%A, %B} {today.day}, {today.year}. The caller's time zone is {tz}; say every time in it."


def system_prompt(
    persona: Persona, role: BotRole, questions: tuple[Question, ...], *, today: date, tz: str, outbound: bool = False
) -> str:
    """The same for every call of a persona, bot, day, caller zone and direction, so it is a cache read."""
    bot = persona.bot(role)
    called = " (we called them)" if outbound else ""
    opening = (
        f'You opened the call with: "{persona.greeting(role, outbound=outbound)}"{called}'
        if role == "lead"
        else f'You join after a hand-off: start with "{persona.greeting(role)}", say briefly what you already '
        "know, then ask your first open question."
    )
    areas = f"We serve {', '.join(persona.service_areas)}." if persona.service_areas else ""
    return "\n".join(
        line
        for line in (
            f"You are {bot.name}, an AI assistant at {persona.business_name}, a real-estate agency; "
            f"you {bot.specialty}.",
            "You are on a live phone call and everything you write is spoken aloud: one or two short sentences, "
            "one question at a time, no lists, markdown, emoji or abbreviations. Never claim to be human.",
            _GOALS[role],
            "Ask these questions in order, skipping any already answered. If an answer is unclear, ask once more "
            "in other words, then record null and move on:",
            *(f"- {q.slot}: {q.ask}" for q in questions),
            "Call record_answers as soon as you learn something.",
            _NEXT_STEP,
            call_facts(today, tz),
            areas,
            opening,
        )
        if line
    )


def transfer_note(outcome: TransferOutcome) -> str:
    return f"{CALL_EVENT} The transfer to an agent ended: {outcome}. The caller is back on the line."


@dataclass
class _Reply:
    """One model response as it arrives."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)

    def content(self, *, with_calls: bool) -> tuple[ContentBlock, ...]:
        text: tuple[ContentBlock, ...] = (TextBlock(text=self.text),) if self.text else ()
        if not with_calls:
            return text
        return text + tuple(ToolUseBlock(id=c.id, name=c.name, input=c.input) for c in self.calls)


@dataclass(frozen=True)
class _PendingHandoff:
    source: BotRole
    target: BotRole
    reason: str
    decided: float


@dataclass(kw_only=True)
class _Conversation(ConversationState):
    """Everything a checkpoint copies."""

    history: list[ChatMessage] = field(default_factory=list)
    pending: _PendingHandoff | None = None
    stage: Stage = "qualifying"
    booking: dict[str, Any] | None = None
    turns: int = 0
    last_caller_text: str = ""


@dataclass(frozen=True)
class _ToolOutcome:
    """What a tool did: its result for the model, what the caller hears or the call does, and
    whether the turn is over (nothing may follow a transfer or a hang-up)."""

    result: str
    actions: tuple[BotAction, ...] = ()
    ends_turn: bool = False


_ToolHandler = Callable[[Mapping[str, Any]], Awaitable[_ToolOutcome]]


class LlmBot(ConversationBot[_Conversation]):
    """One caller's conversation with Claude as the Lead, Buyer and Seller bots."""

    brain = "llm"

    def __init__(
        self,
        model: LanguageModel,
        *,
        persona: Persona,
        calendar: Calendar,
        context: CallContext,
        now: Callable[[], datetime],
        clock: Clock,
        options: QualifierOptions,
        store: BotSessionStore | None = None,
        saved: dict[str, Any] | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
    ) -> None:
        self.model = model
        self.max_rounds = max_rounds
        self.tz = timezone_for_phone(lead_phone(context), default=persona.timezone)
        self._today = now().astimezone(ZoneInfo(self.tz)).date()
        super().__init__(
            persona=persona,
            calendar=calendar,
            context=context,
            now=now,
            clock=clock,
            options=options,
            store=store,
            saved=saved,
        )
        self._outbound = context.direction.startswith("outbound")
        self._opening = self._resume_greeting() if self._resumed else persona.greeting("lead", outbound=self._outbound)
        self._usage = {f.name: 0 for f in fields(Usage)}
        #: whether this turn's last words need a space before another response's first ones
        self._after_words = False
        self._handlers: dict[str, _ToolHandler] = {
            "record_answers": self._record_answers,
            "hand_off": self._hand_off,
            "find_slots": self._find_slots,
            "book_appointment": self._book_appointment,
            "transfer_to_human": self._transfer_to_human,
            "end_call": self._end_call,
        }

    def _new_conversation(self, flows: dict[BotRole, FlowState]) -> _Conversation:
        return _Conversation(role="lead", flows=flows, visited=["lead"])

    def _booking_report(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._c.booking)

    # --- the Bot interface ---

    def greeting(self) -> str:
        return self._opening

    @property
    def history(self) -> list[ChatMessage]:
        """The API's message list of this call."""
        return self._c.history

    @property
    def system(self) -> str:
        """The current bot's system prompt."""
        role = self._c.role
        return system_prompt(
            self.persona, role, self._questions[role], today=self._today, tz=self.tz, outbound=self._outbound
        )

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        return tools_for(self._c.role, self._questions[self._c.role])

    async def respond(self, caller_text: str) -> AsyncGenerator[BotAction, None]:
        """A generator, so a barge-in can ``aclose`` it: the model stream is closed at once and
        what was generated so far stays in the history for ``interrupted`` to trim."""
        self._c.last_activity = self._now()
        if wants_no_more_calls(caller_text):  # the law's answer, not the model's
            for action in self._opt_out():
                yield action
            return
        self._c.turns += 1
        self._c.last_caller_text = caller_text
        self._note_question()
        async with aclosing(self._turn(caller_text)) as actions:
            async for action in actions:
                yield action

    def _note_question(self) -> None:
        """Keeps the question being answered in the progress, as the scripted core does, for a
        brain taking over: the model asks in order, so it is the first one still open."""
        flow = self._c.flows[self._c.role]
        pending = flow.pending()
        flow.current = pending[0].slot if pending else None

    async def after_transfer(self, outcome: TransferOutcome) -> AsyncIterator[BotAction]:
        if outcome == "joined":
            self._c.stage = "done"
            return
        self._c.stage, self._c.next_step = "qualifying", "callback"
        async with aclosing(self._turn(transfer_note(outcome))) as actions:
            async for action in actions:
                yield action

    def interrupted(self, heard_text: str) -> None:
        """Cut this turn's assistant text to the words the caller heard, so the model knows
        what was not said. The greeting is not in the history (it is in the system prompt)."""
        c = self._c
        c.interruptions.append(heard_text)
        turn_start = max((i for i, m in enumerate(c.history) if _is_caller_turn(m)), default=len(c.history))
        words = heard_text.split()
        for i in range(turn_start + 1, len(c.history)):
            if c.history[i].role == "assistant":
                kept, words = _keep_words(c.history[i].content, words)
                c.history[i] = ChatMessage(role="assistant", content=kept)
        c.history = [m for m in c.history if m.content]  # nothing heard: no empty message

    def checkpoint(self) -> object | None:
        """None once the next reply may book or transfer (both are for real): while booking or
        transferring, after the current bot's questions, or when the caller asks for a person."""
        c = self._c
        if c.stage != "qualifying" or c.flows[c.role].complete or wants_person(c.last_caller_text):
            return None
        return copy.deepcopy(c)

    def rollback(self, checkpoint: object) -> None:
        """Usage is not part of it: tokens spent on a dropped reply were still spent."""
        assert isinstance(checkpoint, _Conversation)
        self._c = copy.deepcopy(checkpoint)

    def snapshot(self) -> dict[str, Any]:
        """The shape of ``QualifyingBot.snapshot()``, plus the model's turns and token usage."""
        return {**super().snapshot(), "turns": self._c.turns, "usage": dict(self._usage)}

    # --- one turn with the model ---

    async def _turn(self, text: str) -> AsyncGenerator[BotAction, None]:
        before = list(self._c.history)
        self._after_words = False
        self._append("user", (TextBlock(text=text),))
        try:
            async with aclosing(self._rounds()) as actions:
                async for action in actions:
                    yield action
        except LlmError:
            if not any(_has_text(m) for m in self._c.history[len(before) :] if m.role == "assistant"):
                self._c.history = before  # nothing was said: a retry of this turn starts clean
            raise
        if self._c.pending is not None:  # the new bot said nothing yet, but it is the caller's bot now
            yield self._handed_off(self._c.pending)

    async def _rounds(self) -> AsyncGenerator[BotAction, None]:
        """Model responses and their tools, until a response calls none or a tool ends the turn."""
        for _ in range(self.max_rounds):
            reply = _Reply()
            async with aclosing(self._stream_reply(reply)) as actions:
                async for action in actions:
                    yield action
            if not reply.calls:
                return
            outcome = await self._run_tools(reply.calls)
            for action in outcome.actions:
                if isinstance(action, Say):
                    action = Say(f" {action.text}" if self._after_words else action.text, voice=action.voice)
                    self._after_words = not action.text[-1:].isspace()
                yield action
            if outcome.ends_turn:
                return
        log.warning("llm kept calling tools", extra={"rounds": self.max_rounds, "turn": self._c.turns})

    async def _stream_reply(self, reply: _Reply) -> AsyncGenerator[BotAction, None]:
        """One model response: text handed on as it comes, tool calls and usage collected."""
        finished = False
        system, tools = self.system, self.tools
        try:
            async with _closing(self.model.stream(system=system, messages=self._c.history, tools=tools)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        spoken = event.text if reply.text or not self._after_words else f" {event.text}"
                        reply.text += event.text
                        self._after_words = not event.text[-1:].isspace()
                        yield Say(spoken, voice=self.voice)
                        if self._c.pending is not None:
                            yield self._handed_off(self._c.pending)
                    elif isinstance(event, ToolCall):
                        reply.calls.append(event)
                    else:
                        self._add_usage(event.usage)
            finished = True
        finally:
            # Cut short (error, barge-in): keep what was said, drop tool calls that never ran.
            self._append("assistant", reply.content(with_calls=finished))

    def _append(self, role: Literal["user", "assistant"], content: tuple[ContentBlock, ...]) -> None:
        """Adds to the history; a user turn after a trailing user message (tool results) joins it,
        after its tool results, as the API wants them first."""
        history = self._c.history
        if not content:
            return
        if role == "user" and history and history[-1].role == "user":
            content = history.pop().content + content
        history.append(ChatMessage(role=role, content=content))

    def _add_usage(self, usage: Usage) -> None:
        for name in self._usage:
            self._usage[name] += getattr(usage, name)

    # --- tools ---

    async def _run_tools(self, calls: list[ToolCall]) -> _ToolOutcome:
        """Runs the calls in order, answers each in one user message; stops after one that ends
        the turn (the calls after it are answered as not run)."""
        results: list[ContentBlock] = []
        actions: list[BotAction] = []
        ends_turn = False
        for call in calls:
            if ends_turn:
                results.append(ToolResultBlock(tool_use_id=call.id, content="not run: the turn is over", is_error=True))
                continue
            outcome, failed = await self._run_tool(call)
            results.append(ToolResultBlock(tool_use_id=call.id, content=outcome.result, is_error=failed))
            actions += outcome.actions
            ends_turn = outcome.ends_turn
        self._append("user", tuple(results))
        return _ToolOutcome(result="", actions=tuple(actions), ends_turn=ends_turn)

    async def _run_tool(self, call: ToolCall) -> tuple[_ToolOutcome, bool]:
        """The tool's outcome, and whether it failed; a failure is the model's to handle."""
        handler = self._handlers.get(call.name)
        try:
            if handler is None:
                raise ToolError(f"no tool {call.name}; the tools are {', '.join(self._handlers)}")
            return await handler(call.input), False
        except ToolError as e:
            log.info("llm tool refused", extra={"tool": call.name, "error": str(e)})
            return _ToolOutcome(result=str(e)), True
        except CalendarError as e:
            log.warning("llm tool calendar failure", extra={"tool": call.name, "retryable": e.retryable})
            return _ToolOutcome(result=f"the calendar is unavailable ({e}); offer a call back from the team"), True

    async def _record_answers(self, given: Mapping[str, Any]) -> _ToolOutcome:
        flow = self._c.flows[self._c.role]
        answers = decode_answers(self._c.role, flow.questions, given)
        flow.answers.update(answers)
        log.info("llm recorded answers", extra={"fields": sorted(answers), "pii.answers": answers})
        score = self.score()
        still = [q.ask for q in flow.pending()]
        result = {"saved": sorted(answers), "score": score.temperature, "reasons": score.reasons, "still_to_ask": still}
        return _ToolOutcome(result=json.dumps(result))

    async def _hand_off(self, given: Mapping[str, Any]) -> _ToolOutcome:
        c = self._c
        target, reason = _target(given), text_field(given, "reason")
        refusal = self._refusal(target)
        if refusal is not None:
            log.info("hand-off refused", extra={"from_bot": c.role, "to_bot": target, "reason": refusal})
            raise ToolError(f"hand-off refused: {refusal}")
        source, old, new = c.role, self.persona.bot(c.role), self.persona.bot(target)
        previous = (self._handed_off(c.pending),) if c.pending is not None else ()  # it never spoke
        bridge = Say(f"I'll bring in {new.name}, who {new.specialty}. ", voice=old.voice)
        c.pending = _PendingHandoff(source, target, reason, self._clock.now())
        c.role, c.handoffs_this_call = target, c.handoffs_this_call + 1
        c.visited.append(target)
        note = {
            "now_speaking": f"{new.name}, the {target} bot (your instructions have changed)",
            "caller_heard": bridge.text.strip(),
            "summary": self.summary(),
            "answers_so_far": {role: c.flows[role].answers for role in ROLES if c.flows[role].answers},
        }
        return _ToolOutcome(result=json.dumps(note), actions=(*previous, bridge))

    def _refusal(self, target: BotRole) -> str | None:
        c = self._c
        refusal = self.options.rules.refusal(c.role, target, c.handoffs_this_call, c.visited)
        intent = c.flows["lead"].answers.get("intent")
        if refusal is None and c.role == "lead":
            if not intent or intent["confidence"] < self.options.rules.min_intent_confidence:
                return "the caller's intent is not sure enough yet: record it first, or ask again"
        return refusal

    def _handed_off(self, pending: _PendingHandoff) -> HandedOff:
        """The new bot's first words are out: the hand-off is complete."""
        latency_ms = round((self._clock.now() - pending.decided) * 1000, 3)
        record = HandoffRecord(
            from_bot=pending.source, to_bot=pending.target, reason=pending.reason, latency_ms=latency_ms
        )
        self._c.handoffs.append(record)
        self._c.pending = None
        return HandedOff(from_bot=pending.source, to_bot=pending.target, reason=pending.reason, latency_ms=latency_ms)

    async def _find_slots(self, given: Mapping[str, Any]) -> _ToolOutcome:
        kind = booking_kind(given)
        start, end = moment(given, "from"), moment(given, "to")
        offers = await find_offers(self.calendar, now=self._now(), tz=self.tz, start=start, end=end)
        c = self._c
        c.stage = "booking"
        c.booking = _booking_state(kind, self.tz, offers, c.booking)
        return _ToolOutcome(result=slots_result(offers, self.tz))

    async def _book_appointment(self, given: Mapping[str, Any]) -> _ToolOutcome:
        kind, start = booking_kind(given), moment(given, "start")
        if start is None:
            raise ToolError("start: the chosen slot's start is required")
        c = self._c
        c.booking = _booking_state(kind, self.tz, [], c.booking)
        c.booking["chosen"], c.booking["turns"] = start.isoformat(), c.booking["turns"] + 1
        contact = await self._contact()
        try:
            appointment = await book_slot(
                self.calendar,
                contact,
                start,
                now=self._now(),
                tz=self.tz,
                title=self._booking_title(kind),
                notes=self.summary(),
            )
        except ToolError:
            c.booking["attempts"] += 1
            raise
        slot = Slot(appointment.start, appointment.end)
        record = {"id": appointment.id, "kind": kind, "title": appointment.title, **slot_json(slot, self.tz)}
        result: dict[str, Any] = {"booked": record}
        if c.appointment is not None:  # a reschedule: the earlier time is cancelled
            cancelled = await cancel_replaced(self.calendar, c.appointment, c.cancel_pending)
            result["replaced"] = {"appointment": c.appointment, "cancelled": cancelled}
        c.appointment = record
        c.booking.update(stage="done", appointment=record)
        c.stage, c.next_step = "done", kind
        log.info("booking made", extra={"kind": kind, "appointment_id": appointment.id})
        return _ToolOutcome(result=json.dumps(result))

    async def _transfer_to_human(self, given: Mapping[str, Any]) -> _ToolOutcome:
        if not self.options.transfers:
            raise ToolError("no agent can take a call right now: offer a callback (find_slots, book_appointment)")
        c = self._c
        c.stage, c.next_step = "transferring", f"transfer: {text_field(given, 'reason')}"
        transfer = TransferToHuman(reason=c.next_step, briefing=self.summary())
        return _ToolOutcome(result="transferring: the caller is on hold", actions=(transfer,), ends_turn=True)

    async def _end_call(self, given: Mapping[str, Any]) -> _ToolOutcome:
        reason = text_field(given, "reason")
        c = self._c
        if c.appointment is None and c.stage != "done":
            c.next_step = "follow_up"
        c.stage = "done"
        return _ToolOutcome(result="ending the call", actions=(EndCall(reason),), ends_turn=True)

    # --- the saved session ---

    def _restore(self, saved: dict[str, Any]) -> None:
        """The saved answers and progress; the model learns them from a call event in the history."""
        self._restore_state(saved)
        c = self._c
        known = {role: c.flows[role].answers for role in ROLES if c.flows[role].answers}
        resumed = f"{CALL_EVENT} The caller rang back; what they told us before: {json.dumps(known)}"
        if c.appointment:
            resumed += (
                f". {booked_for(c.appointment, self.tz)} You asked how you can help. To reschedule, offer new "
                "times (find_slots) and book the chosen one: the earlier one is then cancelled (the result's "
                "'replaced' says whether it was; if not, tell the caller the team will cancel it)."
            )
        self._append("user", (TextBlock(text=resumed),))

    def _resume_greeting(self) -> str:
        hello = self._welcome_back()
        if self._c.appointment:
            return f"{hello} {booked_for(self._c.appointment, self.tz)} How can I help you today?"
        return f"{hello} Let's pick up where we left off."


def _target(given: Mapping[str, Any]) -> BotRole:
    to = given.get("to")
    for role in ROLES:
        if to == role and role != "lead":
            return role
    raise ToolError("to: expected buyer or seller")


def _booking_state(kind: BookingKind, tz: str, offers: list[Slot], before: dict[str, Any] | None) -> dict[str, Any]:
    """The booking as the report shows it (the keys of ``BookingDialog.state()``)."""
    state = copy.deepcopy(before) if before and before["kind"] == kind else None
    state = state or {"kind": kind, "tz": tz, "chosen": None, "attempts": 0, "turns": 0, "declined": False}
    offered = [s.start.isoformat() for s in offers] or state.get("offered", [])
    return {**state, "stage": "choosing", "offered": offered, "appointment": None}


@asynccontextmanager
async def _closing(events: AsyncIterator[LlmEvent]) -> AsyncIterator[AsyncIterator[LlmEvent]]:
    """Closes a model stream left early (barge-in), releasing its connection at once; the
    interface types it as an iterator, but implementations are async generators."""
    try:
        yield events
    finally:
        if isinstance(events, AsyncGenerator):
            await events.aclose()


def _has_text(message: ChatMessage) -> bool:
    return any(isinstance(b, TextBlock) for b in message.content)


def _is_caller_turn(message: ChatMessage) -> bool:
    return message.role == "user" and _has_text(message)


def _keep_words(content: tuple[ContentBlock, ...], words: list[str]) -> tuple[tuple[ContentBlock, ...], list[str]]:
    """The content with its text cut to the first of ``words``; the words left over."""
    kept: list[ContentBlock] = []
    for block in content:
        if isinstance(block, TextBlock):
            count = len(block.text.split())
            if words[:count]:
                kept.append(TextBlock(text=" ".join(words[:count])))
            words = words[count:]
        else:
            kept.append(block)
    return tuple(kept), words


class LlmBotFactory(ConversationBotFactory[LlmBot]):
    """Builds the LLM brain for each call; one model client shared by every call (connection
    pooling, prompt cache), resuming a caller's saved session like the scripted core."""

    def __init__(
        self,
        model: LanguageModel,
        *,
        persona: Persona,
        calendar: Calendar,
        now: Callable[[], datetime],
        store: BotSessionStore | None = None,
        clock: Clock | None = None,
        options: QualifierOptions | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
    ) -> None:
        super().__init__(persona=persona, calendar=calendar, now=now, store=store, clock=clock, options=options)
        self.model = model
        self.max_rounds = max_rounds

    def create(self, context: CallContext, saved: dict[str, Any] | None = None) -> LlmBot:
        return LlmBot(
            self.model,
            persona=self.persona,
            calendar=self.calendar,
            context=context,
            now=self.now,
            clock=self.clock,
            options=self.options,
            store=self.store,
            saved=saved,
            max_rounds=self.max_rounds,
        )
