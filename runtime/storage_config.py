"""Where calls are kept: the store (Postgres, or SQLite embedded), the live bus (Redis, or in
process), recordings and their retention. Read from the environment like the other settings,
every problem reported by name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from analytics.pii import Cipher, CipherError

#: Where the embedded store, spilled events and recordings go when nothing else is configured.
DEFAULT_DATA_DIR = Path("leadline-data")


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """``keep_calls`` off keeps nothing beyond the in-memory call reports (a test server)."""

    keep_calls: bool = True
    #: ``postgresql://...``; None: SQLite at ``data_dir/leadline.sqlite3``
    database_url: str | None = None
    #: ``redis://...``; None: an in-process bus (live views of this process only)
    redis_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    #: apply pending migrations at start (Postgres; the embedded store migrates itself)
    migrate_at_start: bool = True
    record_calls: bool = True
    #: Recordings older than this are deleted by the retention job (0: kept forever).
    recording_retention_days: int = 30
    #: A Fernet key: when set, unredacted transcripts are kept too, encrypted with it. Without
    #: one only redacted text is ever stored.
    transcript_key: str = ""

    @property
    def spill_dir(self) -> Path:
        return self.data_dir / "spill"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"


def read_storage(env: Mapping[str, str], problems: list[str]) -> StorageOptions:
    """The options from ``env``; each problem is appended to ``problems`` by variable name."""
    database_url = env.get("DATABASE_URL") or None
    if database_url and not database_url.startswith(("postgres://", "postgresql://", "sqlite:///")):
        problems.append(f"DATABASE_URL={database_url!r}: must be a postgresql:// or sqlite:/// URL")
        database_url = None
    redis_url = env.get("REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        problems.append(f"REDIS_URL={redis_url!r}: must be a redis:// or rediss:// URL")
        redis_url = None
    return StorageOptions(
        keep_calls=_flag(env, "LEADLINE_KEEP_CALLS", True, problems),
        database_url=database_url,
        redis_url=redis_url,
        data_dir=Path(env.get("LEADLINE_DATA_DIR") or DEFAULT_DATA_DIR),
        migrate_at_start=_flag(env, "LEADLINE_MIGRATE_AT_START", True, problems),
        record_calls=_flag(env, "LEADLINE_RECORD_CALLS", True, problems),
        recording_retention_days=_days(env, problems),
        transcript_key=_key(env, problems),
    )


def _flag(env: Mapping[str, str], name: str, default: bool, problems: list[str]) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    problems.append(f"{name}={raw!r}: true or false")
    return default


def _days(env: Mapping[str, str], problems: list[str]) -> int:
    raw = env.get("LEADLINE_RECORDING_RETENTION_DAYS", "")
    if not raw:
        return StorageOptions.recording_retention_days
    if not raw.isdigit():
        problems.append(f"LEADLINE_RECORDING_RETENTION_DAYS={raw!r}: a whole number of days (0: keep forever)")
        return StorageOptions.recording_retention_days
    return int(raw)


def _key(env: Mapping[str, str], problems: list[str]) -> str:
    key = env.get("LEADLINE_TRANSCRIPT_KEY", "")
    if key:
        try:
            Cipher(key)
        except CipherError as e:
            problems.append(f"LEADLINE_TRANSCRIPT_KEY: not a Fernet key ({e})")
            return ""
    return key
