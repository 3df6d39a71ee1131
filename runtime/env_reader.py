"""Reading settings from the environment, the same way for every group of them.

``runtime.config``, ``runtime.bot_config`` and ``runtime.storage_config`` all read through one
``EnvReader``, so every bad value is reported alike (``NAME='value': what is expected``) and all
of them together in one ``ConfigError``: an operator fixes a deployment in one pass. It lives
apart from ``runtime.config`` because that module imports the other two.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from telephony.e164 import is_e164

T = TypeVar("T")


class ConfigError(ValueError):
    """One or more configuration values are missing or invalid."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))
        self.problems = problems


class EnvReader:
    """Reads variables from ``env`` and collects a problem for each bad one instead of stopping
    at the first; the caller raises ``ConfigError(reader.problems)`` once everything is read."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], T], default: T, check: str = "", *, secret: bool = False) -> T:
        """``parse`` of the variable, or ``default`` when it is unset or empty. A value ``parse``
        refuses (``ValueError``) is reported with ``check`` (else the parser's message) and
        ``default`` is used, so reading goes on. A ``secret`` value is never put in the report,
        which ends up in logs."""
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError as e:
            self.problem(name, None if secret else raw, check or str(e))
            return default

    def problem(self, name: str, raw: str | None, message: str) -> None:
        """Report that variable ``name`` is wrong: ``NAME='raw': message``, or ``NAME: message``
        when ``raw`` is None (a secret, or a problem that is not one value's)."""
        self.problems.append(f"{name}={raw!r}: {message}" if raw is not None else f"{name}: {message}")

    def group(self, kind: Callable[..., T], **fields: tuple[str, Callable[[str], object]]) -> T:
        """``kind(**values)`` from the variables named in ``fields`` (attribute: (name, parse));
        the checks of ``kind`` itself (a ``ConfigError``) are reported too, and ``kind()`` used."""
        values = {}
        for attr, (name, parse) in fields.items():
            raw = self.env.get(name)
            if raw:
                try:
                    values[attr] = parse(raw)
                except ValueError as e:
                    self.problem(name, raw, str(e))
        try:
            return kind(**values)
        except ConfigError as e:
            self.problems.extend(e.problems)
            return kind()


def port(raw: str) -> int:
    """A TCP port (1-65535)."""
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError("out of range")
    return value


def positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be > 0")
    return value


def flag(raw: str) -> bool:
    """A switch, in any of the spellings operators use (1/0, true/false, yes/no, on/off)."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def base_url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    """A parser of absolute URLs with one of ``schemes``, trailing slash dropped (paths are
    appended to it)."""

    def parse(raw: str) -> str:
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError("bad base URL")
        return raw.rstrip("/")

    return parse


def prefixed(*prefixes: str) -> Callable[[str], str]:
    """A parser of values starting with one of ``prefixes``: connection URLs such as
    ``sqlite:///path``, which have no host for ``base_url`` to check."""

    def parse(raw: str) -> str:
        if not raw.startswith(prefixes):
            raise ValueError(f"must start with {' or '.join(prefixes)}")
        return raw

    return parse


def e164(raw: str) -> str:
    if not is_e164(raw):
        raise ValueError("not E.164")
    return raw


def non_blank(raw: str) -> str:
    if not raw.strip():
        raise ValueError("blank")
    return raw.strip()


def slug(raw: str) -> str:
    if not raw.replace("-", "").replace("_", "").isalnum():
        raise ValueError("bad slug")
    return raw


def directory(raw: str) -> Path:
    """A directory, made when first needed: a path that is already a file would fail only then."""
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise ValueError("not a directory")
    return path


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError("bad choice")
        return raw

    return parse
