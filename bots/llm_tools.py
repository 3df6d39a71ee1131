"""The LLM brain's tools: their JSON schemas, and the checks and calendar work behind them.

The answers a model records are the scripted bots' typed values (bots/slots.py): one table says
which type each bot's slot holds, and both the ``record_answers`` schema and the decoding of a
model's input come from it, so an answer recorded by Claude has exactly the JSON shape the
scripted brain stores (scoring, reports and session resume read either). Anything wrong with a
tool's input is a ``ToolError``, which the bot hands back to the model as an error result.
"""

from __future__ import annotations

import dataclasses
import json
import types
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from bots.booking import AROUND_AFTER, AROUND_BEFORE, COUNTER_OFFERS, FIRST_OFFERS, HORIZON
from bots.calendar import DEFAULT_NOTICE, Appointment, Calendar, Contact, Slot, SlotTaken, offer_slots, spoken_slot
from bots.flows import Question, to_json
from bots.persona import BotRole
from bots.slots import (
    Address,
    Answer,
    Condition,
    Feature,
    Financing,
    IntentGuess,
    Mortgage,
    Price,
    PropertyType,
    Reason,
    Rooms,
    Timeline,
)
from runtime.llm import ToolSpec

BookingKind = Literal["showing", "listing_consultation", "callback"]
BOOKING_KINDS: tuple[BookingKind, ...] = get_args(BookingKind)

#: The type of every slot of every bot, as bots/flows.py asks for them.
SLOT_TYPES: Mapping[BotRole, Mapping[str, Any]] = {
    "lead": {"name": str, "intent": IntentGuess},
    "buyer": {
        "areas": tuple[str, ...],
        "property_type": tuple[PropertyType, ...],
        "rooms": Rooms,
        "price": Price,
        "financing": Financing,
        "timeline": Timeline,
        "motivation": Reason,
        "must_haves": tuple[Feature, ...],
        "must_sell_first": Answer,
    },
    "seller": {
        "address": Address,
        "property_type": tuple[PropertyType, ...],
        "condition": Condition,
        "reason": Reason,
        "timeline": Timeline,
        "price": Price,
        "listed_with_agent": Answer,
        "mortgage": Mortgage,
    },
}


class ToolError(Exception):
    """A tool call the model must correct (bad input, a refused hand-off, a lost slot); the
    message is what the model reads."""


# --- schemas from types ---


