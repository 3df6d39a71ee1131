"""The scripted (deterministic) bot core: one conversation hosting the Lead, Buyer and Seller
bots in turn, their warm hand-offs, and the step after qualification (a person now, or an
appointment, or a callback).

Stages of a conversation::

    qualifying --(flow done, hot)-------> confirm_transfer --yes--> transferring --joined--> done
        |   \\--(asks for a person)----/        | no                      | failed
        |                                      v                         v
        +--(flow done, not hot)------------> booking <-- callback after a failed transfer
                                               | booked / declined twice
                                               v
                                              done

A bot's turn never has an external side effect it cannot repeat safely, except in the stages
where ``checkpoint()`` returns None (a transfer, or a "yes" that books), so every other reply may
be started speculatively and rolled back. Opening a booking dialog upserts the caller's contact,
which is idempotent.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
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
from bots.booking import BookingDialog, BookingRequest, BookingStep, cancel_replaced
from bots.calendar import Calendar, Slot, spoken_slot, timezone_for_phone
from bots.conversation_state import (
    BOOKING_TITLES,
    BookingKind,
    ConversationBot,
    ConversationBotFactory,
    ConversationState,
    QualifierOptions,
    lead_phone,
)
from bots.flows import FlowState
from bots.handoff import attempt, wanted_route
from bots.persona import ROLES, BotRole, Persona
from bots.session_state import BotSessionStore
from bots.slots import Answer
from bots.understanding import parse_yes_no, wants_no_more_calls
from runtime.clock import Clock

log = logging.getLogger(__name__)

Stage = Literal["qualifying", "confirm_transfer", "transferring", "booking", "returning", "done"]

_WANTS_PERSON = re.compile(
    r"\b(?:real|live|actual|human) (?:person|human|agent|being)\b"
    r"|\b(?:talk|speak|connect me|put me through) (?:to|with) (?:a |an |the |your )?"
    r"(?:person|someone|somebody|agent|realtor|representative|broker)\b"
    r"|\b(?:agent|representative|operator|realtor),? please\b"
    r"|\bquestions? for (?:a |an |the |my |your )?(?:person|someone|agent|realtor|broker)\b",
    re.IGNORECASE,
)
_RESCHEDULE = re.compile(
    r"\b(?:re-?schedul\w*|re-?book\w*|can't make it|cannot make it|won't make it"
    r"|(?:change|move|push|switch) (?:my |the |our )?(?:appointment|showing|consultation|call|time|booking))\b",
    re.IGNORECASE,
)
_NOTHING_ELSE = re.compile(
    r"\b(?:that's all|that is all|nothing else|all good|just checking|i'm good)\b", re.IGNORECASE
)
_BOOKING_FOR: dict[BotRole, BookingKind] = {"buyer": "showing", "seller": "listing_consultation", "lead": "callback"}
_BOOKING_NAMES: dict[str, str] = {
    "showing": "showing",
    "listing_consultation": "listing consultation",
    "callback": "call back",
}
_BOOKING_INTROS: dict[BookingKind, str] = {
    "showing": "The next step is a showing with one of our agents.",
    "listing_consultation": "The next step is a listing consultation with one of our agents.",
    "callback": "Let's set up a quick call back from one of our agents.",
}


def wants_person(text: str) -> bool:
    """Whether the caller asks for a human ("can I talk to a real person", "agent please")."""
    return _WANTS_PERSON.search(text) is not None


@dataclass(kw_only=True)
class _Conversation(ConversationState):
    """Everything a checkpoint copies (never the calendar: the dialog shares it on deepcopy)."""

    turns: list[tuple[BotRole, str]] = field(default_factory=list)
    stage: Stage = "qualifying"
    booking: BookingDialog | None = None
    booking_kind: BookingKind | None = None
    will_book: bool = False
    #: the appointment a reschedule replaces, until the new one is booked
    replacing: dict[str, Any] | None = None
    #: turns since a returning caller was asked how we can help that said neither
    unclear_returning: int = 0


class QualifyingBot(ConversationBot[_Conversation]):
    """One caller's conversation with the scripted Lead, Buyer and Seller bots."""

    brain = "scripted"

    def __init__(
        self,
        *,
        persona: Persona,
        calendar: Calendar,
        context: CallContext,
        now: Callable[[], datetime],
        clock: Clock,
        options: QualifierOptions,
        store: BotSessionStore | None = None,
        saved: dict[str, Any] | None = None,
    ) -> None:
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
        self._opening = self._resume_greeting() if self._resumed else self._fresh_greeting()

    def _new_conversation(self, flows: dict[BotRole, FlowState]) -> _Conversation:
        return _Conversation(role="lead", flows=flows, visited=["lead"])

    def _booking_report(self) -> dict[str, Any] | None:
        return self._c.booking.state() if self._c.booking else None

    # --- the Bot interface ---

    def greeting(self) -> str:
        return self._opening

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        self._c.last_activity = self._now()
        if wants_no_more_calls(caller_text):
            for action in self._opt_out():
                yield action
            return
        handlers = {
            "qualifying": self._qualify,
            "confirm_transfer": self._confirm_transfer,
            "transferring": self._while_transferring,
            "booking": self._booking_turn,
            "returning": self._returning,
            "done": self._after_done,
        }
        async for action in handlers[self._c.stage](caller_text):
            yield action

    async def after_transfer(self, outcome: TransferOutcome) -> AsyncIterator[BotAction]:
        if outcome == "joined":
            self._c.stage = "done"
            return
        self._c.next_step = "callback"
        apology = "I'm sorry, I couldn't reach an agent just now."
        async for action in self._open_booking("callback", f"{apology} Let's book a time for them to call you back."):
            yield action

    def interrupted(self, heard_text: str) -> None:
        self._c.interruptions.append(heard_text)

    def checkpoint(self) -> object | None:
        side_effect_next = self._c.stage in ("confirm_transfer", "transferring") or (
            self._c.stage == "booking" and self._c.will_book
        )
        return None if side_effect_next else copy.deepcopy(self._c)

    def rollback(self, checkpoint: object) -> None:
        assert isinstance(checkpoint, _Conversation)
        self._c = copy.deepcopy(checkpoint)

    # --- qualifying ---

    def _fresh_greeting(self) -> str:
        self._c.flows["lead"].ask_next()
        return self.persona.greeting("lead", outbound=self.context.direction.startswith("outbound"))

    async def _qualify(self, text: str) -> AsyncIterator[BotAction]:
        self._c.turns.append((self._c.role, text))
        flow = self._c.flows[self._c.role]
        heard = flow.hear(text, self._today())
        if wants_person(text):
            async for action in self._offer_transfer("caller asked for a person"):
                yield action
            return
        if heard.acknowledgement:
            yield self._say(heard.acknowledgement)
        if heard.reask:
            yield self._say(heard.reask)
            return
        question = flow.ask_next()
        if question:
            yield self._say(question)
            return
        async for action in self._after_flow():
            yield action

    async def _after_flow(self) -> AsyncIterator[BotAction]:
        """The current bot has its answers: hand off if the caller needs another bot, else the
        next step."""
        c = self._c
        route = wanted_route(c.role, {role: c.flows[role].answers for role in ROLES})
        refusal = route and self.options.rules.refusal(c.role, route[0], c.handoffs_this_call, c.visited)
        if route and not refusal:
            async for action in self._hand_off(*route):
                yield action
            return
        if route:
            log.info("hand-off refused", extra={"from_bot": c.role, "to_bot": route[0], "reason": refusal})
        async for action in self._next_step():
            yield action

    async def _hand_off(self, target: BotRole, reason: str) -> AsyncIterator[BotAction]:
        source = self._c.role
        started, record = await attempt(source, target, reason, lambda: self._start(target), self._clock)
        self._c.handoffs.append(record)
        if started is None:
            async for action in self._next_step():
                yield action
            return
        flow, opening = started
        new = self.persona.bot(target)
        yield self._say(f"I'll bring in {new.name}, who {new.specialty}. ")
        c = self._c
        c.flows[target], c.role, c.handoffs_this_call = flow, target, c.handoffs_this_call + 1
        c.visited.append(target)
        yield self._say(opening + " ")
        yield HandedOff(from_bot=source, to_bot=target, reason=reason, latency_ms=record.latency_ms)
        if flow.complete:
            async for action in self._after_flow():
                yield action

    async def _start(self, target: BotRole) -> tuple[FlowState, str]:
        """The new bot's flow and first words: its greeting, what it already knows, its first
        question. Its flow takes in everything the caller said before, except what another
        specialist bot asked about itself (a buyer's price is not a seller's). Works on a copy:
        a failed start leaves the conversation as it was."""
        flow = copy.deepcopy(self._c.flows[target])
        for said_to, text in self._c.turns:
            flow.absorb(text, self._today(), except_slots=self._c.flows[said_to].slots if said_to != "lead" else ())
        known = flow.summary()
        recap = f" I have your details so far: {', '.join(known)}." if known else ""
        question = flow.ask_next()
        return flow, f"{self.persona.greeting(target)}{recap}{' ' + question if question else ''}"

    # --- after qualifying ---

    async def _next_step(self) -> AsyncIterator[BotAction]:
        if self.score().temperature == "hot":
            async for action in self._offer_transfer("hot lead"):
                yield action
            return
        async for action in self._open_booking(_BOOKING_FOR[self._c.role]):
            yield action

    async def _offer_transfer(self, reason: str) -> AsyncIterator[BotAction]:
        if not self.options.transfers:
            async for action in self._no_one_to_transfer_to(reason):
                yield action
            return
        self._c.stage = "confirm_transfer"
        self._c.next_step = f"transfer: {reason}"
        if reason == "hot lead":
            yield self._say("It sounds like you're ready to move. I can connect you with one of our agents now.")
        else:
            yield self._say("Of course. I can connect you with one of our agents right now.")
        yield self._say("Shall I put you through?")

    async def _no_one_to_transfer_to(self, reason: str) -> AsyncIterator[BotAction]:
        """No person can take the call now: a hot lead books as usual, a caller who asked for a
        person gets a callback from one."""
        if reason == "hot lead":
            async for action in self._open_booking(_BOOKING_FOR[self._c.role]):
                yield action
            return
        intro = "Our agents can't take a call right now, but one can call you back. Let's find a time."
        async for action in self._open_booking("callback", intro):
            yield action

    async def _confirm_transfer(self, text: str) -> AsyncIterator[BotAction]:
        answer = parse_yes_no(text)
        if answer is Answer.YES or wants_person(text):
            self._c.stage = "transferring"
            yield self._say("Great, connecting you now. Please hold for a moment.")
            yield TransferToHuman(reason=self._c.next_step or "transfer", briefing=self.summary())
            return
        if answer is None:
            yield self._say("Sorry, shall I connect you with an agent now? Yes or no?")
            return
        kind = _BOOKING_FOR[self._c.role]
        async for action in self._open_booking(kind, f"No problem. {_BOOKING_INTROS[kind]}"):
            yield action

    async def _while_transferring(self, text: str) -> AsyncIterator[BotAction]:
        yield self._say("I'm still connecting you, thanks for holding.")

    async def _open_booking(self, kind: BookingKind, intro: str | None = None) -> AsyncIterator[BotAction]:
        """Start booking ``kind``, said after ``intro`` (by default, what is being booked)."""
        intro = _BOOKING_INTROS[kind] if intro is None else intro
        step = await self._new_booking(kind, named=_BOOKING_INTROS[kind] in intro)
        yield self._say(f"{intro} {step.say}")
        async for action in self._booking_step(step):
            yield action

    async def _new_booking(self, kind: BookingKind, *, named: bool = False) -> BookingStep:
        """A booking dialog for ``kind``, opened (its offers made); the conversation is booking."""
        contact = await self._contact()
        request = BookingRequest(kind=kind, title=self._booking_title(kind), notes=self.summary())
        tz = timezone_for_phone(contact.phone, default=self.persona.timezone, contact_timezone=contact.timezone)
        dialog = BookingDialog(self.calendar, contact, request, tz=tz, now=self._now)
        self._c.stage, self._c.booking, self._c.booking_kind = "booking", dialog, kind
        return await dialog.open(named=named)

    async def _booking_turn(self, text: str) -> AsyncIterator[BotAction]:
        assert self._c.booking is not None
        step = await self._c.booking.hear(text)
        yield self._say(step.say)
        async for action in self._booking_step(step):
            yield action

    async def _booking_step(self, step: BookingStep) -> AsyncIterator[BotAction]:
        c = self._c
        c.will_book = step.will_book
        if not step.done:
            return
        if step.appointment is not None:
            c.appointment = _appointment_record(step, c.booking_kind, self._tz())
            c.next_step = c.booking_kind
            if c.replacing is not None:
                yield self._say(await self._replaced())
        elif c.replacing is not None:
            name, when = self._described(c.replacing)
            c.replacing = None
            yield self._say(f"Your {name} stays booked for {when}.")
        elif step.declined and c.booking_kind != "callback":
            async for action in self._open_booking("callback", "Or one of our agents could give you a quick call."):
                yield action
            return
        else:
            c.next_step = "follow_up"
        c.stage = "done"
        yield self._say(f"Thanks for calling {self.persona.business_name}. Goodbye!")
        yield EndCall("booked" if c.appointment else "follow-up")

    # --- a caller who rings back after booking ---

    async def _returning(self, text: str) -> AsyncIterator[BotAction]:
        """How we can help a caller who has an appointment: a new time, a person, or nothing."""
        c = self._c
        assert c.appointment is not None
        if _RESCHEDULE.search(text):
            c.replacing = c.appointment
            kind = c.appointment.get("kind")
            kind = kind if kind in BOOKING_TITLES else _BOOKING_FOR[c.role]
            async for action in self._open_booking(kind, "Of course, let's find you a new time."):
                yield action
        elif wants_person(text) or c.unclear_returning:
            async for action in self._offer_transfer("returning caller has a question"):
                yield action
        elif parse_yes_no(text) is Answer.NO or _NOTHING_ELSE.search(text):
            async for action in self._after_done(text):
                yield action
        else:
            c.unclear_returning += 1
            yield self._say("I can move your appointment to another time, or connect you with one of our agents.")
            yield self._say("Which would you like?")

    def _booked_for(self, appointment: dict[str, Any]) -> str:
        return booked_for(appointment, self._tz())

    def _described(self, appointment: dict[str, Any]) -> tuple[str, str]:
        return described(appointment, self._tz())

    async def _replaced(self) -> str:
        """The new time is booked: the old one is cancelled, or left to the team when the
        calendar cannot cancel it now (``cancel_pending``, with the call's outcome)."""
        c = self._c
        assert c.replacing is not None
        old_appointment, c.replacing = c.replacing, None
        _, old = self._described(old_appointment)
        if await cancel_replaced(self.calendar, old_appointment, c.cancel_pending):
            return f"I've cancelled your earlier time, {old}."
        return f"I've let the team know to cancel your earlier time, {old}."

    async def _after_done(self, text: str) -> AsyncIterator[BotAction]:
        if wants_person(text):
            async for action in self._offer_transfer("caller asked for a person"):
                yield action
            return
        yield self._say(f"Thanks for calling {self.persona.business_name}. Goodbye!")
        yield EndCall("conversation complete")

    # --- helpers ---

    def _say(self, text: str) -> Say:
        """A fragment in the current bot's voice; fragments end with a space so that the next
        one, if any, starts a new sentence."""
        return Say(text.strip() + " ", voice=self.voice)

    def _tz(self) -> str:
        return timezone_for_phone(lead_phone(self.context), default=self.persona.timezone)

    def _today(self) -> date:
        return self._now().astimezone(ZoneInfo(self._tz())).date()

    # --- the saved session ---

    def _restore(self, saved: dict[str, Any]) -> None:
        self._restore_state(saved)
        self._c.stage = "returning" if self._c.appointment else "qualifying"

    async def continue_call(self, state: dict[str, Any]) -> None:
        """Take over this call from another brain (the LLM one, failing) at its ``state``, the
        session-state format: same bot, answers, question asked and stage, so the caller notices
        at most a change of wording. A booking in progress is reopened for the same kind without
        a word (the caller heard the offers; the same calendar offers the same times)."""
        self._restore(state)
        c = self._c
        c.handoffs_this_call = sum(1 for record in c.handoffs if record.ok)
        flow = c.flows[c.role]
        if flow.current is None:
            flow.ask_next()  # the brain asks in order: its question was the first one open
        stage = state.get("stage")
        booking = state.get("booking") or {}
        if stage == "booking" and booking.get("kind") in BOOKING_TITLES and c.appointment is None:
            await self._new_booking(booking["kind"])
        elif stage in ("confirm_transfer", "transferring", "done"):
            c.stage = stage

    def _resume_greeting(self) -> str:
        hello = self._welcome_back()
        if self._c.appointment:
            return f"{hello} {self._booked_for(self._c.appointment)} How can I help you today?"
        question = self._c.flows[self._c.role].ask_next()
        return f"{hello} Let's pick up where we left off. {question or 'Shall we find you a time?'}"


