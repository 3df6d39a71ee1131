"""Pure slot extractors: a caller's transcript in, a typed value (bots/slots.py) or ``None`` out.

They read speech-to-text as Whisper and Deepgram write it ("3 bedroom", "$450,000", "450k") and
as people say it ("four hundred and fifty thousand", "half a million", "three fifty"). ``None``
means the answer was unclear and the bot should ask again: nothing here guesses.

Libraries do the general parsing: text2num turns spoken numbers into digits and phonenumbers
finds phone numbers, so that they are never read as prices. What is left is the vocabulary of a
real-estate call (which words mean a condo, a fixer-upper, a pre-approval), written as small
tables of patterns, because no library has it. Dates are computed here too: dateparser reads
"in 2 months" and month names, but not seasons, "end of the year", "a couple of months" or
"6 to 12 months", and its search mode finds dates in ordinary words ("we").
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

import phonenumbers
from text_to_num import alpha2digit, text2num

from bots.slots import (
    Address,
    Answer,
    Condition,
    Feature,
    Financing,
    Intent,
    IntentGuess,
    Mortgage,
    MortgageStatus,
    Price,
    PropertyType,
    Reason,
    ReasonKind,
    Rooms,
    Timeline,
    TimelineBucket,
)

_T = TypeVar("_T")


def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE)


def _table(rows: Sequence[tuple[_T, str]]) -> tuple[tuple[_T, re.Pattern[str]], ...]:
    return tuple((value, _pattern(regex)) for value, regex in rows)


_NEGATION = _pattern(r"\b(?:not|no|never|nothing|without|cannot|dont|doesnt|didnt|cant|wont|isnt|arent|havent)\b|n't\b")


def _negated(text: str, start: int) -> bool:
    """Whether the three words before ``start``, within its clause, negate it ("don't need a pool")."""
    clause = re.split(r"[.,;!?]|\bbut\b", text[:start], flags=re.IGNORECASE)[-1]
    return bool(_NEGATION.search(" ".join(clause.split()[-3:])))


def _first(text: str, table: Sequence[tuple[_T, re.Pattern[str]]]) -> _T | None:
    """The value of the first table row with a match in ``text`` that is not negated."""
    for value, pattern in table:
        if any(not _negated(text, m.start()) for m in pattern.finditer(text)):
            return value
    return None


def _mentioned(text: str, table: Sequence[tuple[_T, re.Pattern[str]]]) -> tuple[_T, ...]:
    """Every value whose pattern matches, not negated, in the order the caller said them."""
    found = sorted(
        (m.start(), i) for i, (_, p) in enumerate(table) for m in p.finditer(text) if not _negated(text, m.start())
    )
    return tuple(dict.fromkeys(table[i][0] for _, i in found))


# Spoken numbers ----------------------------------------------------------------------------


def _normalise_numbers(text: str) -> str:
    """Digits for spoken numbers. text2num leaves a scale word after a decimal or an article as a
    number of its own ("1.2 1000000", "half a 1000000"), and "and a half" as words: joined here."""
    text = re.sub(r"(?<=\w)-(?=[a-z])", " ", text, flags=re.I)  # "three-bedroom": text2num skips it
    text = str(alpha2digit(text, "en", threshold=0))
    text = re.sub(r"\bhalf an? (\d+)\b", lambda m: _fmt(int(m[1]) / 2), text, flags=re.I)
    text = re.sub(r"\ba couple(?: of)? (\d+)\b", lambda m: _fmt(int(m[1]) * 2), text, flags=re.I)
    text = re.sub(r"\ban? (?=\d)", "", text, flags=re.I)
    text = re.sub(r"(\d+(?:\.\d+)?) and a half\b", _and_a_half, text, flags=re.I)
    return re.sub(r"(\d+(?:\.\d+)?) (1000|1000000|100000|10000|100)\b", lambda m: _fmt(float(m[1]) * int(m[2])), text)


def _and_a_half(match: re.Match[str]) -> str:
    """'2 and a half' is 2.5, but 'a million and a half' is 1.5 million."""
    number = float(match[1])
    return _fmt(number * 1.5 if number in (1000, 1_000_000) else number + 0.5)


def _fmt(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


# Names --------------------------------------------------------------------------------------

_NOT_NAMES = frozenset(
    """
    a an the and or but so i me my we you it this that here there yes yeah yep no nope ok okay sure well um uh
    oh hi hey hello thanks thank please just not still also actually really very at from with about for in on to
    of is am are was be calling looking interested trying wondering thinking hoping planning going gonna good fine
    great sorry ready new glad happy busy buying selling renting moving back home house what who why how when where
    realtor agent calling driving curious
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday
    """.split()
)
_NAME_WORDS = r"[A-Za-z][\w'-]*(?:\s+[A-Za-z][\w'-]*){0,2}"
_TITLE = r"(?:(?:mr|mrs|ms|miss|dr)\.?\s+)?"  # said, but not part of what we call them back
_STRONG_NAME = _pattern(
    rf"\b(?:my name(?:'s| is)|name's|the name is|you can call me|call me)\s+{_TITLE}(?P<name>{_NAME_WORDS})"
)
_WEAK_NAME = _pattern(rf"\b(?:i'm|i am|this is)\s+{_TITLE}(?P<name>{_NAME_WORDS})")
_ASKED_NAME = _pattern(rf"\b(?:it's|its)\s+(?P<name>{_NAME_WORDS})")
_HERE_NAME = re.compile(r"^\s*(?P<name>[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)\s+(?:here|speaking)\b")
_FILLERS = _pattern(r"^(?:(?:uh|um|er|oh|yeah|yes|sure|so|well|okay|ok|hi|hey|hello)\b[\s,.!]*)*")


def parse_name(text: str, *, asked: bool = False) -> str | None:
    """The caller's name from "I'm Sarah", "this is John Smith", "my name's Maria Lopez", or a bare
    "Sarah" when ``asked``. After "I'm" and "this is" the name must be capitalised, as STT writes
    names, which is what keeps "I'm looking" and "I'm interested" out."""
    for pattern, lower_case_words in ((_STRONG_NAME, 1), (_WEAK_NAME, 1 if asked else 0), (_HERE_NAME, 0)):
        match = pattern.search(text)
        if match and (name := _name(match["name"].split(), lower_case_words)):
            return name
    if not asked:
        return None
    if (match := _ASKED_NAME.search(text)) and (name := _name(match["name"].split(), 1)):
        return name
    words = re.split(r"[,.!?;]", _FILLERS.sub("", text.strip()))[0].split()
    name = _name(words, len(words)) if 0 < len(words) <= 3 else None
    return name if name and len(name.split()) == len(words) else None


_NO_MORE_CALLS = re.compile(
    r"\bstop (?:calling|contacting|texting)\b"
    r"|\b(?:do not|don't|never) (?:call|contact) (?:me|us|this number)(?: ever)? (?:again|anymore|any more)\b"
    r"|\b(?:take|remove|delete) (?:me|us|my number|this number) (?:off|from) (?:your|the|this) "
    r"(?:call(?:ing)? |contact |phone |mailing )?list\b"
    r"|\bdo[- ]not[- ]call list\b|\bunsubscribe\b",
    re.IGNORECASE,
)


def wants_no_more_calls(text: str) -> bool:
    """The caller revokes consent to be called ("stop calling me", "take me off your list"):
    TCPA has us honour it, so it is recognised by rule, never left to a model's judgement."""
    return _NO_MORE_CALLS.search(text) is not None


