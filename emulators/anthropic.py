"""A local stand-in for the Anthropic Messages API (``POST /v1/messages``), streamed or not.

It speaks the wire format of protocols.md §4 (the SSE event sequence with a ``ping`` after the
first block start, error bodies, ``retry-after`` headers, usage with prompt caching), so the
official SDK runs against it unchanged. What the "model" says comes from a pluggable
``Responder``; the default replays the conversation through the scripted bot core when the
request offers the core's tools (emulators/anthropic_responder.py), else through the scripted
Lead bot, so calls qualify a lead deterministically offline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from bots.base import EndCall, Say
from bots.lead import LeadBot
from emulators.control import EmulatorControl, Fault, LatencyProfile, add_control_routes
from runtime.config import PersonaOptions

#: Claude's published time to first token (field-survey.md §4, Orbit row: 380 ms; cold starts run longer).
DEFAULT_FIRST_TOKEN = LatencyProfile(median_ms=380, p95_ms=700)
#: About 65 tokens a second, a small model's streaming pace, with a tail.
DEFAULT_TOKEN_INTERVAL = LatencyProfile(median_ms=15, p95_ms=30)
#: ``retry-after`` carries whole seconds; one keeps rate-limited tests short.
RETRY_AFTER_S = 1
#: The ephemeral cache's default lifetime, refreshed on every hit (protocols.md §4).
CACHE_TTL_S = 300.0
#: Anthropic's rule of thumb for English text.
CHARS_PER_TOKEN = 4
#: The API rejects more cache breakpoints than this per request.
MAX_CACHE_BREAKPOINTS = 4
#: Roughly token-sized pieces of a tool's input JSON per ``input_json_delta``.
JSON_CHUNK_CHARS = 12
#: How often a stalled response looks whether its client has hung up (aiohttp does not cancel
#: handlers on disconnect by default).
STALL_POLL_S = 0.05

_API_VERSION_HEADER = "anthropic-version"
_WORD = re.compile(r"\s*\S+")


class InvalidRequest(ValueError):
    """The body breaks the API's rules: answered with 400 ``invalid_request_error``."""


@dataclass(frozen=True, slots=True)
class TextReply:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseReply:
    name: str
    input: Mapping[str, Any]


ReplyBlock = TextReply | ToolUseReply


@dataclass(frozen=True, kw_only=True)
class MessagesRequest:
    """A validated request: system as one string, each message's content as a list of blocks,
    consecutive same-role messages merged (as the API does)."""

    model: str
    max_tokens: int
    stream: bool
    system_blocks: tuple[dict[str, Any], ...]
    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...]

    @property
    def system(self) -> str:
        return "\n".join(b["text"] for b in self.system_blocks)

    def cacheable_blocks(self) -> list[dict[str, Any]]:
        """Everything a cache breakpoint can sit on, in the order prefixes are cached."""
        return [*self.tools, *self.system_blocks, *(c for m in self.messages for c in m["content"])]

    def tool(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.tools if t["name"] == name), None)


class Responder(Protocol):
    """What the emulated model says to a request: text and/or tool calls."""

    async def reply(self, request: MessagesRequest) -> list[ReplyBlock]: ...


# --- request validation (pure) ---


