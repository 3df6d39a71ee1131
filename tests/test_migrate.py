"""Migrations: applied once, in order, atomically per file, safely from concurrent runs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from analytics.migrate import MigrationError, migrate, migrate_postgres, migrate_sqlite, migration_files, sql_statements
from runtime.cli import main
from tests.test_store import pg_schema

TABLES = {"calls", "call_events", "utterances", "bot_sessions", "appointments", "recordings", "usage"}
BROKEN = [
    ("0001_ok", "CREATE TABLE first_one (id integer);\n"),
    ("0002_broken", "CREATE TABLE t (id integer);\nSELEC 1;\n"),
]


@pytest.fixture
async def schema_url() -> AsyncIterator[str]:
    async with pg_schema("test_migrate_") as url:
        yield url


async def pg_tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    await conn.close()
    return {row["tablename"] for row in rows}


def sqlite_tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_both_dialects_have_the_same_migrations() -> None:
    pg, lite = migration_files("postgres"), migration_files("sqlite")
    assert [name for name, _ in pg] == [name for name, _ in lite] == ["0001_calls"]


async def test_postgres_applies_once(schema_url: str) -> None:
    assert await migrate(schema_url) == ["0001_calls"]
    assert await migrate(schema_url) == []
    assert await pg_tables(schema_url) == TABLES | {"schema_migrations"}


async def test_concurrent_postgres_runs_apply_once(schema_url: str) -> None:
    results = await asyncio.gather(*(migrate(schema_url) for _ in range(4)))
    assert sorted(results) == [[], [], [], ["0001_calls"]]


async def test_a_failing_postgres_migration_leaves_nothing_of_itself(schema_url: str) -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await migrate_postgres(schema_url, BROKEN)
    assert await pg_tables(schema_url) == {"first_one", "schema_migrations"}
    conn = await asyncpg.connect(schema_url)
    assert [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")] == ["0001_ok"]
    await conn.close()


async def test_sqlite_applies_once_even_concurrently(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/leadline.sqlite3"
    results = await asyncio.gather(*(migrate(url) for _ in range(3)))
    assert sorted(results) == [[], [], ["0001_calls"]]
    assert await migrate(url) == []
    assert await asyncio.to_thread(sqlite_tables, tmp_path / "leadline.sqlite3") == TABLES | {"schema_migrations"}


async def test_a_failing_sqlite_migration_leaves_nothing_of_itself(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite3"
    with pytest.raises(sqlite3.OperationalError):
        await migrate_sqlite(path, BROKEN)
    assert await asyncio.to_thread(sqlite_tables, path) == {"first_one", "schema_migrations"}


async def test_unreachable_database_is_a_migration_error() -> None:
    with pytest.raises(MigrationError):
        await migrate("postgresql://root@127.0.0.1:1/test")
    with pytest.raises(ValueError):
        await migrate("mysql://localhost/x")


def test_statements_split_outside_string_literals() -> None:
    script = "-- a comment; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT ';');\nINSERT INTO a VALUES ('b;c');\n"
    assert list(sql_statements(script)) == ["CREATE TABLE a (x TEXT DEFAULT ';');", "INSERT INTO a VALUES ('b;c');"]


def test_cli_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/cli.sqlite3"
    assert main(["migrate", "--database-url", url]) == 0
    assert capsys.readouterr().out == "applied 0001_calls\n"
    assert main(["migrate", "--database-url", url]) == 0
    assert capsys.readouterr().out == "schema up to date\n"
    assert main(["migrate", "--database-url", "postgresql://root@127.0.0.1:1/test"]) == 1
    assert "migration failed" in capsys.readouterr().err


def test_cli_migrate_reads_the_servers_storage_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``--database-url`` it migrates what the server would use, and refuses what the
    server would refuse."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("LEADLINE_DATA_DIR", str(tmp_path / "data"))
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == "applied 0001_calls\n"
    assert (tmp_path / "data" / "leadline.sqlite3").exists()
    monkeypatch.setenv("DATABASE_URL", "mysql://db/leads")
    assert main(["migrate"]) == 2
    assert "DATABASE_URL='mysql://db/leads'" in capsys.readouterr().err
