"""Log set-up: static messages with values as ``key=value`` pairs taken from ``extra``."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "taskName"}


class KeyValueFormatter(logging.Formatter):
    """``time level logger message key=value ...``; values under ``pii.*`` keys are masked
    unless PII logging is switched on (phone numbers and transcripts must not leak into logs)."""

    def __init__(self, show_pii: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.show_pii = show_pii

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        for key, value in extras.items():
            shown = value if self.show_pii or not key.startswith("pii.") else "<redacted>"
            line += f" {key}={shown!r}" if isinstance(shown, str) and " " in shown else f" {key}={shown}"
        return line


def configure(level: str = "INFO", stream: TextIO | None = None, show_pii: bool = False) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter(show_pii))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
