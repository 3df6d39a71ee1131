"""A bot that keeps talking when its LLM brain fails: one retry, then the scripted brain.

A retryable failure before any words were said is retried once; otherwise (or when the process-
wide circuit breaker is open) the turn is answered by the fallback bot, and the call records a
``Notice``. Output already spoken cannot be taken back, so a failure mid-reply goes straight to
the fallback.

When both brains keep the session-state format (``session_state()``, and a fallback factory
with ``take_over``), the fallback takes over from the primary's state at that moment: same bot,
answers, question and booking, so the caller hears at most a change of wording. It then keeps
the call: the primary never heard the turns it answered, and two brains taking turns would each
miss the other's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, runtime_checkable

from bots.base import Bot, BotAction, BotFactory, CallContext, Notice, Say, TransferOutcome
from runtime.fallback import CircuitBreaker
from runtime.llm import LlmError

log = logging.getLogger(__name__)

#: Builds the fallback bot that continues the call from the primary's session state.
TakeOver = Callable[[dict[str, Any]], Awaitable[Bot]]


@runtime_checkable
class SessionBot(Protocol):
    """A bot whose conversation can be handed on as a session state."""

    def session_state(self) -> dict[str, Any]: ...


@runtime_checkable
class TakeOverFactory(Protocol):
    """A factory whose bots can continue a call another brain was having."""

    async def take_over(self, context: CallContext, state: dict[str, Any]) -> Bot: ...


@dataclass(frozen=True)
class _FallbackCheckpoint:
    primary: object
    fallback_bot: Bot
    fallback: object
    degraded_turns: int
    took_over: bool


class FallbackBot(Bot):
    def __init__(
        self, primary: Bot, fallback: Bot, breaker: CircuitBreaker, *, take_over: TakeOver | None = None
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker
        self.degraded_turns = 0
        self._take_over = take_over
        #: whether the fallback continues the call from the primary's state (and keeps it)
        self.took_over = False

    @property
    def _active(self) -> Bot:
        return self.fallback if self.took_over else self.primary

    def greeting(self) -> str:
        return self.primary.greeting()

    @property
    def voice(self) -> str | None:
        return self._active.voice

    @property
    def done(self) -> bool:
        return self._active.done

    async def persist(self) -> None:
        await self._active.persist()

    def note_response_latency(self, latency_ms: float) -> None:
        self.primary.note_response_latency(latency_ms)
        self.fallback.note_response_latency(latency_ms)

    async def after_transfer(self, outcome: TransferOutcome) -> AsyncIterator[BotAction]:
        """The primary's word on a failed transfer; the fallback's if the primary fails before
        saying anything (the caller is back on the line and must hear something)."""
        if self.took_over:
            async for action in self.fallback.after_transfer(outcome):
                yield action
            return
        said_something = False
        try:
            async for action in self.primary.after_transfer(outcome):
                said_something = True
                yield action
        except LlmError as e:
            self.breaker.record_failure()
            if said_something:
                raise
            yield Notice("llm", f"llm failed: {e}")
            await self._hand_over()
            async for action in self.fallback.after_transfer(outcome):
                yield action

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        if self.took_over:
            self.degraded_turns += 1
            async for action in self.fallback.respond(caller_text):
                yield action
            return
        reason = "circuit open"
        heard: list[str] = []  # what the primary said of this turn before failing
        if self.breaker.allows():
            for attempt in (1, 2):
                try:
                    async for action in self.primary.respond(caller_text):
                        heard += [action.text] if isinstance(action, Say) else []
                        yield action
                except LlmError as e:
                    self.breaker.record_failure()
                    reason = f"llm failed: {e}"
                    log.warning("llm turn failed", extra={"attempt": attempt, "retryable": e.retryable})
                    if heard or not e.retryable or not self.breaker.allows():
                        break
                else:
                    self.breaker.record_success()
                    return
        self.degraded_turns += 1
        yield Notice("llm", reason)
        await self._hand_over()
        async for action in self.fallback.respond(caller_text):
            if not (self.took_over and isinstance(action, Say) and _already_said(action.text, heard)):
                yield action

    async def _hand_over(self) -> None:
        """The fallback continues from the primary's state, when both keep one."""
        if self._take_over is None or not isinstance(self.primary, SessionBot):
            return
        self.fallback = await self._take_over(self.primary.session_state())
        self.took_over = True
        log.info("fallback took over the call", extra={"degraded_turns": self.degraded_turns})

    def interrupted(self, heard_text: str) -> None:
        self.primary.interrupted(heard_text)
        self.fallback.interrupted(heard_text)

    def checkpoint(self) -> object | None:
        primary, fallback = self.primary.checkpoint(), self.fallback.checkpoint()
        if primary is None or fallback is None:
            return None
        return _FallbackCheckpoint(primary, self.fallback, fallback, self.degraded_turns, self.took_over)

    def rollback(self, checkpoint: object) -> None:
        assert isinstance(checkpoint, _FallbackCheckpoint)
        self.primary.rollback(checkpoint.primary)
        self.fallback = checkpoint.fallback_bot
        self.fallback.rollback(checkpoint.fallback)
        self.degraded_turns, self.took_over = checkpoint.degraded_turns, checkpoint.took_over

    def snapshot(self) -> dict[str, Any]:
        """The snapshot of the brain holding the call, with the fallback's and how degraded."""
        return {
            **self._active.snapshot(),
            "fallback": self.fallback.snapshot(),
            "degraded_turns": self.degraded_turns,
            "took_over": self.took_over,
        }


def _already_said(text: str, heard: list[str]) -> bool:
    """Whether the caller already heard these words from the primary this turn (it failed after
    saying them): a fallback continuing from its state would otherwise say them twice."""
    words = " ".join(text.split())
    return bool(words) and words in " ".join("".join(heard).split())


class FallbackBotFactory(BotFactory):
    """One breaker for the whole process: a vendor outage is not per call."""

    def __init__(self, primary: BotFactory, fallback: BotFactory, breaker: CircuitBreaker) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker

    def create(self, context: CallContext) -> FallbackBot:
        return FallbackBot(
            self.primary.create(context),
            self.fallback.create(context),
            self.breaker,
            take_over=self._take_over(context),
        )

    async def create_for_caller(self, context: CallContext) -> FallbackBot:
        """Both brains continue the caller's saved conversation."""
        primary = await self.primary.create_for_caller(context)
        fallback = await self.fallback.create_for_caller(context)
        return FallbackBot(primary, fallback, self.breaker, take_over=self._take_over(context))

    def _take_over(self, context: CallContext) -> TakeOver | None:
        if not isinstance(self.fallback, TakeOverFactory):
            return None
        return partial(self.fallback.take_over, context)

    async def opted_out(self, tenant: str, phone: str) -> bool:
        return await self.primary.opted_out(tenant, phone) or await self.fallback.opted_out(tenant, phone)

    def voices(self) -> list[str | None]:
        return list(dict.fromkeys([*self.primary.voices(), *self.fallback.voices()]))

    def fixed_phrases(self) -> list[str]:
        return [*self.primary.fixed_phrases(), *self.fallback.fixed_phrases()]
