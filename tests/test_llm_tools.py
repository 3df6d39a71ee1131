"""The LLM brain's tools: schemas from the scripted slots' types, decoding of a model's input,
and tool execution through the bot, where every mistake is an error result for the model and
never an exception out of the bot."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from bots.calendar import CalendarError, Slot
from bots.flows import build_flows
from bots.llm_tools import ToolError, decode_answers, json_schema, record_answers_tool, tools_for
from bots.slots import Price, Rooms
from runtime.llm import ToolResultBlock
from tests.test_llm_bot import ScriptedModel, new_bot, said, tool_reply, turn
from tests.test_qualifier import AUSTIN

FLOWS = build_flows(min_intent_confidence=0.6)


def test_each_bot_records_its_own_slots_each_nullable() -> None:
    for role, questions in FLOWS.items():
        schema = record_answers_tool(role, questions).input_schema
        assert list(schema["properties"]) == [q.slot for q in questions]
        assert schema["additionalProperties"] is False
        for prop in schema["properties"].values():
            assert {"type": "null"} in prop["anyOf"] and prop["description"].startswith("asked as")
    names = [tool.name for tool in tools_for("buyer", FLOWS["buyer"])]
    assert names == ["record_answers", "hand_off", "find_slots", "book_appointment", "transfer_to_human", "end_call"]


def test_schemas_follow_the_typed_slots() -> None:
    assert json_schema(Price) == {
        "type": "object",
        "properties": {
            "minimum": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "maximum": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "target": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": [],
        "additionalProperties": False,
    }
    rooms = json_schema(Rooms)["properties"]
    assert rooms["bathrooms"]["anyOf"][0] == {"type": "number"}
    financing = record_answers_tool("buyer", FLOWS["buyer"]).input_schema["properties"]["financing"]
    assert financing["anyOf"][0] == {"type": "string", "enum": ["pre-approved", "cash", "needs lender", "not sure"]}


def test_recorded_answers_have_the_scripted_brains_json_shape() -> None:
    given = {
        "price": {"maximum": 500_000},
        "timeline": {"bucket": "0-3 months", "target": "2027-02-07", "phrase": "in 2 months"},
        "rooms": {"bedrooms": 3},
        "must_haves": ["garage", "yard"],
        "financing": None,
    }
    assert decode_answers("buyer", FLOWS["buyer"], given) == {
        "price": {"minimum": None, "maximum": 500_000, "target": None},
        "timeline": {"bucket": "0-3 months", "target": "2027-02-07", "phrase": "in 2 months"},
        "rooms": {"bedrooms": 3, "bathrooms": None, "bedrooms_at_least": False, "bathrooms_at_least": False},
        "must_haves": ["garage", "yard"],
        "financing": None,
    }


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"budget": 400_000}, "no questions ['budget']"),
        ({"price": {"target": "lots"}}, "price.target: expected integer"),
        ({"price": {}}, "price: a price needs at least one figure"),
        ({"price": {"minimum": 9, "maximum": 1}}, "is above maximum"),
        ({"financing": "a loan"}, "financing: expected one of"),
        ({"financing": "not sure"}, "too vague"),
        ({"areas": []}, "areas: expected a non-empty list"),
        ({"areas": ["  "]}, "areas[0]: must not be empty"),
        ({"rooms": {"bedrooms": True}}, "rooms.bedrooms: expected integer"),
        ({"rooms": {"floors": 2}}, "unknown fields ['floors']"),
        ({"timeline": {"bucket": "asap", "phrase": "now"}}, "missing fields ['target']"),
        ({"timeline": {"bucket": "asap", "target": "soon", "phrase": "now"}}, "expected a date"),
    ],
)
def test_bad_answers_are_tool_errors(given: dict[str, Any], error: str) -> None:
    with pytest.raises(ToolError, match=error.replace("[", r"\[").replace("(", r"\(")):
        decode_answers("buyer", FLOWS["buyer"], given)


def test_a_hedged_intent_is_refused_as_too_vague() -> None:
    with pytest.raises(ToolError, match="too vague"):
        decode_answers("lead", FLOWS["lead"], {"intent": {"intent": "buy", "confidence": 0.3}})


def result_of(model: ScriptedModel, request: int = 1, index: int = 0) -> ToolResultBlock:
    block = model.requests[request][-1].content[index]
    assert isinstance(block, ToolResultBlock)
    return block


@pytest.mark.parametrize(
    ("name", "given", "error"),
    [
        ("hand_off", {"to": "buyer", "reason": "wants to buy"}, "intent is not sure enough"),
        ("hand_off", {"to": "lead", "reason": "back"}, "to: expected buyer or seller"),
        ("hand_off", {"to": "buyer"}, "reason: a non-empty string is required"),
        ("record_answers", {"intent": "buy"}, "intent: expected an object"),
        ("find_slots", {"kind": "viewing"}, "kind: expected one of"),
        ("find_slots", {"kind": "showing", "from": "next tuesday"}, "from: expected an ISO 8601"),
        ("find_slots", {"kind": "showing", "to": "2026-12-01T09:00:00-06:00"}, "to: must be after from"),
        ("book_appointment", {"kind": "showing"}, "start: the chosen slot's start is required"),
        ("transfer_to_human", {}, "reason: a non-empty string is required"),
        ("book_viewing", {"day": "Tuesday"}, "no tool book_viewing"),
    ],
)
async def test_a_bad_tool_call_is_an_error_result_and_the_model_goes_on(
    name: str, given: dict[str, Any], error: str
) -> None:
    model = ScriptedModel(tool_reply((name, given)), tool_reply(text="Sorry, let me try that again."))
    bot = new_bot(model)
    actions = await turn(bot, "hello")
    assert said(actions) == "Sorry, let me try that again."
    result = result_of(model)
    assert result.is_error and error in result.content
    assert bot.snapshot()["bot"] == "lead" and bot.snapshot()["handoffs"] == []


async def test_a_hand_off_to_a_bot_already_met_is_refused() -> None:
    intent = {"intent": {"intent": "both", "confidence": 0.9}}
    model = ScriptedModel(
        tool_reply(("record_answers", intent), ("hand_off", {"to": "buyer", "reason": "buying and selling"})),
        tool_reply(("hand_off", {"to": "lead", "reason": "back"}), ("hand_off", {"to": "seller", "reason": "x"})),
        tool_reply(("hand_off", {"to": "buyer", "reason": "also buying"})),
    )
    bot = new_bot(model)
    await turn(bot, "We buy and sell")
    assert [h["to"] for h in bot.snapshot()["handoffs"]] == ["buyer", "seller"]
    refused = result_of(model, request=3)
    assert refused.is_error and "buyer already spoke with the caller" in refused.content
    assert bot.voice == "seller"


async def test_a_slot_taken_meanwhile_comes_back_with_the_nearest_free_ones() -> None:
    start = datetime(2026, 12, 7, 11, 15, tzinfo=AUSTIN)
    model = ScriptedModel(
        tool_reply(("record_answers", {"name": "Sarah Jones"}), ("find_slots", {"kind": "showing"})),
        tool_reply(text="For the showing, I have Monday at 11:15 AM. Shall I book it?"),
        tool_reply(("book_appointment", {"kind": "showing", "start": start.isoformat()})),
    )
    bot = new_bot(model)
    await turn(bot, "I'm Sarah Jones")
    offered = json.loads(result_of(model, 1, 1).content)["slots"]
    assert offered[0]["start"] == start.isoformat() and offered[0]["spoken"] == "Monday, December 7th at 11:15 AM"
    assert len(offered) == 3 and bot.checkpoint() is None
    other = await bot.calendar.upsert_contact(name="Someone Else", phone="+15125559999")
    await bot.calendar.book(other, Slot(start, start + timedelta(minutes=30)), title="Showing: Someone Else")

    await turn(bot, "yes")
    taken = result_of(model, request=3)
    assert len(model.requests) == 4
    error = json.loads(taken.content)
    assert taken.is_error and error["error"] == "that time is no longer free"
    # the nearest after the lost one: 10:30 is too soon (two hours' notice from 9 AM)
    assert [s["spoken"] for s in error["slots"]] == [
        "Monday, December 7th at 12 PM",
        "Monday, December 7th at 12:45 PM",
    ]
    assert bot.snapshot()["appointment"] is None and bot.snapshot()["booking"]["attempts"] == 1


async def test_a_calendar_failure_is_an_error_result() -> None:
    model = ScriptedModel(tool_reply(("find_slots", {"kind": "callback"})))
    bot = new_bot(model)

    async def unreachable(*args: Any, **kwargs: Any) -> list[Slot]:
        raise CalendarError("HTTP 503", retryable=True, status=503)

    bot.calendar.free_slots = unreachable  # type: ignore[method-assign]  # a calendar that is down
    await turn(bot, "can you call me back?")
    result = result_of(model)
    assert result.is_error and "the calendar is unavailable" in result.content
