"""The bot interface the call pipeline talks to: text in, a stream of actions out.

Channel-neutral on purpose: the voice pipeline turns ``Say`` fragments into sentences and
speech; a text channel (later) would send them as messages. A reply is an async stream so an
LLM brain can hand over text as it is generated and the first sentence can be spoken while the
rest is still being produced.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True, kw_only=True)
class CallContext:
    """Who is calling whom, as carried by the TwiML ``<Parameter>``s."""

    call_sid: str
    from_number: str
    to_number: str
    direction: str
    tenant: str
    bot: str


@dataclass(frozen=True, slots=True)
class Say:
    """A fragment of the bot's reply (any length: a token, a clause, a sentence), spoken in
    ``voice`` (a persona's voice name; None: the default voice). A hand-off changes the voice
    mid-reply: the bridge line in the old bot's voice, the new bot's first words in its own."""

    text: str
    voice: str | None = None
    kind: Literal["say"] = "say"


@dataclass(frozen=True, slots=True)
class EndCall:
    """The bot is done: hang up once everything said so far has been heard."""

    reason: str
    kind: Literal["end_call"] = "end_call"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the call should record but not say (e.g. the brain fell back to the scripted one)."""

    stage: Literal["llm"]
    reason: str
    kind: Literal["notice"] = "notice"


@dataclass(frozen=True, slots=True)
class TransferToHuman:
    """Put the caller through to a person (the pipeline performs the warm transfer); ``briefing``
    is the spoken summary the agent hears before being joined."""

    reason: str
    briefing: str
    kind: Literal["transfer_to_human"] = "transfer_to_human"


@dataclass(frozen=True, slots=True, kw_only=True)
class HandedOff:
    """One bot handed the caller to another, for the call's record (nothing is spoken).
    ``latency_ms`` runs from the decision to the new bot's first words being produced."""

    from_bot: str
    to_bot: str
    reason: str
    latency_ms: float
    kind: Literal["handed_off"] = "handed_off"


BotAction = Say | EndCall | Notice | TransferToHuman | HandedOff

#: How a warm transfer to a person ended (``Bot.after_transfer``).
TransferOutcome = Literal["joined", "no_answer", "busy", "voicemail", "failed"]


class Bot(ABC):
    """One conversation with one caller; holds the conversation's state."""

    @abstractmethod
    def greeting(self) -> str:
        """What the bot says when the call connects (rendered ahead of time)."""

    @property
    def voice(self) -> str | None:
        """The voice the bot speaks in now (greeting, prompts, acknowledgements)."""
        return None

    @abstractmethod
    def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        """React to one complete caller turn."""

    @abstractmethod
    def interrupted(self, heard_text: str) -> None:
        """The caller barged in: only ``heard_text`` of the last reply was actually heard."""

    def checkpoint(self) -> object | None:
        """The conversation state now, so that a reply started early (at a pause in the caller's
        speech) can be rolled back if the caller goes on. None: this bot cannot roll back, and
        its replies are never started early."""
        return None

    def rollback(self, checkpoint: object) -> None:
        """Return to a state ``checkpoint()`` returned."""
        raise TypeError(f"{type(self).__name__} cannot roll back")

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """What the bot has learned so far, JSON-ready (for the call report and resumption)."""

    @property
    def done(self) -> bool:
        """Whether the conversation has reached its end (nothing left to ask or do)."""
        return False

    async def persist(self) -> None:
        """Save the conversation so a later call or message can resume it (called at turn ends;
        must not raise). Bots that do not resume keep nothing."""
        return

    def note_response_latency(self, latency_ms: float) -> None:
        """The pipeline's measure of one reply (end of speech -> first audio), for the bot's own
        effectiveness figures. Ignored by default."""
        return

    async def after_transfer(self, outcome: TransferOutcome) -> AsyncIterator[BotAction]:
        """The caller is back after a transfer that ended with ``outcome`` (anything but
        ``joined``): what the bot says now. Bots that never transfer say nothing."""
        return
        yield  # an async generator that yields nothing


class BotFactory(ABC):
    """Builds a fresh bot for each call (per-tenant persona comes from configuration)."""

    @abstractmethod
    def create(self, context: CallContext) -> Bot:
        """A new bot for this call."""

    async def create_for_caller(self, context: CallContext) -> Bot:
        """A bot for this call that continues the caller's saved conversation, for factories that
        keep them (it may read a store, hence async); a fresh bot otherwise."""
        return self.create(context)

    async def opted_out(self, tenant: str, phone: str) -> bool:
        """Whether the lead at ``phone`` asked this tenant not to be called again (by factories
        that keep conversations); the dialler refuses to call them."""
        return False

    @abstractmethod
    def fixed_phrases(self) -> list[str]:
        """Phrases every call starts with (greetings), worth rendering to audio ahead of time."""

    def voices(self) -> list[str | None]:
        """Every voice its bots speak in (fixed phrases are rendered in each)."""
        return [None]
