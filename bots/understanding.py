"""Small, pure extractors for what a caller says about a property search.

They read transcripts as Whisper writes them ("3 bedroom", "$400,000") and as people say them
("three bedroom", "four hundred thousand", "400k").
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0, "one": 1, "a": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {
    "hundred": 100,
    "thousand": 1_000,
    "k": 1_000,
    "grand": 1_000,
    "million": 1_000_000,
    "mil": 1_000_000,
}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "and", "half"], key=len, reverse=True))
_WORDS_RUN = re.compile(rf"\b(?:(?:{_NUMBER_WORD})\b[\s-]*)+", re.IGNORECASE)
_DIGITS = re.compile(r"\$?\s*(\d[\d,]*(?:\.\d+)?)\s*(k|thousand|grand|m|mil|million)?\b", re.IGNORECASE)


def words_to_number(words: str) -> int | None:
    """'four hundred and fifty thousand' -> 450000; 'half a million' -> 500000."""
    tokens = [t for t in re.split(r"[\s-]+", words.lower()) if t and t != "and"]
    if tokens[:3] == ["half", "a", "million"]:
        return 500_000
    total, current, seen = 0, 0, False
    for token in tokens:
        if token in _UNITS and not (token == "a" and seen):
            current += _UNITS[token]
        elif token in _TENS:
            current += _TENS[token]
        elif token == "hundred":
            current = max(current, 1) * 100
        elif token in _SCALES:
            total += max(current, 1) * _SCALES[token]
            current = 0
        else:
            continue
        seen = True
    return total + current if seen else None


def find_budget(text: str) -> int | None:
    """The largest plausible price mentioned (>= $10,000), in dollars."""
    candidates: list[int] = []
    for match in _DIGITS.finditer(text):
        value = float(match.group(1).replace(",", ""))
        scale = (match.group(2) or "").lower()
        value *= {"k": 1e3, "thousand": 1e3, "grand": 1e3, "m": 1e6, "mil": 1e6, "million": 1e6}.get(scale, 1)
        candidates.append(int(value))
    for match in _WORDS_RUN.finditer(text):
        number = words_to_number(match.group(0))
        if number is not None:
            candidates.append(number)
    plausible = [c for c in candidates if c >= 10_000]
    return max(plausible) if plausible else None


def spoken_amount(amount: int) -> str:
    """450000 -> 'four hundred fifty thousand'; 1250000 -> 'one point two five million'."""
    if amount >= 1_000_000:
        millions = f"{amount / 1_000_000:.2f}".rstrip("0").rstrip(".")
        whole, _, fraction = millions.partition(".")
        spoken = _say_below_thousand(int(whole))
        if fraction:
            spoken += " point " + " ".join(_say_below_thousand(int(d)) for d in fraction)
        return spoken + " million"
    thousands, rest = divmod(amount, 1000)
    parts = []
    if thousands:
        parts.append(_say_below_thousand(thousands) + " thousand")
    if rest:
        parts.append(_say_below_thousand(rest))
    return " ".join(parts) or "zero"


def _say_below_thousand(n: int) -> str:
    names = {v: k for k, v in _UNITS.items() if k != "a"} | {v: k for k, v in _TENS.items()}
    hundreds, rest = divmod(n, 100)
    parts = [f"{names[hundreds]} hundred"] if hundreds else []
    if rest in names and (rest or not parts):
        parts.append(names[rest])
    elif rest:
        tens, units = divmod(rest, 10)
        parts.append(f"{names[tens * 10]}-{names[units]}")
    return " ".join(parts)


_INTENTS = (
    ("sell", re.compile(r"\b(sell|selling|list|listing)\b", re.I)),
    ("rent", re.compile(r"\b(rent|renting|lease|leasing)\b", re.I)),
    ("buy", re.compile(r"\b(buy|buying|purchase|purchasing|looking for|looking to)\b", re.I)),
)
_PROPERTY = re.compile(
    r"\b(?:(?P<beds>\d+|one|two|three|four|five|six)[\s-]*(?:bed(?:room)?s?|br)\s*)?"
    r"(?P<kind>house|home|condo|townhouse|townhome|apartment|duplex|land|lot|property)\b",
    re.I,
)
_PLACE = re.compile(r"\b(?:in|near|around)\s+((?:[A-Z][a-z]+)(?:\s+[A-Z][a-z]+){0,2})")


def find_intent(text: str) -> str | None:
    for intent, pattern in _INTENTS:
        if pattern.search(text):
            return intent
    return None


def find_property(text: str) -> str | None:
    """'3 bedroom house' -> 'three bedroom house'."""
    match = _PROPERTY.search(text)
    if match is None:
        return None
    kind = match.group("kind").lower()
    beds = match.group("beds")
    if beds is None:
        return kind
    count = int(beds) if beds.isdigit() else _UNITS[beds.lower()]
    return f"{_say_below_thousand(count)} bedroom {kind}"


def find_place(text: str) -> str | None:
    match = _PLACE.search(text)
    return match.group(1) if match else None


_NUMBER_OR_WORD = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|few|couple of)"
_TIMELINES = (
    re.compile(
        rf"\b(?:in|within)\s+(?:the\s+)?(?:next\s+)?{_NUMBER_OR_WORD}\s+(?:days?|weeks?|months?|years?)\b",
        re.I,
    ),
    re.compile(r"\b(?:next|this)\s+(?:spring|summer|fall|autumn|winter|year|month|week)\b", re.I),
    re.compile(r"\b(?:as soon as possible|asap|right away|immediately|right now)\b", re.I),
    re.compile(rf"\b{_NUMBER_OR_WORD}\s+(?:days?|weeks?|months?|years?)\b", re.I),
)


def find_timeline(text: str) -> str | None:
    """The caller's timeline phrase, normalised to lower case ('in the next two months')."""
    for pattern in _TIMELINES:
        match = pattern.search(text)
        if match:
            return re.sub(r"\s+", " ", match.group(0)).lower()
    return None
