"""Settings changed through the API (zones, nodes, alerts, templates), kept as overrides of the YAML file.

The YAML file stays the seed: it is read at every start, and what the API changed is laid over it. One row
per ``(kind, id)`` holds an item's JSON as the API last saved it, or a ``deleted`` marker, so that an item
the YAML still declares but a user deleted through the API stays deleted after a restart. Items the YAML
does not know are appended after the YAML's own, in the order they were first saved.

This module only stores and overlays plain JSON objects; what an item must look like is validated at the
API, with the same models that validate the YAML.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.store.database import Database, register_schema

SCHEMA = [
    """
    CREATE TABLE settings (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        data TEXT,
        deleted INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (kind, id)
    )
    """,
]
register_schema("settings", SCHEMA)

Item = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredSetting:
    """One row: ``data`` is None when the item is marked deleted."""

    kind: str
    id: str
    data: Item | None

    @property
    def deleted(self) -> bool:
        return self.data is None


def overlay(seed: Iterable[tuple[str, Item]], stored: Iterable[StoredSetting]) -> dict[str, Item]:
    """The effective items of one kind, by id: the seed's items in their order, each replaced by its stored
    version or dropped by a deletion marker, then the stored items the seed does not have, in saved order."""
    changes = {row.id: row for row in stored}
    effective: dict[str, Item] = {}
    for item_id, item in seed:
        row = changes.pop(item_id, None)
        if row is None:
            effective[item_id] = item
        elif row.data is not None:
            effective[item_id] = row.data
    for item_id, row in changes.items():
        if row.data is not None:
            effective[item_id] = row.data
    return effective


class SettingsStore:
    """The ``settings`` table of one open ``Database``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def load(self, kind: str) -> list[StoredSetting]:
        """Every row of ``kind``, deletion markers included, in the order each id was first saved."""
        rows = await self.database.fetchall(
            "SELECT kind, id, data, deleted FROM settings WHERE kind = ? ORDER BY created, rowid", (kind,)
        )
        return [_stored(row) for row in rows]

    async def save(self, kind: str, items: Mapping[str, Item | None]) -> None:
        """Write several items of ``kind`` in one transaction; a None value marks that id deleted."""
        await self.save_kinds({kind: items})

    async def save_kinds(self, changes: Mapping[str, Mapping[str, Item | None]]) -> None:
        """Write items of several kinds (``{kind: {id: item or None}}``) in one transaction: all of them
        are saved, or, if any write fails, none is. A None value marks that id deleted."""
        now = time.time()
        batches = [
            [
                (kind, item_id, None if data is None else json.dumps(data), int(data is None), now, now)
                for item_id, data in items.items()
            ]
            for kind, items in changes.items()
        ]

        def write(connection: sqlite3.Connection) -> None:
            for rows in batches:
                _upsert(connection, rows)

        await self.database.run(write)

    async def put(self, kind: str, item_id: str, data: Item) -> None:
        await self.save(kind, {item_id: data})

    async def delete(self, kind: str, item_id: str) -> None:
        """Mark ``item_id`` deleted (kept as a row, so the YAML's version does not come back)."""
        await self.save(kind, {item_id: None})


def _stored(row: sqlite3.Row) -> StoredSetting:
    data = None if row["deleted"] else json.loads(row["data"])
    return StoredSetting(str(row["kind"]), str(row["id"]), data)


def _upsert(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    connection.executemany(
        "INSERT INTO settings (kind, id, data, deleted, created, updated) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(kind, id) DO UPDATE SET data = excluded.data, deleted = excluded.deleted, "
        "updated = excluded.updated",
        rows,
    )
