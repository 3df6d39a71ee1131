"""What the scripted and the LLM brain share: the conversation state both keep (flows per bot,
visited bots, hand-offs, appointment, latencies...) and everything computed from it alone, the
score, effectiveness, agent summary, snapshot and session state, so reports, analytics and
session resume read either brain alike.

``ConversationBot`` holds that part; each brain subclasses it with its own conversation (its
stages, and a turn history or a booking dialog) and says how its booking shows in a report.
"""

from __future__ import annotations

import copy
import logging
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Literal, TypeVar

from bots.base import Bot, BotAction, BotFactory, CallContext, EndCall, Say
from bots.calendar import Calendar, Contact
from bots.flows import FlowState, build_flows, new_flows
from bots.handoff import HandoffRecord, HandoffRules
from bots.persona import ROLES, BotRole, Persona
from bots.scoring import Score, score_lead
from bots.session_state import DEFAULT_RESUME_WINDOW, STATE_VERSION, BotSessionStore, resumable
from bots.understanding import first_name
from runtime.clock import Clock, MonotonicClock

log = logging.getLogger(__name__)

BookingKind = Literal["showing", "listing_consultation", "callback"]
BOOKING_TITLES: dict[BookingKind, str] = {
    "showing": "Showing",
    "listing_consultation": "Listing consultation",
    "callback": "Callback",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class QualifierOptions:
    """How either brain runs its calls."""

    rules: HandoffRules = field(default_factory=HandoffRules)
    resume_window: timedelta = DEFAULT_RESUME_WINDOW
    #: a person can be reached now (warm transfers are configured); if not, a caller who wants
    #: one, or a hot lead, is offered a callback instead of a transfer that cannot happen
    transfers: bool = True


def lead_phone(context: CallContext) -> str:
    """The lead's number: the caller's on an inbound call, the dialled one on an outbound call."""
    return context.to_number if context.direction.startswith("outbound") else context.from_number


@dataclass(kw_only=True)
class ConversationState:
    """What either brain knows of a conversation; a brain's checkpoint copies it whole."""

    role: BotRole
    flows: dict[BotRole, FlowState]
    visited: list[BotRole]
    stage: str = "qualifying"
    handoffs: list[HandoffRecord] = field(default_factory=list)
    handoffs_this_call: int = 0
    contact: Contact | None = None
    appointment: dict[str, Any] | None = None
    next_step: str | None = None
    interruptions: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    last_activity: datetime | None = None
    #: appointments replaced by new ones that the calendar could not cancel, for the team
    cancel_pending: list[dict[str, Any]] = field(default_factory=list)
    #: the lead asked not to be called again (kept with the session; the dialler checks it)
    opted_out: bool = False


State = TypeVar("State", bound=ConversationState)


class ConversationBot(Bot, Generic[State]):
    """The part of a brain computed from the conversation state, the same for both brains."""

    #: which brain it is, in snapshots (a call's record says which one held it)
    brain: ClassVar[str]
    _c: State

    def __init__(
        self,
        *,
        persona: Persona,
        calendar: Calendar,
        context: CallContext,
        now: Callable[[], datetime],
        clock: Clock,
        options: QualifierOptions,
        store: BotSessionStore | None,
        saved: dict[str, Any] | None,
    ) -> None:
        self.persona = persona
        self.calendar = calendar
        self.context = context
        self._now = now
        self._clock = clock
        self.options = options
        self._store = store
        self._questions = build_flows(min_intent_confidence=options.rules.min_intent_confidence)
        self._c = self._new_conversation(new_flows(self._questions))
        self._saved: dict[str, Any] | None = None
        self._resumed = saved is not None
        if saved is not None:
            self._restore(saved)

    @abstractmethod
    def _new_conversation(self, flows: dict[BotRole, FlowState]) -> State:
        """A fresh conversation, with the Lead bot speaking."""

    @abstractmethod
    def _restore(self, saved: dict[str, Any]) -> None:
        """Continue the saved session ``saved`` (``_restore_state``, plus what is the brain's)."""

    @abstractmethod
    def _booking_report(self) -> dict[str, Any] | None:
        """The booking as reports show it (the keys of ``BookingDialog.state()``), or None."""

    # --- the Bot interface ---

    @property
    def voice(self) -> str:
        return self.persona.bot(self._c.role).voice

    @property
    def done(self) -> bool:
        return self._c.stage == "done"

    def note_response_latency(self, latency_ms: float) -> None:
        """The pipeline's measure of one reply's latency, for the effectiveness score."""
        self._c.latencies_ms.append(latency_ms)

    def snapshot(self) -> dict[str, Any]:
        c = self._c
        return {
            "brain": self.brain,
            "bot": c.role,
            "stage": c.stage,
            "resumed": self._resumed,
            "answers": self._answers(),
            "progress": self._all_progress(),
            "score": self.score().to_dict(),
            "handoffs": [record.to_dict() for record in c.handoffs],
            "appointment": c.appointment,
            "booking": self._booking_report(),
            "next_step": c.next_step,
            "cancel_pending": copy.deepcopy(c.cancel_pending),
            "effectiveness": self.effectiveness(),
            "interrupted_after": list(c.interruptions),
        }

    # --- what the bot knows ---

    def score(self) -> Score:
        return score_lead({role: self._c.flows[role].answers for role in ROLES})

    def effectiveness(self) -> dict[str, float | None]:
        """Question completion rate over the bots the caller met, and mean reply latency."""
        flows = [self._c.flows[role] for role in self._c.visited]
        questions = sum(len(flow.questions) for flow in flows)
        answered = sum(flow.completion * len(flow.questions) for flow in flows)
        latencies = self._c.latencies_ms
        return {
            "completion_rate": round(answered / questions, 3),
            "mean_response_latency_ms": round(sum(latencies) / len(latencies), 1) if latencies else None,
        }

    def summary(self) -> str:
        """What an agent needs to hear first: who, what for, how hot, and the answers."""
        name = self._c.flows["lead"].answers.get("name") or "the caller"
        score = self.score()
        parts = [f"{score.temperature.capitalize()} lead: {name}."]
        for role in ("buyer", "seller"):
            phrases = self._c.flows[role].summary()
            if phrases:
                parts.append(f"{'Buying' if role == 'buyer' else 'Selling'}: {', '.join(phrases)}.")
        parts.append(f"Why: {'; '.join(score.reasons)}.")
        return " ".join(parts)

    def _answers(self) -> dict[BotRole, dict[str, Any]]:
        return {role: dict(self._c.flows[role].answers) for role in ROLES}

    def _all_progress(self) -> dict[BotRole, dict[str, Any]]:
        return {role: self._progress(role) for role in ROLES}

    def _progress(self, role: BotRole) -> dict[str, Any]:
        flow = self._c.flows[role]
        unknown = [slot for slot, value in flow.answers.items() if value is None]
        progress = {key: value for key, value in flow.to_dict().items() if key != "answers"}
        return {**progress, "unknown": unknown, "completion": round(flow.completion, 3)}

    # --- the caller's contact and bookings ---

    async def _contact(self) -> Contact:
        if self._c.contact is None:
            name = self._c.flows["lead"].answers.get("name") or ""
            self._c.contact = await self.calendar.upsert_contact(name=name, phone=lead_phone(self.context))
        return self._c.contact

    def _booking_title(self, kind: BookingKind) -> str:
        name = self._c.flows["lead"].answers.get("name") or lead_phone(self.context)
        return f"{BOOKING_TITLES[kind]}: {name}"

    def _welcome_back(self) -> str:
        """The start of a returning caller's greeting: their name, and the bot they spoke to."""
        name = self._c.flows["lead"].answers.get("name")
        bot = self.persona.bot(self._c.role)
        hello = f"Hi {first_name(name)}" if name else "Hi"
        return f"{hello}, welcome back to {self.persona.business_name}! It's {bot.name} again."

    # --- the saved session ---

    def session_state(self) -> dict[str, Any]:
        """This conversation as the session store keeps it (JSON-ready)."""
        c = self._c
        return {
            "version": STATE_VERSION,
            "current_bot": c.role,
            "answers": self._answers(),
            "progress": self._all_progress(),
            "visited": list(c.visited),
            "score": self.score().to_dict(),
            "handoffs": [record.to_dict() for record in c.handoffs],
            "appointment": c.appointment,
            "next_step": c.next_step,
            "effectiveness": self.effectiveness(),
            "last_activity": (c.last_activity or self._now()).isoformat(),
            "stage": c.stage,
            "booking": self._booking_report(),
            "cancel_pending": copy.deepcopy(c.cancel_pending),
            "opted_out": c.opted_out,
        }

    async def persist(self) -> None:
        """Save the session if it changed since the last save; cheap when nothing did. A store
        failure is logged, not raised: the call goes on without resumption."""
        if self._store is None:
            return
        state = self.session_state()
        if state == self._saved:
            return
        try:
            await self._store.save(self.context.tenant, lead_phone(self.context), state)
        except Exception:  # the session store is optional for the call itself
            log.warning("bot session not saved", exc_info=True, extra={"tenant": self.context.tenant})
            return
        self._saved = state

    def _restore_state(self, saved: dict[str, Any]) -> None:
        """The saved bot, answers, progress, hand-offs and appointment (the rest is the brain's)."""
        c = self._c
        for role in ROLES:
            progress = {**saved["progress"].get(role, {}), "answers": saved["answers"].get(role, {})}
            c.flows[role] = FlowState.from_dict(role, self._questions[role], progress)
        c.role = saved["current_bot"] if saved.get("current_bot") in ROLES else "lead"
        c.visited = [role for role in saved.get("visited", [c.role]) if role in ROLES] or [c.role]
        c.handoffs = [HandoffRecord.from_dict(record) for record in saved.get("handoffs", [])]
        c.appointment, c.next_step = saved.get("appointment"), saved.get("next_step")
        c.cancel_pending = list(saved.get("cancel_pending", []))
        c.opted_out = bool(saved.get("opted_out", False))

    def keep_opt_out(self) -> None:
        """The lead opted out on an earlier call that is not resumed: this session keeps it."""
        self._c.opted_out = True

    def _opt_out(self) -> list[BotAction]:
        """The caller asked not to be called again: agree, note it for the dialler, hang up."""
        c = self._c
        c.opted_out, c.stage, c.next_step = True, "done", "do_not_call"
        log.info("lead opted out of calls", extra={"tenant": self.context.tenant})
        bye = "Understood. I've taken this number off our call list, and we won't call you again. Goodbye!"
        return [Say(text=bye, voice=self.voice), EndCall("opted out")]


Brain = TypeVar("Brain", bound=ConversationBot[Any])


class ConversationBotFactory(BotFactory, Generic[Brain]):
    """What both brains' factories share: one persona, calendar and session store for every call,
    and a caller's last session resumed when it is recent enough."""

    def __init__(
        self,
        *,
        persona: Persona,
        calendar: Calendar,
        now: Callable[[], datetime],
        store: BotSessionStore | None = None,
        clock: Clock | None = None,
        options: QualifierOptions | None = None,
    ) -> None:
        self.persona = persona
        self.calendar = calendar
        self.now = now
        self.store = store
        self.clock = clock or MonotonicClock()
        self.options = options or QualifierOptions()

    @abstractmethod
    def create(self, context: CallContext, saved: dict[str, Any] | None = None) -> Brain:
        """A bot for this call; with ``saved`` (a session state), continuing that session."""

    async def opted_out(self, tenant: str, phone: str) -> bool:
        if self.store is None:
            return False
        saved = await self.store.load(tenant, phone)
        return bool(saved and saved.get("opted_out"))

    async def create_for_caller(self, context: CallContext) -> Brain:
        """A bot for this call that continues the caller's last session if it is recent enough
        (same tenant and phone, within the resume window). An opt-out outlives the window: the
        new session, saved over the old one, keeps it."""
        saved = await self.store.load(context.tenant, lead_phone(context)) if self.store else None
        bot = self.create(context, saved if resumable(saved, self.now(), self.options.resume_window) else None)
        if saved and saved.get("opted_out"):
            bot.keep_opt_out()
        return bot

    def fixed_phrases(self) -> list[str]:
        return self.persona.greetings("lead")

    def voices(self) -> list[str | None]:
        return [*self.persona.voices()]
