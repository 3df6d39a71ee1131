"""The LLM brain's fallback: retry once when nothing was said, else the scripted brain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bots.base import Bot, BotAction, EndCall, Notice, Say
from bots.fallback import FallbackBot
from bots.lead import LeadBot
from runtime.fallback import CircuitBreaker
from runtime.llm import LlmError


class ScriptedFailures(Bot):
    """Fails according to ``plan``: 'ok', 'fail' (retryable, before speaking), 'fatal', 'midway'."""

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan
        self.calls = 0

    def greeting(self) -> str:
        return "Hi from the LLM."

    async def respond(self, caller_text: str) -> AsyncIterator[BotAction]:
        step = self.plan[min(self.calls, len(self.plan) - 1)]
        self.calls += 1
        if step == "midway":
            yield Say("Let me think ")
        if step in ("fail", "midway"):
            raise LlmError("overloaded", retryable=True, status=529)
        if step == "fatal":
            raise LlmError("bad key", retryable=False, status=401)
        yield Say(f"LLM heard: {caller_text}")

    def interrupted(self, heard_text: str) -> None:
        """Not exercised."""

    def snapshot(self) -> dict[str, Any]:
        return {"calls": self.calls}


async def run(bot: Bot, text: str) -> list[BotAction]:
    return [a async for a in bot.respond(text)]


async def test_one_retry_hides_a_transient_failure() -> None:
    primary = ScriptedFailures(["fail", "ok"])
    bot = FallbackBot(primary, LeadBot("Lakeside", "Ava"), CircuitBreaker("llm"))
    actions = await run(bot, "a house")
    assert actions == [Say("LLM heard: a house")]
    assert primary.calls == 2


async def test_a_fatal_error_falls_back_at_once_and_is_noticed() -> None:
    primary = ScriptedFailures(["fatal"])
    bot = FallbackBot(primary, LeadBot("Lakeside", "Ava"), CircuitBreaker("llm"))
    actions = await run(bot, "I want to buy a condo in Austin")
    assert primary.calls == 1
    assert isinstance(actions[0], Notice) and actions[0].stage == "llm" and "bad key" in actions[0].reason
    said = "".join(a.text for a in actions if isinstance(a, Say))
    assert "Buying a condo in Austin" in said  # the scripted brain answered
    assert bot.snapshot()["degraded_turns"] == 1


async def test_failure_after_words_were_said_is_not_retried() -> None:
    primary = ScriptedFailures(["midway"])
    bot = FallbackBot(primary, LeadBot("Lakeside", "Ava"), CircuitBreaker("llm"))
    actions = await run(bot, "I want to sell my house")
    assert primary.calls == 1
    assert actions[0] == Say("Let me think ") and isinstance(actions[1], Notice)


async def test_open_breaker_skips_the_llm_for_every_call() -> None:
    breaker = CircuitBreaker("llm", failure_threshold=2)
    first = ScriptedFailures(["fail"])
    await run(FallbackBot(first, LeadBot("L", "A"), breaker), "hello")
    assert first.calls == 2 and breaker.state == "open"
    second = ScriptedFailures(["ok"])
    actions = await run(FallbackBot(second, LeadBot("L", "A"), breaker), "I want to rent in Dallas")
    assert second.calls == 0
    assert isinstance(actions[0], Notice) and actions[0].reason == "circuit open"
    assert not any(isinstance(a, EndCall) for a in actions)
