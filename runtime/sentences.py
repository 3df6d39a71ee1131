"""Cut a stream of reply text into sentences, so the first one can be spoken while the rest
is still being generated."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets) and whitespace.
# Not after a lone initial or a common abbreviation, and never inside a number ("3.5", "$1.2M").
_BOUNDARY = re.compile(r"""(?<=[.!?])["')\]]*\s+""")
_ABBREVIATIONS = frozenset(
    {
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "st.",
        "ave.",
        "blvd.",
        "rd.",
        "apt.",
        "no.",
        "approx.",
        "vs.",
        "e.g.",
        "i.e.",
    }
)
#: Below this length a "sentence" is joined to the next: TTS of a lone "Ok." sounds clipped
#: and costs a round trip for very little audio.
MIN_SENTENCE_CHARS = 12


def _ends_with_abbreviation(text: str) -> bool:
    last = text.rsplit(None, 1)[-1].lower() if text.strip() else ""
    return last in _ABBREVIATIONS or (len(last) == 2 and last[0].isalpha() and last[1] == ".")


class SentenceSplitter:
    """Feed text fragments in order; get back complete sentences as soon as they end."""

    def __init__(self, min_chars: int = MIN_SENTENCE_CHARS) -> None:
        self.min_chars = min_chars
        self._buffer = ""

    def feed(self, fragment: str) -> list[str]:
        self._buffer += fragment
        sentences: list[str] = []
        start = 0
        for match in _BOUNDARY.finditer(self._buffer):
            candidate = self._buffer[start : match.start()].strip()
            if _ends_with_abbreviation(candidate) or len(candidate) < self.min_chars:
                continue
            sentences.append(candidate)
            start = match.end()
        self._buffer = self._buffer[start:]
        return sentences

    def flush(self) -> list[str]:
        """Whatever is left when the reply ends."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []
