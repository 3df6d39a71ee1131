"""The LLM brain's mechanics: streaming, failures, barge-in, tool rounds, hand-off voices and
prompts, checkpoints, sessions; with a scripted fake model, and through the real client and the
emulator where the wire matters."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from bots.base import BotAction, EndCall, HandedOff, Say
from bots.business_hours import BusinessHours
from bots.llm_bot import LlmBot, LlmBotFactory
from bots.local_calendar import LocalCalendar
from bots.persona import DEFAULT_PERSONA
from bots.qualifier import QualifyingBotFactory
from bots.session_state import MemoryBotSessionStore
from emulators.control import Fault
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
from tests.test_qualifier import BUYER_LINES, NOW, SteppingClock, context


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as running:
        yield running


class ScriptedModel(LanguageModel):
    """Plays one scripted response per request; records what it was sent and whether the
    stream was closed early."""

    def __init__(self, *responses: list[LlmEvent]) -> None:
        self.responses = list(responses)
        self.requests: list[list[ChatMessage]] = []
        self.systems: list[str] = []
        self.tools: list[Sequence[ToolSpec]] = []
        self.closed_early = False

    async def stream(
        self, *, system: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[LlmEvent, None]:
        self.requests.append(list(messages))
        self.systems.append(system)
        self.tools.append(tools)
        finished = False
        try:
            for event in self.responses.pop(0) if self.responses else text_reply():
                yield event
            finished = True
        finally:
            self.closed_early = not finished

    async def aclose(self) -> None:
        """Nothing to release."""


def text_reply(*pieces: str) -> list[LlmEvent]:
    return [*(TextDelta(p) for p in pieces), TurnDone(stop_reason="end_turn", usage=Usage(output_tokens=len(pieces)))]


def tool_reply(*calls: tuple[str, Mapping[str, Any]], text: str = "") -> list[LlmEvent]:
    words: list[LlmEvent] = [TextDelta(text)] if text else []
    uses: list[LlmEvent] = [ToolCall(f"toolu_{i}", name, dict(given)) for i, (name, given) in enumerate(calls)]
    return [*words, *uses, TurnDone(stop_reason="tool_use")]


def new_bot(model: LanguageModel, **options: Any) -> LlmBot:
    calendar = LocalCalendar(BusinessHours())
    factory = LlmBotFactory(
        model, persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW, clock=SteppingClock(), **options
    )
    return factory.create(context())


async def turn(bot: LlmBot, text: str) -> list[BotAction]:
    return [action async for action in bot.respond(text)]


def said(actions: Sequence[BotAction]) -> str:
    return "".join(a.text for a in actions if isinstance(a, Say))


async def test_each_text_delta_is_said_at_once_and_answers_are_recorded(emulator: Emulator) -> None:
    bot = new_bot(emulator.llm())
    actions = await turn(bot, "Hi, I'm Sarah Jones")
    assert len(actions) > 3 and all(isinstance(a, Say) and a.voice == "lead" for a in actions)
    assert said(actions) == "Nice to meet you, Sarah. Are you looking to buy a home, sell one, or both?"
    assert bot.snapshot()["answers"]["lead"] == {"name": "Sarah Jones"}
    # the reply with its record_answers call, the tool result, and a follow-up with nothing to add
    assert [m.role for m in bot.history] == ["user", "assistant", "user"]
    assert isinstance(bot.history[1].content[-1], ToolUseBlock)
    assert isinstance(bot.history[2].content[0], ToolResultBlock) and not bot.history[2].content[0].is_error
    assert emulator.control.stats["requests"] == 2


async def test_a_failure_is_raised_and_a_retry_starts_from_a_clean_history(emulator: Emulator) -> None:
    bot = new_bot(emulator.llm(max_retries=0))
    emulator.control.faults.schedule(Fault.OVERLOADED)
    with pytest.raises(LlmError) as failed:
        await turn(bot, "Hi, I'm Sarah Jones")
    assert failed.value.retryable and bot.history == []
    await turn(bot, "Hi, I'm Sarah Jones")
    assert [m.role for m in bot.history] == ["user", "assistant", "user"]


async def test_a_failed_turn_after_tool_results_leaves_no_trace(emulator: Emulator) -> None:
    """The caller's words join the trailing tool-result message; a failure must undo that too."""
    bot = new_bot(emulator.llm(max_retries=0))
    await turn(bot, "Hi, I'm Sarah Jones")
    before = list(bot.history)
    emulator.control.faults.schedule(Fault.OVERLOADED)
    with pytest.raises(LlmError):
        await turn(bot, "We want to buy a house in Austin")
    assert bot.history == before
    await turn(bot, "We want to buy a house in Austin")
    assert bot.history[2].content[-1] == TextBlock(text="We want to buy a house in Austin")


async def test_a_failure_after_words_were_said_keeps_them_in_the_history(emulator: Emulator) -> None:
    bot = new_bot(emulator.llm())
    emulator.control.faults.schedule(Fault.DISCONNECT)
    spoken: list[BotAction] = []
    with pytest.raises(LlmError):
        async for action in bot.respond("Hi, I'm Sarah Jones"):
            spoken.append(action)
    assert said(spoken) == "Nice"
    assert bot.history[-1] == ChatMessage(role="assistant", content=(TextBlock(text="Nice"),))


