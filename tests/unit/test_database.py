"""The SQLite wrapper: migrations per part, applied once, in order; work off the event loop."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from appliance.store import database
from appliance.store.database import Database, DatabaseOpenError, register_schema


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


# --------------------------------------------------------------------------------------------------------
# Damage, errors and file modes


def _written_database(path: Path) -> None:
    """A WAL database with enough rows to span many pages, closed (checkpointed into the main file)."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.executemany("INSERT INTO notes VALUES (?)", [(f"note {i} " * 20,) for i in range(2000)])
    connection.commit()
    connection.close()


def _damage(path: Path, how: str) -> None:
    if how == "header":  # what a stray write over the file's start does: "file is not a database"
        with path.open("r+b") as file:
            file.write(b"not sqlite, not at all!" * 2)
    elif how == "truncated":  # a copy cut short: "database disk image is malformed"
        os.truncate(path, 5000)
    else:  # a b-tree page overwritten: only an integrity check finds it
        with path.open("r+b") as file:
            file.seek(5 * 4096 + 100)
            file.write(bytes(range(256)) * 12)


@pytest.mark.parametrize("how", ["header", "truncated", "page"])
async def test_a_damaged_file_is_moved_aside_and_a_fresh_one_opened(tmp_path: Path, how: str) -> None:
    register_schema("notes", ["CREATE TABLE notes (text TEXT)"])
    path = tmp_path / "db.sqlite3"
    _written_database(path)
    _damage(path, how)
    damaged = path.read_bytes()

    db = await Database.open(path)
    [recovery] = db.recoveries
    moved = Path(recovery.moved_to)
    assert moved.name.startswith("db.sqlite3.corrupt-")
    assert await asyncio.to_thread(moved.read_bytes) == damaged  # kept as found
    assert recovery.problem
    assert await db.fetchall("SELECT * FROM notes") == []  # a fresh file, migrated
    await db.close()

    db = await Database.open(path)  # remembered across restarts until acknowledged
    assert [r.moved_to for r in db.recoveries] == [recovery.moved_to]
    await db.acknowledge()
    assert db.recoveries == []
    await db.close()
    db = await Database.open(path)
    assert db.recoveries == []
    await db.close()


async def test_errors_while_running_are_counted_and_expected_ones_are_not(tmp_path: Path) -> None:
    register_schema("notes", ["CREATE TABLE notes (text TEXT UNIQUE)"])
    path = tmp_path / "db.sqlite3"
    db = await Database.open(path)
    await db.execute("INSERT INTO notes VALUES ('a')")
    with pytest.raises(sqlite3.IntegrityError):
        await db.execute("INSERT INTO notes VALUES ('a')")  # a caller's expected refusal
    assert db.failures.count == 0
    other = sqlite3.connect(path)  # the table vanishes under the running service
    other.execute("DROP TABLE notes")
    other.commit()
    other.close()
    with pytest.raises(sqlite3.OperationalError):
        await db.fetchall("SELECT * FROM notes")
    assert db.failures.count == 1
    assert db.failures.last is not None and "no such table" in db.failures.last
    await db.acknowledge()
    assert db.failures.count == 0
    await db.close()


async def test_the_database_and_its_companions_are_private(tmp_path: Path) -> None:
    register_schema("notes", ["CREATE TABLE notes (text TEXT)"])
    previous = os.umask(0o022)
    try:
        path = tmp_path / "db.sqlite3"
        db = await Database.open(path)
        await db.execute("INSERT INTO notes VALUES ('hash')")
        files = [tmp_path / name for name in ("db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm")]
        assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: "0o600" for f in files}
        await db.close()

        path.chmod(0o644)  # a restored backup
        await (await Database.open(path)).close()
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


async def test_a_file_that_cannot_be_opened_says_which_and_what_to_do(tmp_path: Path) -> None:
    register_schema("notes", ["CREATE TABLE notes (text TEXT)"])
    path = tmp_path / "db.sqlite3"
    path.mkdir()  # not a file at all: nothing to move aside, nothing to open
    with pytest.raises(DatabaseOpenError, match=r"cannot open the database .*db\.sqlite3.*writable"):
        await Database.open(path)