def parse_request(body: Any) -> MessagesRequest:
    """Check a request body the way the API does; raises ``InvalidRequest``."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Field required (an integer >= 1)")
    tools = _parse_tools(body.get("tools", []))
    messages = _merge_roles(_parse_messages(body.get("messages")))
    _check_tool_pairs(messages)
    request = MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        stream=body.get("stream") is True,
        system_blocks=tuple(_system_blocks(body.get("system", []))),
        messages=tuple(messages),
        tools=tuple(tools),
    )
    breakpoints = sum("cache_control" in b for b in request.cacheable_blocks())
    if breakpoints > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequest(f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided.")
    return request


def _system_blocks(system: Any) -> list[dict[str, Any]]:
    if isinstance(system, str):
        return [{"type": "text", "text": system}]
    if not isinstance(system, list) or not all(_is_text_block(b) for b in system):
        raise InvalidRequest("system: must be a string or a list of text blocks")
    return system


def _parse_tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequest("tools: must be a list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest(f"tools.{i}.name: Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(f"tools.{i}.input_schema: Field required")
        if tool["name"] in names:
            raise InvalidRequest("tools: Tool names must be unique.")
        names.add(tool["name"])
    return tools


def _parse_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Field required (a non-empty list)")
    parsed = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        final_assistant = i == len(messages) - 1 and role == "assistant"
        if not isinstance(blocks, list) or not (blocks or final_assistant):
            raise InvalidRequest(
                f"messages.{i}: all messages must have non-empty content"
                " except for the optional final assistant message"
            )
        for j, block in enumerate(blocks):
            _check_block(block, role, f"messages.{i}.content.{j}")
        parsed.append({"role": role, "content": blocks})
    if parsed[0]["role"] != "user":
        raise InvalidRequest('messages: first message must use the "user" role')
    return parsed


def _check_block(block: Any, role: str, where: str) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if not _is_text_block(block) or not block["text"]:
            raise InvalidRequest(f"{where}: text content blocks must be non-empty")
    elif kind == "tool_use" and role == "assistant":
        if not (isinstance(block.get("id"), str) and isinstance(block.get("name"), str)):
            raise InvalidRequest(f"{where}: tool_use blocks need an id and a name")
        if not isinstance(block.get("input"), dict):
            raise InvalidRequest(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result" and role == "user":
        if not isinstance(block.get("tool_use_id"), str):
            raise InvalidRequest(f"{where}.tool_use_id: Field required")
    else:
        raise InvalidRequest(f"{where}: a {kind!r} block is not allowed in a {role} message")


def _is_text_block(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)


def _merge_roles(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive turns of one role are combined into one, as the API documents."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": [*merged[-1]["content"], *message["content"]]}
        else:
            merged.append(message)
    return merged


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Every ``tool_use`` is answered by a ``tool_result`` in the very next message, and every
    ``tool_result`` answers a ``tool_use`` of the previous one (roles alternate once merged)."""
    offered: set[str] = set()
    for i, message in enumerate(messages):
        answered = {b["tool_use_id"] for b in message["content"] if b["type"] == "tool_result"}
        if answered - offered:
            raise InvalidRequest(
                f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: {min(answered - offered)}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        if offered - answered:
            raise InvalidRequest(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{min(offered - answered)}"
            )
        offered = {b["id"] for b in message["content"] if b["type"] == "tool_use"}


# --- the reply as wire events (pure) ---


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    """One server-sent event: ``event: <name>`` then ``data: <json>`` (protocols.md §4)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream_events(message: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events that deliver ``message`` (a complete Message object), in order."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        empty = {"type": "text", "text": ""} if block["type"] == "text" else {**block, "input": {}}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": empty}))
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for delta in _deltas(block):
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(("message_delta", {"type": "message_delta", "delta": stop, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _deltas(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Text as word-sized ``text_delta``s; tool input as ``input_json_delta``s, the first one
    empty, as the API sends them."""
    if block["type"] == "text":
        return [{"type": "text_delta", "text": word} for word in _WORD.findall(block["text"])]
    encoded = json.dumps(block["input"])
    pieces = [encoded[i : i + JSON_CHUNK_CHARS] for i in range(0, len(encoded), JSON_CHUNK_CHARS)]
    return [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def error_body(kind: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


# --- the default responder ---


class ScriptedBrainResponder:
    """Answers as the scripted Lead bot would: it replays the caller's turns of the request
    through a fresh ``LeadBot`` and says its reply to the last one, calling ``record_answers``
    when something new was learned and ``end_call`` when the bot hangs up (if offered)."""

    def __init__(
        self, business_name: str = PersonaOptions.business_name, bot_name: str = PersonaOptions.bot_name
    ) -> None:
        self.business_name = business_name
        self.bot_name = bot_name

    async def reply(self, request: MessagesRequest) -> list[ReplyBlock]:
        turns = [_caller_text(m) for m in request.messages if m["role"] == "user"]
        if not turns[-1]:
            return []  # only tool results came back: the reply was already said with the calls
        bot = LeadBot(self.business_name, self.bot_name)
        for text in turns[:-1]:
            if text:
                async for _ in bot.respond(text):
                    pass
        known_before = _answers_input(bot, request.tool("record_answers"))
        actions = [action async for action in bot.respond(turns[-1])]
        blocks: list[ReplyBlock] = [TextReply("".join(a.text for a in actions if isinstance(a, Say)).strip())]
        known = _answers_input(bot, request.tool("record_answers"))
        if known and known != known_before:
            blocks.append(ToolUseReply("record_answers", known))
        ended = [a for a in actions if isinstance(a, EndCall)]
        if ended and request.tool("end_call") is not None:
            blocks.append(ToolUseReply("end_call", {"reason": ended[0].reason}))
        return blocks


def _caller_text(message: Mapping[str, Any]) -> str:
    return " ".join(b["text"] for b in message["content"] if b["type"] == "text").strip()


def _answers_input(bot: LeadBot, tool: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the bot knows, under the tool's property names (``area`` is the Lead bot's place)."""
    if tool is None:
        return {}
    a = bot.answers
    known = {"intent": a.intent, "property": a.property, "area": a.place, "budget": a.budget, "timeline": a.timeline}
    accepted = tool["input_schema"].get("properties", known)
    return {k: v for k, v in known.items() if v is not None and k in accepted}


# --- the HTTP side ---


class _MessagesApi:
    """One emulated API: credentials, responder, prompt cache, ids and the fault knobs."""

    def __init__(self, api_key: str, responder: Responder, control: EmulatorControl) -> None:
        self.api_key = api_key
        self.responder = responder
        self.control = control
        #: where an OVERLOADED fault strikes a streamed request: after the first delta (an
        #: ``error`` event) instead of as an HTTP 529 before the stream
        self.overloaded_mid_stream = False
        self.stopping = asyncio.Event()
        self._ids = random.Random(control.faults.seed)
        self._cache: dict[str, float] = {}

    def new_id(self, prefix: str) -> str:
        return prefix + "".join(self._ids.choices("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=24))

    def authorised(self, request: web.Request) -> bool:
        bearer = request.headers.get("Authorization", "")
        return request.headers.get("x-api-key") == self.api_key or bearer == f"Bearer {self.api_key}"

    def usage(self, request: MessagesRequest, content: list[dict[str, Any]]) -> dict[str, Any]:
        """Token counts by the 4-characters rule; the prefix up to a cache breakpoint is read
        from the cache when it was seen within its lifetime, else written to it."""
        blocks = request.cacheable_blocks()
        sizes = [len(json.dumps(b, sort_keys=True)) for b in blocks]
        read, written = self._cache_lookup(request.model, blocks, sizes)
        return {
            "input_tokens": max(estimate_tokens(sum(sizes)) - read - written, 1),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "output_tokens": max(estimate_tokens(len(json.dumps(content))), 1),
            "service_tier": "standard",
        }

    def _cache_lookup(self, model: str, blocks: list[dict[str, Any]], sizes: list[int]) -> tuple[int, int]:
        """(tokens read, tokens written): the longest cached prefix is read, the rest up to the
        last breakpoint written; every breakpoint's prefix is (re)stored."""
        ends = [i + 1 for i, b in enumerate(blocks) if "cache_control" in b]
        now = asyncio.get_running_loop().time()
        self._cache = {k: expiry for k, expiry in self._cache.items() if expiry > now}
        digests = [
            hashlib.sha256(json.dumps([model, blocks[:end]], sort_keys=True).encode()).hexdigest() for end in ends
        ]
        hit = next((end for end, d in zip(reversed(ends), reversed(digests), strict=True) if d in self._cache), 0)
        for digest in digests:
            self._cache[digest] = now + CACHE_TTL_S
        read = estimate_tokens(sum(sizes[:hit]))
        return read, estimate_tokens(sum(sizes[: ends[-1]])) - read if ends else 0

    def message(self, request: MessagesRequest, replies: list[ReplyBlock]) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for reply in replies:
            if isinstance(reply, TextReply):
                if reply.text:
                    content.append({"type": "text", "text": reply.text})
            else:
                content.append(
                    {"type": "tool_use", "id": self.new_id("toolu_"), "name": reply.name, "input": dict(reply.input)}
                )
        return {
            "id": self.new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": content,
            "stop_reason": "tool_use" if any(c["type"] == "tool_use" for c in content) else "end_turn",
            "stop_sequence": None,
            "usage": self.usage(request, content),
        }

    async def hold(self, request: web.Request) -> None:
        """Send nothing until the client hangs up or the emulator shuts down."""
        # Polling, because aiohttp offers no disconnect notification to wait on, only the transport's state.
        while not self.stopping.is_set() and _connected(request):  # noqa: ASYNC110
            await asyncio.sleep(STALL_POLL_S)


API = web.AppKey("anthropic_api", _MessagesApi)


def _connected(request: web.Request) -> bool:
    return request.transport is not None and not request.transport.is_closing()


def _error(status: int, kind: str, message: str, request_id: str, **headers: str) -> web.Response:
    return web.json_response(
        error_body(kind, message, request_id), status=status, headers={"request-id": request_id, **headers}
    )


async def _post_messages(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    api.control.stats["requests"] += 1
    request_id = api.new_id("req_")
    fault = api.control.faults.next_fault()
    if fault is Fault.AUTH or not api.authorised(request):
        return _error(401, "authentication_error", "invalid x-api-key", request_id)
    if _API_VERSION_HEADER not in request.headers:
        return _error(400, "invalid_request_error", "anthropic-version: header is required", request_id)
    try:
        body = await request.json()
        parsed = parse_request(body)
    except ValueError as e:  # InvalidRequest, or a body that is not JSON
        return _error(400, "invalid_request_error", str(e), request_id)
    if fault is Fault.RATE_LIMIT:
        retry = {"retry-after": str(RETRY_AFTER_S), "retry-after-ms": str(RETRY_AFTER_S * 1000)}
        return _error(429, "rate_limit_error", "Number of requests has exceeded your rate limit", request_id, **retry)
    if fault is Fault.OVERLOADED and not (parsed.stream and api.overloaded_mid_stream):
        return _error(529, "overloaded_error", "Overloaded", request_id)
    message = api.message(parsed, await api.responder.reply(parsed))
    api.control.stats["messages"] += 1
    if parsed.stream:
        return await _stream(request, api, message, fault, request_id)
    return await _complete(request, api, message, fault)


async def _complete(
    request: web.Request, api: _MessagesApi, message: dict[str, Any], fault: Fault | None
) -> web.StreamResponse:
    """A non-streamed reply arrives whole, after the time it would have taken to generate."""
    await api.control.delay("first_token")
    for _ in range(message["usage"]["output_tokens"]):
        await api.control.delay("token_interval")
    if fault is Fault.STALL:
        await api.hold(request)
    if fault in (Fault.STALL, Fault.DISCONNECT) and request.transport is not None:
        request.transport.abort()
    if fault is Fault.MALFORMED:
        return web.Response(text='{"type":"message","content":[', content_type="application/json")
    return web.json_response(message, headers={"request-id": message["id"]})


async def _stream(
    request: web.Request, api: _MessagesApi, message: dict[str, Any], fault: Fault | None, request_id: str
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "request-id": request_id,
        }
    )
    await response.prepare(request)
    events = stream_events(message)
    strike_at = next((i + 1 for i, (name, _) in enumerate(events) if name == "content_block_delta"), len(events) - 2)
    try:
        for i, (name, data) in enumerate(events):
            if i == strike_at and await _strike(request, response, api, fault, request_id):
                return response
            await response.write(sse(name, data))
            if name == "message_start":
                if fault is Fault.STALL:
                    await api.hold(request)
                    return response
                await api.control.delay("first_token")
            elif name == "content_block_delta":
                await api.control.delay("token_interval")
        await response.write_eof()
    except ConnectionResetError:
        api.control.stats["client_gone"] += 1  # the caller barged in or the client gave up
    return response


async def _strike(
    request: web.Request, response: web.StreamResponse, api: _MessagesApi, fault: Fault | None, request_id: str
) -> bool:
    """Inject a mid-stream fault; True when the stream is over."""
    if fault is Fault.DISCONNECT and request.transport is not None:
        request.transport.abort()  # no terminating chunk: the client sees a truncated body
        return True
    if fault is Fault.MALFORMED:
        await response.write(b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0,\n\n')
    if fault is Fault.OVERLOADED:
        await response.write(sse("error", error_body("overloaded_error", "Overloaded", request_id)))
    if fault in (Fault.MALFORMED, Fault.OVERLOADED):
        await response.write_eof()
        return True
    return False


async def _post_options(request: web.Request) -> web.Response:
    """``{"overloaded_mid_stream": true}``: where an OVERLOADED fault strikes a streamed request."""
    api = request.app[API]
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("overloaded_mid_stream", False), bool):
        raise web.HTTPBadRequest(text='expected {"overloaded_mid_stream": bool}')
    api.overloaded_mid_stream = body.get("overloaded_mid_stream", api.overloaded_mid_stream)
    return web.json_response({"overloaded_mid_stream": api.overloaded_mid_stream})


def _default_responder() -> Responder:
    # Imported here: the responder module builds on this one's request and reply types.
    from emulators.anthropic_responder import DefaultResponder

    return DefaultResponder()


def default_control() -> EmulatorControl:
    return EmulatorControl(
        name="anthropic", latency={"first_token": DEFAULT_FIRST_TOKEN, "token_interval": DEFAULT_TOKEN_INTERVAL}
    )


def build_app(
    *, api_key: str, responder: Responder | None = None, control: EmulatorControl | None = None
) -> web.Application:
    """``POST /v1/messages``, ``POST /_emulator/anthropic`` and the shared ``/_emulator/*`` routes."""
    api = _MessagesApi(api_key, responder or _default_responder(), control or default_control())
    app = web.Application()
    app[API] = api
    app.router.add_post("/v1/messages", _post_messages)
    app.router.add_post("/_emulator/anthropic", _post_options)
    add_control_routes(app, api.control)

    async def release_stalls(_: web.Application) -> None:
        api.stopping.set()

    app.on_shutdown.append(release_stalls)
    return app