_HONORIFIC = re.compile(r"(?:mr|mrs|ms|miss|dr)\.?", re.IGNORECASE)


def first_name(name: str) -> str:
    """How a bot addresses the caller: "Sarah" for "Sarah Jones", but "Dr. Patel" as said."""
    words = name.split()
    if not words or (len(words) > 1 and _HONORIFIC.fullmatch(words[0])):
        return name
    return words[0]


def _name(words: list[str], lower_case_words: int) -> str | None:
    """The leading words that can be a name, capitalised; the first ``lower_case_words`` of them
    may be written in lower case (some transcripts are)."""
    kept: list[str] = []
    for i, word in enumerate(words[:3]):
        if word.lower() in _NOT_NAMES or not re.fullmatch(r"[A-Za-z][A-Za-z'-]*", word):
            break
        if word[0].islower() and (i >= lower_case_words or re.search(r"(?:ing|ed|ly)$", word)):
            break
        kept.append(word[0].upper() + word[1:])
    return " ".join(kept) or None


# Intent -------------------------------------------------------------------------------------

#: Current renters who want to buy say "rent" too; these phrases are their situation, not their intent.
_RENTING_NOW = _pattern(
    r"\b(?:(?:currently|now) rent(?:ing)?|rent(?:ing)? (?:right )?now|(?:i|we) rent (?:currently|at the moment)"
    r"|(?:tired of|stop|done|been) (?:paying )?rent(?:ing)?)\b"
)
#: (intent, confidence, pattern): an explicit verb is surer than a hint such as "looking for a house".
_INTENT_SIGNALS: tuple[tuple[Intent, float, re.Pattern[str]], ...] = tuple(
    (intent, weight, _pattern(regex))
    for intent, weight, regex in (
        (Intent.BOTH, 0.9, r"\bsell\w* (?:\w+ ){0,4}(?:and|then|to) (?:\w+ ){0,2}buy|\bbuy\w* and sell"),
        (Intent.BOTH, 0.6, r"\b(?:downsiz\w*|upsiz\w*|move up to|trade up)\b"),
        (Intent.SELL, 0.9, r"\b(?:sell|selling)\b|\blist(?:ing)? (?:my|our|the) (?:house|home|condo|place|property)"),
        (Intent.SELL, 0.9, r"\bput (?:my|our|the) (?:house|home|condo|place|property) on the market"),
        (Intent.SELL, 0.6, r"\b(?:what|how much) (?:is |'s )?(?:my|our) (?:house|home|condo|place) (?:is )?worth"),
        (Intent.SELL, 0.6, r"\bhome (?:value|valuation)|\bappraisal\b"),
        (Intent.BUY, 0.9, r"\b(?:buy|buying|purchas(?:e|ing)|house hunting|first[\s-]time (?:home ?)?buyer)\b"),
        (Intent.BUY, 0.6, r"\blooking (?:for|at) (?:a |an |some )?(?:\w+ )?(?:house|home|condo|townho\w+|place)s?\b"),
        (Intent.BUY, 0.6, r"\b(?:pre[\s-]?approved|interested in (?:the|that|your) (?:listing|house|home|property))"),
        (Intent.OTHER, 0.8, r"\b(?:wrong number|rent(?:ing)? (?:it |my \w+ |our \w+ )?out|property management)\b"),
        (Intent.OTHER, 0.8, r"\b(?:i'm|i am) (?:an? )?(?:agent|realtor|broker|lender|loan officer)\b"),
        (Intent.RENT, 0.9, r"\b(?:rent|renting|rental|lease|leasing)\b"),
    )
)
_HEDGES = _pattern(r"\b(?:maybe|might|possibly|perhaps|not sure|thinking about|considering)\b")
#: A hedged intent ("maybe sell") is less certain: its confidence is scaled by this.
_HEDGE_FACTOR = 0.8


def parse_intent(text: str) -> IntentGuess | None:
    """Buy, sell, both, rent or other. Two different intents at once (other than sell and buy,
    which is "both") lower the confidence; an exact tie is unclear."""
    cleaned = _RENTING_NOW.sub(" ", text)
    scores: dict[Intent, float] = {}
    for intent, weight, pattern in _INTENT_SIGNALS:
        if any(not _negated(cleaned, m.start()) for m in pattern.finditer(cleaned)):
            scores[intent] = max(scores.get(intent, 0.0), weight)
    if Intent.SELL in scores and Intent.BUY in scores:
        scores[Intent.BOTH] = max(scores.get(Intent.BOTH, 0.0), min(scores.pop(Intent.SELL), scores.pop(Intent.BUY)))
    if Intent.BOTH in scores:
        scores.pop(Intent.SELL, None)
        scores.pop(Intent.BUY, None)
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    intent, confidence = ranked[0]
    confidence -= sum(score for _, score in ranked[1:]) / 2
    if _HEDGES.search(text):
        confidence *= _HEDGE_FACTOR
    return IntentGuess(intent, round(max(confidence, 0.0), 2))


# Places and property types ------------------------------------------------------------------

_NOT_PLACES = frozenset(
    """
    i i'm i'd i'll i've january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday spring summer fall winter
    """.split()
)
_US_STATES = frozenset(
    """
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho illinois
    indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota mississippi missouri
    montana nebraska nevada ohio oklahoma oregon pennsylvania tennessee texas utah vermont virginia washington
    wisconsin wyoming
    """.split()
)
_AREA_PREFIX = r"(?:(?i:downtown|north|south|east|west|central|northwest|northeast|southwest|southeast|greater)\s+)?"
_PLACE_NAME = rf"(?:{_AREA_PREFIX}[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){{0,2}}|(?i:downtown|midtown|uptown)\b)"
_PLACE_CUE = re.compile(
    r"\b(?i:in|near|around|close to|outside(?: of)?|(?:north|south|east|west) of|the area of)\s+(?:the\s+)?"
)
_PLACE_ITEM = re.compile(_PLACE_NAME)
_PLACE_SEPARATOR = re.compile(r"(?:\s*,\s*(?:(?i:or|and)\s+)?|\s+(?i:or|and)\s+)(?:(?i:in|near|around)\s+)?(?:the\s+)?")
_PLACE_AREA = re.compile(rf"\b(?P<name>{_PLACE_NAME})\s+(?i:area)\b")


