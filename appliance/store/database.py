"""One SQLite file in the data directory, used from the event loop without ever blocking it.

Every statement runs on one dedicated worker thread that owns the connection (SQLite connections are not
shared across threads), so callers simply ``await``. The file is in WAL mode, so a second process (the
``invispose token create`` command, a backup) can read and write while the service runs.

Schemas are versioned per part: each part (history, accounts, settings, ...) registers an ordered list of
migration scripts under its own name with ``register_schema``; ``Database.open`` applies the ones a file has
not seen yet, each in its own transaction, and records them in ``schema_versions``.

The file holds password hashes and token digests, so it and its ``-wal``/``-shm`` companions are the
owner's alone (0600; SQLite gives the companions the main file's mode). A wider mode found on an existing
file is narrowed, with a warning.

Damage. ``open`` runs ``PRAGMA quick_check`` first. A file that is not a database, is truncated or has
damaged pages is moved aside (with its companions, as ``<name>.corrupt-<time>``: kept for recovery, named
in the log), and the service starts on a fresh file, so it keeps sensing instead of failing at every
start. The move is remembered in the fresh file (``database_recoveries``) and listed in ``recoveries``
until an admin acknowledges it; errors the database raises while running are counted in ``failures``.
Both make the health's database component "degraded". Any other failure to open (permissions, a full
disk) raises ``DatabaseOpenError``, which names the file and what to do; so does a schema newer than this
software.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

DATABASE_FILE = "invispose.sqlite3"
DATABASE_MODE = 0o600
_COMPANIONS = ("", "-wal", "-shm")
_BUSY_TIMEOUT_MS = 5000
# SQLite's result codes for a file that is damaged or not a database at all (extended codes share them).
_DAMAGE_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
# quick_check lists every problem it finds; the first few say enough.
_PROBLEMS_SHOWN = 3

_SCHEMAS: dict[str, tuple[str, ...]] = {}


def register_schema(part: str, migrations: Sequence[str]) -> None:
    """Declare ``part``'s schema as ordered migration scripts; append new scripts, never edit old ones."""
    _SCHEMAS[part] = tuple(migrations)


