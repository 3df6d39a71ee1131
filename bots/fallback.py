"""A bot that keeps talking when its LLM brain fails: one retry, then the scripted brain.

A retryable failure before any words were said is retried once; otherwise (or when the process-
wide circuit breaker is open) the turn is answered by the fallback bot, and the call records a
``Notice``. Output already spoken cannot be taken back, so a failure mid-reply goes straight to
the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bots.base import Bot, BotAction, BotFactory, CallContext, Notice, TransferOutcome
from runtime.fallback import CircuitBreaker
from runtime.llm import LlmError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _FallbackCheckpoint:
    primary: object
    fallback: object
    degraded_turns: int


class FallbackBot(Bot):
    def __init__(self, primary: Bot, fallback: Bot, breaker: CircuitBreaker) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker
        self.degraded_turns = 0

    def greeting(self) -> str:
        return self.primary.greeting()

    @property
    def voice(self) -> str | None:
        return self.primary.voice

    @property
    def done(self) -> bool:
        return self.primary.done

    async def persist(self) -> None:
        await self.primary.persist()

    def note_response_latency(self, latency_ms: float) -> None:
        self.primary.note_response_latency(latency_ms)
        self.fallback.note_response_latency(latency_ms)

    async def after_transfer(self, outcome: TransferOutcome) -> AsyncIterator[BotAction]:
        """The primary's word on a failed transfer; the fallback's if the primary fails before
        saying anything (the caller is back on the line and must hear something)."""
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
            async for action in self.fallback.after_transfer(outcome):
                yield action

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        reason = "circuit open"
        if self.breaker.allows():
            for attempt in (1, 2):
                said_something = False
                try:
                    async for action in self.primary.respond(caller_text):
                        said_something = True
                        yield action
                except LlmError as e:
                    self.breaker.record_failure()
                    reason = f"llm failed: {e}"
                    log.warning("llm turn failed", extra={"attempt": attempt, "retryable": e.retryable})
                    if said_something or not e.retryable or not self.breaker.allows():
                        break
                else:
                    self.breaker.record_success()
                    return
        self.degraded_turns += 1
        yield Notice("llm", reason)
        async for action in self.fallback.respond(caller_text):
            yield action

    def interrupted(self, heard_text: str) -> None:
        self.primary.interrupted(heard_text)
        self.fallback.interrupted(heard_text)

    def checkpoint(self) -> object | None:
        primary, fallback = self.primary.checkpoint(), self.fallback.checkpoint()
        if primary is None or fallback is None:
            return None
        return _FallbackCheckpoint(primary, fallback, self.degraded_turns)

    def rollback(self, checkpoint: object) -> None:
        assert isinstance(checkpoint, _FallbackCheckpoint)
        self.primary.rollback(checkpoint.primary)
        self.fallback.rollback(checkpoint.fallback)
        self.degraded_turns = checkpoint.degraded_turns

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.primary.snapshot(),
            "fallback": self.fallback.snapshot(),
            "degraded_turns": self.degraded_turns,
        }


class FallbackBotFactory(BotFactory):
    """One breaker for the whole process: a vendor outage is not per call."""

    def __init__(self, primary: BotFactory, fallback: BotFactory, breaker: CircuitBreaker) -> None:
        self.primary = primary
        self.fallback = fallback
        self.breaker = breaker

    def create(self, context: CallContext) -> FallbackBot:
        return FallbackBot(self.primary.create(context), self.fallback.create(context), self.breaker)

    async def create_for_caller(self, context: CallContext) -> FallbackBot:
        """Both brains continue the caller's saved conversation."""
        primary = await self.primary.create_for_caller(context)
        return FallbackBot(primary, await self.fallback.create_for_caller(context), self.breaker)

    def voices(self) -> list[str | None]:
        return list(dict.fromkeys([*self.primary.voices(), *self.fallback.voices()]))

    def fixed_phrases(self) -> list[str]:
        return [*self.primary.fixed_phrases(), *self.fallback.fixed_phrases()]