def parse_places(text: str) -> tuple[str, ...] | None:
    """Towns and neighbourhoods after "in", "near", "around", and lists such as "Austin or Round
    Rock". Relies on STT capitalising names, so "in the city" is not a place."""
    places: list[str] = []
    for cue in _PLACE_CUE.finditer(text):
        position = cue.end()
        while (item := _PLACE_ITEM.match(text, position)) and (name := _place(item[0])):
            if places and name.lower() in _US_STATES and text[position - 2 : position].strip() == ",":
                places[-1] += f", {name}"
            else:
                places.append(name)
            separator = _PLACE_SEPARATOR.match(text, item.end())
            if separator is None:
                break
            position = separator.end()
    places += [name for m in _PLACE_AREA.finditer(text) if (name := _place(m["name"]))]
    return tuple(dict.fromkeys(places)) or None


def _place(words: str) -> str | None:
    kept: list[str] = []
    for word in words.split():
        if word.lower() in _NOT_PLACES:
            break
        kept.append(word[0].upper() + word[1:])
    return " ".join(kept) or None


_PROPERTY_TYPES = _table(
    [
        (PropertyType.MOBILE_HOME, r"\b(?:mobile|manufactured) homes?\b|\btrailer\b"),
        (PropertyType.TOWNHOUSE, r"\b(?:town ?(?:house|home)|row ?house)s?\b"),
        (PropertyType.MULTI_FAMILY, r"\b(?:multi[\s-]?family|duplex|triplex|four[\s-]?plex|quadplex)\b"),
        (PropertyType.CONDO, r"\b(?:condo(?:minium)?s?|co-?op|apartments?)\b"),
        (PropertyType.LAND, r"\b(?:land|acreage|(?:vacant|empty|buildable|building) lots?|lots? to build on)\b"),
        (PropertyType.HOUSE, r"\b(?:houses?(?! hunting)|single[\s-]family(?: homes?)?|detached|bungalow)\b"),
    ]
)


def parse_property_types(text: str) -> tuple[PropertyType, ...] | None:
    """Property types in the order mentioned ("a condo or a townhouse"). "Home" alone is not one:
    it can be any of them."""
    return _mentioned(text, _PROPERTY_TYPES) or None


# Bedrooms and bathrooms ---------------------------------------------------------------------

_AT_LEAST = r"(?:at least|minimum(?: of)?|no (?:less|fewer) than)"
_COUNT = (
    rf"(?P<least>{_AT_LEAST}\s+)?(?P<n>\d+(?:\.\d+)?)(?:\s*(?:to|or|-)\s*\d+(?:\.\d+)?)?"
    r"(?P<plus>\s*\+|\s+plus|\s+or more)?"
)
_BEDROOMS = _pattern(rf"{_COUNT}\s*(?:bed(?:room)?s?|br|bd|bdrms?)\b(?P<more>\s+or more)?")
_BATHROOMS = _pattern(rf"{_COUNT}\s*(?:full\s+)?(?:bath(?:room)?s?|ba)\b(?P<more>\s+or more)?")
_BATH_AND_A_HALF = _pattern(r"\ba (?:full )?bath(?:room)? and a half\b")
_STUDIO = _pattern(r"\bstudio\b")
_SLASH = re.compile(r"(?<![\d/])([1-9])\s*/\s*([1-9](?:\.5)?)(?![\d/])")
#: Counts outside these are not rooms a caller means ("a 30 bedroom"): asked again.
_MAX_BEDROOMS, _MAX_BATHROOMS = 12, 10


def parse_rooms(text: str) -> Rooms | None:
    """Bedrooms and bathrooms: "three bed two bath", "3/2", "at least four bedrooms", "two and a
    half baths". Two different counts for the same room are unclear ("a 2 bedroom, want 4")."""
    normal = _normalise_numbers(text)
    bedrooms = _room_count(_BEDROOMS, normal, whole=True)
    bathrooms = _room_count(_BATHROOMS, normal, whole=False)
    if bathrooms is None and _BATH_AND_A_HALF.search(normal):
        bathrooms = (1.5, False)
    if bedrooms is None and _STUDIO.search(normal):
        bedrooms = (0, False)
    if bedrooms is None and bathrooms is None and (slash := _SLASH.search(normal)):
        bedrooms, bathrooms = (int(slash[1]), False), (float(slash[2]), False)
    if bedrooms is None and bathrooms is None:
        return None
    beds, beds_least = bedrooms or (None, False)
    baths, baths_least = bathrooms or (None, False)
    return Rooms(None if beds is None else int(beds), baths, beds_least, baths_least)


def _room_count(pattern: re.Pattern[str], text: str, *, whole: bool) -> tuple[float, bool] | None:
    """The one count said for this room (a range gives its bottom, with ``at_least``)."""
    matches = list(pattern.finditer(text))
    if len({m["n"] for m in matches}) != 1:
        return None
    count = float(matches[0]["n"])
    at_least = any(m["least"] or m["plus"] or m["more"] or re.search(r"-| or ", m[0]) for m in matches)
    if whole:
        valid = count.is_integer() and count <= _MAX_BEDROOMS
    else:
        valid = 1 <= count <= _MAX_BATHROOMS and (count * 2).is_integer()
    return (count, at_least) if valid else None


# Prices -------------------------------------------------------------------------------------

