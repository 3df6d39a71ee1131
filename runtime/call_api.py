"""The stored-call API under ``/api/v1`` (bearer token): calls, one call in full, its recording,
aggregate analytics for a period, and a live Server-Sent Events feed per tenant.

It reads the ``CallStore`` and ``LiveBus`` the app keeps under ``CALL_STORE`` and ``LIVE_BUS``
(set by whoever owns their life, before the first request) and never writes. The routes are
described in ``runtime.openapi`` (served at ``/api/openapi.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import typing
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from analytics.conversation import ConversationStats, analyse_conversation
from analytics.live_bus import Event, LiveBus
from analytics.records import CallEventRecord, CallRecord, StoreItem, UtteranceRecord, record_to_json
from analytics.sentiment import label_of
from analytics.store import LATENCY_STAGES, CallStore
from runtime import events as call_events
from runtime.openapi import openapi_spec

log = logging.getLogger(__name__)

CALL_STORE = web.AppKey("call_store", CallStore)
LIVE_BUS = web.AppKey("live_bus", LiveBus)
#: The kind of the call event whose payload is the call's ``CallAnalytics.to_dict()``.
ANALYTICS_EVENT_KIND = "call_analytics"
#: Upper bounds (ms) of the latency histogram's buckets; the last one is open.
HISTOGRAM_BOUNDS_MS = (200, 400, 600, 800, 1000, 1200, 1500, 2000, 3000)
TERMINAL_STATES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CallApiOptions:
    #: The bearer token; empty keeps the API closed (every request 401).
    token: str
    #: Recordings are served only from under this directory (None: wherever the store says).
    recordings_dir: Path | None = None
    #: A call started longer ago than this with no end is stale, not active (the default
    #: ``LEADLINE_MAX_CALL_S``).
    max_call_s: float = 1800.0
    #: Proxies close idle streams after about a minute; a comment line keeps the feed open.
    keepalive_s: float = 15.0
    #: Per-call figures (rates, languages, sentiment, histograms) read at most this many calls
    #: of a period, newest first; the store's own totals always cover all of it.
    max_analysed_calls: int = 500
    #: Calls read at once for those figures: the rest of the store's pool stays free for the
    #: write-behind buffer and other requests.
    read_concurrency: int = 2
    #: The period of ``/analytics`` when ``since`` is not given.
    default_period: timedelta = timedelta(days=7)
    #: The turn budget the latency figures are measured against.
    latency_budget_ms: float = 800.0
    max_page: int = 500
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(slots=True)
class _ApiState:
    options: CallApiOptions
    #: Set at shutdown: open live feeds end instead of holding the server up.
    closing: asyncio.Event = field(default_factory=asyncio.Event)


_API = web.AppKey("call_api", _ApiState)


def add_call_api_routes(app: web.Application, options: CallApiOptions) -> None:
    """The ``/api/v1`` routes and ``/api/openapi.json``; ``app[CALL_STORE]`` and ``app[LIVE_BUS]``
    must be set before the first request."""
    app[_API] = _ApiState(options)
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/calls/{call_sid}", get_call)
    app.router.add_get("/api/v1/calls/{call_sid}/recording", get_recording)
    app.router.add_get("/api/v1/analytics", get_analytics)
    app.router.add_get("/api/v1/live", live_feed)
    app.router.add_get("/api/openapi.json", get_openapi)
    app.on_shutdown.append(_end_live_feeds)


async def _end_live_feeds(app: web.Application) -> None:
    app[_API].closing.set()


# --- requests ----------------------------------------------------------------------------------


def _error(status: type[web.HTTPError], reason: str, **headers: str) -> web.HTTPError:
    return status(text=json.dumps({"error": reason}), content_type="application/json", headers=headers or None)


def _authorise(request: web.Request) -> CallApiOptions:
    options = request.app[_API].options
    sent = request.headers.get("Authorization", "").encode()
    # Constant time: a byte-by-byte comparison would leak how much of a guess was right.
    if not (options.token and hmac.compare_digest(sent, f"Bearer {options.token}".encode())):
        raise _error(web.HTTPUnauthorized, "bearer token required", **{"WWW-Authenticate": "Bearer"})
    return options


def _query(request: web.Request, allowed: Iterable[str]) -> Mapping[str, str]:
    """The query parameters; an unknown one is refused, so a typo never silently widens a filter."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise _error(web.HTTPBadRequest, f"unknown parameter {unknown[0]!r}")
    return request.query


