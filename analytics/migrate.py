"""Versioned schema migrations: ``analytics/migrations/{postgres,sqlite}/NNNN_name.sql``.

Each file is applied once, in name order, in its own transaction, and recorded in
``schema_migrations``. Concurrent runs are safe: on Postgres they queue on an advisory lock
(keyed by the schema, so separate schemas migrate independently); on SQLite on the write lock
``BEGIN IMMEDIATE`` takes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import aiosqlite
import asyncpg

from analytics.store import is_postgres_url, sqlite_path

log = logging.getLogger("analytics")

#: How long a second SQLite migrate (or writer) waits for the first one's write lock.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class MigrationError(Exception):
    """The database could not be reached or refused a migration (nothing of that file applied)."""


_PG_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
_SQLITE_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name TEXT PRIMARY KEY,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)"""


def migration_files(dialect: str) -> list[tuple[str, str]]:
    """(name, SQL) of every migration of ``dialect`` ('postgres' or 'sqlite'), in order."""
    folder = resources.files("analytics").joinpath("migrations", dialect)
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(database_url: str) -> list[str]:
    """Apply the pending migrations; returns the names applied (empty when up to date).

    Raises ``ValueError`` for an unknown URL scheme, ``MigrationError`` when the database is
    unreachable or refuses a migration.
    """
    path = sqlite_path(database_url)
    if path is None and not is_postgres_url(database_url):
        raise ValueError("database URL must start with postgres://, postgresql:// or sqlite:///")
    try:
        if path is not None:
            return await migrate_sqlite(path)
        return await migrate_postgres(database_url)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error, OSError, TimeoutError) as e:
        raise MigrationError(f"migration failed: {e}") from e


async def migrate_postgres(database_url: str, migrations: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """``migrations`` (name, SQL) default to the package's Postgres files."""
    conn: asyncpg.Connection = await asyncpg.connect(database_url)
    try:
        # Session-level lock, released when the connection closes (also if we crash).
        await conn.execute("SELECT pg_advisory_lock(hashtext('leadline.migrate:' || current_schema()))")
        await conn.execute(_PG_SCHEMA_MIGRATIONS)
        applied = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        done: list[str] = []
        for name, sql in migration_files("postgres") if migrations is None else migrations:
            if name in applied:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("migration applied", extra={"migration": name})
            done.append(name)
        return done
    finally:
        await conn.close()


async def migrate_sqlite(path: Path, migrations: Sequence[tuple[str, str]] | None = None) -> list[str]:
    """``migrations`` (name, SQL) default to the package's SQLite files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    todo = migration_files("sqlite") if migrations is None else migrations
    async with aiosqlite.connect(path, isolation_level=None) as db:
        await db.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        await db.execute(_SQLITE_SCHEMA_MIGRATIONS)
        done = [name for name, sql in todo if await _apply_sqlite(db, name, sql)]
    for name in done:
        log.info("migration applied", extra={"migration": name})
    return done


async def _apply_sqlite(db: aiosqlite.Connection, name: str, sql: str) -> bool:
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)) as cursor:
            if await cursor.fetchone() is not None:
                await db.execute("ROLLBACK")
                return False
        for statement in sql_statements(sql):
            await db.execute(statement)
        await db.execute("INSERT INTO schema_migrations (name) VALUES (?)", (name,))
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    return True


def sql_statements(sql: str) -> Iterator[str]:
    """Split a script into statements (sqlite3 runs one at a time inside our transaction)."""
    pending = ""
    for line in sql.splitlines(keepends=True):
        if not pending and line.lstrip().startswith("--"):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError("migration ends with an incomplete SQL statement")
