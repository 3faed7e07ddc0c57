"""The SQLite wrapper: migrations per part, applied once, in order; work off the event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from appliance.store import database
from appliance.store.database import Database, register_schema


@pytest.fixture(autouse=True)
def isolated_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "_SCHEMAS", {})


async def test_migrations_apply_once_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    register_schema("notes", ["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)"])
    db = await Database.open(path)
    await db.execute("INSERT INTO notes (text) VALUES (?)", ("first",))
    await db.close()
    register_schema(
        "notes",
        ["CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)", "ALTER TABLE notes ADD COLUMN stars INT"],
    )
    db = await Database.open(path)
    await db.execute("UPDATE notes SET stars = 5")
    row = await db.fetchone("SELECT text, stars FROM notes")
    assert row is not None
    assert (row["text"], row["stars"]) == ("first", 5)
    versions = await db.fetchall("SELECT part, version FROM schema_versions")
    assert [tuple(v) for v in versions] == [("notes", 2)]
    await db.close()


async def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    register_schema("notes", ["CREATE TABLE a (x)", "CREATE TABLE b (x)"])
    await (await Database.open(path)).close()
    register_schema("notes", ["CREATE TABLE a (x)"])
    with pytest.raises(RuntimeError, match="newer than this software"):
        await Database.open(path)


def database_threads() -> set[threading.Thread]:
    """The live worker threads that ``Database`` starts (its executor names them ``sqlite_N``)."""
    return {t for t in threading.enumerate() if t.name.startswith("sqlite") and t.is_alive()}


def open_files_under(path: Path) -> list[str]:
    """This process's open descriptors on ``path`` or its ``-wal``/``-shm`` companions (Linux /proc)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd to see open files")
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(fd_dir / fd))
        except OSError:
            continue  # closed while listing (the listing's own descriptor)
    return [t for t in targets if t.startswith(str(path))]


@pytest.mark.parametrize(
    ("old", "new", "error", "message"),
    [
        pytest.param(
            ["CREATE TABLE a (x)", "CREATE TABLE b (x)"],
            ["CREATE TABLE a (x)"],
            RuntimeError,
            "notes schema version 2 is newer than this software's 1",
            id="newer-file",
        ),
        pytest.param(
            ["CREATE TABLE a (x)"],
            ["CREATE TABLE a (x)", "CREATE TABLE b (x"],
            sqlite3.OperationalError,
            "incomplete input|syntax error",
            id="broken-script",
        ),
    ],
)
async def test_a_failed_migration_closes_the_file_and_stops_the_thread(
    tmp_path: Path, old: list[str], new: list[str], error: type[Exception], message: str
) -> None:
    path = tmp_path / "db.sqlite3"
    register_schema("notes", old)
    await (await Database.open(path)).close()
    threads_before = database_threads()
    assert open_files_under(path) == []

    register_schema("notes", new)
    with pytest.raises(error, match=message):
        await Database.open(path)
    assert database_threads() == threads_before
    assert open_files_under(path) == []

    # Nothing half-applied, and the file is free: it opens again with the schema it was written by.
    register_schema("notes", old)
    db = await Database.open(path)
    versions = await db.fetchall("SELECT part, version FROM schema_versions")
    assert [tuple(v) for v in versions] == [("notes", len(old))]
    await db.execute("INSERT INTO a VALUES (1)")
    await db.close()
    assert database_threads() == threads_before


async def test_work_runs_on_the_database_thread_and_rolls_back_on_error(tmp_path: Path) -> None:
    register_schema("notes", ["CREATE TABLE notes (text TEXT)"])
    db = await Database.open(tmp_path / "db.sqlite3")
    loop_thread = threading.get_ident()
    assert await db.run(lambda c: threading.get_ident()) != loop_thread

    def half_done(connection: object) -> None:
        db._connection.execute("INSERT INTO notes VALUES ('lost')")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await db.run(half_done)
    assert await db.fetchall("SELECT * FROM notes") == []
    await asyncio.gather(*(db.execute("INSERT INTO notes VALUES (?)", (str(i),)) for i in range(50)))
    assert len(await db.fetchall("SELECT * FROM notes")) == 50
    await db.close()


async def test_the_data_directory_is_private(tmp_path: Path) -> None:
    register_schema("notes", ["CREATE TABLE notes (text TEXT)"])
    shared = tmp_path / "data"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    await (await Database.open(shared / "db.sqlite3")).close()
    assert shared.stat().st_mode & 0o777 == 0o700
    fresh = tmp_path / "new" / "data"
    await (await Database.open(fresh / "db.sqlite3")).close()
    assert fresh.stat().st_mode & 0o777 == 0o700