def described(appointment: dict[str, Any], tz: str) -> tuple[str, str]:
    """What a saved appointment is ("showing"), and when in zone ``tz`` (said anew: it may have
    been said in another zone's words before)."""
    start, end = datetime.fromisoformat(appointment["start"]), datetime.fromisoformat(appointment["end"])
    return _BOOKING_NAMES.get(str(appointment.get("kind")), "appointment"), spoken_slot(Slot(start, end), tz)


def booked_for(appointment: dict[str, Any], tz: str) -> str:
    """ "I see your showing is booked for Monday, December 7th at 11:15 AM." """
    name, when = described(appointment, tz)
    return f"I see your {name} is booked for {when}."


def _appointment_record(step: BookingStep, kind: str | None, tz: str) -> dict[str, Any]:
    appointment = step.appointment
    assert appointment is not None
    return {
        "id": appointment.id,
        "kind": kind,
        "title": appointment.title,
        "start": appointment.start.isoformat(),
        "end": appointment.end.isoformat(),
        "spoken": spoken_slot(Slot(appointment.start, appointment.end), tz),
    }


class QualifyingBotFactory(ConversationBotFactory[QualifyingBot]):
    """Builds the scripted bot core for each call, resuming a caller's saved session."""

    def create(self, context: CallContext, saved: dict[str, Any] | None = None) -> QualifyingBot:
        return QualifyingBot(
            persona=self.persona,
            calendar=self.calendar,
            context=context,
            now=self.now,
            clock=self.clock,
            options=self.options,
            store=self.store,
            saved=saved,
        )

    async def take_over(self, context: CallContext, state: dict[str, Any]) -> QualifyingBot:
        """A bot that continues this very call from another brain's session ``state``."""
        bot = self.create(context)
        await bot.continue_call(state)
        return bot