def json_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of a slot type (strings, numbers, enums, dates, tuples, dataclasses)."""
    if _optional_arm(tp) is not None:
        return {"anyOf": [json_schema(_optional_arm(tp)), {"type": "null"}]}
    if get_origin(tp) is tuple:
        return {"type": "array", "items": json_schema(get_args(tp)[0]), "minItems": 1}
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return {"type": "string", "enum": [member.value for member in tp]}
    if dataclasses.is_dataclass(tp):
        return _object_schema(tp)
    return dict(_PLAIN_SCHEMAS[tp])


_PLAIN_SCHEMAS: Mapping[Any, Mapping[str, str]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    date: {"type": "string", "format": "date"},
}


def _object_schema(tp: Any) -> dict[str, Any]:
    hints = get_type_hints(tp)
    fields = dataclasses.fields(tp)
    return {
        "type": "object",
        "properties": {f.name: json_schema(hints[f.name]) for f in fields},
        "required": [f.name for f in fields if _is_required(f)],
        "additionalProperties": False,
    }


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _optional_arm(tp: Any) -> Any | None:
    """``X`` of ``X | None``, else None."""
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    arms = [arm for arm in get_args(tp) if arm is not type(None)]
    return arms[0] if len(arms) == 1 else None


# --- decoding a model's input into typed values ---


def decode(tp: Any, value: Any, where: str) -> Any:
    """``value`` (JSON) as an instance of ``tp``; raises ``ToolError`` naming ``where``."""
    arm = _optional_arm(tp)
    if arm is not None:
        return None if value is None else decode(arm, value, where)
    if get_origin(tp) is tuple:
        return _decode_tuple(get_args(tp)[0], value, where)
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        return _decode_enum(tp, value, where)
    if dataclasses.is_dataclass(tp):
        return _decode_object(tp, value, where)
    return _decode_plain(tp, value, where)


def _decode_tuple(item: Any, value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise ToolError(f"{where}: expected a non-empty list")
    return tuple(decode(item, v, f"{where}[{i}]") for i, v in enumerate(value))


def _decode_enum(tp: type[StrEnum], value: Any, where: str) -> StrEnum:
    try:
        return tp(value)
    except ValueError:
        raise ToolError(f"{where}: expected one of {', '.join(m.value for m in tp)}") from None


def _decode_object(tp: Any, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ToolError(f"{where}: expected an object")
    hints = get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = sorted(set(value) - set(fields))
    missing = sorted(name for name, f in fields.items() if _is_required(f) and name not in value)
    if unknown or missing:
        raise ToolError(f"{where}: unknown fields {unknown}, missing fields {missing}")
    try:
        return tp(**{k: decode(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    except ValueError as e:
        raise ToolError(f"{where}: {e}") from None


def _decode_plain(tp: Any, value: Any, where: str) -> Any:
    if tp is date:
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            raise ToolError(f"{where}: expected a date as YYYY-MM-DD") from None
    accepted = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}[tp]
    if isinstance(value, bool) is not (tp is bool) or not isinstance(value, accepted):
        raise ToolError(f"{where}: expected {json_schema(tp)['type']}")
    if isinstance(value, str) and not value.strip():
        raise ToolError(f"{where}: must not be empty")
    return value


def decode_answers(role: BotRole, questions: Sequence[Question], given: Mapping[str, Any]) -> dict[str, Any]:
    """A ``record_answers`` input as JSON-ready answers (null: asked, and the caller does not
    know). A vague value ("not sure") is refused as the scripted flows refuse it: ask again."""
    by_slot = {q.slot: q for q in questions}
    unknown = sorted(set(given) - set(by_slot))
    if unknown:
        raise ToolError(f"the {role} bot has no questions {unknown}; its slots are {sorted(by_slot)}")
    answers: dict[str, Any] = {}
    for slot, value in given.items():
        typed = decode(SLOT_TYPES[role][slot] | None, value, slot)
        if typed is not None and by_slot[slot].vague(typed):
            raise ToolError(f"{slot}: too vague to record; ask once more, or record null if they don't know")
        answers[slot] = to_json(typed)
    return answers


# --- the tool definitions ---


def record_answers_tool(role: BotRole, questions: Sequence[Question]) -> ToolSpec:
    """One property per question of the bot, each nullable (asked twice, the caller did not know)."""
    properties = {
        q.slot: {**json_schema(SLOT_TYPES[role][q.slot] | None), "description": f'asked as "{q.ask}"'}
        for q in questions
    }
    return ToolSpec(
        name="record_answers",
        description=(
            "Save what the caller told you, whenever you learn something new (only what they said). "
            "Record null for a question asked twice that the caller cannot answer. "
            "Returns the lead's score and the questions still open."
        ),
        input_schema={"type": "object", "properties": properties, "additionalProperties": False},
    )


def _object(properties: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required), "additionalProperties": False}


_REASON = {"type": "string", "description": "why, in a few words"}
_KIND = {"type": "string", "enum": list(BOOKING_KINDS)}
_MOMENT = {"type": "string", "format": "date-time", "description": "ISO 8601 with its UTC offset"}

HAND_OFF = ToolSpec(
    name="hand_off",
    description=(
        "Hand the caller to the colleague who handles what they want (buyer or seller). A one-line "
        "bridge is said for you; the colleague then continues with everything you learned. Refused "
        "hand-offs come back as errors: then carry on yourself."
    ),
    input_schema=_object({"to": {"type": "string", "enum": ["buyer", "seller"]}, "reason": _REASON}, ("to", "reason")),
)
FIND_SLOTS = ToolSpec(
    name="find_slots",
    description=(
        "Free appointment times to offer, in the caller's time zone: the next two weeks, or the "
        "window given. Offer two or three of them by their spoken form."
    ),
    input_schema=_object({"kind": _KIND, "from": _MOMENT, "to": _MOMENT}, ("kind",)),
)
BOOK_APPOINTMENT = ToolSpec(
    name="book_appointment",
    description=(
        "Book a time the caller chose and confirmed, by its start from find_slots. A time taken "
        "meanwhile comes back as an error listing the next free times."
    ),
    input_schema=_object({"kind": _KIND, "start": _MOMENT}, ("kind", "start")),
)
TRANSFER_TO_HUMAN = ToolSpec(
    name="transfer_to_human",
    description=(
        "Put the caller through to one of our agents, once they said yes to it. They are told to "
        "hold; the agent hears a briefing first."
    ),
    input_schema=_object({"reason": _REASON}, ("reason",)),
)
END_CALL = ToolSpec(
    name="end_call",
    description="Hang up after your goodbye has been said: the next step is settled or the caller wants to go.",
    input_schema=_object({"reason": _REASON}, ("reason",)),
)


def tools_for(role: BotRole, questions: Sequence[Question]) -> tuple[ToolSpec, ...]:
    """The tools of one bot, in a fixed order (they are part of the cached prompt prefix)."""
    return (record_answers_tool(role, questions), HAND_OFF, FIND_SLOTS, BOOK_APPOINTMENT, TRANSFER_TO_HUMAN, END_CALL)


# --- reading the other tools' input ---


def text_field(given: Mapping[str, Any], name: str) -> str:
    value = given.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"{name}: a non-empty string is required")
    return value.strip()


def booking_kind(given: Mapping[str, Any]) -> BookingKind:
    kind = given.get("kind")
    for known in BOOKING_KINDS:
        if kind == known:
            return known
    raise ToolError(f"kind: expected one of {', '.join(BOOKING_KINDS)}")


def moment(given: Mapping[str, Any], name: str) -> datetime | None:
    """An optional ISO 8601 date-time with its offset."""
    value = given.get(name)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise ToolError(f"{name}: expected an ISO 8601 date-time with a UTC offset")
    return parsed


# --- the calendar behind find_slots and book_appointment ---


def slot_json(slot: Slot, tz: str) -> dict[str, str]:
    return {"start": slot.start.isoformat(), "end": slot.end.isoformat(), "spoken": spoken_slot(slot, tz)}


def slots_result(slots: Sequence[Slot], tz: str) -> str:
    return json.dumps({"timezone": tz, "slots": [slot_json(s, tz) for s in slots]})


async def find_offers(
    calendar: Calendar, *, now: datetime, tz: str, start: datetime | None, end: datetime | None
) -> list[Slot]:
    """Two or three free times spread over days and times of day, as the booking dialog offers."""
    start = max(start or now, now)
    end = end or now + HORIZON
    if end <= start:
        raise ToolError("to: must be after from (and after now)")
    return offer_slots(await calendar.free_slots(start, end, tz), now, FIRST_OFFERS)


async def book_slot(
    calendar: Calendar, contact: Contact, start: datetime, *, now: datetime, tz: str, title: str, notes: str
) -> Appointment:
    """Book the free slot starting at ``start``; a slot no longer free is a ``ToolError`` with
    the nearest free ones (as the booking dialog replaces a lost slot)."""
    free = await calendar.free_slots(start, start + timedelta(minutes=1), tz)
    slot = next((s for s in free if s.start == start), None)
    try:
        if slot is None:
            raise SlotTaken()
        return await calendar.book(contact, slot, title=title, notes=notes)
    except SlotTaken:
        nearest = await _nearest_free(calendar, start, now=now, tz=tz)
        taken = {"error": "that time is no longer free", **json.loads(slots_result(nearest, tz))}
        raise ToolError(json.dumps(taken)) from None


async def _nearest_free(calendar: Calendar, lost: datetime, *, now: datetime, tz: str) -> list[Slot]:
    usable = now + DEFAULT_NOTICE
    around = await calendar.free_slots(max(lost - AROUND_BEFORE, now), lost + AROUND_AFTER, tz)
    free = [s for s in around if s.start >= usable and s.start != lost]
    nearest = sorted(free, key=lambda s: abs(s.start - lost))[:COUNTER_OFFERS]
    if not nearest:
        later = [s for s in await calendar.free_slots(now, now + HORIZON, tz) if s.start != lost]
        nearest = offer_slots(later, now, COUNTER_OFFERS)
    return sorted(nearest, key=lambda s: s.start)
