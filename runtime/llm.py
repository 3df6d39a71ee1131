"""The language-model interface the bot brains use: a streamed turn with text and tool calls.

Shaped after the Anthropic Messages API (the production vendor) but vendor-neutral: a bot sends
a system prompt, the conversation and its tools, and gets text deltas as they are generated,
then any tool calls, then how the turn stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


class LlmError(Exception):
    """The model failed this turn. ``retryable`` says whether the same request may succeed
    later (rate limits, overload, timeouts, dropped connections)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class TextBlock:
    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolUseBlock:
    id: str
    name: str
    input: Mapping[str, Any]
    kind: Literal["tool_use"] = "tool_use"


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultBlock:
    tool_use_id: str
    content: str
    is_error: bool = False
    kind: Literal["tool_result"] = "tool_result"


ContentBlock = TextBlock | ToolUseBlock | ToolResultBlock


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    role: Literal["user", "assistant"]
    content: tuple[ContentBlock, ...]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply's text, as soon as the model produced it."""

    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call (its input fully parsed)."""

    id: str
    name: str
    input: Mapping[str, Any]
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnDone:
    """The model finished this request: ``stop_reason`` is e.g. ``end_turn`` or ``tool_use``."""

    stop_reason: str
    usage: Usage = field(default_factory=Usage)
    kind: Literal["turn_done"] = "turn_done"


LlmEvent = TextDelta | ToolCall | TurnDone


class LanguageModel(ABC):
    """A process-wide model client (connection pooling, retries, prompt caching inside)."""

    @abstractmethod
    def stream(
        self, *, system: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmEvent]:
        """One model request, streamed. Raises ``LlmError`` on failure."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
