"""The LLM brain: through the real client and the emulator (its scripted brain), and with a
scripted fake model for the cases the emulator does not produce."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import pytest

from bots.base import BotAction, CallContext, EndCall, Say
from bots.fallback import FallbackBot
from bots.lead import LeadBot
from bots.llm_bot import LlmBot, LlmBotFactory
from emulators.control import Fault
from runtime.fallback import CircuitBreaker
from runtime.llm import (
    ChatMessage,
    LanguageModel,
    LlmError,
    LlmEvent,
    TextBlock,
    TextDelta,
    ToolCall,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    TurnDone,
    Usage,
)
from tests.test_anthropic import Emulator, running_emulator

CONTEXT = CallContext(
    call_sid="CA1", from_number="+15550001111", to_number="+15550002222", direction="inbound", tenant="t", bot="lead"
)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as running:
        yield running


def bot_for(emulator: Emulator, **options: float) -> LlmBot:
    return LlmBot(emulator.llm(**options), business_name="Lakeside Realty", bot_name="Ava")


async def turn(bot: LlmBot, text: str) -> list[BotAction]:
    return [action async for action in bot.respond(text)]


def said(actions: Sequence[BotAction]) -> str:
    return "".join(a.text for a in actions if isinstance(a, Say))


class ScriptedModel(LanguageModel):
    """Plays one scripted response per request; records what it was sent and whether the
    stream was closed early."""

    def __init__(self, *responses: list[LlmEvent]) -> None:
        self.responses = list(responses)
        self.requests: list[list[ChatMessage]] = []
        self.closed_early = False

    async def stream(
        self, *, system: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[LlmEvent, None]:
        self.requests.append(list(messages))
        finished = False
        try:
            for event in self.responses.pop(0):
                yield event
            finished = True
        finally:
            self.closed_early = not finished

    async def aclose(self) -> None:
        """Nothing to release."""


def text_reply(*pieces: str) -> list[LlmEvent]:
    return [*(TextDelta(p) for p in pieces), TurnDone(stop_reason="end_turn", usage=Usage(output_tokens=len(pieces)))]


async def test_each_text_delta_is_said_at_once_and_answers_are_recorded(emulator: Emulator) -> None:
    bot = bot_for(emulator)
    actions = await turn(bot, "I want to buy a house in Austin")
    assert len(actions) > 3 and all(isinstance(a, Say) for a in actions)
    assert said(actions) == "Buying a house in Austin, great. What budget do you have in mind?"
    assert bot.answers == {"intent": "buy", "property": "house", "area": "Austin"}
    # the reply with its tool call, then the tool result, and a follow-up that had nothing to add
    assert [m.role for m in bot.history] == ["user", "assistant", "user"]
    assert isinstance(bot.history[1].content[-1], ToolUseBlock)
    assert isinstance(bot.history[2].content[0], ToolResultBlock)
    assert emulator.control.stats["requests"] == 2


async def test_a_full_qualification_ends_with_goodbye_and_end_call(emulator: Emulator) -> None:
    bot = bot_for(emulator)
    await turn(bot, "I want to buy a house in Austin")
    budget = await turn(bot, "About four hundred and fifty thousand")
    assert "What budget" not in said(budget) and said(budget).endswith("when are you hoping to make a move?")
    last = await turn(bot, "Hopefully in the next three months")
    assert "Goodbye!" in said(last)
    assert last[-1] == EndCall("qualification complete")
    assert bot.answers == {
        "intent": "buy",
        "property": "house",
        "area": "Austin",
        "budget": 450_000,
        "timeline": "in the next three months",
    }
    snapshot = bot.snapshot()
    assert snapshot["turns"] == 3 and snapshot["answers"] == bot.answers
    assert snapshot["usage"]["output_tokens"] > 0
    assert snapshot["usage"]["cache_read_input_tokens"] > 0  # the system prompt and tools, after turn one


async def test_a_failure_is_raised_and_a_retry_starts_from_a_clean_history(emulator: Emulator) -> None:
    bot = bot_for(emulator, max_retries=0)
    emulator.control.faults.schedule(Fault.OVERLOADED)
    with pytest.raises(LlmError) as failed:
        await turn(bot, "I want to buy a house in Austin")
    assert failed.value.retryable and bot.history == []
    await turn(bot, "I want to buy a house in Austin")
    assert [m.role for m in bot.history] == ["user", "assistant", "user"]


async def test_a_failed_turn_after_tool_results_leaves_no_trace(emulator: Emulator) -> None:
    """The caller's words join the trailing tool-result message; a failure must undo that too."""
    bot = bot_for(emulator, max_retries=0)
    await turn(bot, "I want to buy a house in Austin")
    before = list(bot.history)
    emulator.control.faults.schedule(Fault.OVERLOADED)
    with pytest.raises(LlmError):
        await turn(bot, "About four hundred thousand")
    assert bot.history == before
    await turn(bot, "About four hundred thousand")
    assert bot.history[2].content[-1] == TextBlock(text="About four hundred thousand")
    assert sum(isinstance(b, TextBlock) for b in bot.history[2].content) == 1