#: Purchase prices outside this range are something else (a count, a year, a phone number).
_MIN_PRICE, _MAX_PRICE = 10_000, 100_000_000
_SCALES = {"k": 1e3, "grand": 1e3, "thousand": 1e3, "m": 1e6, "mil": 1e6, "mill": 1e6, "million": 1e6, "mm": 1e6}
_AMOUNT = _pattern(
    r"(?<![\w.,:$])(?P<dollar>\$\s?)?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    rf"(?:\s?(?P<scale>{'|'.join(_SCALES)}))?(?![\w%:])(?P<dollars>\s*(?:dollars|bucks))?"
)
_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|drive|dr|lane|ln|court|ct|boulevard|blvd|way|place|pl|circle|cir|trail|trl"
    r"|parkway|pkwy|terrace|highway|hwy|loop|cove|cv|path"
)
_NOT_MONEY_AFTER = _pattern(
    r"\s*(?:-\s*)?(?:beds?|bedrooms?|baths?|bathrooms?|br|ba|bd|kids?|children|child|sons?|daughters?|dogs?|cats?|pets?"
    r"|people|persons?|years?|yrs?|months?|weeks?|days?|hours?|minutes?|mins?|o'?clock|a\.?m|p\.?m|percent|square|sq"
    rf"|sqft|feet|foot|ft|acres?|cars?|stor(?:y|ies)|floors?|levels?|miles?|times|x|{_STREET_TYPES})\b"
)
_NOT_MONEY_BEFORE = _pattern(
    r"\b(?:zip(?: code)?|code|number|unit|suite|apt|apartment|room|ext|extension|since|#)(?:\s+is)?\s*#?\s*$"
)
#: "The low 300s" and the like, as the ranges agents mean by them (hundreds of thousands).
_HUNDREDS = _pattern(r"\b(?:(?P<part>low|lower|mid|middle|high|upper)[\s-]+)?(?P<base>[1-9]\d\d) ?s\b")
_HUNDREDS_PART = {"low": (0, 30), "lower": (0, 30), "mid": (30, 70), "middle": (30, 70), "high": (70, 100)}
_HUNDREDS_PART["upper"] = _HUNDREDS_PART["high"]
_SPOKEN_PAIR = re.compile(r"\b([1-9]) ([1-9]\d)\b")  # "four fifty" = 450, as prices are said
_A = r"<\d+>"
_PRICE_FORMS = _pattern(
    rf"(?P<range>{_A}\s*(?:and|to|-|\u2013|through|or)\s*{_A})"
    r"|(?P<max>(?:under|below|less than|lower than|up to|upto|no more than|not more than|not over|at most"
    r"|nothing (?:over|above|more than)|max(?:imum)?(?: of)?|tops? out at|cap(?:ped)? at|no higher than)"
    rf"\s+(?:(?:about|around)\s+)?{_A}|{_A}\s*(?:max(?:imum)?|tops|at most|or less|or under|or below|at the most)\b)"
    r"|(?P<min>(?:at least|over|above|more than|higher than|min(?:imum)?(?: of)?|no less than|starting at"
    rf"|upwards of|north of)\s+{_A}|{_A}\s*(?:\+|plus\b|or more\b|or higher\b|or above\b|and up\b|minimum\b))"
    r"|(?P<around>(?:around|about|approximately|approx|roughly|ballpark(?: of)?|close to|somewhere around"
    rf"|in the neighbou?rhood of|in the ballpark of|in the range of|something like)\s+(?:of\s+)?{_A}"
    rf"|{_A}\s*(?:-?ish\b|or so\b|give or take\b))"
    rf"|(?P<single>{_A})"
)
#: "Around X" means X give or take this fraction.
_AROUND = 0.1


@dataclass(frozen=True)
class _Amount:
    value: float
    scaled: bool  # said with k, grand, million...
    dollars: bool  # said with "$" or "dollars": taken as it is, never as thousands


def parse_price(text: str) -> Price | None:
    """A budget or asking price: "450k", "$450,000", "four hundred and fifty thousand", "half a
    million", "between 300 and 400 thousand", "under 500", "at least 300k", "around 1.2 million".
    Bare hundreds mean thousands ("under 500") and bare decimals millions ("around 1.2"), as in
    any price talk; different figures that do not form a range are unclear."""
    amounts, template = _amounts(text)
    forms = [price for m in _PRICE_FORMS.finditer(template) if (price := _price_form(m, amounts))]
    merged: dict[str, int] = {}
    for form in forms:
        # Beside other figures "around X" stands for X: its give-or-take is not a bound the caller set.
        fields = {"target": form.target} if form.target and len(forms) > 1 else vars(form)
        for name, figure in fields.items():
            if figure is not None and merged.setdefault(name, figure) != figure:
                return None
    try:
        return Price(**merged) if merged else None
    except ValueError:
        return None


def _price_text(text: str) -> str:
    """Digits for every number, phone numbers blanked, spoken ranges ("four fifty", "the low
    300s") written out. text2num reads "four hundreds" as "400", so the plural is split off."""
    for match in reversed(list(phonenumbers.PhoneNumberMatcher(text, "US"))):
        text = text[: match.start] + " " + text[match.end :]
    text = re.sub(r"\bhundreds\b", "hundred s", text, flags=re.IGNORECASE)
    text = _normalise_numbers(_spoken_range(text))
    text = _SPOKEN_PAIR.sub(lambda m: str(int(m[1]) * 100 + int(m[2])), text)
    return _HUNDREDS.sub(_hundreds_range, text)


def _amounts(text: str) -> tuple[list[_Amount], str]:
    """The money-like numbers in ``text``, and the text with each replaced by ``<index>``."""
    text = _price_text(text)
    amounts: list[_Amount] = []
    spans: list[tuple[int, int]] = []
    for m in _AMOUNT.finditer(text):
        if _NOT_MONEY_AFTER.match(text, m.end()) or _NOT_MONEY_BEFORE.search(text, 0, m.start()):
            continue
        scale = _SCALES[m["scale"].lower()] if m["scale"] else 1.0
        value = float(m["num"].replace(",", "") + (m["frac"] or "")) * scale
        spans.append(m.span())
        amounts.append(_Amount(value, bool(m["scale"]), bool(m["dollar"] or m["dollars"])))
    for index, (start, end) in reversed(list(enumerate(spans))):
        text = f"{text[:start]}<{index}>{text[end:]}"
    return amounts, " ".join(text.lower().split())


def _hundreds_range(match: re.Match[str]) -> str:
    low, high = _HUNDREDS_PART.get((match["part"] or "").lower(), (0, 100))
    base = int(match["base"])
    return f"{base + low} to {base + high}"


def _spoken_range(text: str) -> str:
    """Puts "to" for the "and" that splits a spoken range ("between three hundred and four hundred
    thousand"), which text2num would read as one number (304, then a hundred thousand)."""
    between = re.search(r"\bbetween\s+", text, re.IGNORECASE)
    if between is None:
        return text
    rest = text[between.end() :]
    for separator in reversed(list(re.finditer(r"\s+and\s+", rest))):
        if re.fullmatch(r"\S*\d\S*", _normalise_numbers(rest[: separator.start()]).strip()):
            return f"{text[: between.end()]}{rest[: separator.start()]} to {rest[separator.end() :]}"
    return text


def _price_form(match: re.Match[str], amounts: list[_Amount]) -> Price | None:
    found = [amounts[int(i)] for i in re.findall(r"<(\d+)>", match[0])]
    if match.lastgroup == "range":
        high = _dollars(found[1])
        low = _dollars(found[0], sharing=high)
        return Price(minimum=low, maximum=high) if low and high and low < high else None
    figure = _dollars(found[0])
    if figure is None:
        return None
    if match.lastgroup == "max":
        return Price(maximum=figure)
    if match.lastgroup == "min":
        return Price(minimum=figure)
    if match.lastgroup == "around":
        return Price(minimum=round(figure * (1 - _AROUND)), maximum=round(figure * (1 + _AROUND)), target=figure)
    return Price(target=figure)


