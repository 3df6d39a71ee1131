"""Where calls are kept: the store (Postgres, or SQLite embedded), the live bus (Redis, or in
process), recordings and their retention. Read from the environment through the settings'
``EnvReader`` (``runtime.env_reader``), every problem reported by name with the rest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analytics.pii import Cipher, CipherError
from runtime.env_reader import EnvReader, directory, flag, non_negative_int, prefixed

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


def read_storage(reader: EnvReader) -> StorageOptions:
    """The options from the environment; each problem is reported through ``reader``."""
    defaults = StorageOptions()
    database_url = prefixed("postgres://", "postgresql://", "sqlite:///")
    redis_url = prefixed("redis://", "rediss://", "unix://")
    return StorageOptions(
        keep_calls=reader.get("LEADLINE_KEEP_CALLS", flag, defaults.keep_calls, "true or false"),
        database_url=reader.get("DATABASE_URL", database_url, None, "must be a postgresql:// or sqlite:/// URL"),
        redis_url=reader.get("REDIS_URL", redis_url, None, "must be a redis://, rediss:// or unix:// URL"),
        data_dir=reader.get("LEADLINE_DATA_DIR", directory, defaults.data_dir, "must be a directory, not a file"),
        migrate_at_start=reader.get("LEADLINE_MIGRATE_AT_START", flag, defaults.migrate_at_start, "true or false"),
        record_calls=reader.get("LEADLINE_RECORD_CALLS", flag, defaults.record_calls, "true or false"),
        recording_retention_days=reader.get(
            "LEADLINE_RECORDING_RETENTION_DAYS",
            non_negative_int,
            defaults.recording_retention_days,
            "a whole number of days (0: keep forever)",
        ),
        transcript_key=reader.get("LEADLINE_TRANSCRIPT_KEY", _fernet_key, "", secret=True),
    )


def _fernet_key(raw: str) -> str:
    """The key itself, once ``Cipher`` accepts it: a bad key fails at start, not at the first call."""
    try:
        Cipher(raw)
    except CipherError as e:
        raise ValueError(f"not a Fernet key ({e})") from e
    return raw
