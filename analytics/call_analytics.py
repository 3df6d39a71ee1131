"""Everything computed about one call, in one pure step: conversation flow, language, sentiment,
the voice performance score and the summary with its structured outcome.

Run it when a call ends (or on a live call's events so far); it only reads its inputs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analytics.conversation import ConversationOptions, ConversationStats, analyse_conversation
from analytics.language import LanguageOptions, LanguageReport, analyse_languages
from analytics.sentiment import SentimentReport, analyse_sentiment
from analytics.summary import CallSummary, build_summary
from analytics.voice_score import ScoreOptions, VoiceScore, voice_score
from runtime.events import BotUtterance, CallEnded, CallerUtterance, CallEvent
from runtime.report import CallReport


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsOptions:
    conversation: ConversationOptions = field(default_factory=ConversationOptions)
    language: LanguageOptions = field(default_factory=LanguageOptions)
    score: ScoreOptions = field(default_factory=ScoreOptions)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnalytics:
    conversation: ConversationStats
    language: LanguageReport
    sentiment: SentimentReport
    score: VoiceScore
    summary: CallSummary

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        """What ``to_json`` writes, as plain dicts and lists (a JSONB column, an API body)."""
        data: dict[str, Any] = json.loads(self.to_json())
        return data


def analyse_call(
    report_or_events: CallReport | Iterable[CallEvent],
    utterances: Sequence[CallerUtterance | BotUtterance] | None = None,
    bot_snapshot: Mapping[str, Any] | None = None,
    *,
    options: AnalyticsOptions = AnalyticsOptions(),
) -> CallAnalytics:
    """``utterances``: the transcript if kept apart from the events (None: the events' own);
    ``bot_snapshot``: ``Bot.snapshot()`` (None: the report's ``bot_state``, or nothing)."""
    events = _events(report_or_events)
    snapshot = bot_snapshot if bot_snapshot is not None else _report_snapshot(report_or_events)
    said = utterances if utterances is not None else [e for e in events if isinstance(e, CallerUtterance)]
    caller = [u for u in said if isinstance(u, CallerUtterance)]
    conversation = analyse_conversation(events, options.conversation)
    language = analyse_languages(caller, options.language)
    sentiment = analyse_sentiment(caller, {t.turn: t.language for t in language.turns})
    summary = build_summary(snapshot, conversation, language, sentiment, _end_reason(report_or_events, events))
    score = voice_score(
        interruption_rate=conversation.interruption_rate,
        silence_rate=conversation.silence_rate,
        latency_p95_ms=conversation.latency_p95_ms,
        outcome=summary.outcome.result,
        options=options.score,
    )
    return CallAnalytics(
        conversation=conversation, language=language, sentiment=sentiment, score=score, summary=summary
    )


def _events(report_or_events: CallReport | Iterable[CallEvent]) -> list[CallEvent]:
    if isinstance(report_or_events, CallReport):
        return list(report_or_events.events)
    return list(report_or_events)


def _report_snapshot(report_or_events: CallReport | Iterable[CallEvent]) -> Mapping[str, Any]:
    return report_or_events.bot_state if isinstance(report_or_events, CallReport) else {}


def _end_reason(report_or_events: CallReport | Iterable[CallEvent], events: Sequence[CallEvent]) -> str:
    if isinstance(report_or_events, CallReport) and report_or_events.end_reason:
        return report_or_events.end_reason
    return next((e.reason for e in reversed(events) if isinstance(e, CallEnded)), "")
