"""The post-call summary and structured outcome, built from the bot's snapshot and the call's
analytics, or written by a language model from the same facts (falling back to the built one).

The snapshot is read defensively: it is whatever ``Bot.snapshot()`` returned (a plain dict whose
shape differs between bots and grows with the bot core): answers flat (``{"budget": 450000}``)
or per bot (``{"buyer": {...}}``), structured answers (``{"bucket": "0-3 months"}``), a
``fallback`` bot's snapshot inside, a ``score``, an ``appointment``, a ``transfer``. Everything
stored or sent to a model is PII-redacted first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from analytics.conversation import ConversationStats
from analytics.language import LanguageReport
from analytics.pii import redact
from analytics.sentiment import SentimentReport
from runtime.events import BotUtterance, CallerUtterance
from runtime.llm import ChatMessage, LanguageModel, LlmError, TextBlock, TextDelta

log = logging.getLogger(__name__)

CallOutcome = Literal["booked", "transferred", "qualified", "partial", "no_answers", "voicemail"]
Answer = str | int | float | bool

#: What qualifies a lead: what they want, where or what, the money and the timing. The scripted
#: Lead bot calls the area ``place``; the LLM brain calls it ``area``.
CORE_ANSWERS = ("intent", "area", "budget", "timeline")
_ALIASES = {"place": "area"}
#: Snapshot keys that group answers per bot (``bots.flows``), not answers themselves, and the
#: intent a group implies (a buyer bot's answers are a buyer's).
_BOT_ROLES = {"lead": None, "buyer": "buy", "seller": "sell", "renter": "rent"}
#: ``TransferOutcome`` of bots/base.py for a caller who reached a person.
_TRANSFER_JOINED = "joined"


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadScore:
    """The bot core's temperature for the lead (bots/scoring.py), as its snapshot reported it."""

    temperature: str
    points: int | None
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StructuredOutcome:
    result: CallOutcome
    intent: str | None
    #: every answer the bot recorded, flattened and redacted
    answers: dict[str, Answer]
    lead_score: LeadScore | None
    next_step: str
    #: the booked appointment's fields (start, end, title, status, ...) as text, or None
    appointment: dict[str, str] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummary:
    text: str
    outcome: StructuredOutcome
    source: Literal["built", "llm"]


# --- reading the snapshot ----------------------------------------------------------------


def answers_of(snapshot: Mapping[str, Any]) -> dict[str, Answer]:
    """The snapshot's answers, flattened: a fallback bot's first, the primary bot's over them,
    per-bot groups merged in order, structured answers reduced to their text."""
    fallback = snapshot.get("fallback")
    merged = answers_of(fallback) if isinstance(fallback, Mapping) else {}
    answers = snapshot.get("answers")
    if isinstance(answers, Mapping):
        merged.update(_flatten(answers))
    return {key: redact(value).text if isinstance(value, str) else value for key, value in merged.items()}


def _flatten(answers: Mapping[str, Any]) -> dict[str, Answer]:
    flat: dict[str, Answer] = {}
    for key, value in answers.items():
        if key in _BOT_ROLES and isinstance(value, Mapping):
            flat.update(_flatten(value))
            implied = _BOT_ROLES[key]
            if implied is not None and value:
                flat.setdefault("intent", implied)
            continue
        answer = _answer(value)
        if answer is not None:
            flat[_ALIASES.get(key, key)] = answer
    return flat


def _answer(value: Any) -> Answer | None:
    """A scalar as it is; a structured answer by its text, value, bucket or kind; lists joined."""
    if isinstance(value, str | int | float | bool):
        return value if value != "" else None
    if isinstance(value, Mapping):
        named = (value.get(k) for k in ("text", "value", "bucket", "kind"))
        return next((v for v in named if isinstance(v, str | int | float) and v != ""), None)
    if isinstance(value, list | tuple):
        parts = [str(v) for v in value if isinstance(v, str | int | float)]
        return ", ".join(parts) or None
    return None


def lead_score_of(snapshot: Mapping[str, Any]) -> LeadScore | None:
    score = snapshot.get("score")
    if not isinstance(score, Mapping) or not isinstance(score.get("temperature"), str):
        return None
    points = score.get("points")
    reasons = score.get("reasons")
    return LeadScore(
        temperature=score["temperature"],
        points=points if isinstance(points, int) else None,
        reasons=tuple(redact(r).text for r in reasons if isinstance(r, str)) if isinstance(reasons, list) else (),
    )