async def test_interrupted_cuts_the_reply_to_the_words_heard(emulator: Emulator) -> None:
    bot = new_bot(emulator.llm())
    await turn(bot, "Hi, I'm Sarah Jones")
    bot.interrupted("Nice to meet you")
    reply = bot.history[1].content
    assert reply[0] == TextBlock(text="Nice to meet you")
    assert isinstance(reply[1], ToolUseBlock)  # its result follows: the call stays in the history
    await turn(bot, "Sorry, go on")
    assert bot.history[2].content[-1] == TextBlock(text="Sorry, go on")  # joined after the tool result


def test_nothing_heard_removes_the_reply() -> None:
    bot = new_bot(ScriptedModel())
    bot.history[:] = [
        ChatMessage(role="user", content=(TextBlock(text="hello"),)),
        ChatMessage(role="assistant", content=(TextBlock(text="Hi there, how can I help?"),)),
    ]
    bot.interrupted("")
    assert [m.role for m in bot.history] == ["user"]
    assert bot.snapshot()["interrupted_after"] == [""]


async def test_a_barge_in_closes_the_model_stream_and_keeps_what_was_generated() -> None:
    model = ScriptedModel(text_reply("Sure, ", "our office ", "is open ", "until six."))
    bot = new_bot(model)
    replies = bot.respond("When are you open?")
    assert await anext(replies) == Say("Sure, ", voice="lead")
    assert await anext(replies) == Say("our office ", voice="lead")
    await replies.aclose()
    assert model.closed_early
    assert bot.history[-1] == ChatMessage(role="assistant", content=(TextBlock(text="Sure, our office "),))


async def test_end_call_follows_the_text_and_stops_the_turn() -> None:
    model = ScriptedModel(tool_reply(("end_call", {"reason": "caller asked"}), text="Goodbye!"))
    bot = new_bot(model)
    assert await turn(bot, "I have to go") == [Say("Goodbye!", voice="lead"), EndCall("caller asked")]
    assert len(model.requests) == 1 and bot.done
    assert bot.snapshot()["next_step"] == "follow_up"


async def test_a_model_that_keeps_calling_tools_is_stopped() -> None:
    looping = tool_reply(("record_answers", {}))
    model = ScriptedModel(*([looping] * 8))
    bot = new_bot(model, max_rounds=3)
    assert await turn(bot, "hmm") == []
    assert len(model.requests) == 3


async def test_a_hand_off_says_the_bridge_in_the_old_voice_and_switches_prompt_and_tools() -> None:
    intent = {"intent": {"intent": "buy", "confidence": 0.9}, "name": "Sarah"}
    model = ScriptedModel(
        tool_reply(("record_answers", intent), ("hand_off", {"to": "buyer", "reason": "wants to buy"}), text="Great."),
        text_reply("Hi, this is Maya.", " Which areas?"),
    )
    bot = new_bot(model)
    actions = await turn(bot, "I'm Sarah and I want to buy")
    assert actions[:2] == [Say("Great.", voice="lead"), Say(" I'll bring in Maya, who works with our buyers. ", "lead")]
    assert actions[2] == Say("Hi, this is Maya.", voice="buyer")
    handed = actions[3]
    assert isinstance(handed, HandedOff) and (handed.from_bot, handed.to_bot) == ("lead", "buyer")
    assert handed.latency_ms > 0 and bot.voice == "buyer"
    assert "You are Ava" in model.systems[0] and "You are Maya" in model.systems[1]
    assert "May I have your name?" in model.systems[0] and "Which areas" in model.systems[1]
    lead_slots, buyer_slots = (set(tools[0].input_schema["properties"]) for tools in model.tools)
    assert lead_slots == {"name", "intent"} and "must_sell_first" in buyer_slots
    result = model.requests[1][-1].content[1]
    assert isinstance(result, ToolResultBlock) and "Sarah" in result.content and not result.is_error
    assert bot.snapshot()["handoffs"][0]["to"] == "buyer" and bot.snapshot()["bot"] == "buyer"


async def test_the_stable_prefix_is_a_cache_read_from_the_second_request(emulator: Emulator) -> None:
    bot = new_bot(emulator.llm())
    await turn(bot, "Hi, I'm Sarah Jones")
    usage = bot.snapshot()["usage"]
    assert usage["cache_creation_input_tokens"] > 0 and usage["cache_read_input_tokens"] > 0


async def test_no_checkpoint_once_the_next_reply_may_book_or_transfer() -> None:
    bot = new_bot(ScriptedModel(tool_reply(("find_slots", {"kind": "callback"}))))
    assert bot.checkpoint() is not None
    await turn(bot, "can I talk to a real person?")
    assert bot.checkpoint() is None  # the "yes" that may follow transfers
    assert bot.snapshot()["stage"] == "booking"  # and slots were looked up: a "yes" books


