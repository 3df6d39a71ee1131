"""The Anthropic client and emulator over real loopback sockets: the streamed wire format, the
official SDK against the emulator, errors and retries, stalls, prompt caching."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anthropic
import pytest

from emulators.anthropic import InvalidRequest, build_app, default_control, parse_request
from emulators.control import EmulatorControl, Fault, LatencyProfile
from runtime.anthropic_llm import AnthropicLlm
from runtime.llm import ChatMessage, LlmError, LlmEvent, TextBlock, TextDelta, ToolCall, ToolSpec, TurnDone
from tests.conftest import on_loopback

API_KEY = "sk-ant-test-key"
#: Fast, but still a delay before the first token and between tokens, as the vendor has.
FAST_FIRST_TOKEN = LatencyProfile(median_ms=10, p95_ms=20)
FAST_TOKENS = LatencyProfile(median_ms=1, p95_ms=2)
HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
REPLY = "Buying a house in Austin, great. What budget do you have in mind?"


@dataclass
class Emulator:
    base_url: str
    control: EmulatorControl
    clients: list[AnthropicLlm] = field(default_factory=list)

    def llm(self, **options: Any) -> AnthropicLlm:
        """A client of this emulator, closed when the test ends."""
        client = AnthropicLlm(**{"api_key": API_KEY, "base_url": self.base_url, **options})
        self.clients.append(client)
        return client


@asynccontextmanager
async def running_emulator() -> AsyncIterator[Emulator]:
    """The emulator on a free loopback port, with fast latencies."""
    control = default_control()
    control.latency.update(first_token=FAST_FIRST_TOKEN, token_interval=FAST_TOKENS)
    async with on_loopback(build_app(api_key=API_KEY, control=control)) as base_url:
        emulator = Emulator(base_url, control)
        try:
            yield emulator
        finally:
            for client in emulator.clients:
                await client.aclose()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with running_emulator() as running:
        yield running


def caller(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=(TextBlock(text=text),))]


async def collect(events: AsyncIterator[LlmEvent]) -> list[LlmEvent]:
    return [event async for event in events]


async def failure(events: AsyncIterator[LlmEvent]) -> tuple[list[LlmEvent], LlmError]:
    """The events before the stream failed, and the failure."""
    seen: list[LlmEvent] = []
    with pytest.raises(LlmError) as failed:
        async for event in events:
            seen.append(event)
    return seen, failed.value


RECORD = ToolSpec(
    name="record_answers",
    description="Save the answers",
    input_schema={"type": "object", "properties": {"intent": {"type": "string"}, "area": {"type": "string"}}},
)


async def test_streamed_text_arrives_as_several_deltas_in_order(emulator: Emulator) -> None:
    events = await collect(
        emulator.llm().stream(system="Be brief.", messages=caller("I want to buy a house in Austin"))
    )
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 5
    assert "".join(deltas) == REPLY
    done = events[-1]
    assert isinstance(done, TurnDone) and done.stop_reason == "end_turn"
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0


async def test_tool_use_arrives_as_a_parsed_call_after_the_text(emulator: Emulator) -> None:
    events = await collect(
        emulator.llm().stream(system="Be brief.", messages=caller("I want to buy a house in Austin"), tools=[RECORD])
    )
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, dict(c.input)) for c in calls] == [("record_answers", {"intent": "buy", "area": "Austin"})]
    assert calls[0].id.startswith("toolu_")
    assert isinstance(events[-1], TurnDone) and events[-1].stop_reason == "tool_use"
    assert events.index(calls[0]) > max(i for i, e in enumerate(events) if isinstance(e, TextDelta))


async def test_the_official_sdk_streams_from_the_emulator(emulator: Emulator) -> None:
    client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=emulator.base_url, max_retries=0)
    try:
        async with client.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=300,
            messages=[{"role": "user", "content": "I want to buy a house in Austin"}],
            tools=[{"name": "record_answers", "input_schema": {"type": "object"}}],
        ) as stream:
            text = [chunk async for chunk in stream.text_stream]
            message = await stream.get_final_message()
    finally:
        await client.close()
    assert len(text) > 1 and "".join(text) == REPLY
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "tool_use" and message.usage.output_tokens > 1


async def test_the_wire_format_with_the_x_api_key_header(emulator: Emulator) -> None:
    """The 1.x SDK's header, and the event sequence of protocols.md §4."""
    body = {"model": "m", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "in Austin"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.base_url}/v1/messages", json=body, headers=HEADERS) as response,
    ):
        assert response.status == 200 and response.content_type == "text/event-stream"
        raw = await response.text()
    events = [block.split("\n") for block in raw.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    for name, lines in zip(names, events, strict=True):
        assert json.loads(lines[1].removeprefix("data: "))["type"] == name
    final_usage = json.loads(events[-2][1].removeprefix("data: "))["usage"]
    assert final_usage["output_tokens"] > 1


async def test_a_non_streamed_request_gets_the_whole_message(emulator: Emulator) -> None:
    body = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "I want to buy in Austin"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.base_url}/v1/messages", json=body, headers=HEADERS) as response,
    ):
        message = await response.json()
    assert message["type"] == "message" and message["stop_reason"] == "end_turn"
    assert message["content"][0]["text"].startswith("Buying a home in Austin")


async def test_a_wrong_key_is_a_permanent_failure(emulator: Emulator) -> None:
    events = emulator.llm(api_key="sk-wrong").stream(system="s", messages=caller("hi"))
    _, error = await failure(events)
    assert error.status == 401 and not error.retryable
    assert emulator.control.stats["requests"] == 1  # the SDK does not retry a 401


