"""The question flows: data that is complete, early answers taken, one re-ask then unknown."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from bots.flows import FlowState, Hearing, build_flows, new_flows, to_json
from bots.persona import ROLES, BotRole
from bots.slots import Price, Timeline, TimelineBucket

TODAY = date(2026, 12, 7)
FLOWS = build_flows(min_intent_confidence=0.6)


def flow(role: BotRole) -> FlowState:
    return new_flows(FLOWS)[role]


def test_each_bot_asks_its_questions_in_order() -> None:
    assert [q.slot for q in FLOWS["lead"]] == ["name", "intent"]
    assert [q.slot for q in FLOWS["buyer"]] == [
        "areas",
        "property_type",
        "rooms",
        "price",
        "financing",
        "timeline",
        "motivation",
        "must_haves",
        "must_sell_first",
    ]
    assert [q.slot for q in FLOWS["seller"]] == [
        "address",
        "property_type",
        "condition",
        "reason",
        "timeline",
        "price",
        "listed_with_agent",
        "mortgage",
    ]


@pytest.mark.parametrize("role", ROLES)
def test_every_question_has_its_words_and_a_reask_that_differs(role: BotRole) -> None:
    for question in FLOWS[role]:
        assert question.ask.endswith("?") and question.reask.endswith("?")
        assert question.ask != question.reask


def test_an_answer_fills_the_current_question_and_is_acknowledged() -> None:
    buyer = flow("buyer")
    assert buyer.ask_next() == "Which areas or neighborhoods are you looking in?"
    heard = buyer.hear("somewhere around Cedar Park", TODAY)
    assert heard.filled == ("areas",) and heard.acknowledgement == "Cedar Park, lovely."
    assert buyer.answers == {"areas": ["Cedar Park"]}


def test_answers_given_early_are_taken_and_never_asked() -> None:
    buyer = flow("buyer")
    buyer.ask_next()
    heard = buyer.hear("a 3 bedroom house in Austin under 500k, we're paying cash, in 2 months", TODAY)
    assert heard.filled == ("areas", "property_type", "rooms", "price", "financing", "timeline")
    assert buyer.answers["price"] == {"minimum": None, "maximum": 500_000, "target": None}
    assert buyer.ask_next() == "What's prompting the move?"


def test_a_bare_yes_answers_only_the_question_asked() -> None:
    buyer = flow("buyer")
    buyer.answers.update(dict.fromkeys(["areas", "property_type", "rooms", "price"], "x"))
    buyer.ask_next()
    buyer.hear("yes, pre-approved", TODAY)
    assert "must_sell_first" not in buyer.answers  # "yes" was about financing
    assert buyer.answers["financing"] == "pre-approved"


def test_must_sell_first_said_in_passing_is_taken() -> None:
    buyer = flow("buyer")
    buyer.ask_next()
    buyer.hear("in Austin, but we need to sell our house first", TODAY)
    assert buyer.answers["must_sell_first"] == "yes"


def test_a_vague_answer_is_asked_again_once_then_unknown() -> None:
    buyer = flow("buyer")
    buyer.answers.update(dict.fromkeys(["areas", "property_type", "rooms", "price"], "x"))
    buyer.ask_next()
    first = buyer.hear("I'm not sure", TODAY)
    assert first.reask == FLOWS["buyer"][4].reask and "financing" not in buyer.answers
    second = buyer.hear("no idea", TODAY)
    assert second.filled == ("financing",) and second.acknowledgement == "No problem, let's move on."
    assert buyer.answers["financing"] is None
    assert buyer.ask_next() == "When are you hoping to move?"


def test_an_unsure_word_said_in_passing_does_not_answer_other_questions() -> None:
    buyer = flow("buyer")
    buyer.ask_next()
    buyer.hear("I don't know", TODAY)
    assert buyer.answers == {}  # not "financing: not sure", "timeline: unknown"...


def test_an_unclear_optional_answer_is_not_asked_again() -> None:
    buyer = flow("buyer")
    buyer.answers.update({"areas": ["Austin"]})
    assert buyer.ask_next() == FLOWS["buyer"][1].ask
    heard = buyer.hear("hmm", TODAY)
    assert heard.reask is None and buyer.answers["property_type"] is None


def test_an_unknown_answer_can_still_be_given_later() -> None:
    buyer = flow("buyer")
    buyer.answers.update({"areas": ["Austin"], "property_type": None})
    buyer.ask_next()
    buyer.hear("a condo with two bedrooms", TODAY)
    assert buyer.answers["property_type"] == ["condo"] and buyer.answers["rooms"]["bedrooms"] == 2


def test_a_low_confidence_intent_is_vague() -> None:
    lead = flow("lead")
    lead.answers["name"] = "Sam"
    lead.ask_next()
    assert lead.hear("maybe looking at a house", TODAY).reask is not None  # 0.6 hedged: 0.48
    assert lead.hear("we want to buy", TODAY).acknowledgement == "Great, you're looking to buy."


def test_a_name_needs_the_question_unless_introduced() -> None:
    seller = flow("lead")
    assert seller.absorb("Sarah", TODAY) == ()
    assert seller.absorb("my name is Sarah Lee", TODAY) == ("name",)


def test_absorbing_skips_the_slots_another_bot_asked_itself() -> None:
    seller = flow("seller")
    filled = seller.absorb("under 400k, in 2 months, we're relocating", TODAY, except_slots={"price", "timeline"})
    assert filled == ("reason",)


def test_a_figure_said_with_the_mortgage_is_not_the_sellers_price() -> None:
    seller = flow("seller")
    seller.absorb("we owe about 200k on it", TODAY)
    assert "price" not in seller.answers and seller.answers["mortgage"] == {"status": "owes", "owed": 200_000}


def test_the_summary_describes_known_answers_in_order() -> None:
    seller = flow("seller")
    seller.absorb("my townhouse at 77 Lake Drive is in great shape, we want around 650k", TODAY)
    assert seller.summary() == [
        "77 Lake Drive",
        "a townhouse",
        "excellent condition",
        "around six hundred fifty thousand dollars",
    ]


def test_completion_counts_answers_not_unknowns() -> None:
    lead = flow("lead")
    lead.answers.update({"name": "Al", "intent": None})
    assert lead.completion == 0.5 and lead.complete


def test_state_round_trips_and_ignores_unknown_slots() -> None:
    buyer = flow("buyer")
    buyer.hear("in Austin", TODAY)
    buyer.reasked.add("price")
    buyer.ask_next()
    data = {**buyer.to_dict(), "answers": {**buyer.answers, "bogus": 1}}
    again = FlowState.from_dict("buyer", FLOWS["buyer"], data)
    assert again.answers == buyer.answers and again.reasked == {"price"} and again.current == "property_type"


def test_a_flow_copies_deeply_without_copying_its_questions() -> None:
    buyer = flow("buyer")
    clone = copy.deepcopy(buyer)
    clone.answers["areas"] = ["Austin"]
    assert buyer.answers == {} and clone.questions[0] is buyer.questions[0]


def test_typed_answers_become_json() -> None:
    timeline = Timeline(TimelineBucket.WITHIN_3_MONTHS, date(2027, 2, 7), "in 2 months")
    assert to_json(timeline) == {"bucket": "0-3 months", "target": "2027-02-07", "phrase": "in 2 months"}
    assert to_json(Price(maximum=5)) == {"minimum": None, "maximum": 5, "target": None}
    assert to_json(("a", "b")) == ["a", "b"]


def test_an_extractor_sees_whether_its_question_was_asked() -> None:
    name = FLOWS["lead"][0]
    assert name.extract(Hearing("Sarah", TODAY, asked=True)) == "Sarah"
    assert name.extract(Hearing("Sarah", TODAY, asked=False)) is None


def test_a_reply_to_another_question_is_acknowledged_and_the_question_asked_again_once() -> None:
    lead = flow("lead")
    lead.ask_next()
    first = lead.hear("we want to buy a condo in Round Rock", TODAY)
    assert first.filled == ("intent",) and first.acknowledgement == "Buying a condo in Round Rock, great."
    assert first.reask == "And who am I speaking with?" and "name" in lead.reasked
    second = lead.hear("just looking for now", TODAY)
    assert second.reask is None and lead.answers["name"] is None and lead.complete


def test_an_intent_without_details_is_acknowledged_plainly() -> None:
    lead = flow("lead")
    lead.ask_next()
    assert lead.hear("we want to buy", TODAY).acknowledgement == "Great, you're looking to buy."


@pytest.mark.parametrize("role", ROLES)
def test_every_question_can_be_asked_again_naturally(role: BotRole) -> None:
    for question in FLOWS[role]:
        assert question.again.startswith("And ") and question.again.endswith("?")
        assert "sorry" not in question.again.lower()