async def test_a_rollback_returns_to_the_exact_conversation() -> None:
    model = ScriptedModel(text_reply("Nice to meet you."), tool_reply(("record_answers", {"name": "Sarah"})))
    bot = new_bot(model)
    await turn(bot, "hello")
    checkpoint = bot.checkpoint()
    before = bot.snapshot()
    assert checkpoint is not None
    await turn(bot, "I'm Sarah")
    assert bot.snapshot()["answers"] != before["answers"]
    bot.rollback(checkpoint)
    assert {k: v for k, v in bot.snapshot().items() if k != "usage"} == {
        k: v for k, v in before.items() if k != "usage"
    }
    assert len(bot.history) == 2


async def test_a_saved_session_is_resumed_by_the_next_call() -> None:
    store = MemoryBotSessionStore()
    model = ScriptedModel(tool_reply(("record_answers", {"name": "Sarah Jones"})))
    calendar = LocalCalendar(BusinessHours())
    factory = LlmBotFactory(model, persona=DEFAULT_PERSONA, calendar=calendar, now=lambda: NOW, store=store)
    bot = factory.create(context())
    await turn(bot, "I'm Sarah Jones")
    await bot.persist()
    again = await factory.create_for_caller(context())
    assert again.greeting().startswith("Hi Sarah, welcome back to Lakeside Realty!")
    assert again.snapshot()["resumed"] and again.snapshot()["answers"]["lead"] == {"name": "Sarah Jones"}
    assert "Sarah Jones" in str(again.history[0].content[0])  # the model is told what it knew
    assert factory.fixed_phrases() == DEFAULT_PERSONA.greetings("lead")
    assert factory.voices() == ["lead", "buyer", "seller"]


async def test_what_the_caller_said_before_a_cut_hand_off_reply_is_recorded_on_the_next_turn(
    emulator: Emulator,
) -> None:
    """The caller barges into the new bot's first words: the cut reply's record_answers never
    ran. The emulated model, like a real one reading the history, records the areas, property
    type and rooms of that first turn on its next one."""
    bot = new_bot(emulator.llm())
    replies = bot.respond("Hi, I'm Sarah Jones and I want to buy a three bedroom house in Austin")
    heard: list[BotAction] = []
    async for action in replies:
        heard.append(action)
        if isinstance(action, HandedOff):
            break  # the new bot's first words are out: the caller talks over them
    await replies.aclose()
    bot.interrupted(said(heard))
    assert bot.snapshot()["bot"] == "buyer" and bot.snapshot()["answers"]["buyer"] == {}

    reply = said(await turn(bot, "around 450 thousand"))

    buyer = bot.snapshot()["answers"]["buyer"]
    assert buyer["areas"] == ["Austin"] and buyer["property_type"] == ["house"]
    assert buyer["rooms"]["bedrooms"] == 3 and buyer["price"]["target"] == 450_000
    assert reply.strip().endswith(
        "How are you planning to pay: are you pre-approved, paying cash, or still looking for a lender?"
    )


async def test_a_caller_who_booked_is_greeted_with_it_and_a_new_booking_cancels_the_old_one() -> None:
    store, calendar = MemoryBotSessionStore(), LocalCalendar(BusinessHours())
    options: dict[str, Any] = {"persona": DEFAULT_PERSONA, "calendar": calendar, "now": lambda: NOW, "store": store}
    scripted = QualifyingBotFactory(**options).create(context())
    for line in [*BUYER_LINES, "the first one", "yes"]:
        [a async for a in scripted.respond(line)]
    await scripted.persist()
    new_time = "2026-12-08T12:00:00-06:00"
    model = ScriptedModel(tool_reply(("book_appointment", {"kind": "showing", "start": new_time})), text_reply("Done."))

    again = await LlmBotFactory(model, **options).create_for_caller(context())
    assert again.greeting() == (
        "Hi Sarah, welcome back to Lakeside Realty! It's Maya again. I see your showing is booked for "
        "Monday, December 7th at 11:15 AM. How can I help you today?"
    )
    assert "I see your showing is booked for Monday, December 7th at 11:15 AM." in str(again.history[0].content[0])
    assert not again.done and again.snapshot()["stage"] == "qualifying"  # it goes on
    await turn(again, "I need to reschedule to Tuesday at noon")

    old, new = calendar.appointments
    snapshot = again.snapshot()
    assert snapshot["appointment"]["id"] == new.id and new.start.isoformat() == new_time
    assert old.status == "cancelled" and snapshot["cancel_pending"] == []
    # The model is told, so that it can say so.
    [tool_result] = again.history[-2].content
    assert isinstance(tool_result, ToolResultBlock)
    result = json.loads(str(tool_result.content))
    assert result["replaced"] == {"appointment": {**result["replaced"]["appointment"], "id": old.id}, "cancelled": True}


async def test_a_lead_who_asks_not_to_be_called_again_is_answered_by_rule_not_by_the_model() -> None:
    model = ScriptedModel()  # no response scripted: a request would fail the test
    bot = new_bot(model)
    actions = await turn(bot, "Please take me off your call list.")
    assert said(actions).startswith("Understood. I've taken this number off our call list")
    assert actions[-1] == EndCall("opted out") and bot.done
    assert model.requests == [] and bot.session_state()["opted_out"] is True