async def test_an_injected_auth_fault_is_a_401(emulator: Emulator) -> None:
    emulator.control.faults.schedule(Fault.AUTH)
    _, error = await failure(emulator.llm().stream(system="s", messages=caller("hi")))
    assert (error.status, error.retryable) == (401, False)


async def test_invalid_requests_are_rejected_like_the_api() -> None:
    with pytest.raises(InvalidRequest, match="max_tokens"):
        parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(InvalidRequest, match="tool_use_id"):
        parse_request(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}],
            }
        )
    unanswered = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
        {"role": "user", "content": "hello?"},
    ]
    with pytest.raises(InvalidRequest, match="without `tool_result`"):
        parse_request({"model": "m", "max_tokens": 5, "messages": unanswered})


async def test_an_invalid_body_is_a_400_error_body(emulator: Emulator) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.base_url}/v1/messages", json=body, headers=HEADERS) as response,
    ):
        assert response.status == 400
        error = await response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert error["request_id"].startswith("req_")
    _, failed = await failure(emulator.llm().stream(system="s", messages=[]))
    assert (failed.status, failed.retryable) == (400, False)


async def test_the_sdk_waits_out_a_rate_limit_and_succeeds(emulator: Emulator) -> None:
    emulator.control.faults.schedule(Fault.RATE_LIMIT)
    started = time.monotonic()
    events = await collect(emulator.llm(max_retries=2).stream(system="s", messages=caller("in Austin")))
    assert isinstance(events[-1], TurnDone)
    assert emulator.control.stats["requests"] == 2
    assert time.monotonic() - started >= 0.9  # retry-after: 1 was honoured


async def test_overload_beyond_the_retries_is_a_retryable_failure(emulator: Emulator) -> None:
    emulator.control.faults.schedule(Fault.OVERLOADED, count=2)
    _, error = await failure(emulator.llm(max_retries=1).stream(system="s", messages=caller("hi")))
    assert (error.status, error.retryable) == (529, True)
    assert emulator.control.stats["requests"] == 2


async def test_an_overloaded_error_event_mid_stream_fails_the_turn(emulator: Emulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.base_url}/_emulator/anthropic", json={"overloaded_mid_stream": True}) as response,
    ):
        assert response.status == 200
    emulator.control.faults.schedule(Fault.OVERLOADED)
    seen, error = await failure(emulator.llm().stream(system="s", messages=caller("I want to buy in Austin")))
    assert any(isinstance(e, TextDelta) for e in seen)  # it failed after text had arrived
    assert (error.status, error.retryable) == (529, True)
    assert emulator.control.stats["requests"] == 1  # the SDK cannot retry a stream already started


async def test_a_stalled_stream_fails_at_the_first_token_timeout(emulator: Emulator) -> None:
    emulator.control.faults.schedule(Fault.STALL)
    started = time.monotonic()
    seen, error = await failure(emulator.llm(first_token_timeout_s=0.5).stream(system="s", messages=caller("hi")))
    elapsed = time.monotonic() - started
    assert seen == [] and error.retryable and "first token" in str(error)
    assert 0.5 <= elapsed < 3.0


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.DISCONNECT])
async def test_a_broken_stream_is_a_retryable_failure(emulator: Emulator, fault: Fault) -> None:
    emulator.control.faults.schedule(fault)
    _, error = await failure(emulator.llm().stream(system="s", messages=caller("I want to buy in Austin")))
    assert error.retryable and error.status is None


async def test_a_repeated_prefix_is_read_from_the_prompt_cache(emulator: Emulator) -> None:
    llm = emulator.llm()
    system = "You are Ava, answering the phone for Lakeside Realty. " * 20
    first = await collect(llm.stream(system=system, messages=caller("hi"), tools=[RECORD]))
    second = await collect(llm.stream(system=system, messages=caller("I want to buy in Austin"), tools=[RECORD]))
    written, read = first[-1], second[-1]
    assert isinstance(written, TurnDone) and isinstance(read, TurnDone)
    assert written.usage.cache_creation_input_tokens > 250 and written.usage.cache_read_input_tokens == 0
    assert read.usage.cache_read_input_tokens == written.usage.cache_creation_input_tokens
    assert read.usage.cache_creation_input_tokens == 0
    third = await collect(llm.stream(system=system + " New.", messages=caller("hi"), tools=[RECORD]))
    assert isinstance(third[-1], TurnDone)  # the tools are still a hit, the changed system prompt is not
    assert 0 < third[-1].usage.cache_read_input_tokens < read.usage.cache_read_input_tokens


async def settled(condition: Callable[[], bool], within_s: float = 5.0) -> bool:
    """Waits for ``condition`` (the server side notices a hang-up on its own schedule)."""
    deadline = time.monotonic() + within_s
    # Polling, because neither side offers an event for "the other end has noticed".
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    return condition()


async def no_new_tasks(run: Callable[[], Awaitable[None]]) -> bool:
    before = asyncio.all_tasks()
    await run()
    return await settled(lambda: not (asyncio.all_tasks() - before - {asyncio.current_task()}))


async def test_no_tasks_leak_from_finished_abandoned_or_failed_streams() -> None:
    async def exercise() -> None:
        async with running_emulator() as emulator:
            llm = emulator.llm(first_token_timeout_s=0.3)
            await collect(llm.stream(system="s", messages=caller("in Austin")))
            events = llm.stream(system="s", messages=caller("I want to buy a house in Austin"))
            async for _ in events:
                break  # the caller barged in
            await events.aclose()
            assert await settled(lambda: emulator.control.stats["client_gone"] == 1)
            emulator.control.faults.schedule(Fault.STALL)
            await failure(llm.stream(system="s", messages=caller("hi")))

    assert await no_new_tasks(exercise)