def appointment_of(snapshot: Mapping[str, Any]) -> dict[str, str] | None:
    appointment = snapshot.get("appointment")
    if isinstance(appointment, str) and appointment:
        return {"start": redact(appointment).text}
    if not isinstance(appointment, Mapping):
        return None
    fields = {k: redact(str(v)).text for k, v in appointment.items() if isinstance(v, str | int | float)}
    return fields or None


def transferred(snapshot: Mapping[str, Any]) -> bool:
    transfer = snapshot.get("transfer")
    if isinstance(transfer, Mapping):
        transfer = transfer.get("outcome")
    return transfer == _TRANSFER_JOINED


def qualified(snapshot: Mapping[str, Any], answers: Mapping[str, Answer]) -> bool:
    """The bot says it is done, or every core answer is in."""
    done = snapshot.get("stage") == "done" or snapshot.get("done") is True
    return done or all(key in answers for key in CORE_ANSWERS)


# --- the outcome -------------------------------------------------------------------------


def outcome_of(snapshot: Mapping[str, Any], end_reason: str = "") -> StructuredOutcome:
    """The structured outcome of a call from the bot's snapshot and why the call ended."""
    answers = answers_of(snapshot)
    appointment = appointment_of(snapshot)
    result = _result(snapshot, answers, appointment, end_reason)
    score = lead_score_of(snapshot)
    intent = answers.get("intent")
    return StructuredOutcome(
        result=result,
        intent=intent if isinstance(intent, str) else None,
        answers=answers,
        lead_score=score,
        next_step=_next_step(result, answers, appointment, score, end_reason),
        appointment=appointment,
    )


def _result(
    snapshot: Mapping[str, Any], answers: Mapping[str, Answer], appointment: dict[str, str] | None, end_reason: str
) -> CallOutcome:
    if appointment is not None:
        return "booked"
    if transferred(snapshot):
        return "transferred"
    if end_reason == "voicemail":
        return "voicemail"
    if qualified(snapshot, answers):
        return "qualified"
    return "partial" if answers else "no_answers"


_FOLLOW_UP = {
    "hot": "An agent should call the lead back today.",
    "warm": "An agent should call the lead back to book a viewing.",
    "cold": "Add the lead to a follow-up sequence.",
}


def _next_step(
    result: CallOutcome,
    answers: Mapping[str, Answer],
    appointment: dict[str, str] | None,
    score: LeadScore | None,
    end_reason: str,
) -> str:
    if result == "booked" and appointment is not None:
        return f"Confirm the appointment ({appointment.get('start', 'time not recorded')}) with the lead."
    if result == "transferred":
        return "The agent who took the transfer follows up."
    if result == "voicemail":
        return "A voicemail was left: call the lead again."
    if result == "qualified":
        return _FOLLOW_UP.get(score.temperature if score else "warm", _FOLLOW_UP["warm"])
    if result == "partial":
        missing = [key for key in CORE_ANSWERS if key not in answers]
        return f"Call the lead back to ask about: {', '.join(missing)}."
    went_silent = end_reason == "silence"
    return "The caller went silent: call them back." if went_silent else "Nothing was learned: call the lead back."


# --- the built summary -------------------------------------------------------------------


def build_summary(
    snapshot: Mapping[str, Any],
    conversation: ConversationStats,
    language: LanguageReport,
    sentiment: SentimentReport,
    end_reason: str = "",
) -> CallSummary:
    """A few plain sentences an agent reads before calling back, PII-redacted."""
    outcome = outcome_of(snapshot, end_reason)
    sentences = [
        _wants(outcome.answers),
        _result_sentence(outcome),
        f"Next step: {outcome.next_step}",
        _flow_sentence(conversation, language, sentiment),
    ]
    text = " ".join(s for s in sentences if s)
    return CallSummary(text=redact(text).text, outcome=outcome, source="built")


_INTENTS = frozenset({"buy", "sell", "rent"})


