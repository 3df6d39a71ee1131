"""PII redaction for transcripts and summaries, and encryption of raw transcripts at rest.

Redaction runs before any transcript or summary is stored or logged. It is tuned to what
speech-to-text produces: digits spoken one by one arrive as words ("one two three four ..."),
emails as "john at gmail dot com". Every numeric kind is either checked (Luhn for cards, the ABA
checksum for routing numbers, the issued ranges of social security numbers) or anchored on the
words that introduce it (an account number, a date of birth), so prices, street numbers and
years stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken

PiiKind = Literal["SSN", "CARD", "BANK_ACCOUNT", "ROUTING", "EMAIL", "PHONE", "DOB"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Redaction:
    """The text with each finding replaced by ``[KIND]``, and the kinds found (sorted, once each)."""

    text: str
    kinds: tuple[PiiKind, ...]


Span = tuple[int, int, PiiKind]

# --- spoken digits -----------------------------------------------------------------------

_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_DIGIT_TOKEN = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d+)"
#: A run of digits read out one by one; "oh" only inside a run, never as its first word
#: ("Oh, one two three four" keeps its "Oh").
_SPOKEN_RUN = re.compile(
    rf"\b(?!oh\b){_DIGIT_TOKEN}(?:(?:\s*[,-]\s*|\s+){_DIGIT_TOKEN})+\b",
    re.IGNORECASE,
)
_RUN_TOKEN = re.compile(rf"({_DIGIT_TOKEN})|(\s*[,-]\s*)", re.IGNORECASE)
#: Fewer spoken digits than this are ordinary words ("three bedroom", "one or two").
MIN_SPOKEN_DIGITS = 4


def normalise_spoken_digits(text: str) -> str:
    """Runs of at least four digit words become digits; a pause mark (comma, dash) between
    groups becomes a dash, so "one two three, four five, ..." reads as "123-45-..."."""
    return _SPOKEN_RUN.sub(_digits_of_run, text)


def _digits_of_run(match: re.Match[str]) -> str:
    run = match.group(0)
    words = sum(1 for m in _RUN_TOKEN.finditer(run) if m.group(1) and m.group(1).lower() in _DIGIT_WORDS)
    if words < MIN_SPOKEN_DIGITS:
        return run
    pieces = []
    for token in _RUN_TOKEN.finditer(run):
        digit, separator = token.group(1), token.group(2)
        pieces.append(_DIGIT_WORDS.get(digit.lower(), digit) if digit else "-" if separator.strip() else "")
    return "".join(pieces)


# --- checksums ---------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """The card-number check digit (ISO/IEC 7812-1)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


#: First two digits an ABA routing number can start with (Federal Reserve districts, thrifts,
#: electronic), per the ABA routing number policy.
_ROUTING_PREFIXES = {*range(0, 13), *range(21, 33), *range(61, 73), 80}