class DatabaseOpenError(RuntimeError):
    """The database file cannot be opened for a reason other than damage; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """A damaged database file found at start and moved aside; the service went on with a fresh one."""

    moved_to: str
    problem: str
    at: float


@dataclass(frozen=True, slots=True)
class DatabaseFailures:
    """Errors the database raised while running, since start or the last acknowledgement."""

    count: int = 0
    last: str | None = None
    last_at: float | None = None


class Database:
    """An open SQLite file; create with ``await Database.open(path)``, finish with ``await close()``."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._connection = connection
        self.recoveries: list[Recovery] = []  # not yet acknowledged
        self.failures = DatabaseFailures()

    @classmethod
    async def open(cls, path: Path) -> Database:
        private_directory(path.parent)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection, recovery = await loop.run_in_executor(executor, _connect_checked, path)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        database = cls(path, executor, connection)
        try:
            await database.run(_migrate)
            if recovery is not None:
                await database.run(lambda c: _remember(c, recovery))
            database.recoveries = await database.run(_unacknowledged)
        except BaseException:
            # A file newer than this software, or a script that fails: the caller gets the migration's own
            # error, and neither the connection (which would keep the file open) nor the thread is left over.
            await database._close_quietly()
            raise
        return database

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the database thread inside one transaction.

        A database error is counted in ``failures`` (and raised): constraint violations, which callers
        expect, and misuse of the API (a bug, not the file's state) are not.
        """

        def transaction() -> T:
            with self._connection:
                return work(self._connection)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, transaction)
        except sqlite3.DatabaseError as exc:
            if not isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                self.failures = DatabaseFailures(self.failures.count + 1, str(exc), time.time())
            raise

    async def acknowledge(self) -> None:
        """An admin has seen the recoveries and failures: forget them (the moved files stay)."""
        await self.run(_acknowledge)
        self.recoveries = []
        self.failures = DatabaseFailures()

    async def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        return await self.run(lambda c: c.execute(sql, params).rowcount)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> int:
        rows = list(rows)
        return await self.run(lambda c: c.executemany(sql, rows).rowcount)

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return await self.run(lambda c: c.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = await self.run(lambda c: c.execute(sql, params).fetchone())
        return row

    async def close(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._connection.close)
        finally:
            self._executor.shutdown(wait=True)

    async def _close_quietly(self) -> None:
        """Close while another error is on its way up: a failure here is logged, never raised over it."""
        try:
            await self.close()
        except Exception:
            log.exception("could not close %s after a failed open", self.path)


def private_directory(path: Path) -> Path:
    """Create ``path`` (or tighten it) so only the service's user can enter it: the data directory holds
    the database with password hashes and token digests, and the JWT secret."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        log.warning("data directory %s was open to other users; restricting it to its owner", path)
        path.chmod(0o700)
    return path


def _private_files(path: Path) -> None:
    """Create the file 0600 if it is missing (SQLite would use the umask), and narrow wider modes."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, DATABASE_MODE))
    for companion in (path.with_name(path.name + suffix) for suffix in _COMPANIONS):
        try:
            mode = stat.S_IMODE(companion.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            log.warning("%s was readable by other users; its mode is now 0600", companion)
            companion.chmod(DATABASE_MODE)


def _connect_checked(path: Path) -> tuple[sqlite3.Connection, Recovery | None]:
    """A connection to a sound file: a damaged one is moved aside and a fresh one opened in its place."""
    try:
        _private_files(path)
        connection = _connect(path)
    except (sqlite3.DatabaseError, OSError) as exc:
        if not _is_damage(exc):
            raise _open_error(path, exc) from exc
        problem = str(exc)
    else:
        try:
            found = _integrity_problem(connection)
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise _open_error(path, exc) from exc
        if found is None:
            return connection, None
        connection.close()
        problem = found
    moved_to = _move_aside(path)
    log.error(
        "the database file is damaged (%s). It was moved aside, kept for recovery, and the appliance starts "
        "on a new, empty database: history, settings and accounts start over. Acknowledge this (POST "
        "/api/v1/system/database/acknowledge) once you have seen it; health reports the database as "
        "degraded until then",
        problem,
        extra={"fields": {"file": str(path), "moved_to": str(moved_to)}},
    )
    try:
        _private_files(path)
        return _connect(path), Recovery(str(moved_to), problem, time.time())
    except (sqlite3.Error, OSError) as exc:
        raise _open_error(path, exc) from exc


def _is_damage(exc: BaseException) -> bool:
    return str(getattr(exc, "sqlite_errorname", "")).startswith(_DAMAGE_CODES)


def _open_error(path: Path, exc: BaseException) -> DatabaseOpenError:
    return DatabaseOpenError(
        f"cannot open the database {path}: {exc}. Check that the data directory is writable by this user "
        "and the disk is not full; the appliance starts nothing without its database"
    )


def _integrity_problem(connection: sqlite3.Connection) -> str | None:
    """``PRAGMA quick_check``'s findings (the first few), or None when the file is sound."""
    try:
        rows = [str(row[0]) for row in connection.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        if not _is_damage(exc):
            raise
        return str(exc)
    if rows == ["ok"]:
        return None
    findings = [line for row in rows for line in row.splitlines() if not line.startswith("***")]
    return "; ".join(findings[:_PROBLEMS_SHOWN])


def _move_aside(path: Path) -> Path:
    """Rename the file and its companions to ``<name>.corrupt-<time>[-n]``; the new main file's path."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    return target


def _remember(connection: sqlite3.Connection, recovery: Recovery) -> None:
    connection.execute(
        "INSERT INTO database_recoveries (moved_to, problem, at) VALUES (?, ?, ?)",
        (recovery.moved_to, recovery.problem, recovery.at),
    )


def _unacknowledged(connection: sqlite3.Connection) -> list[Recovery]:
    rows = connection.execute(
        "SELECT moved_to, problem, at FROM database_recoveries WHERE acknowledged IS NULL ORDER BY at"
    ).fetchall()
    return [Recovery(row["moved_to"], row["problem"], row["at"]) for row in rows]


def _acknowledge(connection: sqlite3.Connection) -> None:
    connection.execute(
        "UPDATE database_recoveries SET acknowledged = ? WHERE acknowledged IS NULL", (time.time(),)
    )


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
    try:
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        connection.close()  # e.g. "file is not a database": do not keep the file open
        raise
    return connection


def _migrate(connection: sqlite3.Connection) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions (part TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    connection.execute(
        "CREATE TABLE IF NOT EXISTS database_recoveries "
        "(moved_to TEXT NOT NULL, problem TEXT NOT NULL, at REAL NOT NULL, acknowledged REAL)"
    )
    applied = dict(connection.execute("SELECT part, version FROM schema_versions").fetchall())
    for part, migrations in sorted(_SCHEMAS.items()):
        done = applied.get(part, 0)
        if done > len(migrations):
            raise DatabaseOpenError(
                f"{part} schema version {done} is newer than this software's {len(migrations)}; "
                "upgrade InvisPose or restore a matching backup"
            )
        for version, script in enumerate(migrations[done:], start=done + 1):
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_versions (part, version) VALUES (?, ?) "
                "ON CONFLICT(part) DO UPDATE SET version = excluded.version",
                (part, version),
            )