def _dollars(amount: _Amount, sharing: int | None = None) -> int | None:
    """The amount in dollars, if it can be a price. ``sharing`` is the top of a range, whose scale
    a bare bottom takes: "between 300 and 400 thousand", "between 1 and 1.5 million"."""
    value = amount.value
    bare = not (amount.scaled or amount.dollars)
    if bare and sharing and value < _MIN_PRICE:
        value = next((value * p for p in (1e3, 1e4, 1e5, 1e6) if sharing / 10 < value * p <= sharing), value)
    if bare and value < 10 and not value.is_integer():
        value *= 1e6
    elif bare and 100 <= value < 1000:
        value *= 1e3
    return round(value) if _MIN_PRICE <= value <= _MAX_PRICE else None


# Financing ----------------------------------------------------------------------------------

_UNSURE = (
    r"\b(?:not (?:really |quite |totally |a hundred percent )?sure|unsure|no idea|no clue|not a clue"
    r"|(?:i |we )?(?:really )?(?:don'?t|do not) know|dunno|not certain|uncertain|hard to say|it depends|depends"
    r"|can'?t (?:remember|recall)|(?:don'?t|do not) remember|haven'?t decided|undecided|not decided)\b"
)
_FINANCING = _table(
    [
        (
            Financing.NEEDS_LENDER,
            r"\b(?:not|haven'?t been|not yet|need to get|needs to get|going to get|working on getting|getting"
            r"|about to get)\s+(?:yet\s+)?pre[\s-]?(?:approved|qualified)|\bno pre[\s-]?approval"
            r"|\bneed (?:a |to find a )?(?:lender|loan|mortgage|financing)\b"
            r"|\b(?:looking for|find|recommend) (?:a |an )?(?:lender|loan officer|mortgage broker)"
            r"|\bhaven'?t (?:talked|spoken) (?:to|with) (?:a |any )?(?:lender|bank)",
        ),
        (
            Financing.PRE_APPROVED,
            r"\bpre[\s-]?(?:approved|qualified)|\bpre[\s-]?approval|\bapproval letter|\b(?:already|got|been) approved",
        ),
        (
            Financing.CASH,
            r"\b(?:cash|pay(?:ing)? (?:it )?(?:all )?(?:in )?full)\b"
            r"|\b(?:don'?t|won'?t|do not|will not) need (?:a )?(?:mortgage|loan|financing)",
        ),
        (Financing.NOT_SURE, _UNSURE),
    ]
)


def parse_financing(text: str) -> Financing | None:
    """Pre-approved, cash, needs a lender, or not sure. A bare "yes" to "are you pre-approved?"
    is a yes/no answer: read it with ``parse_yes_no``."""
    return _first(text, _FINANCING)


# Timeline -----------------------------------------------------------------------------------

_NUMBER_WORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|eighteen"
    r"|twenty(?:[\s-](?:one|two|three|four))?|thirty|half an?|an?|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few)"
)
_QUANTITY = rf"(?:\d+(?:\.\d+)?|{_NUMBER_WORD})"
_UNIT = r"(?:day|week|month|year)s?"
_DURATION = _pattern(
    r"\b(?P<cue>(?:(?:in|within|over|under|by|about|around|maybe|roughly|approximately|less than|more than|at least"
    r"|longer than|another)\s+)*(?:the\s+)?(?:next\s+)?)"
    rf"(?:(?P<low>{_QUANTITY})\s*(?:to|-|\u2013|or)\s*)?(?P<quantity>{_QUANTITY})(?P<half>\s+and\s+a\s+half)?"
    rf"\s+(?P<unit>{_UNIT})(?P<half_after>\s+and\s+a\s+half)?"
    rf"(?:\s+(?:to|or)\s+(?P<high>{_QUANTITY})(?:\s+(?P<high_unit>{_UNIT}))?)?\b"
)
_PAST = _pattern(r"\b(?:for|past|last|been|spent|took)\s+(?:the\s+)?(?:past\s+|last\s+)?$")
_SEASON = _pattern(
    r"\b(?:(?:by|in|around|before|until|till|during|over)\s+)?(?:the\s+)?(?:(?:early|late|mid|end of(?: the)?)\s+)?"
    r"(?:(?P<which>this|next|the coming|coming)\s+)?(?P<season>spring|summer|fall|autumn|winter)\b"
    r"(?:\s+(?:of\s+)?(?P<year>next year|\d{4}))?"
)
_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTH = _pattern(
    r"\b(?:(?:by|in|around|before|until|till|during|end of|the end of|early|late|mid|beginning of)\s+)+"
    rf"(?P<month>{'|'.join(_MONTHS)})\b(?:\s+(?:of\s+)?(?P<year>next year|\d{{4}}))?"
)
_YEAR_PART = {
    "early": (2, 1), "start of": (2, 1), "beginning of": (2, 1), "first half of": (4, 1), "mid": (7, 1),
    "middle of": (7, 1), "second half of": (10, 1), "late": (11, 1), "end of": (12, 31),
}  # fmt: skip
_YEAR = _pattern(
    r"\b(?:(?:by|in|around|before|during|sometime|until)\s+)*(?:the\s+)?"
    rf"(?:(?P<part>{'|'.join(_YEAR_PART)})\s+)?(?:the\s+)?(?P<which>this|next|the)\s+year\b"
    r"|\b(?P<by>by|in|during|sometime in|around)\s+(?P<number>20\d\d)\b"
)
_NEXT_UNIT = _pattern(r"\b(?:in|within|over|during)\s+the\s+next\s+(?P<unit>week|month|year)\b")
_WEEK_OR_MONTH = _pattern(
    r"\b(?:(?:by|in|within)\s+)?(?:the\s+)?(?P<end>end of\s+)?(?P<which>this|next|the)\s+(?P<unit>week|month)\b"
)
_ASAP = _pattern(
    r"\b(?:asap|a\.s\.a\.p\.?|as soon as (?:possible|(?:i|we) can)|right away|immediately|(?:right|like) now"
    r"|urgent(?:ly)?|yesterday|the sooner the better|as (?:quick|fast) as (?:possible|we can))\b"
)
_NO_TIMELINE = _pattern(
    r"\b(?:not sure|unsure|no idea|(?:don'?t|do not) know|dunno|just (?:looking|browsing|curious|exploring|starting)"
    r"|no rush|no hurry|not in (?:a|any) (?:rush|hurry)|no (?:set |real )?(?:timeline|time ?frame|deadline)"
    r"|flexible|whenever|it depends|haven'?t decided|undecided|not any ?time soon)\b"
)
#: Seasons as meteorologists count them (first month), and the month taken as their middle.
_SEASON_START = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}


