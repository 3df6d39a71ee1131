"""Which bots answer calls, the persona they speak as, and where they book and transfer to.

Read from the environment through the settings' ``EnvReader`` (``runtime.env_reader``), so
every problem is reported by name together with the rest; turned into a ``BotFactory`` by
``runtime.bot_wiring``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bots.ghl import GHL_BASE_URL, GhlOptions
from bots.persona import DEFAULT_PERSONA, Persona
from runtime.env_reader import EnvReader, e164
from telephony.transfer import TransferOptions

BotCore = Literal["qualifier", "lead"]


@dataclass(frozen=True, kw_only=True)
class BotCoreOptions:
    """``core``: ``qualifier`` is the product (Lead, Buyer and Seller bots with hand-offs, booking
    and transfer to a person); ``lead`` is the minimal three-question Lead bot, kept because the
    pipeline's own tests and the runtime benchmarks want a conversation that never branches."""

    core: BotCore = "qualifier"
    persona: Persona = DEFAULT_PERSONA
    #: Who a warm transfer rings (E.164). Empty: no transfers, and a caller who asks for a
    #: person is offered a callback instead.
    agent_number: str = ""
    #: GoHighLevel calendar and CRM; None: the embedded calendar (business hours in memory).
    ghl: GhlOptions | None = None
    #: how long a transfer may ring the agent and wait for each step, the caller on hold
    transfer: TransferOptions = field(default_factory=TransferOptions)


def read_bot_core(reader: EnvReader) -> BotCoreOptions:
    """The options from the environment; each problem is reported through ``reader``."""
    return BotCoreOptions(
        core=reader.get("LEADLINE_BOTS", _core, "qualifier", "'qualifier' or 'lead'"),
        persona=_persona(reader),
        agent_number=reader.get("LEADLINE_AGENT_NUMBER", e164, "", "must be an E.164 number, e.g. +15125550100"),
        ghl=_ghl(reader),
        transfer=reader.get(
            "LEADLINE_TRANSFER_RING_S",
            _ring_time,
            TransferOptions(),
            "a whole number of seconds within 5-600 (Twilio's bounds)",
        ),
    )


def _core(raw: str) -> BotCore:
    if raw == "qualifier":
        return "qualifier"
    if raw == "lead":
        return "lead"
    raise ValueError("bad choice")


def _ring_time(raw: str) -> TransferOptions:
    """How long a transfer rings the agent; ``TransferOptions`` itself checks Twilio's bounds."""
    return TransferOptions(ring_timeout_s=int(raw))


def _persona(reader: EnvReader) -> Persona:
    """``LEADLINE_PERSONA_FILE`` (JSON, see ``bots.persona``), then the two names that may be set
    on their own (``LEADLINE_BUSINESS_NAME``, ``LEADLINE_BOT_NAME`` for the Lead bot). More than a
    single value's parse: the file is read, then checked whole with the names laid over it."""
    data: dict[str, Any] = {}
    path = reader.get("LEADLINE_PERSONA_FILE", str, "")
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            reader.problem("LEADLINE_PERSONA_FILE", path, f"cannot read it as JSON ({e})")
        if not isinstance(data, dict):
            reader.problem("LEADLINE_PERSONA_FILE", path, "must hold a JSON object")
            data = {}
    business_name = reader.get("LEADLINE_BUSINESS_NAME", str, "")
    if business_name:
        data["business_name"] = business_name
    bot_name = reader.get("LEADLINE_BOT_NAME", str, "")
    if bot_name:
        bots = data.setdefault("bots", {})
        if isinstance(bots, dict):
            bots.setdefault("lead", {})["name"] = bot_name
    try:
        return Persona.from_dict(data)
    except (ValueError, TypeError, AttributeError) as e:
        if path:
            reader.problem("LEADLINE_PERSONA_FILE", path, f"not a valid persona ({e})")
        else:
            reader.problem("LEADLINE_BUSINESS_NAME or LEADLINE_BOT_NAME", None, f"not a valid persona ({e})")
        return DEFAULT_PERSONA


def _ghl(reader: EnvReader) -> GhlOptions | None:
    """GoHighLevel when ``GHL_API_TOKEN`` is set; it needs three more variables, so a token alone
    is reported with the ones missing (never with the token itself, a secret)."""
    token = reader.get("GHL_API_TOKEN", str, "")
    if not token:
        return None
    try:
        return GhlOptions(
            token=token,
            location_id=reader.get("GHL_LOCATION_ID", str, ""),
            calendar_id=reader.get("GHL_CALENDAR_ID", str, ""),
            pipeline_id=reader.get("GHL_PIPELINE_ID", str, ""),
            base_url=reader.get("GHL_BASE_URL", str, GHL_BASE_URL).rstrip("/"),
        )
    except ValueError as e:
        needed = "GHL_LOCATION_ID, GHL_CALENDAR_ID and GHL_PIPELINE_ID"
        reader.problem("GHL_API_TOKEN", None, f"is set, so {needed} are needed ({e})")
        return None
