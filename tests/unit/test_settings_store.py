"""The settings store: several kinds written in one transaction are saved together or not at all."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from appliance.store import settings
from appliance.store.database import Database
from appliance.store.settings import SettingsStore


async def test_save_kinds_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    store = SettingsStore(db)
    await store.save_kinds({"zone": {"sofa": {"id": "sofa"}}, "alerts": {"default": {"max_occupancy": 5}}})

    real_upsert = settings._upsert

    def alerts_fail(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        real_upsert(connection, rows)  # written inside the transaction, then the next write fails
        if any(row[0] == "alerts" for row in rows):
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(settings, "_upsert", alerts_fail)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await store.save_kinds(
            {"zone": {"sofa": None, "bed": {"id": "bed"}}, "alerts": {"default": {"max_occupancy": 1}}}
        )

    assert [(s.id, s.data) for s in await store.load("zone")] == [("sofa", {"id": "sofa"})]
    assert [(s.id, s.data) for s in await store.load("alerts")] == [("default", {"max_occupancy": 5})]
    monkeypatch.undo()
    await store.save_kinds({"zone": {"sofa": None, "bed": {"id": "bed"}}, "alerts": {"default": {}}})
    assert [(s.id, s.deleted) for s in await store.load("zone")] == [("sofa", True), ("bed", False)]
    assert [s.data for s in await store.load("alerts")] == [{}]
    await db.close()
