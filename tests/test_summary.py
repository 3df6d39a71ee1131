"""Post-call summary and structured outcome from bot snapshots (read defensively), PII-redacted;
the model-written summary against the Anthropic emulator, with its fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from analytics.conversation import analyse_conversation
from analytics.language import analyse_languages
from analytics.sentiment import analyse_sentiment
from analytics.summary import (
    CallSummary,
    LeadScore,
    answers_of,
    build_summary,
    outcome_of,
    summarise_with_llm,
    summary_prompt,
)
from emulators.anthropic import MessagesRequest, ReplyBlock, TextReply, build_app, default_control
from emulators.control import Fault, LatencyProfile
from runtime.anthropic_llm import AnthropicLlm
from runtime.events import BotUtterance, CallerUtterance, CallEvent
from tests.conftest import on_loopback
from tests.test_conversation_analytics import qualification_call

#: LeadBot.snapshot() after a full qualification (bots/lead.py).
LEAD_DONE: dict[str, Any] = {
    "bot": "lead",
    "stage": "done",
    "answers": {
        "intent": "buy",
        "property": "three bedroom house",
        "place": "Austin",
        "budget": 450000,
        "timeline": "within three months",
        "unclear": [],
    },
    "interrupted_after": ["Buying a house in Austin, great."],
}


def summary_of(snapshot: dict[str, Any], events: list[CallEvent] | None = None, end_reason: str = "") -> CallSummary:
    events = qualification_call() if events is None else events
    caller = [e for e in events if isinstance(e, CallerUtterance)]
    language = analyse_languages(caller)
    sentiment = analyse_sentiment(caller, {t.turn: t.language for t in language.turns})
    return build_summary(snapshot, analyse_conversation(events), language, sentiment, end_reason)


def test_a_qualified_lead() -> None:
    summary = summary_of(LEAD_DONE)
    assert summary.source == "built"
    assert summary.outcome.result == "qualified"
    assert summary.outcome.intent == "buy"
    assert summary.outcome.answers == {
        "intent": "buy",
        "property": "three bedroom house",
        "area": "Austin",
        "budget": 450000,
        "timeline": "within three months",
    }
    assert summary.outcome.next_step == "An agent should call the lead back to book a viewing."
    assert summary.text == (
        "The caller wants to buy a three bedroom house in Austin, budget $450,000, timeline within three months. "
        "Outcome: qualified. Next step: An agent should call the lead back to book a viewing. "
        # compounds 0.0772, 0.0, 0.34: slope (0.34 - 0.0772) / 2 = 0.13 per turn
        "Call of 42 s with 3 caller turns, 1 interruption, 1 long silence, language en, sentiment improving."
    )


def test_a_partial_lead_is_asked_for_what_is_missing() -> None:
    snapshot = {"bot": "llm", "answers": {"intent": "sell", "area": "Round Rock"}, "turns": 2}
    outcome = outcome_of(snapshot)
    assert outcome.result == "partial"
    assert outcome.next_step == "Call the lead back to ask about: budget, timeline."


def test_a_fallback_bots_answers_are_merged_under_the_primarys() -> None:
    snapshot = {
        "bot": "llm",
        "answers": {"intent": "buy", "budget": 500000},
        "fallback": {"bot": "lead", "answers": {"intent": "rent", "place": "Austin", "budget": None}},
        "degraded_turns": 1,
    }
    assert answers_of(snapshot) == {"intent": "buy", "area": "Austin", "budget": 500000}


def test_answers_per_bot_with_structured_values_and_a_score() -> None:
    snapshot = {
        "version": 1,
        "bot": "buyer",
        "answers": {
            "lead": {"area": "Austin"},
            "buyer": {
                "timeline": {"bucket": "0-3 months", "text": ""},
                "financing": "cash",
                "motivation": {"kind": "relocation"},
            },
        },
        "score": {"temperature": "hot", "points": 5, "reasons": ["moving within 3 months", "paying cash"]},
    }
    outcome = outcome_of(snapshot)
    assert outcome.answers == {
        "area": "Austin",
        "timeline": "0-3 months",
        "intent": "buy",
        "financing": "cash",
        "motivation": "relocation",
    }
    assert outcome.lead_score == LeadScore(
        temperature="hot", points=5, reasons=("moving within 3 months", "paying cash")
    )
    assert outcome.result == "partial"  # no budget yet


def test_a_hot_qualified_lead_is_called_today() -> None:
    outcome = outcome_of({**LEAD_DONE, "score": {"temperature": "hot", "points": 4}})
    assert outcome.next_step == "An agent should call the lead back today."
    assert "Outcome: qualified (hot lead)." in summary_of({**LEAD_DONE, "score": {"temperature": "hot"}}).text


def test_a_booked_appointment() -> None:
    snapshot = {
        **LEAD_DONE,
        "appointment": {
            "id": "apt_1",
            "start": "2026-12-08T10:00:00-06:00",
            "title": "Viewing with Ann, ann@example.org",
            "status": "confirmed",
        },
    }
    outcome = outcome_of(snapshot)
    assert outcome.result == "booked"
    assert outcome.appointment == {
        "id": "apt_1",
        "start": "2026-12-08T10:00:00-06:00",
        "title": "Viewing with Ann, [EMAIL]",
        "status": "confirmed",
    }
    assert outcome.next_step == "Confirm the appointment (2026-12-08T10:00:00-06:00) with the lead."


def test_a_transfer_and_a_voicemail() -> None:
    assert outcome_of({**LEAD_DONE, "transfer": {"outcome": "joined"}}).result == "transferred"
    assert outcome_of({**LEAD_DONE, "transfer": "no_answer"}).result == "qualified"
    voicemail = outcome_of({"bot": "lead", "stage": "looking_for", "answers": {}}, end_reason="voicemail")
    assert (voicemail.result, voicemail.next_step) == ("voicemail", "A voicemail was left: call the lead again.")


def test_nothing_learned() -> None:
    summary = summary_of({"bot": "lead", "stage": "looking_for", "answers": {}}, [], end_reason="silence")
    assert summary.outcome.result == "no_answers"
    assert summary.outcome.next_step == "The caller went silent: call them back."
    assert summary.text.startswith("The caller gave no details. Outcome: no answers.")


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"answers": "oops", "score": 5, "appointment": 3, "transfer": ["joined"], "fallback": "lead"},
        {"answers": {"budget": {"nested": {"deep": 1}}, "timeline": None, "notes": [None, {}]}},
        {"score": {"temperature": None}, "appointment": {}},
    ],
)
def test_a_malformed_snapshot_is_read_as_nothing_learned(snapshot: dict[str, Any]) -> None:
    outcome = outcome_of(snapshot)
    assert (outcome.result, outcome.answers, outcome.lead_score, outcome.appointment) == ("no_answers", {}, None, None)


def test_pii_in_answers_is_redacted_everywhere() -> None:
    snapshot = {
        **LEAD_DONE,
        "answers": {**LEAD_DONE["answers"], "email": "john at gmail dot com", "phone": "512-867-5309"},
    }
    summary = summary_of(snapshot)
    assert summary.outcome.answers["email"] == "[EMAIL]"
    assert summary.outcome.answers["phone"] == "[PHONE]"
    assert "Also: email: [EMAIL]; phone: [PHONE]." in summary.text
    assert "gmail" not in summary.text and "867" not in summary.text


# --- the model-written summary -------------------------------------------------------------------

API_KEY = "sk-ant-test-key"
MODEL_SUMMARY = "Ann wants a three bedroom house in Austin around $450,000; call her at 512-867-5309 to book."


@dataclass
class RecordingResponder:
    """Says ``text`` and keeps every request it was sent."""

    text: str
    requests: list[MessagesRequest] = field(default_factory=list)

    async def reply(self, request: MessagesRequest) -> list[ReplyBlock]:
        self.requests.append(request)
        return [TextReply(self.text)]


@dataclass
class Emulated:
    llm: AnthropicLlm
    responder: RecordingResponder
    faults: Any


@pytest.fixture
async def emulated() -> AsyncIterator[Emulated]:
    control = default_control()
    fast = LatencyProfile(median_ms=1, p95_ms=2)
    control.latency.update(first_token=fast, token_interval=fast)
    responder = RecordingResponder(MODEL_SUMMARY)
    async with on_loopback(build_app(api_key=API_KEY, responder=responder, control=control)) as base_url:
        llm = AnthropicLlm(api_key=API_KEY, base_url=base_url, max_retries=0, first_token_timeout_s=30)
        try:
            yield Emulated(llm, responder, control.faults)
        finally:
            await llm.aclose()


TRANSCRIPT: list[CallerUtterance | BotUtterance] = [
    BotUtterance(at=1.0, turn=0, text="Hi, thanks for calling Lakeside Realty!", audio_ms=3000.0),
    CallerUtterance(
        at=9.0, turn=1, text="Buy a three bedroom house in Austin, my number is 512-867-5309", speech_ms=3000.0
    ),
    BotUtterance(at=9.8, turn=1, text="Great. What budget do you have in mind?", audio_ms=3000.0),
    CallerUtterance(at=14.0, turn=2, text="About 450,000. My social is 123-45-6789.", speech_ms=2000.0),
]


async def test_the_model_writes_the_summary_from_redacted_facts(emulated: Emulated) -> None:
    built = summary_of(LEAD_DONE)
    summary = await summarise_with_llm(emulated.llm, built, TRANSCRIPT)
    assert summary.source == "llm"
    assert summary.text == MODEL_SUMMARY.replace("512-867-5309", "[PHONE]")
    assert summary.outcome == built.outcome
    (request,) = emulated.responder.requests
    sent = request.messages[0]["content"][0]["text"]
    assert sent == summary_prompt(built, TRANSCRIPT)
    assert "Caller: About 450,000. My social is [SSN]." in sent
    assert "Assistant: Great. What budget do you have in mind?" in sent
    assert "123-45-6789" not in sent and "867-5309" not in sent
    assert "never include phone numbers" in request.system.lower()


@pytest.mark.parametrize("fault", [Fault.OVERLOADED, Fault.AUTH, Fault.RATE_LIMIT])
async def test_a_failing_model_falls_back_to_the_built_summary(emulated: Emulated, fault: Fault) -> None:
    emulated.faults.schedule(fault)
    built = summary_of(LEAD_DONE)
    assert await summarise_with_llm(emulated.llm, built, TRANSCRIPT) is built


async def test_a_stalled_model_falls_back_in_time(emulated: Emulated) -> None:
    emulated.faults.schedule(Fault.STALL)
    built = summary_of(LEAD_DONE)
    assert await summarise_with_llm(emulated.llm, built, TRANSCRIPT, timeout_s=0.3) is built


async def test_an_empty_reply_falls_back(emulated: Emulated) -> None:
    emulated.responder.text = ""
    built = summary_of(LEAD_DONE)
    assert await summarise_with_llm(emulated.llm, built, TRANSCRIPT) is built
