"""Which bots answer calls, the persona they speak as, and where they book and transfer to.

Read from the environment with every problem reported by name, like the rest of the settings
(``runtime.config``); turned into a ``BotFactory`` by ``runtime.bot_wiring``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bots.ghl import GHL_BASE_URL, GhlOptions
from bots.persona import DEFAULT_PERSONA, Persona
from telephony.e164 import is_e164
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


def read_bot_core(env: Mapping[str, str], problems: list[str]) -> BotCoreOptions:
    """The options from ``env``; each problem is appended to ``problems`` by variable name."""
    core = env.get("LEADLINE_BOTS", "") or "qualifier"
    if core not in ("qualifier", "lead"):
        problems.append(f"LEADLINE_BOTS={core!r}: 'qualifier' or 'lead'")
        core = "qualifier"
    agent = env.get("LEADLINE_AGENT_NUMBER", "")
    if agent and not is_e164(agent):
        problems.append(f"LEADLINE_AGENT_NUMBER={agent!r}: must be an E.164 number, e.g. +15125550100")
        agent = ""
    return BotCoreOptions(
        core=core,  # type: ignore[arg-type]  # checked just above
        persona=_persona(env, problems),
        agent_number=agent,
        ghl=_ghl(env, problems),
        transfer=_transfer(env, problems),
    )


def _persona(env: Mapping[str, str], problems: list[str]) -> Persona:
    """``LEADLINE_PERSONA_FILE`` (JSON, see ``bots.persona``), then the two names that may be set
    on their own (``LEADLINE_BUSINESS_NAME``, ``LEADLINE_BOT_NAME`` for the Lead bot)."""
    data: dict[str, Any] = {}
    path = env.get("LEADLINE_PERSONA_FILE", "")
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems.append(f"LEADLINE_PERSONA_FILE={path!r}: cannot read it as JSON ({e})")
        if not isinstance(data, dict):
            problems.append(f"LEADLINE_PERSONA_FILE={path!r}: must hold a JSON object")
            data = {}
    if env.get("LEADLINE_BUSINESS_NAME"):
        data["business_name"] = env["LEADLINE_BUSINESS_NAME"]
    if env.get("LEADLINE_BOT_NAME"):
        bots = data.setdefault("bots", {})
        if isinstance(bots, dict):
            bots.setdefault("lead", {})["name"] = env["LEADLINE_BOT_NAME"]
    try:
        return Persona.from_dict(data)
    except (ValueError, TypeError, AttributeError) as e:
        problems.append(f"persona: {e}")
        return DEFAULT_PERSONA


def _ghl(env: Mapping[str, str], problems: list[str]) -> GhlOptions | None:
    token = env.get("GHL_API_TOKEN", "")
    if not token:
        return None
    try:
        return GhlOptions(
            token=token,
            location_id=env.get("GHL_LOCATION_ID", ""),
            calendar_id=env.get("GHL_CALENDAR_ID", ""),
            pipeline_id=env.get("GHL_PIPELINE_ID", ""),
            base_url=(env.get("GHL_BASE_URL", "") or GHL_BASE_URL).rstrip("/"),
        )
    except ValueError as e:
        needed = "GHL_LOCATION_ID, GHL_CALENDAR_ID and GHL_PIPELINE_ID"
        problems.append(f"GHL_API_TOKEN is set, so {needed} are needed ({e})")
        return None


def _transfer(env: Mapping[str, str], problems: list[str]) -> TransferOptions:
    raw = env.get("LEADLINE_TRANSFER_RING_S", "")
    if not raw:
        return TransferOptions()
    try:
        return TransferOptions(ring_timeout_s=int(raw))
    except ValueError as e:
        problems.append(f"LEADLINE_TRANSFER_RING_S={raw!r}: {e}")
        return TransferOptions()
