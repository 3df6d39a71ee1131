"""The typed values the scripted bots take from a caller's words (see bots/understanding.py).

Enum values are plain words, so they go into call reports and JSON as they are. Every extractor
returns one of these or ``None``: ``None`` means "unclear, ask again", never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Answer(StrEnum):
    """A reply to a yes/no question."""

    YES = "yes"
    NO = "no"
    UNSURE = "unsure"


class Intent(StrEnum):
    BUY = "buy"
    SELL = "sell"
    BOTH = "both"
    RENT = "rent"
    OTHER = "other"


@dataclass(frozen=True)
class IntentGuess:
    """What the caller wants, with how sure the extractor is (0-1), so a hand-off to the Buyer
    or Seller bot can require its own threshold instead of trusting every keyword."""

    intent: Intent
    confidence: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0-1, got {self.confidence}")


class PropertyType(StrEnum):
    HOUSE = "house"
    CONDO = "condo"
    TOWNHOUSE = "townhouse"
    MULTI_FAMILY = "multi-family"
    LAND = "land"
    MOBILE_HOME = "mobile home"


@dataclass(frozen=True)
class Rooms:
    """Bedrooms and bathrooms; either may be unknown. ``*_at_least`` marks "at least four", "4+"
    and ranges such as "three or four", whose lower end is kept."""

    bedrooms: int | None = None
    bathrooms: float | None = None
    bedrooms_at_least: bool = False
    bathrooms_at_least: bool = False


@dataclass(frozen=True)
class Price:
    """A price in whole US dollars: a single figure (``target``), a bound ("under 500k" sets only
    ``maximum``), or a range; "around X" is X ± 10% with X as the target."""

    minimum: int | None = None
    maximum: int | None = None
    target: int | None = None

    def __post_init__(self) -> None:
        if self.minimum is None and self.maximum is None and self.target is None:
            raise ValueError("a price needs at least one figure")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")

    @property
    def amount(self) -> int:
        """The one figure to say back: the target, else the ceiling, else the floor."""
        for figure in (self.target, self.maximum, self.minimum):
            if figure is not None:
                return figure
        raise AssertionError("unreachable: __post_init__ requires a figure")


class Financing(StrEnum):
    PRE_APPROVED = "pre-approved"
    CASH = "cash"
    NEEDS_LENDER = "needs lender"
    NOT_SURE = "not sure"


class TimelineBucket(StrEnum):
    """The windows agents sort leads by."""

    ASAP = "asap"
    WITHIN_3_MONTHS = "0-3 months"
    MONTHS_3_TO_6 = "3-6 months"
    MONTHS_6_TO_12 = "6-12 months"
    OVER_12_MONTHS = "12+ months"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Timeline:
    """When the caller hopes to move. ``target`` is an approximate date (None when the caller
    does not know); ``phrase`` is the caller's words that said it, lower case."""

    bucket: TimelineBucket
    target: date | None
    phrase: str


class ReasonKind(StrEnum):
    """Why a caller is buying or selling, as agents group it."""

    RELOCATION = "relocation"
    GROWING_FAMILY = "growing family"
    UPSIZING = "upsizing"
    DOWNSIZING = "downsizing"
    INVESTMENT = "investment"
    FIRST_HOME = "first home"
    RETIREMENT = "retirement"
    DIVORCE = "divorce"
    FINANCIAL = "financial"
    INHERITED = "inherited"
    CLOSER_TO_FAMILY = "closer to family"
    SCHOOLS = "schools"
    OTHER = "other"


@dataclass(frozen=True)
class Reason:
    """A motivation or reason for selling: its kind and the caller's own words."""

    kind: ReasonKind
    text: str


class Feature(StrEnum):
    """Must-haves a buyer names."""

    GARAGE = "garage"
    POOL = "pool"
    YARD = "yard"
    GOOD_SCHOOLS = "good schools"
    HOME_OFFICE = "home office"
    BASEMENT = "basement"
    SINGLE_STORY = "single story"
    KITCHEN = "kitchen"
    OPEN_FLOOR_PLAN = "open floor plan"
    WATERFRONT = "waterfront"
    NO_HOA = "no hoa"


class Condition(StrEnum):
    EXCELLENT = "excellent"
    GOOD = "good"
    NEEDS_WORK = "needs work"
    FIXER_UPPER = "fixer-upper"


@dataclass(frozen=True)
class Address:
    """A street address as a caller says it; ``number`` is text because of forms like "12B"."""

    number: str
    street: str
    unit: str | None = None
    city: str | None = None

    def __str__(self) -> str:
        parts = [f"{self.number} {self.street}"]
        if self.unit:
            parts.append(f"Unit {self.unit}")
        if self.city:
            parts.append(self.city)
        return ", ".join(parts)


class MortgageStatus(StrEnum):
    PAID_OFF = "paid off"
    OWES = "owes"
    NOT_SURE = "not sure"


@dataclass(frozen=True)
class Mortgage:
    """A seller's mortgage; ``owed`` is in dollars when the caller said how much."""

    status: MortgageStatus
    owed: int | None = None