def parse_timeline(text: str, today: date) -> Timeline | None:
    """When the caller hopes to move, relative to ``today``: "asap", "in two months", "6 to 12
    months", "next spring", "by the end of the year", "June"; "not sure" and "just looking" give
    the unknown bucket, as an answer to the question that needs no asking again."""
    found = _timeline_phrase(text)
    if found is None:
        return None
    kind, match = found
    phrase = " ".join(match[0].split()).lower()
    if kind == "asap":
        return Timeline(TimelineBucket.ASAP, today, phrase)
    if kind == "unknown":
        return Timeline(TimelineBucket.UNKNOWN, None, phrase)
    target = max(_TIMELINE_TARGETS[kind](match, today), today)
    return Timeline(_bucket(today, target), target, phrase)


def _timeline_phrase(text: str) -> tuple[str, re.Match[str]] | None:
    """The first kind of timeline phrase found, in order of how precise it is."""
    for kind, pattern in _TIMELINE_FORMS:
        for match in pattern.finditer(text):
            start = match.start() + len(match.groupdict().get("cue") or "")
            if not _negated(text, start) and not _PAST.search(text, 0, start) and "ago" not in text[match.end() :][:5]:
                return kind, match
    return None


def _duration_target(match: re.Match[str], today: date) -> date:
    """The date a duration away; the middle of a range ("6 to 12 months", "a month or two")."""
    unit = match["unit"].lower().rstrip("s")
    quantity = _quantity(match["quantity"]) + (0.5 if match["half"] or match["half_after"] else 0)
    if re.search(r"more than|at least|longer than", match["cue"], re.I):
        quantity *= 1.25  # "more than a year": past it, not at it
    target = _after(today, quantity, unit)
    if match["low"] or match["high"]:
        other = _after(
            today, _quantity(match["low"] or match["high"]), (match["high_unit"] or unit).lower().rstrip("s")
        )
        target = min(target, other) + abs(target - other) / 2
    return target


def _quantity(words: str) -> float:
    words = " ".join(words.lower().replace("-", " ").split())
    if words[0].isdigit():
        return float(words)
    special = {"a": 1.0, "an": 1.0, "half a": 0.5, "half an": 0.5}
    return special.get(words) or (2.0 if "couple" in words else 3.0 if "few" in words else float(text2num(words, "en")))


def _after(today: date, quantity: float, unit: str) -> date:
    if unit == "day":
        return today + timedelta(days=quantity)
    if unit == "week":
        return today + timedelta(weeks=quantity)
    return _add_months(today, quantity * 12 if unit == "year" else quantity)


def _add_months(day: date, months: float) -> date:
    """Calendar months on (a fraction as 30-day months), the day clamped to the month's end."""
    years, month = divmod(day.month - 1 + int(months), 12)
    year = day.year + years
    moved = date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
    return moved + timedelta(days=round((months - int(months)) * 30))


def _season_target(match: re.Match[str], today: date) -> date:
    """The middle of the season: the current one for "this"/"by", the one after it for "next"."""
    start_month = _SEASON_START[match["season"].lower()]
    if match["year"]:
        year = today.year + 1 if match["year"].lower() == "next year" else int(match["year"])
        return _add_months(date(year, start_month, 1), 1)
    starts = [date(year, start_month, 1) for year in range(today.year - 1, today.year + 3)]
    current = next((s for s in starts if s <= today < _add_months(s, 3)), None)
    upcoming = [s for s in starts if s > today]
    which = (match["which"] or "").lower()
    start = current if current and which != "next" else upcoming[0]
    return _add_months(start, 1)


def _month_target(match: re.Match[str], today: date) -> date:
    month = _MONTHS[match["month"].lower()]
    year = today.year if month >= today.month else today.year + 1
    if match["year"]:
        year = today.year + 1 if match["year"].lower() == "next year" else int(match["year"])
    return date(year, month, 1)


def _year_target(match: re.Match[str], today: date) -> date:
    if match["number"]:
        year = int(match["number"])
        if year == today.year:
            return today + (date(year, 12, 31) - today) / 2
        return date(year, 1, 1) if match["by"].lower() == "by" else date(year, 7, 1)
    year = today.year + (match["which"].lower() == "next")
    if match["part"]:
        return date(year, *_YEAR_PART[" ".join(match["part"].lower().split())])
    return date(year, 7, 1) if year > today.year else today + (date(year, 12, 31) - today) / 2


def _week_or_month_target(match: re.Match[str], today: date) -> date:
    later = match["which"].lower() == "next"
    if match["unit"].lower() == "week":
        start = today + timedelta(weeks=later)
        return start + timedelta(days=6 - start.weekday()) if match["end"] else start
    start = _add_months(today, 1) if later else today
    return start.replace(day=calendar.monthrange(start.year, start.month)[1]) if match["end"] else start


_TIMELINE_FORMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("asap", _ASAP),
    ("duration", _DURATION),
    ("next_unit", _NEXT_UNIT),
    ("season", _SEASON),
    ("month", _MONTH),
    ("year", _YEAR),
    ("week_or_month", _WEEK_OR_MONTH),
    ("unknown", _NO_TIMELINE),
)
_TIMELINE_TARGETS: dict[str, Callable[[re.Match[str], date], date]] = {
    "duration": _duration_target,
    "next_unit": lambda match, today: _after(today, 1, match["unit"].lower()),
    "season": _season_target,
    "month": _month_target,
    "year": _year_target,
    "week_or_month": _week_or_month_target,
}


def _bucket(today: date, target: date) -> TimelineBucket:
    for months, bucket in (
        (3, TimelineBucket.WITHIN_3_MONTHS),
        (6, TimelineBucket.MONTHS_3_TO_6),
        (12, TimelineBucket.MONTHS_6_TO_12),
    ):
        if target <= _add_months(today, months):
            return bucket
    return TimelineBucket.OVER_12_MONTHS


# Motivation and must-haves ------------------------------------------------------------------

_REASONS = _table(
    [
        (
            ReasonKind.RELOCATION,
            r"\b(?:relocat\w*|new job|job (?:transfer|offer|change)|transferr?(?:ed|ing)"
            r"|(?:for|with) (?:work|my job|the job))\b",
        ),
        (
            ReasonKind.GROWING_FAMILY,
            r"\b(?:growing family|family is growing|(?:having|expecting) (?:a|another) (?:baby|child)"
            r"|baby on the way|new baby|pregnant|getting married)\b",
        ),
        (ReasonKind.UPSIZING, r"\b(?:more (?:space|room)|outgr[eo]wn|bigger (?:house|home|place)|upgrad\w*|too small)"),
        (
            ReasonKind.DOWNSIZING,
            r"\b(?:downsiz\w*|smaller (?:house|home|place)|empty nest\w*|kids (?:have )?(?:moved|grown) out"
            r"|too (?:big|much house))",
        ),
        (ReasonKind.INVESTMENT, r"\b(?:invest\w*|rental (?:property|income)|income property|flip\w*|airbnb|cash flow)"),
        (ReasonKind.FIRST_HOME, r"\b(?:first (?:home|house|place)|first[\s-]time (?:home ?)?buyer|tired of renting)"),
        (ReasonKind.RETIREMENT, r"\bretir\w*"),
        (ReasonKind.DIVORCE, r"\b(?:divorc\w*|separat(?:ed|ing)|splitting up)\b"),
        (
            ReasonKind.FINANCIAL,
            r"\b(?:can'?t afford|cannot afford|foreclos\w*|behind on (?:the )?(?:payments|mortgage)|cash out"
            r"|lost (?:my|our) jobs?|medical bills|too expensive)\b",
        ),
        (ReasonKind.INHERITED, r"\b(?:inherit\w*|passed away|probate|estate sale)\b"),
        (
            ReasonKind.CLOSER_TO_FAMILY,
            r"\b(?:closer to|near) (?:family|my family|our family"
            r"|(?:my|our|the) (?:parents|mom|dad|kids|grandkids|daughter|son))",
        ),
        (ReasonKind.SCHOOLS, r"\b(?:(?:better|good|great) schools?|school district)\b"),
        (ReasonKind.OTHER, r"\b(?:because|since|due to|the reason is)\b"),
    ]
)


