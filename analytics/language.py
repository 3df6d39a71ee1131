"""The caller's language, turn by turn, and the points where it changed.

langdetect is a naive-Bayes model over character n-grams: reliable on a sentence, a guess on two
words ("yes I am" comes out Turkish). Turns of fewer than ``min_words`` different words are "unknown"
rather than guessed, and only languages callers of a US real-estate line are likely to speak
are considered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException

from runtime.events import CallerUtterance

#: langdetect samples n-grams at random; a fixed seed makes a text's answer the same every run.
DetectorFactory.seed = 0

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class LanguageOptions:
    #: below this many different words a turn is not judged (langdetect guesses wildly on two
    #: words, and "okay okay okay" comes out Tagalog)
    min_words: int = 3
    #: below this probability the best allowed language is not trusted
    min_probability: float = 0.6
    #: the most spoken languages in US homes after English (Census ACS), as langdetect names them
    allowed: tuple[str, ...] = ("en", "es", "zh-cn", "zh-tw", "tl", "vi", "ar", "fr", "ko", "ru", "pt", "de", "hi")

    def __post_init__(self) -> None:
        if self.min_words < 1 or not 0 < self.min_probability <= 1 or not self.allowed:
            raise ValueError("min_words must be positive, min_probability in (0, 1], allowed not empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnLanguage:
    turn: int
    at: float
    language: str
    probability: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LanguageSwitch:
    """The caller's language changed between two judged turns (unknown turns are skipped)."""

    turn: int
    at: float
    from_language: str
    to_language: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LanguageReport:
    turns: tuple[TurnLanguage, ...]
    switches: tuple[LanguageSwitch, ...]
    #: the language of most judged turns (the earliest on a tie), or "unknown"
    primary: str


def detect_language(text: str, options: LanguageOptions = LanguageOptions()) -> tuple[str, float]:
    """The most probable allowed language of ``text`` and its probability, or ("unknown", 0.0)."""
    if len({word.lower() for word in text.split()}) < options.min_words:
        return UNKNOWN, 0.0
    try:
        candidates = detect_langs(text)
    except LangDetectException:  # no letters at all (digits, punctuation)
        return UNKNOWN, 0.0
    allowed = [c for c in candidates if c.lang in options.allowed]
    if not allowed or allowed[0].prob < options.min_probability:
        return UNKNOWN, 0.0
    return allowed[0].lang, allowed[0].prob


def analyse_languages(
    utterances: Sequence[CallerUtterance], options: LanguageOptions = LanguageOptions()
) -> LanguageReport:
    turns = tuple(_turn_language(u, options) for u in utterances)
    return LanguageReport(turns=turns, switches=_switches(turns), primary=_primary(turns))


def _turn_language(utterance: CallerUtterance, options: LanguageOptions) -> TurnLanguage:
    language, probability = detect_language(utterance.text, options)
    return TurnLanguage(turn=utterance.turn, at=utterance.at, language=language, probability=round(probability, 3))


def _switches(turns: Sequence[TurnLanguage]) -> tuple[LanguageSwitch, ...]:
    judged = [t for t in turns if t.language != UNKNOWN]
    return tuple(
        LanguageSwitch(turn=now.turn, at=now.at, from_language=before.language, to_language=now.language)
        for before, now in pairwise(judged)
        if now.language != before.language
    )


def _primary(turns: Sequence[TurnLanguage]) -> str:
    counts = Counter(t.language for t in turns if t.language != UNKNOWN)
    if not counts:
        return UNKNOWN
    return counts.most_common(1)[0][0]