def routing_valid(digits: str) -> bool:
    """ABA routing number: a known prefix and the 3-7-1 weighted checksum."""
    if len(digits) != 9 or not digits.isdigit() or int(digits[:2]) not in _ROUTING_PREFIXES:
        return False
    weights = (3, 7, 1) * 3
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Numbers the SSA never issues: area 000, 666 or 9xx, group 00, serial 0000."""
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


# --- detectors: each finds spans in text where earlier kinds are already placeholders ----

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def _cards(text: str) -> Iterator[Span]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield match.start(), match.end(), "CARD"


_ACCOUNT = re.compile(
    r"\b(?:account|acct)\b(?:\s*(?:number|num|no\.?|#|is|was|it's|ending|in|:))*\s*"
    r"(?P<number>\d(?:[ -]?\d){3,16})(?![\d-])",
    re.IGNORECASE,
)


def _bank_accounts(text: str) -> Iterator[Span]:
    for match in _ACCOUNT.finditer(text):
        yield match.start("number"), match.end("number"), "BANK_ACCOUNT"


_NINE_DIGITS = re.compile(r"(?<![\d-])\d{9}(?![\d-])")
_ROUTING_CONTEXT = re.compile(r"\b(?:routing|aba|transit)\b", re.IGNORECASE)
#: How far before a number its introducing words may be ("routing number is ...").
CONTEXT_CHARS = 40


def _routing_numbers(text: str) -> Iterator[Span]:
    """Nine digits with a valid checksum: a routing number when introduced as one, or when
    it cannot be a social security number."""
    for match in _NINE_DIGITS.finditer(text):
        digits = match.group(0)
        introduced = _ROUTING_CONTEXT.search(text, max(0, match.start() - CONTEXT_CHARS), match.start())
        if routing_valid(digits) and (introduced or not ssn_valid(digits[:3], digits[3:5], digits[5:])):
            yield match.start(), match.end(), "ROUTING"


_SSN = re.compile(r"(?<![\d-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-])")


def _ssns(text: str) -> Iterator[Span]:
    for match in _SSN.finditer(text):
        if ssn_valid(match.group(1), match.group(3), match.group(4)):
            yield match.start(), match.end(), "SSN"


_TLD = r"(?:com|net|org|edu|gov|us|io|co|info|biz|me)"
_DOT = r"(?:\s+dot\s+|\.)"
_WRITTEN_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SPOKEN_EMAIL = re.compile(
    rf"\b\w+(?:(?:\s+(?:dot|underscore)\s+|[._])\w+)*\s+at\s+(?P<domain>\w+)(?:{_DOT}\w+)*?{_DOT}{_TLD}\b",
    re.IGNORECASE,
)
_EMAIL_CONTEXT = re.compile(r"\be-?mail\b", re.IGNORECASE)
#: Mailbox providers: "john at gmail dot com" is an address even without the word "email",
#: while "I saw it at zillow dot com" is a website.
_MAIL_PROVIDERS = {"gmail", "yahoo", "hotmail", "outlook", "aol", "icloud", "msn", "live", "comcast", "protonmail"}


def _emails(text: str) -> Iterator[Span]:
    for match in _WRITTEN_EMAIL.finditer(text):
        yield match.start(), match.end(), "EMAIL"
    for match in _SPOKEN_EMAIL.finditer(text):
        introduced = _EMAIL_CONTEXT.search(text, max(0, match.start() - CONTEXT_CHARS), match.start())
        if introduced or match.group("domain").lower() in _MAIL_PROVIDERS:
            yield match.start(), match.end(), "EMAIL"


_MONTH = (
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_UNITS = r"(?:one|two|three|four|five|six|seven|eight|nine)"
_TENS = (
    r"(?:ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen"
    r"|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)"
)
_ORDINAL = (
    r"(?:(?:twenty|thirty)[\s-])?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)"
    r"|tenth|eleventh|twelfth|thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth"
    r"|twentieth|thirtieth"
)
_DAY = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?(?!\d)|{_ORDINAL})"
_YEAR = (
    rf"(?:\d{{4}}|(?:nineteen|twenty)[\s-](?:oh[\s-]{_UNITS}|{_TENS}(?:[\s-]{_UNITS})?)"
    rf"|two thousand(?:[\s-](?:and[\s-])?(?:{_TENS}(?:[\s-]{_UNITS})?|{_UNITS}))?)"
)
_DATE = (
    rf"\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})(?!\d)"
    rf"|{_MONTH}\s+(?:the\s+)?{_DAY}(?:,?\s+(?:of\s+)?{_YEAR})?"
    rf"|(?:the\s+)?{_DAY}\s+of\s+{_MONTH}(?:,?\s+{_YEAR})?"
    rf"|{_MONTH},?\s+(?:of\s+)?{_YEAR}"
)
#: A date only counts as a birth date when these words introduce it ("born in Texas" is not one).
_DOB = re.compile(
    rf"(?:\bborn|\bbirthday|\bbirth\s*date|\bdate\s+of\s+birth|\bd\.?o\.?b\b\.?)[^.?!\d]{{0,30}}?\b(?P<date>{_DATE})",
    re.IGNORECASE,
)


def _birth_dates(text: str) -> Iterator[Span]:
    for match in _DOB.finditer(text):
        yield match.start("date"), match.end("date"), "DOB"


def _phones(text: str) -> Iterator[Span]:
    """libphonenumber's matcher with US defaults: only numbers valid for their region."""
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
        yield match.start, match.end, "PHONE"


#: Most specific first: a card or an introduced account number must not be taken for a
#: phone number or a social security number.
_DETECTORS: tuple[Callable[[str], Iterator[Span]], ...] = (
    _cards,
    _bank_accounts,
    _routing_numbers,
    _ssns,
    _emails,
    _birth_dates,
    _phones,
)


def redact(text: str) -> Redaction:
    """``text`` with every PII finding replaced by its ``[KIND]`` placeholder."""
    current = normalise_spoken_digits(text)
    found: set[PiiKind] = set()
    for detect in _DETECTORS:
        spans = _without_overlaps(list(detect(current)))
        found.update(kind for _, _, kind in spans)
        current = _replace(current, spans)
    return Redaction(text=current, kinds=tuple(sorted(found)))


def _without_overlaps(spans: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(spans):
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def _replace(text: str, spans: list[Span]) -> str:
    for start, end, kind in reversed(spans):
        text = f"{text[:start]}[{kind}]{text[end:]}"
    return text


# --- encryption at rest ------------------------------------------------------------------


class CipherError(ValueError):
    """A transcript cannot be encrypted or decrypted with the configured key."""


class BadKey(CipherError):
    """The configured key is not a Fernet key."""


class WrongKey(CipherError):
    """The ciphertext was made with another key, or altered."""


class Cipher:
    """Raw transcripts encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, timestamped).

    The key is the caller's (from configuration); ``Cipher.generate_key()`` makes one.
    """

    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as e:
            raise BadKey("transcript key must be 32 url-safe base64-encoded bytes (Cipher.generate_key())") from e

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken as e:
            raise WrongKey("transcript was encrypted with another key or has been altered") from e
