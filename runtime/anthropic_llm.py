"""The production language model: Anthropic's Messages API, streamed through the official SDK.

The SDK sends the request and retries 408/409/429/5xx/529 before the stream starts, honouring
``retry-after``. From then on this adapter watches the clock: a vendor that opens the stream but
sends no content within ``first_token_timeout_s`` is as good as down for a caller waiting on
the line. The system prompt and the tool definitions carry cache breakpoints, so the stable
prefix of every turn is a cache read (protocols.md §4). Every failure leaves as one ``LlmError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    CacheControlEphemeralParam,
    InputJSONDelta,
    MessageParam,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
)
from anthropic.types import TextDelta as ApiTextDelta
from anthropic.types import ToolUseBlock as ApiToolUseBlock

from runtime.llm import (
    ChatMessage,
    ContentBlock,
    LanguageModel,
    LlmError,
    LlmEvent,
    TextBlock,
    TextDelta,
    ToolCall,
    ToolSpec,
    ToolUseBlock,
    TurnDone,
    Usage,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The fastest first token of the current models; phone replies are short.
DEFAULT_MODEL = "claude-haiku-4-5"
#: One or two spoken sentences plus a tool call fit well within this; a runaway reply is cut.
DEFAULT_MAX_TOKENS = 300
#: The SDK's own default; with its 0.5 s, 1 s backoff both retries fit inside a phone turn.
DEFAULT_MAX_RETRIES = 2
#: Claude's first token is ~380 ms, p95 ~700 ms (field-survey.md §4); ten times the median means
#: a stalled vendor, and the caller has been waiting long enough for the fallback brain.
DEFAULT_FIRST_TOKEN_TIMEOUT_S = 3.0
#: Bounds opening the stream (SDK retries included) and any silence between two events after
#: the first; far above a short reply's whole generation time.
DEFAULT_REQUEST_TIMEOUT_S = 20.0

_EPHEMERAL: CacheControlEphemeralParam = {"type": "ephemeral"}
#: The HTTP status behind an error type, for ``error`` events that arrive after a 200.
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def is_retryable_status(status: int) -> bool:
    """The SDK's rule: timeouts, lock conflicts, rate limits and server errors (529 included)."""
    return status in (408, 409, 429) or status >= 500


def to_api_system(system: str) -> list[TextBlockParam]:
    """One text block, marked as a cache breakpoint: the system prompt never changes in a call."""
    return [{"type": "text", "text": system, "cache_control": _EPHEMERAL}]


def to_api_tools(tools: Sequence[ToolSpec]) -> list[ToolParam]:
    """Tool definitions; the last is a cache breakpoint, as tools come first in the prefix."""
    api: list[ToolParam] = [
        {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)} for t in tools
    ]
    if api:
        api[-1]["cache_control"] = _EPHEMERAL
    return api


def to_api_messages(messages: Sequence[ChatMessage]) -> list[MessageParam]:
    return [_to_api_message(m) for m in messages]


def _to_api_message(message: ChatMessage) -> MessageParam:
    content = [_to_api_block(b) for b in message.content]
    if message.role == "user":
        return {"role": "user", "content": content}
    return {"role": "assistant", "content": content}


def _to_api_block(block: ContentBlock) -> TextBlockParam | ToolUseBlockParam | ToolResultBlockParam:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content,
        "is_error": block.is_error,
    }


class TurnAssembler:
    """Raw stream events in, ``LlmEvent``s out: text at once, a tool call once its input JSON
    is complete, ``TurnDone`` with the cumulative usage at ``message_stop``."""

    def __init__(self) -> None:
        self.done = False
        self._tools: dict[int, tuple[str, str, list[str]]] = {}
        self._stop_reason = "end_turn"
        self._usage: dict[str, int] = {}

    def feed(self, event: RawMessageStreamEvent) -> list[LlmEvent]:
        if isinstance(event, RawMessageStartEvent):
            self._merge_usage(event.message.usage.model_dump())
        elif isinstance(event, RawContentBlockStartEvent) and isinstance(event.content_block, ApiToolUseBlock):
            self._tools[event.index] = (event.content_block.id, event.content_block.name, [])
        elif isinstance(event, RawContentBlockDeltaEvent):
            return self._delta(event)
        elif isinstance(event, RawContentBlockStopEvent) and event.index in self._tools:
            return [self._tool_call(*self._tools.pop(event.index))]
        elif isinstance(event, RawMessageDeltaEvent):
            self._stop_reason = event.delta.stop_reason or self._stop_reason
            self._merge_usage(event.usage.model_dump())
        elif isinstance(event, RawMessageStopEvent):
            self.done = True
            return [TurnDone(stop_reason=self._stop_reason, usage=Usage(**self._usage))]
        return []

    def _delta(self, event: RawContentBlockDeltaEvent) -> list[LlmEvent]:
        if isinstance(event.delta, ApiTextDelta) and event.delta.text:
            return [TextDelta(event.delta.text)]
        if isinstance(event.delta, InputJSONDelta) and event.index in self._tools:
            self._tools[event.index][2].append(event.delta.partial_json)
        return []

    @staticmethod
    def _tool_call(tool_id: str, name: str, parts: list[str]) -> ToolCall:
        try:
            arguments = json.loads("".join(parts) or "{}")
        except ValueError as e:
            raise LlmError(f"tool {name} input is not JSON", retryable=True) from e
        if not isinstance(arguments, dict):
            raise LlmError(f"tool {name} input is not an object", retryable=True)
        return ToolCall(tool_id, name, arguments)

    def _merge_usage(self, usage: dict[str, Any]) -> None:
        """Counts are cumulative, and a ``message_delta`` omits the ones that did not change."""
        for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
            if isinstance(usage.get(key), int):
                self._usage[key] = usage[key]