def parse_reason(text: str) -> Reason | None:
    """Why the caller is moving or selling: the first reason named, with their words kept as the
    free text for the agent ("because" with no known reason is ``OTHER``)."""
    kinds = _mentioned(text, _REASONS)
    known: list[ReasonKind] = [kind for kind in kinds if kind is not ReasonKind.OTHER] or list(kinds)
    return Reason(known[0], " ".join(text.split())) if known else None


_FEATURES = _table(
    [
        (Feature.NO_HOA, r"\b(?:no |without (?:an? )?|(?:don'?t|do not) want (?:an? )?)hoa\b|\bhoa[\s-]free\b"),
        (Feature.GARAGE, r"\b(?:garage|carport)s?\b"),
        (Feature.POOL, r"\bpool\b"),
        (Feature.YARD, r"\b(?:(?:back|front)?yard|outdoor space|room for (?:the )?(?:dogs?|kids) to (?:run|play))\b"),
        (Feature.GOOD_SCHOOLS, r"\b(?:schools?|school district)\b"),
        (Feature.HOME_OFFICE, r"\b(?:office|work(?:ing)? from home|study)\b"),
        (Feature.BASEMENT, r"\bbasement\b"),
        (Feature.SINGLE_STORY, r"\b(?:single|one)[\s-](?:story|storey|level)\b|\bno stairs\b"),
        (Feature.KITCHEN, r"\bkitchen\b"),
        (Feature.OPEN_FLOOR_PLAN, r"\bopen (?:floor ?plan|concept|layout)\b"),
        (Feature.WATERFRONT, r"\b(?:waterfront|lake ?front|on the (?:water|lake))\b"),
    ]
)


def parse_must_haves(text: str) -> tuple[Feature, ...] | None:
    """Must-haves in the order said ("a garage and a big yard"); negated ones ("don't need a pool")
    are left out."""
    return _mentioned(text, _FEATURES) or None


_SELL_FIRST = _table(
    [
        (Answer.YES, r"\bcan'?t (?:buy|move)\b.{0,30}\b(?:until|before|unless) (?:we|i) sell"),
        (
            Answer.NO,
            r"\b(?:don'?t|do not|doesn'?t|won'?t) (?:need|have) to sell|\bno need to sell|\balready sold"
            r"|\bnothing to sell|\b(?:we|i) (?:currently )?rent\b|\b(?:don'?t|do not) own"
            r"|\bfirst[\s-]time (?:home ?)?buyers?|\bnot contingent",
        ),
        (
            Answer.YES,
            r"\b(?:need|needs|have|has|got|must|gotta) to sell\b|\bsell (?:ours|it|(?:my|our) \w+) first|\bcontingent"
            r"|\b(?:once|after|until) (?:we|i) sell|\bdepends on (?:selling|the sale)",
        ),
    ]
)


def parse_must_sell_first(text: str) -> Answer | None:
    """Whether the buyer must sell a home before buying; plain yes/no answers count too."""
    return _first(text, _SELL_FIRST) or parse_yes_no(text)


# Sellers ------------------------------------------------------------------------------------

_DIRECTION = r"(?:(?:north|south)(?:east|west)?|east|west|[nsew]|ne|nw|se|sw)\.?"
_STREET_WORD = r"(?!(?:a|an|the|on|in|at|of|and|or|with|for|to|is|my|our)\b)[a-z0-9][\w'.]*"
_ADDRESS = re.compile(
    rf"\b(?P<number>\d{{1,6}}[a-z]?(?: \d\d)*)\s+(?P<street>(?i:(?:{_DIRECTION}\s+)?(?:{_STREET_WORD}\s+){{1,3}}?"
    rf"(?:{_STREET_TYPES})\b\.?(?:\s+{_DIRECTION}(?!\w))?))"
    r"(?:,?\s*(?i:apartment|apt|unit|suite|ste|number|#)\.?\s*#?(?P<unit>[a-z0-9-]+\b))?"
    r"(?:(?:,\s*|\s+(?i:in)\s+)(?P<city>[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2}))?",
    re.IGNORECASE,
)


def parse_address(text: str) -> Address | None:
    """A street address: number, street name and type, optional unit and city ("1234 Oak Lane,
    apartment 4B, Austin"). Street numbers said in pairs ("twelve thirty four") are joined."""
    match = _ADDRESS.search(_normalise_numbers(text))
    if match is None:
        return None
    street = " ".join(word[0].upper() + word[1:] for word in match["street"].rstrip(".").split())
    city = match["city"] if match["city"] and match["city"][0].isupper() else None
    return Address(match["number"].replace(" ", ""), street, match["unit"] and match["unit"].upper(), city)


_CONDITIONS = _table(
    [
        (
            Condition.FIXER_UPPER,
            r"\b(?:fixer[\s-]?upper|needs (?:a lot of|lots of|major|tons of) (?:work|repairs)|major repairs"
            r"|gut (?:it|job)|tear ?down|(?:rough|bad|terrible|poor) (?:shape|condition)"
            r"|foundation (?:issues|problems)|needs everything)\b",
        ),
        (
            Condition.NEEDS_WORK,
            r"\b(?:needs (?:some |a little |a bit of )?(?:work|updating|updates|repairs|tlc|love|paint)"
            r"|needs (?:a )?new \w+|(?:out)?dated|could use (?:some )?(?:work|updates|updating|love)|original condition"
            r"|some repairs|not (?:in )?(?:very |that |the best |great |good )+(?:shape|condition))\b",
        ),
        (
            Condition.EXCELLENT,
            r"\b(?:excellent|perfect|mint|like new|brand new|immaculate|pristine|great (?:shape|condition)"
            r"|(?:fully|completely|newly|just) (?:renovated|remodeled|updated|built))\b",
        ),
        (Condition.GOOD, r"\b(?:good|pretty good|decent|fine|solid|well maintained|move[\s-]in ready|not bad)\b"),
    ]
)