def _wants(answers: Mapping[str, Answer]) -> str:
    if not answers:
        return "The caller gave no details."
    intent = answers.get("intent")
    verb = intent if intent in _INTENTS else None
    what = f"a {answers['property']}" if "property" in answers else "a home"
    where = f" in {answers['area']}" if "area" in answers else ""
    parts = [f"The caller wants to {verb} {what}{where}" if verb else f"The caller is looking for {what}{where}"]
    if "budget" in answers:
        parts.append(f"budget {_money(answers['budget'])}")
    if "timeline" in answers:
        parts.append(f"timeline {answers['timeline']}")
    others = [f"{k}: {v}" for k, v in answers.items() if k not in (*CORE_ANSWERS, "property")]
    return ", ".join(parts) + "." + (f" Also: {'; '.join(others)}." if others else "")


def _money(amount: Answer) -> str:
    if isinstance(amount, int | float) and not isinstance(amount, bool):
        return f"${amount:,.0f}"
    return str(amount)


def _result_sentence(outcome: StructuredOutcome) -> str:
    score = f" ({outcome.lead_score.temperature} lead)" if outcome.lead_score else ""
    return f"Outcome: {outcome.result.replace('_', ' ')}{score}."


def _flow_sentence(conversation: ConversationStats, language: LanguageReport, sentiment: SentimentReport) -> str:
    interruptions = sum(not i.resumed for i in conversation.interruptions)
    parts = [
        f"Call of {conversation.duration_s:.0f} s with {conversation.caller_turns} caller turns",
        f"{interruptions} interruption{'s' if interruptions != 1 else ''}",
        f"{len(conversation.caller_silences)} long silence{'s' if len(conversation.caller_silences) != 1 else ''}",
        f"language {language.primary}" + (f" ({len(language.switches)} switches)" if language.switches else ""),
        f"sentiment {sentiment.direction}" if sentiment.direction != "unknown" else "",
    ]
    return ", ".join(p for p in parts if p) + "."


# --- the model-written summary -----------------------------------------------------------

SUMMARY_SYSTEM = (
    "You write the post-call summary a real-estate agent reads before calling a lead back. "
    "Write two to four plain sentences: what the caller wants, what was agreed, and the next step. "
    "Use only the facts given. Never include phone numbers, emails, account or card numbers, social "
    "security numbers or dates of birth; placeholders like [PHONE] stay as they are."
)
#: A summary is written after the call, off the hot path; still, a stuck request must not hold
#: the call's record back for long.
SUMMARY_TIMEOUT_S = 20.0


async def summarise_with_llm(
    model: LanguageModel,
    built: CallSummary,
    utterances: Sequence[CallerUtterance | BotUtterance],
    *,
    timeout_s: float = SUMMARY_TIMEOUT_S,
) -> CallSummary:
    """A model-written summary of the redacted transcript and the built outcome; the built
    summary when the model fails, stalls or says nothing. The outcome stays the built one."""
    request = ChatMessage(role="user", content=(TextBlock(text=summary_prompt(built, utterances)),))
    try:
        async with asyncio.timeout(timeout_s):
            text = await _reply_text(model, request)
    except (LlmError, TimeoutError) as e:
        log.warning("summary model failed, using the built summary", extra={"error": repr(e)})
        return built
    if not text:
        return built
    return CallSummary(text=redact(text).text, outcome=built.outcome, source="llm")


async def _reply_text(model: LanguageModel, request: ChatMessage) -> str:
    stream = model.stream(system=SUMMARY_SYSTEM, messages=[request])
    try:
        return "".join([event.text async for event in stream if isinstance(event, TextDelta)]).strip()
    finally:
        close = getattr(stream, "aclose", None)  # drop the request at once on a timeout
        if close is not None:
            await close()


def summary_prompt(built: CallSummary, utterances: Sequence[CallerUtterance | BotUtterance]) -> str:
    """The facts for the model: the structured outcome and the transcript, both redacted."""
    lines = [
        f"{'Caller' if isinstance(u, CallerUtterance) else 'Assistant'}: {redact(u.text).text}"
        for u in sorted(utterances, key=lambda u: (u.at, u.turn))
    ]
    outcome = json.dumps(asdict(built.outcome), sort_keys=True)
    return f"Structured outcome: {outcome}\n\nTranscript:\n" + "\n".join(lines)
