"""A tenant's personas: the business the bots speak for and the three bots' names, voices and
greetings, built from the plain dict configuration passes in (every problem reported at once)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bots.calendar import is_timezone

BotRole = Literal["lead", "buyer", "seller"]
ROLES: tuple[BotRole, ...] = get_args(BotRole)

#: Placeholders a greeting may use; anything else in braces is a configuration mistake.
_GREETING_FIELDS = {"business": "Lakeside Realty", "name": "Ava"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BotPersona:
    """One bot as the caller meets it. ``specialty`` completes the hand-off bridge ("I'll bring
    in Maya, who {specialty}."); ``greeting`` may use ``{business}`` and ``{name}``. The lead
    bot's greeting opens the call, discloses that it is an AI and ends by asking the caller's
    name (the caller's first words are taken as the answer); the others' open a hand-off.
    ``outbound_greeting`` opens a call we placed (the lead bot's; empty: ``greeting``)."""

    role: BotRole
    name: str
    voice: str
    greeting: str
    specialty: str
    outbound_greeting: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Persona:
    """One tenant: business name, the areas it serves, its time zone and its bots."""

    business_name: str
    service_areas: tuple[str, ...]
    timezone: str
    lead: BotPersona
    buyer: BotPersona
    seller: BotPersona

    def __post_init__(self) -> None:
        problems = _persona_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def bot(self, role: BotRole) -> BotPersona:
        persona: BotPersona = getattr(self, role)
        return persona

    def greeting(self, role: BotRole, *, outbound: bool = False) -> str:
        """The bot's greeting with the business and bot names filled in; ``outbound``: on a call
        we placed, where "thanks for calling" would be wrong."""
        bot = self.bot(role)
        text = bot.outbound_greeting if outbound and bot.outbound_greeting else bot.greeting
        return text.format(business=self.business_name, name=bot.name)

    def greetings(self, role: BotRole) -> list[str]:
        """Every greeting the bot may open a call with (to render ahead of the calls)."""
        return list(dict.fromkeys(self.greeting(role, outbound=outbound) for outbound in (False, True)))

    def voices(self) -> list[str]:
        return list(dict.fromkeys(self.bot(role).voice for role in ROLES))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Persona:
        """A persona from configuration; missing bots and fields take the defaults."""
        bots = data.get("bots", {})
        if not isinstance(bots, Mapping) or not set(bots) <= set(ROLES):
            raise ValueError(f"bots must map some of {', '.join(ROLES)} to their settings")
        areas = data.get("service_areas", DEFAULT_PERSONA.service_areas)
        if isinstance(areas, str) or not all(isinstance(area, str) for area in areas):
            raise ValueError("service_areas must be a list of place names")
        return cls(
            business_name=str(data.get("business_name", DEFAULT_PERSONA.business_name)),
            service_areas=tuple(areas),
            timezone=str(data.get("timezone", DEFAULT_PERSONA.timezone)),
            **{role: _bot_from_dict(role, bots.get(role, {})) for role in ROLES},
        )


def _bot_from_dict(role: BotRole, data: Mapping[str, Any]) -> BotPersona:
    unknown = set(data) - {"name", "voice", "greeting", "specialty", "outbound_greeting"}
    if unknown:
        raise ValueError(f"unknown {role} bot settings: {', '.join(sorted(unknown))}")
    default = DEFAULT_PERSONA.bot(role)
    return BotPersona(
        role=role,
        name=str(data.get("name", default.name)),
        voice=str(data.get("voice", default.voice)),
        greeting=str(data.get("greeting", default.greeting)),
        specialty=str(data.get("specialty", default.specialty)),
        outbound_greeting=str(data.get("outbound_greeting", default.outbound_greeting)),
    )


def _persona_problems(persona: Persona) -> list[str]:
    problems = []
    if not persona.business_name.strip():
        problems.append("business_name is empty")
    if not is_timezone(persona.timezone):
        problems.append(f"unknown time zone {persona.timezone!r}")
    for role in ROLES:
        problems += _bot_problems(role, persona.bot(role))
    return problems


def _bot_problems(role: BotRole, bot: BotPersona) -> list[str]:
    problems = [f"{role} bot: {field} is empty" for field in ("name", "voice", "greeting") if not getattr(bot, field)]
    if bot.role != role:
        problems.append(f"{role} bot has role {bot.role!r}")
    for field in ("greeting", "outbound_greeting"):
        try:
            getattr(bot, field).format(**_GREETING_FIELDS)
        except (KeyError, IndexError, ValueError):
            problems.append(f"{role} bot: {field} may only use {{business}} and {{name}}")
    return problems


DEFAULT_PERSONA = Persona(
    business_name="Lakeside Realty",
    service_areas=(),
    timezone="America/Chicago",
    lead=BotPersona(
        role="lead",
        name="Ava",
        voice="lead",
        greeting="Hi, thanks for calling {business}! I'm {name}, a virtual assistant. May I have your name?",
        specialty="answers our calls",
        outbound_greeting=(
            "Hi, this is {name}, a virtual assistant with {business}, following up on your home inquiry. "
            "May I have your name?"
        ),
    ),
    buyer=BotPersona(
        role="buyer",
        name="Maya",
        voice="buyer",
        greeting="Hi, this is {name}. I work with our buyers at {business}.",
        specialty="works with our buyers",
    ),
    seller=BotPersona(
        role="seller",
        name="Sam",
        voice="seller",
        greeting="Hi, this is {name}. I help our sellers at {business}.",
        specialty="works with our sellers",
    ),
)
