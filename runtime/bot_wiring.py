"""Builds the bots a server's calls get, from its settings: the bot core, its brain, the calendar
it books in and where conversations are kept for resumption."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bots.base import BotFactory
from bots.business_hours import BusinessHours
from bots.calendar import Calendar
from bots.conversation_state import QualifierOptions
from bots.fallback import FallbackBotFactory
from bots.ghl import GhlCalendar
from bots.lead import LeadBotFactory
from bots.llm_bot import LlmBotFactory
from bots.local_calendar import LocalCalendar
from bots.qualifier import QualifyingBotFactory
from bots.session_state import BotSessionStore, MemoryBotSessionStore
from runtime.anthropic_llm import AnthropicLlm
from runtime.config import Settings
from runtime.fallback import CircuitBreaker

Closers = list[Callable[[], Awaitable[None]]]


def build_llm(settings: Settings) -> AnthropicLlm | None:
    """Claude, when it is the configured brain: one client (one connection pool) for the bots
    and the call summaries."""
    if settings.llm != "anthropic":
        return None
    vendors = settings.engines.vendors
    return AnthropicLlm(
        api_key=vendors.anthropic_api_key,
        base_url=vendors.anthropic_base_url,
        model=vendors.anthropic_model,
        first_token_timeout_s=vendors.anthropic_first_token_timeout_s,
    )


def build_bot_factory(
    settings: Settings, closers: Closers, sessions: BotSessionStore | None = None, llm: AnthropicLlm | None = None
) -> BotFactory:
    """The configured bot core; with ``llm`` (``build_llm``), Claude with the scripted brain as
    its fallback (one calendar and session store for both). ``sessions`` keeps conversations
    for resumption (in memory by default)."""
    core = settings.bot_core
    if core.core == "lead":
        return LeadBotFactory(settings.persona.business_name, settings.persona.bot_name)
    calendar = build_calendar(settings, closers)
    sessions = sessions or MemoryBotSessionStore()
    options = QualifierOptions(transfers=transfers_configured(settings))
    scripted = QualifyingBotFactory(persona=core.persona, calendar=calendar, store=sessions, now=_now, options=options)
    if llm is None:
        return scripted
    primary = LlmBotFactory(llm, persona=core.persona, calendar=calendar, store=sessions, now=_now, options=options)
    return FallbackBotFactory(primary, scripted, CircuitBreaker("anthropic"))


def transfers_configured(settings: Settings) -> bool:
    """A warm transfer can happen: an agent to ring, a number to ring from, a Twilio account."""
    return bool(
        settings.bot_core.agent_number and settings.dial.caller_id and settings.engines.vendors.twilio_account_sid
    )


def _now() -> datetime:
    return datetime.now(UTC)


def build_calendar(settings: Settings, closers: Closers) -> Calendar:
    """GoHighLevel when a token is configured, else the embedded calendar in the persona's zone."""
    ghl = settings.bot_core.ghl
    calendar: Calendar
    if ghl is not None:
        calendar = GhlCalendar(ghl)
    else:
        calendar = LocalCalendar(BusinessHours(timezone=settings.bot_core.persona.timezone))
    closers.append(calendar.aclose)
    return calendar