def parse_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 moment with its offset (``2026-03-02T15:00:00Z``); None when absent."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _error(web.HTTPBadRequest, f"{name} must be an ISO 8601 time") from None
    if moment.utcoffset() is None:
        raise _error(web.HTTPBadRequest, f"{name} needs a time zone offset (Z or +hh:mm)")
    return moment


def parse_int(name: str, value: str | None, *, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _error(web.HTTPBadRequest, f"{name} must be an integer") from None
    if not low <= number <= high:
        raise _error(web.HTTPBadRequest, f"{name} must be between {low} and {high}")
    return number


def _period(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    since, until = parse_time("since", query.get("since")), parse_time("until", query.get("until"))
    if since is not None and until is not None and since >= until:
        raise _error(web.HTTPBadRequest, "since must be before until")
    return since, until


# --- calls -------------------------------------------------------------------------------------


def call_json(call: CallRecord) -> dict[str, Any]:
    return _untagged(call)


def _untagged(item: StoreItem) -> dict[str, Any]:
    data = record_to_json(item)
    del data["type"]
    return data


async def list_calls(request: web.Request) -> web.Response:
    options = _authorise(request)
    query = _query(request, ("tenant", "since", "until", "outcome", "limit", "offset"))
    since, until = _period(query)
    limit = parse_int("limit", query.get("limit"), default=50, low=1, high=options.max_page)
    offset = parse_int("offset", query.get("offset"), default=0, low=0, high=10_000_000)
    calls = await request.app[CALL_STORE].list_calls(
        tenant=query.get("tenant"), since=since, until=until, outcome=query.get("outcome"), limit=limit, offset=offset
    )
    next_offset = offset + limit if len(calls) == limit else None
    return web.json_response({"calls": [call_json(c) for c in calls], "next_offset": next_offset})


async def get_call(request: web.Request) -> web.Response:
    _authorise(request)
    store = request.app[CALL_STORE]
    call_sid = request.match_info["call_sid"]
    call = await store.get_call(call_sid)
    if call is None:
        raise _error(web.HTTPNotFound, "no such call")
    # One read after another: a single request never takes the whole pool from the writer.
    events, utterances = await store.call_events(call_sid), await store.call_utterances(call_sid)
    recording, appointments = await store.call_recording(call_sid), await store.call_appointments(call_sid)
    usage = await store.call_usage(call_sid)
    stored_analytics = [e for e in events if e.kind == ANALYTICS_EVENT_KIND]
    events = [e for e in events if e.kind != ANALYTICS_EVENT_KIND]
    body = {
        "call": call_json(call),
        "events": [{"seq": e.seq, "kind": e.kind, "at": e.at, "payload": e.payload} for e in events],
        "transcript": [_utterance_json(u) for u in utterances],
        "timeline": timeline(events, utterances),
        "latency": latency_turns(events),
        "appointments": [_untagged(a) for a in appointments],
        "usage": None if usage is None else {**_untagged(usage), "billable_minutes": usage.billable_minutes},
        "recording": None if recording is None else _recording_json(recording.duration_s, recording.size_bytes),
        "analytics": stored_analytics[-1].payload if stored_analytics else None,
    }
    return web.json_response(body)


def _utterance_json(utterance: UtteranceRecord) -> dict[str, Any]:
    data = _untagged(utterance)
    del data["call_sid"], data["tenant"]
    return data


def _recording_json(duration_s: float, size_bytes: int) -> dict[str, Any]:
    return {"duration_s": duration_s, "size_bytes": size_bytes, "content_type": "audio/wav"}


def latency_turns(events: Sequence[CallEventRecord]) -> list[dict[str, Any]]:
    """Each answered turn's latency breakdown (ms per stage), in turn order."""
    turns = []
    for event in events:
        if event.kind == "turn_latency":
            stages = {s: event.payload[s] for s in LATENCY_STAGES if s in event.payload}
            turns.append({"turn": event.payload.get("turn"), "at": event.at, **stages})
    return turns


#: Event kinds shown on the timeline as marks (hand-offs and transfers under one name each).
_MARKS = {
    "interruption": "interruption",
    "dtmf": "dtmf",
    "vendor_degraded": "vendor_fault",
    "filler": "filler",
    "hand_off": "handoff",
    "transfer": "transfer",
    "call_ended": "call_ended",
}


def timeline(events: Sequence[CallEventRecord], utterances: Sequence[UtteranceRecord]) -> list[dict[str, Any]]:
    """What happened when, for the dashboard: speech spans (``caller``/``bot``, from the transcript,
    or from the utterance events when no transcript is kept), silences as spans, other moments
    as marks; ordered by start."""
    items = [_speech(u.speaker, u.start_s, u.end_s, u.text) for u in utterances]
    if not utterances:
        items += [span for e in events if (span := _speech_event(e)) is not None]
    for event in events:
        if event.kind == "silence":
            silent_s = float(event.payload.get("silent_s", 0.0))
            items.append({"kind": "silence", "start_s": event.at - silent_s, "end_s": event.at, "label": ""})
        elif event.kind in _MARKS:
            items.append({"kind": _MARKS[event.kind], "start_s": event.at, "end_s": None, "label": _mark_label(event)})
    return sorted(items, key=lambda item: (item["start_s"], item["kind"]))


def _speech(speaker: str, start_s: float, end_s: float, text: str) -> dict[str, Any]:
    return {"kind": speaker, "start_s": start_s, "end_s": end_s, "label": text}


def _speech_event(event: CallEventRecord) -> dict[str, Any] | None:
    """A speech span from an utterance event: a caller's ends at ``at``, a bot's starts there."""
    text = str(event.payload.get("text", ""))
    if event.kind == "caller_utterance":
        return _speech("caller", event.at - float(event.payload.get("speech_ms", 0.0)) / 1000, event.at, text)
    if event.kind == "bot_utterance":
        return _speech("bot", event.at, event.at + float(event.payload.get("audio_ms", 0.0)) / 1000, text)
    return None


def _mark_label(event: CallEventRecord) -> str:
    payload = event.payload
    for key in ("heard_text", "digit", "stage", "to_bot", "phase", "text", "reason"):
        if payload.get(key):
            return str(payload[key])
    return ""


# --- recordings --------------------------------------------------------------------------------


async def get_recording(request: web.Request) -> web.FileResponse:
    """The call's WAV; ``Range`` requests are answered 206 by ``FileResponse`` (seeking players)."""
    options = _authorise(request)
    recording = await request.app[CALL_STORE].call_recording(request.match_info["call_sid"])
    path = _servable(Path(recording.path), options.recordings_dir) if recording is not None else None
    if path is None:
        raise _error(web.HTTPNotFound, "no recording for this call")
    headers = {"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
    return web.FileResponse(path, headers=headers)


def _servable(path: Path, root: Path | None) -> Path | None:
    """``path`` when it is a file (under ``root`` when one is set), else None."""
    resolved = path.resolve()
    if root is not None and not resolved.is_relative_to(root.resolve()):
        log.warning("recording outside the recordings directory refused", extra={"path": str(path)})
        return None
    return resolved if resolved.is_file() else None


# --- analytics ---------------------------------------------------------------------------------


async def get_analytics(request: web.Request) -> web.Response:
    options = _authorise(request)
    query = _query(request, ("tenant", "since", "until"))
    since, until = _period(query)
    until = until or options.clock()
    since = since or until - options.default_period
    if since >= until:
        raise _error(web.HTTPBadRequest, "since must be before until")
    store = request.app[CALL_STORE]
    tenant = query.get("tenant")
    figures = await store.aggregate(tenant, since, until)
    calls = await store.list_calls(tenant=tenant, since=since, until=until, limit=options.max_analysed_calls)
    limit = asyncio.Semaphore(options.read_concurrency)
    loaded = await asyncio.gather(*(_call_rows(store, c.call_sid, limit) for c in calls))
    figures["period"] = {"since": since.isoformat(), "until": until.isoformat()}
    figures.update(period_figures(loaded, options.latency_budget_ms))
    return web.json_response(figures)


async def _call_rows(
    store: CallStore, call_sid: str, limit: asyncio.Semaphore
) -> tuple[list[CallEventRecord], list[UtteranceRecord]]:
    async with limit:
        return await store.call_events(call_sid), await store.call_utterances(call_sid)


def period_figures(
    calls: Sequence[tuple[Sequence[CallEventRecord], Sequence[UtteranceRecord]]], budget_ms: float
) -> dict[str, Any]:
    """What the store's aggregate does not give: conversation rates, languages, sentiment and the
    latency distribution, over the calls' events and transcripts."""
    stats = [analyse_conversation(runtime_events(events)) for events, _ in calls]
    caller_turns = [u for _, utterances in calls for u in utterances if u.speaker == "caller"]
    turns = [e.payload for events, _ in calls for e in events if e.kind == "turn_latency"]
    return {
        "analysed_calls": len(calls),
        "conversation": conversation_totals(stats),
        "languages": dict(Counter(u.language or "unknown" for u in caller_turns).most_common()),
        "sentiment": sentiment_totals([u.sentiment for u in caller_turns if u.sentiment is not None]),
        "latency_histogram": latency_histogram(turns),
        "latency_budget": {"budget_ms": budget_ms, "within": within_budget(turns, budget_ms)},
    }


def conversation_totals(stats: Sequence[ConversationStats]) -> dict[str, Any]:
    """Rates per bot turn over all the calls (a long call weighs by its turns, as in the score)."""
    bot_turns = sum(s.bot_turns for s in stats)
    caller_turns = sum(s.caller_turns for s in stats)
    interruptions = sum(sum(not i.resumed for i in s.interruptions) for s in stats)
    talked_over = sum(len(s.bot_interruptions) for s in stats)
    silences = sum(len(s.caller_silences) for s in stats)
    return {
        "bot_turns": bot_turns,
        "caller_turns": caller_turns,
        "interruptions": interruptions,
        "interruption_rate": round(interruptions / bot_turns, 4) if bot_turns else None,
        # the bot talking over the caller, per caller turn (the turns of the party talked over)
        "bot_interruptions": talked_over,
        "bot_interruption_rate": round(talked_over / caller_turns, 4) if caller_turns else None,
        "caller_silences": silences,
        "silence_rate": round(silences / bot_turns, 4) if bot_turns else None,
        "dead_air": sum(len(s.dead_air) for s in stats),
        "unanswered_turns": sum(sum(d.unanswered for d in s.dead_air) for s in stats),
    }


def sentiment_totals(compounds: Sequence[float]) -> dict[str, Any]:
    labels = Counter(label_of(c) for c in compounds)
    return {
        "turns": len(compounds),
        "mean": round(sum(compounds) / len(compounds), 4) if compounds else None,
        **{label: labels[label] for label in ("positive", "neutral", "negative")},
    }


def latency_histogram(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Turns per latency bucket, per stage: ``counts[i]`` is the turns up to ``bounds_ms[i]``
    (above the previous bound); the last count is everything above the last bound."""
    counts = {stage: [0] * (len(HISTOGRAM_BOUNDS_MS) + 1) for stage in LATENCY_STAGES}
    for turn in turns:
        for stage in LATENCY_STAGES:
            if turn.get(stage) is not None:
                counts[stage][_bucket(float(turn[stage]))] += 1
    return {"bounds_ms": list(HISTOGRAM_BOUNDS_MS), "counts": counts}


def _bucket(ms: float) -> int:
    return next((i for i, bound in enumerate(HISTOGRAM_BOUNDS_MS) if ms <= bound), len(HISTOGRAM_BOUNDS_MS))


def within_budget(turns: Sequence[Mapping[str, Any]], budget_ms: float) -> dict[str, float | None]:
    """Share of turns whose first audio / first answer frame came within the budget."""
    shares: dict[str, float | None] = {}
    for stage in ("first_audio_ms", "total_ms"):
        values = [float(t[stage]) for t in turns if t.get(stage) is not None]
        shares[stage] = round(sum(v <= budget_ms for v in values) / len(values), 4) if values else None
    return shares


#: Every event class the runtime defines (the members of the ``CallEvent`` union).
_EVENT_CLASSES: tuple[type[Any], ...] = typing.get_args(call_events.CallEvent)


def _kind_of(cls: type[Any]) -> str:
    return str(next(f.default for f in fields(cls) if f.name == "kind"))


_EVENT_TYPES = {_kind_of(cls): cls for cls in _EVENT_CLASSES}


def runtime_events(records: Iterable[CallEventRecord]) -> list[call_events.CallEvent]:
    """The stored events as ``runtime.events`` objects (for the analytics functions); kinds the
    runtime does not define, and payloads missing a field, are left out."""
    found: list[call_events.CallEvent] = []
    for record in records:
        cls = _EVENT_TYPES.get(record.kind)
        if cls is None:
            continue
        values = {**record.payload, "at": record.at}
        try:
            found.append(cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values and f.name != "kind"}))
        except TypeError:
            continue  # a row written by an older or newer runtime: not worth failing the figures
    return found


# --- live ----------------------------------------------------------------------------------------


async def live_feed(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: a ``snapshot`` (active calls, counters), then every record published
    for the tenant as an event named by its type (``call``, ``event``, ``utterance``, ...)."""
    options = _authorise(request)
    tenant = _query(request, ("tenant",)).get("tenant")
    if not tenant:
        raise _error(web.HTTPBadRequest, "tenant is required")
    bus = request.app[LIVE_BUS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    events = _Subscription(bus, tenant)
    try:
        await asyncio.sleep(0)  # let the first read register with the bus
        await _send(response, "snapshot", await _snapshot(request.app[CALL_STORE], bus, tenant, options))
        await _relay(response, events, request.app[_API].closing, options.keepalive_s)
    finally:
        await events.aclose()
    return response


class _Subscription:
    """Reads the tenant's events from construction on (before the snapshot is taken, so nothing
    falls between them): ``read`` is the pending read, ``take`` its result and the next read."""

    def __init__(self, bus: LiveBus, tenant: str) -> None:
        self._events = bus.subscribe(tenant)
        self.read: asyncio.Future[Event] = asyncio.ensure_future(anext(self._events))

    def take(self) -> Event:
        event = self.read.result()
        self.read = asyncio.ensure_future(anext(self._events))
        return event

    async def aclose(self) -> None:
        self.read.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await self.read
        if isinstance(self._events, AsyncGenerator):
            await self._events.aclose()


async def _relay(
    response: web.StreamResponse, events: _Subscription, closing: asyncio.Event, keepalive_s: float
) -> None:
    closed = asyncio.ensure_future(closing.wait())
    try:
        while not closing.is_set():
            waiting: set[asyncio.Future[Any]] = {events.read, closed}
            await asyncio.wait(waiting, timeout=keepalive_s, return_when=asyncio.FIRST_COMPLETED)
            if events.read.done():
                event = events.take()
                await _send(response, str(event.get("type", "message")), event)
            elif not closing.is_set():
                await response.write(b": keepalive\n\n")
    except ConnectionResetError:
        return  # the dashboard went away
    finally:
        closed.cancel()


async def _send(response: web.StreamResponse, name: str, data: object) -> None:
    await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


async def _snapshot(store: CallStore, bus: LiveBus, tenant: str, options: CallApiOptions) -> dict[str, Any]:
    since = options.clock() - timedelta(seconds=options.max_call_s)
    recent = await store.list_calls(tenant=tenant, since=since, limit=options.max_page)
    active = [call_json(c) for c in recent if c.ended_at is None and c.state not in TERMINAL_STATES]
    return {"tenant": tenant, "active_calls": active, "counters": await bus.counters(tenant)}


async def get_openapi(request: web.Request) -> web.Response:
    """The API's description; public, like any API's documentation (it holds no data)."""
    return web.json_response(openapi_spec())
