"""The LLM brain behind the ``Bot`` interface: a lead-qualifying conversation with tools.

Text is handed on delta by delta, so the pipeline can speak the first sentence while the model
is still writing the rest. The model records what it learns with ``record_answers`` and hangs
up with ``end_call``. Failures are raised, not hidden: retry and fallback are the pipeline's
decision (bots/fallback.py), and the history is left so that a retried turn starts clean.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from bots.base import Bot, BotAction, BotFactory, CallContext, EndCall, Say
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

#: Model requests per caller turn: a reply with tool calls, then the model's follow-up, and one
#: spare; a model that keeps calling tools beyond that is looping.
DEFAULT_MAX_ROUNDS = 3

_ANSWER_FIELDS: dict[str, Any] = {
    "intent": {"type": "string", "enum": ["buy", "sell", "rent"]},
    "property": {"type": "string", "description": "e.g. 'three bedroom house', 'condo'"},
    "area": {"type": "string", "description": "town, city or neighbourhood"},
    "budget": {"type": "integer", "description": "in US dollars"},
    "timeline": {"type": "string", "description": "when they hope to move, in their words"},
}
RECORD_ANSWERS = ToolSpec(
    name="record_answers",
    description="Save what the caller has told you so far. Call it whenever you learn something new.",
    input_schema={"type": "object", "properties": _ANSWER_FIELDS, "additionalProperties": False},
)
END_CALL = ToolSpec(
    name="end_call",
    description="Hang up after your goodbye has been said: when qualification is complete or the caller wants to go.",
    input_schema={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "why the call ends, in a few words"}},
        "required": ["reason"],
    },
)
TOOLS = (RECORD_ANSWERS, END_CALL)


def greeting(business_name: str, bot_name: str) -> str:
    """Names the business and discloses the AI at the start (protocols.md §8)."""
    return (
        f"Hi, thanks for calling {business_name}! I'm {bot_name}, an AI assistant. "
        "What kind of property are you looking for, and where?"
    )


def system_prompt(business_name: str, bot_name: str) -> str:
    """The same for every call of a persona, so it is a cache read after the first call."""
    return (
        f"You are {bot_name}, an AI assistant answering the phone for {business_name}, a real-estate agency. "
        "You are on a live phone call and everything you write is spoken aloud: reply in one or two short "
        "sentences, ask one question at a time, and never use lists, markdown, emoji or abbreviations. "
        "Find out whether the caller wants to buy, sell or rent, what kind of property and where, their "
        "budget and their timeline. Call record_answers whenever you learn something new. If the caller asks, "
        "say you are an AI assistant; never claim to be human. Once you know all of it, or the caller wants "
        "to go, thank them, say an agent will call them back, say goodbye, then call end_call. "
        f'You opened the call with: "{greeting(business_name, bot_name)}"'
    )


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
class _LlmCheckpoint:
    history: tuple[ChatMessage, ...]
    answers: dict[str, Any]
    turns: int
    interruptions: tuple[str, ...]


class LlmBot(Bot):
    """One call's conversation with the model; the history is the API's message list."""

    def __init__(
        self,
        model: LanguageModel,
        *,
        business_name: str,
        bot_name: str,
        system: str | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
    ) -> None:
        self.model = model
        self.system = system or system_prompt(business_name, bot_name)
        self.max_rounds = max_rounds
        self.answers: dict[str, Any] = {}
        self.turns = 0
        self.history: list[ChatMessage] = []
        self.interruptions: list[str] = []
        self._greeting = greeting(business_name, bot_name)
        self._usage = {f.name: 0 for f in fields(Usage)}

    def greeting(self) -> str:
        return self._greeting

    async def respond(self, caller_text: str) -> AsyncGenerator[BotAction, None]:
        """A generator, so a barge-in can ``aclose`` it: the model stream is closed at once and
        what was generated so far stays in the history for ``interrupted`` to trim."""
        before = list(self.history)
        self.turns += 1
        self._append("user", (TextBlock(text=caller_text),))
        try:
            for _ in range(self.max_rounds):
                reply = _Reply()
                async with aclosing(self._stream_reply(reply)) as says:
                    async for say in says:
                        yield say
                if not reply.calls:
                    return
                ending = self._run_tools(reply.calls)
                if ending is not None:
                    yield EndCall(ending)
                    return
        except LlmError:
            if not any(_has_text(m) for m in self.history[len(before) :] if m.role == "assistant"):
                self.history = before  # nothing was said: a retry of this turn starts clean
            raise
        log.warning("llm kept calling tools", extra={"rounds": self.max_rounds, "turn": self.turns})

    async def _stream_reply(self, reply: _Reply) -> AsyncGenerator[Say, None]:
        """One model response: text handed on as it comes, tool calls and usage collected."""
        finished = False
        try:
            async with _closing(self.model.stream(system=self.system, messages=self.history, tools=TOOLS)) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        reply.text += event.text
                        yield Say(event.text)
                    elif isinstance(event, ToolCall):
                        reply.calls.append(event)
                    else:
                        self._add_usage(event.usage)
            finished = True
        finally:
            # Cut short (error, barge-in): keep what was said, drop tool calls that never ran.
            self._append("assistant", reply.content(with_calls=finished))

    def interrupted(self, heard_text: str) -> None:
        """Cut this turn's assistant text to the words the caller heard, so the model knows
        what was not said. The greeting is not in the history (it is in the system prompt)."""
        self.interruptions.append(heard_text)
        turn_start = max((i for i, m in enumerate(self.history) if _is_caller_turn(m)), default=len(self.history))
        words = heard_text.split()
        for i in range(turn_start + 1, len(self.history)):
            message = self.history[i]
            if message.role == "assistant":
                kept, words = _keep_words(message.content, words)
                self.history[i] = ChatMessage(role="assistant", content=kept)
        self.history = [m for m in self.history if m.content]  # nothing heard: no empty message

    def checkpoint(self) -> object:
        """Usage is not part of it: tokens spent on a dropped reply were still spent."""
        return _LlmCheckpoint(tuple(self.history), copy.deepcopy(self.answers), self.turns, tuple(self.interruptions))

    def rollback(self, checkpoint: object) -> None:
        assert isinstance(checkpoint, _LlmCheckpoint)
        self.history = list(checkpoint.history)
        self.answers = copy.deepcopy(checkpoint.answers)
        self.turns = checkpoint.turns
        self.interruptions = list(checkpoint.interruptions)

    def snapshot(self) -> dict[str, Any]:
        return {
            "bot": "llm",
            "answers": dict(self.answers),
            "turns": self.turns,
            "usage": dict(self._usage),
            "interrupted_after": list(self.interruptions),
        }

    def _append(self, role: Literal["user", "assistant"], content: tuple[ContentBlock, ...]) -> None:
        """Adds to the history; a user turn after a trailing user message (tool results) joins it,
        after its tool results, as the API wants them first."""
        if not content:
            return
        if role == "user" and self.history and self.history[-1].role == "user":
            content = self.history.pop().content + content
        self.history.append(ChatMessage(role=role, content=content))

    def _run_tools(self, calls: list[ToolCall]) -> str | None:
        """Runs the calls, records their results; the reason to hang up, if one was ``end_call``."""
        results: list[ContentBlock] = []
        ending: str | None = None
        for call in calls:
            if call.name == RECORD_ANSWERS.name:
                results.append(self._record_answers(call))
            elif call.name == END_CALL.name:
                ending = str(call.input.get("reason") or "the model ended the call")
                results.append(ToolResultBlock(tool_use_id=call.id, content="ending the call"))
            else:
                results.append(ToolResultBlock(tool_use_id=call.id, content=f"no tool {call.name}", is_error=True))
        self._append("user", tuple(results))
        return ending

    def _record_answers(self, call: ToolCall) -> ToolResultBlock:
        unknown = sorted(set(call.input) - set(_ANSWER_FIELDS))
        if unknown:
            return ToolResultBlock(tool_use_id=call.id, content=f"unknown fields: {', '.join(unknown)}", is_error=True)
        self.answers.update({k: v for k, v in call.input.items() if v not in (None, "")})
        log.info("llm recorded answers", extra={"fields": sorted(call.input), "pii.answers": dict(call.input)})
        return ToolResultBlock(tool_use_id=call.id, content="saved")

    def _add_usage(self, usage: Usage) -> None:
        for name in self._usage:
            self._usage[name] += getattr(usage, name)


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


class LlmBotFactory(BotFactory):
    """One model client shared by every call (connection pooling, prompt cache)."""

    def __init__(self, model: LanguageModel, *, business_name: str, bot_name: str) -> None:
        self.model = model
        self.business_name = business_name
        self.bot_name = bot_name

    def create(self, context: CallContext) -> LlmBot:
        return LlmBot(self.model, business_name=self.business_name, bot_name=self.bot_name)

    def fixed_phrases(self) -> list[str]:
        return [greeting(self.business_name, self.bot_name)]