def parse_condition(text: str) -> Condition | None:
    """The home's condition; the most worrying description wins ("good, but it needs some work")."""
    return _first(text, _CONDITIONS)


_LISTED = _table(
    [
        (
            Answer.NO,
            r"\bnot (?:currently |yet )?listed|\b(?:no|don'?t have an?|without an?) (?:agent|realtor|broker)"
            r"|\bfor sale by owner|\bfsbo\b"
            r"|\b(?:sell|selling|list|listing) (?:it )?(?:myself|ourselves|on (?:my|our) own)"
            r"|\b(?:listing )?(?:has )?expired\b|\bnot (?:working|signed) with (?:anyone|anybody|an agent|a realtor)",
        ),
        (
            Answer.YES,
            r"\blisted with|\b(?:have|got) (?:an? )?(?:agent|realtor|broker)|\b(?:working|signed) with (?:an? )?\w+"
            r"|\blisting agreement|\bunder contract|\bon the market with|\b(?:it'?s|it is|already) listed",
        ),
    ]
)


def parse_listed_with_agent(text: str) -> Answer | None:
    """Whether the home is listed with another agent; plain yes/no answers count too."""
    return _first(text, _LISTED) or parse_yes_no(text)


_MORTGAGE = _table(
    [
        (
            MortgageStatus.PAID_OFF,
            r"\b(?:paid (?:it |that )?off|(?:own (?:it |the \w+ )?)?(?:outright|free and clear)|no mortgage"
            r"|mortgage[\s-]free|(?:don'?t|do not) (?:have|owe) (?:a |any )?(?:mortgage|anything|loan)"
            r"|(?:don'?t|do not) owe|owe nothing|nothing (?:owed|left))\b",
        ),
        (
            MortgageStatus.OWES,
            r"\b(?:owe|owes|owing|(?:still )?(?:have|got) (?:a |an )?(?:mortgage|loan)"
            r"|left on (?:it|the \w+|our \w+|my \w+)|(?:mortgage|loan) balance|balance (?:is|of)|still paying)\b",
        ),
        (MortgageStatus.NOT_SURE, _UNSURE),
    ]
)


def parse_mortgage(text: str) -> Mortgage | None:
    """Paid off, owes (with the amount when said: "we owe about 200k"), or not sure."""
    status = _first(text, _MORTGAGE)
    if status is not MortgageStatus.OWES:
        return None if status is None else Mortgage(status)
    price = parse_price(text)
    return Mortgage(status, price.amount if price else None)


# Yes / no -----------------------------------------------------------------------------------

_YES_NO = _pattern(
    r"\b(?:"
    r"(?P<unsure>(?:(?:i|we)(?:'m|'re| am| are) )?not (?:really |quite |totally |a hundred percent )?sure|unsure"
    r"|no idea|no clue|not a clue|(?:i |we )?(?:really )?(?:don'?t|do not) know|dunno|not certain|maybe|perhaps"
    r"|possibly|hard to say|it depends|depends|(?:can'?t|don'?t|do not) (?:remember|recall)|haven'?t decided"
    r"|undecided|we'?ll see|good question)"
    r"|(?P<no>no(?!\s+(?:idea|clue|rush|hurry|problem|worries|doubt|pressure|one|matter)\b)|nope|nah|not really"
    r"|not yet|not at all|not anymore|not that (?:i|we) know of|not (?:right )?now|not any ?time soon|negative|never"
    r"|(?:i|we) (?:don'?t|do not) think so|(?:probably|definitely|absolutely|certainly|of course) not"
    r"|(?:i|we|it|they|he|she) (?:don'?t|doesn'?t|do not|does not|'m not|am not|'re not|are not|isn'?t|is not"
    r"|haven'?t|have not|won'?t|will not)|(?:i'm|we're|it's) not)"
    r"|(?P<yes>yes|yeah|yea|yep|yup|ya|yah|(?<!make )sure|of course|absolutely|definitely|certainly|correct"
    r"|that'?s (?:right|correct)|right(?!\s+(?:away|now))|exactly|indeed|affirmative|uh[\s-]?huh|mm[\s-]?hmm|mhm"
    r"|okay|ok|alright|all right|sounds good|(?:i|we) (?:think|believe|guess) so|probably|no problem|no worries"
    r"|not a problem|for sure|you bet|totally|(?:i|we|it) (?:do|am|are|have|did|is|will|can)(?=\s*(?:[.,!?]|$)))"
    r")(?!\w)"
)


def parse_yes_no(text: str) -> Answer | None:
    """Yes, no or unsure. "Not sure" is unsure, not a no; "no rush" and "no problem" are not noes;
    a yes and a no together ("yes and no") are unclear. Unsure wins over a yes or a no beside it
    ("yeah, I'm not sure")."""
    said = {m.lastgroup for m in _YES_NO.finditer(text)}
    if "unsure" in said:
        return Answer.UNSURE
    if said == {"yes"}:
        return Answer.YES
    if said == {"no"}:
        return Answer.NO
    return None


# Plain-string forms used by the minimal Lead bot (bots/lead.py) -----------------------------


def find_intent(text: str) -> str | None:
    guess = parse_intent(text)
    return guess.intent.value if guess else None


def find_property(text: str) -> str | None:
    """'3 bedroom house' -> 'three bedroom house'; bedrooms alone -> 'three bedroom home'."""
    types = parse_property_types(text)
    kind = types[0].value if types else None
    rooms = parse_rooms(text)
    if rooms is None or rooms.bedrooms is None:
        return kind
    return f"{_say_below_thousand(rooms.bedrooms)} bedroom {kind or 'home'}"


def find_place(text: str) -> str | None:
    places = parse_places(text)
    return " or ".join(places) if places else None


def find_budget(text: str) -> int | None:
    """The one figure to say back, in dollars."""
    price = parse_price(text)
    return price.amount if price else None


def find_timeline(text: str) -> str | None:
    """The caller's timeline phrase, lower case ('in the next two months'); None if they don't know."""
    found = _timeline_phrase(text)
    if found is None or found[0] == "unknown":
        return None
    return " ".join(found[1][0].split()).lower()


# Speaking amounts back ----------------------------------------------------------------------

_SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
    " eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


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
    hundreds, rest = divmod(n, 100)
    parts = [f"{_SMALL_NUMBERS[hundreds]} hundred"] if hundreds else []
    if rest < 20 and (rest or not parts):
        parts.append(_SMALL_NUMBERS[rest])
    elif rest >= 20:
        tens, units = divmod(rest, 10)
        parts.append(_TENS[tens] + (f"-{_SMALL_NUMBERS[units]}" if units else ""))
    return " ".join(parts)
