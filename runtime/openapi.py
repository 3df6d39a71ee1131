"""The OpenAPI 3.1 description of the stored-call API (``runtime.call_api``), served at
``/api/openapi.json``. A test holds it and the app's routes to each other, both ways."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *, required: bool = True) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(properties)
    return schema


def _query(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema or _STR}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


_STR: Schema = {"type": "string"}
_NUM: Schema = {"type": "number"}
_INT: Schema = {"type": "integer"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_ERRORS = {
    "400": _json("A parameter is missing, unknown or malformed; `error` says which", _ref("Error")),
    "401": _json("No bearer token, or the wrong one", _ref("Error")),
}
_NOT_FOUND = {"404": _json("No such call (or no recording)", _ref("Error"))}
_CALL_SID = {"name": "call_sid", "in": "path", "required": True, "schema": _STR}
_PERIOD = [
    _query("tenant", "Only this tenant's calls"),
    _query("since", "Calls started at or after this moment (ISO 8601 with offset)", _TIME),
    _query("until", "Calls started before this moment (ISO 8601 with offset)", _TIME),
]
_STAGES = [
    "endpointing_ms",
    "stt_ms",
    "bot_ms",
    "tts_ms",
    "send_ms",
    "total_ms",
    "first_audio_ms",
    "runtime_overhead_ms",
]


def _schemas() -> dict[str, Schema]:
    percentiles = _object({"count": _INT, **{p: _nullable(_NUM) for p in ("p50", "p90", "p95", "p99")}})
    return {
        "Error": _object({"error": _STR}),
        "Call": _object(
            {
                "call_sid": _STR,
                "tenant": _STR,
                "direction": _STR,
                "from_number": _STR,
                "to_number": _STR,
                "state": _STR,
                "started_at": _TIME,
                "ended_at": _nullable(_TIME),
                "bots": {"type": "array", "items": _STR},
                "outcome": _nullable(_STR),
                "duration_s": _nullable(_NUM),
            }
        ),
        "CallPage": _object({"calls": {"type": "array", "items": _ref("Call")}, "next_offset": _nullable(_INT)}),
        "Event": _object({"seq": _INT, "kind": _STR, "at": _NUM, "payload": {"type": "object"}}),
        "Utterance": _object(
            {
                "seq": _INT,
                "speaker": {"enum": ["caller", "bot"]},
                "text": {"type": "string", "description": "Redacted before it was stored"},
                "start_s": _NUM,
                "end_s": _NUM,
                "language": _nullable(_STR),
                "sentiment": _nullable(_NUM),
            }
        ),
        "TimelineItem": _object(
            {
                "kind": {
                    "enum": [
                        "caller",
                        "bot",
                        "silence",
                        "interruption",
                        "dtmf",
                        "vendor_fault",
                        "filler",
                        "handoff",
                        "transfer",
                        "call_ended",
                    ]
                },
                "start_s": _NUM,
                "end_s": {**_nullable(_NUM), "description": "null for a moment (a mark), set for a span"},
                "label": _STR,
            }
        ),
        "LatencyTurn": {
            "type": "object",
            "description": "One answered turn: milliseconds per stage (TurnLatency.breakdown)",
            "properties": {"turn": _nullable(_INT), "at": _NUM, **{s: _NUM for s in _STAGES}},
            "required": ["turn", "at"],
        },
        "CallDetail": _object(
            {
                "call": _ref("Call"),
                "events": {"type": "array", "items": _ref("Event")},
                "transcript": {"type": "array", "items": _ref("Utterance")},
                "timeline": {"type": "array", "items": _ref("TimelineItem")},
                "latency": {"type": "array", "items": _ref("LatencyTurn")},
                "appointments": {"type": "array", "items": {"type": "object"}},
                "usage": _nullable({"type": "object"}),
                "recording": _nullable(
                    _object({"duration_s": _NUM, "size_bytes": _INT, "content_type": {"const": "audio/wav"}})
                ),
                "analytics": {
                    **_nullable({"type": "object"}),
                    "description": "CallAnalytics.to_dict() when stored (conversation, language, sentiment, "
                    "score, summary with the structured outcome)",
                },
            }
        ),
        "Analytics": _object(
            {
                "period": _object({"since": _TIME, "until": _TIME}),
                "calls": _INT,
                "duration_s": _object({"total": _NUM, "mean": _nullable(_NUM), "max": _nullable(_NUM)}),
                "outcomes": {"type": "object", "additionalProperties": _INT},
                "bookings": _INT,
                "billable_minutes": _INT,
                "latency_ms": {"type": "object", "additionalProperties": percentiles},
                "analysed_calls": {"type": "integer", "description": "Calls the figures below were read from"},
                "conversation": _object(
                    {
                        "bot_turns": _INT,
                        "caller_turns": _INT,
                        "interruptions": _INT,
                        "interruption_rate": _nullable(_NUM),
                        "bot_interruptions": _INT,
                        "bot_interruption_rate": _nullable(_NUM),
                        "caller_silences": _INT,
                        "silence_rate": _nullable(_NUM),
                        "dead_air": _INT,
                        "unanswered_turns": _INT,
                    }
                ),
                "languages": {"type": "object", "additionalProperties": _INT},
                "sentiment": _object(
                    {"turns": _INT, "mean": _nullable(_NUM), "positive": _INT, "neutral": _INT, "negative": _INT}
                ),
                "latency_histogram": _object(
                    {
                        "bounds_ms": {"type": "array", "items": _NUM},
                        "counts": {"type": "object", "additionalProperties": {"type": "array", "items": _INT}},
                    }
                ),
                "latency_budget": _object(
                    {
                        "budget_ms": _NUM,
                        "within": _object({"first_audio_ms": _nullable(_NUM), "total_ms": _nullable(_NUM)}),
                    }
                ),
            }
        ),
    }


def _paths() -> dict[str, Schema]:
    page = [
        _query("outcome", "Only calls with this outcome"),
        _query("limit", "Page size (1-500, default 50)", {"type": "integer", "minimum": 1, "maximum": 500}),
        _query("offset", "Calls to skip (newest first)", {"type": "integer", "minimum": 0}),
    ]
    return {
        "/api/v1/calls": {
            "get": {
                "summary": "Calls, newest first, filtered",
                "parameters": [*_PERIOD, *page],
                "responses": {"200": _json("A page of calls", _ref("CallPage")), **_ERRORS},
            }
        },
        "/api/v1/calls/{call_sid}": {
            "get": {
                "summary": "One call: events, transcript, timeline, latency per turn, analytics",
                "parameters": [_CALL_SID],
                "responses": {"200": _json("The call", _ref("CallDetail")), **_ERRORS, **_NOT_FOUND},
            }
        },
        "/api/v1/calls/{call_sid}/recording": {
            "get": {
                "summary": "The call's stereo WAV (caller left, bot right); supports Range",
                "parameters": [_CALL_SID, {"name": "Range", "in": "header", "required": False, "schema": _STR}],
                "responses": {
                    "200": {"description": "The whole file", "content": {"audio/wav": {}}},
                    "206": {"description": "The requested byte range", "content": {"audio/wav": {}}},
                    "416": {"description": "The range is outside the file"},
                    **_ERRORS,
                    **_NOT_FOUND,
                },
            }
        },
        "/api/v1/analytics": {
            "get": {
                "summary": "Figures over the calls of a period (default: the last 7 days)",
                "parameters": _PERIOD,
                "responses": {"200": _json("The figures", _ref("Analytics")), **_ERRORS},
            }
        },
        "/api/v1/live": {
            "get": {
                "summary": "Server-Sent Events: a `snapshot` (active calls, counters), then each record "
                "published for the tenant, as an event named by its type (call, event, utterance, ...)",
                "parameters": [{**_query("tenant", "The tenant to follow"), "required": True}],
                "responses": {
                    "200": {"description": "The event stream", "content": {"text/event-stream": {}}},
                    **_ERRORS,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {JSON: {}}}},
            }
        },
    }


def openapi_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Leadline call API", "version": "1.0.0"},
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": _schemas()},
        "paths": _paths(),
    }