def to_llm_error(error: Exception) -> LlmError:
    """The one place SDK and transport failures become ``LlmError``."""
    if isinstance(error, anthropic.APIStatusError):
        # An ``error`` event arrives inside a 200 stream: its type says what the status would be.
        status = error.status_code if error.status_code >= 400 else _ERROR_TYPE_STATUS.get(error.type or "", 500)
        return LlmError(
            f"anthropic {error.type or 'error'} (HTTP {status})", retryable=is_retryable_status(status), status=status
        )
    if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
        return LlmError("anthropic request timed out", retryable=True)
    if isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
        return LlmError("anthropic connection failed", retryable=True)
    if isinstance(error, ValueError):
        return LlmError("anthropic stream is malformed", retryable=True)
    return LlmError(f"anthropic client error: {type(error).__name__}", retryable=False)


class AnthropicLlm(LanguageModel):
    """One client per process: the SDK pools connections across calls."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        first_token_timeout_s: float = DEFAULT_FIRST_TOKEN_TIMEOUT_S,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        if first_token_timeout_s <= 0 or request_timeout_s <= 0 or max_tokens < 1 or max_retries < 0:
            raise ValueError("timeouts and max_tokens must be positive, max_retries not negative")
        self.model = model
        self.max_tokens = max_tokens
        self.first_token_timeout_s = first_token_timeout_s
        self.request_timeout_s = request_timeout_s
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=request_timeout_s
        )

    async def stream(
        self, *, system: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> AsyncGenerator[LlmEvent, None]:
        """A generator, so a caller that stops early (barge-in) can ``aclose`` it to hang up at once."""
        assembler = TurnAssembler()
        try:
            async with await self._open(system, messages, tools) as raw:
                opened = asyncio.get_running_loop().time()
                first_by: float | None = opened + self.first_token_timeout_s
                while (event := await self._next(raw, first_by)) is not None:
                    if first_by is not None and not isinstance(event, RawMessageStartEvent):
                        first_by = None
                        self._log_first_token(opened)
                    for out in assembler.feed(event):
                        yield out
        except (anthropic.AnthropicError, httpx2.HTTPError, ValueError) as e:
            raise to_llm_error(e) from e
        if not assembler.done:
            raise LlmError("anthropic stream ended before message_stop", retryable=True)

    async def _open(
        self, system: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> anthropic.AsyncStream[RawMessageStreamEvent]:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                return await self._client.messages.create(
                    model=self.model,
                    max_tokens=self.max_tokens,
                    system=to_api_system(system),
                    messages=to_api_messages(messages),
                    tools=to_api_tools(tools) if tools else anthropic.omit,
                    stream=True,
                )
        except TimeoutError as e:
            raise LlmError("anthropic did not answer in time", retryable=True) from e

    async def _next(
        self, raw: anthropic.AsyncStream[RawMessageStreamEvent], first_by: float | None
    ) -> RawMessageStreamEvent | None:
        """The next raw event, or None at the end; fails when the first content is late
        (``first_by``) or, after it, when the stream falls silent.

        A timeout per wait, never one spanning a ``yield``: that would cancel the consumer."""
        deadline = first_by or asyncio.get_running_loop().time() + self.request_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                return await anext(raw)
        except StopAsyncIteration:
            return None
        except TimeoutError as e:
            late = "no first token" if first_by else "stream stalled"
            raise LlmError(f"anthropic: {late} in time", retryable=True) from e

    def _log_first_token(self, opened: float) -> None:
        first_token_ms = (asyncio.get_running_loop().time() - opened) * 1000
        log.debug("llm first token", extra={"model": self.model, "first_token_ms": first_token_ms})

    async def aclose(self) -> None:
        await self._client.close()
