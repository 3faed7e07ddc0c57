"""One SQLite file in the data directory, used from the event loop without ever blocking it.

Every statement runs on one dedicated worker thread that owns the connection (SQLite connections are not
shared across threads), so callers simply ``await``. The file is in WAL mode, so a second process (the
``invispose token create`` command, a backup) can read and write while the service runs.

Schemas are versioned per part: each part (history, accounts, settings, ...) registers an ordered list of
migration scripts under its own name with ``register_schema``; ``Database.open`` applies the ones a file has
not seen yet, each in its own transaction, and records them in ``schema_versions``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

DATABASE_FILE = "invispose.sqlite3"
_BUSY_TIMEOUT_MS = 5000

_SCHEMAS: dict[str, tuple[str, ...]] = {}


def register_schema(part: str, migrations: Sequence[str]) -> None:
    """Declare ``part``'s schema as ordered migration scripts; append new scripts, never edit old ones."""
    _SCHEMAS[part] = tuple(migrations)


class Database:
    """An open SQLite file; create with ``await Database.open(path)``, finish with ``await close()``."""

    def __init__(self, path: Path, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self.path = path
        self._executor = executor
        self._connection = connection

    @classmethod
    async def open(cls, path: Path) -> Database:
        private_directory(path.parent)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown(wait=True)
            raise
        database = cls(path, executor, connection)
        try:
            await database.run(_migrate)
        except BaseException:
            # A file newer than this software, or a script that fails: the caller gets the migration's own
            # error, and neither the connection (which would keep the file open) nor the thread is left over.
            await database._close_quietly()
            raise
        return database

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the database thread inside one transaction."""

        def transaction() -> T:
            with self._connection:
                return work(self._connection)

        return await asyncio.get_running_loop().run_in_executor(self._executor, transaction)

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
    applied = dict(connection.execute("SELECT part, version FROM schema_versions").fetchall())
    for part, migrations in sorted(_SCHEMAS.items()):
        done = applied.get(part, 0)
        if done > len(migrations):
            raise RuntimeError(
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