async def test_the_fallback_bot_retries_a_failed_turn_once(emulator: Emulator) -> None:
    bot = bot_for(emulator, max_retries=0)
    wrapped = FallbackBot(bot, LeadBot("Lakeside Realty", "Ava"), CircuitBreaker("llm"))
    emulator.control.faults.schedule(Fault.OVERLOADED)
    actions = [a async for a in wrapped.respond("I want to buy a house in Austin")]
    assert said(actions).startswith("Buying a house in Austin") and wrapped.degraded_turns == 0
    assert [m.role for m in bot.history] == ["user", "assistant", "user"]


async def test_a_failure_after_words_were_said_keeps_them_in_the_history(emulator: Emulator) -> None:
    bot = bot_for(emulator)
    emulator.control.faults.schedule(Fault.DISCONNECT)
    spoken: list[BotAction] = []
    with pytest.raises(LlmError):
        async for action in bot.respond("I want to buy a house in Austin"):
            spoken.append(action)
    assert said(spoken) == "Buying"
    assert bot.history[-1] == ChatMessage(role="assistant", content=(TextBlock(text="Buying"),))


async def test_interrupted_cuts_the_reply_to_the_words_heard(emulator: Emulator) -> None:
    bot = bot_for(emulator)
    await turn(bot, "I want to buy a house in Austin")
    bot.interrupted("Buying a house in")
    reply = bot.history[1].content
    assert reply[0] == TextBlock(text="Buying a house in")
    assert isinstance(reply[1], ToolUseBlock)  # its result follows: the call stays in the history
    await turn(bot, "Sorry, go on")
    assert bot.history[2].content[-1] == TextBlock(text="Sorry, go on")  # joined after the tool result


def test_nothing_heard_removes_the_reply() -> None:
    bot = LlmBot(ScriptedModel(), business_name="B", bot_name="A")
    bot.history = [
        ChatMessage(role="user", content=(TextBlock(text="hello"),)),
        ChatMessage(role="assistant", content=(TextBlock(text="Hi there, how can I help?"),)),
    ]
    bot.interrupted("")
    assert [m.role for m in bot.history] == ["user"]
    assert bot.snapshot()["interrupted_after"] == [""]


async def test_a_barge_in_closes_the_model_stream_and_keeps_what_was_generated() -> None:
    model = ScriptedModel(text_reply("Sure, ", "our office ", "is open ", "until six."))
    bot = LlmBot(model, business_name="B", bot_name="A")
    replies = bot.respond("When are you open?")
    assert await anext(replies) == Say("Sure, ")
    assert await anext(replies) == Say("our office ")
    await replies.aclose()
    assert model.closed_early
    assert bot.history[-1] == ChatMessage(role="assistant", content=(TextBlock(text="Sure, our office "),))


async def test_an_unknown_tool_gets_an_error_result_and_the_model_continues() -> None:
    model = ScriptedModel(
        [ToolCall("toolu_1", "book_viewing", {"day": "Tuesday"}), TurnDone(stop_reason="tool_use")],
        text_reply("I can't book that, but an agent will call you."),
    )
    bot = LlmBot(model, business_name="B", bot_name="A")
    actions = await turn(bot, "Book me a viewing")
    assert said(actions) == "I can't book that, but an agent will call you."
    result = model.requests[1][-1].content[0]
    assert isinstance(result, ToolResultBlock) and result.is_error


async def test_end_call_follows_the_text_and_stops_the_turn() -> None:
    hang_up = ToolCall("toolu_1", "end_call", {"reason": "caller asked"})
    model = ScriptedModel([TextDelta("Goodbye!"), hang_up, TurnDone(stop_reason="tool_use")])
    bot = LlmBot(model, business_name="B", bot_name="A")
    assert await turn(bot, "I have to go") == [Say("Goodbye!"), EndCall("caller asked")]
    assert len(model.requests) == 1


async def test_a_model_that_keeps_calling_tools_is_stopped() -> None:
    looping: list[LlmEvent] = [ToolCall("toolu_x", "record_answers", {}), TurnDone(stop_reason="tool_use")]
    model = ScriptedModel(*([looping] * 5))
    bot = LlmBot(model, business_name="B", bot_name="A", max_rounds=3)
    assert await turn(bot, "hmm") == []
    assert len(model.requests) == 3


def test_the_factory_renders_the_greeting_ahead() -> None:
    factory = LlmBotFactory(ScriptedModel(), business_name="Lakeside Realty", bot_name="Ava")
    bot = factory.create(CONTEXT)
    assert factory.fixed_phrases() == [bot.greeting()]
    assert "Lakeside Realty" in bot.greeting() and "AI assistant" in bot.greeting()
    assert "AI assistant" in bot.system and bot.greeting() in bot.system
