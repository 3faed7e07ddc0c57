"""History survives a restart: close the database, reopen the same file, and everything is still there."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from appliance.contracts.events import Event, EventType
from appliance.hub import Hub
from appliance.integrations.history import HistoryRecorder, HistorySettings
from appliance.integrations.runner import SinkRunner
from appliance.store.database import Database
from appliance.store.history import HistoryStore
from tests.factories import frame_at, frames
from tests.history_support import recorded

SETTINGS = HistorySettings(flush_interval_s=0.05)


async def test_history_round_trips_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "invispose.sqlite3"
    t0 = float(
        int(time.time()) - 600
    )  # whole seconds, and recent: the restarted recorder's retention keeps it
    db = await Database.open(path)
    hub = Hub()
    async with SinkRunner([HistoryRecorder(HistoryStore(db), hub, SETTINGS)], hub):
        for frame in frames(t0, 10, 10, [(1, 2.0, 2.0, "kitchen", "standing")]):
            hub.publish(frame)
        hub.publish(Event(EventType.PERSON_FALL_DETECTED, {"person_id": 1}, time=t0 + 5))
        await asyncio.sleep(0)
    # Leaving the runner flushed what was still buffered: nothing waited for the timer.
    await db.close()

    db = await Database.open(path)
    store = HistoryStore(db)
    assert len((await store.pose_history(limit=1000)).items) == 10
    assert (await store.events()).items[0]["type"] == "person.fall_detected"
    (before,) = await store.persons()
    assert (before.live_id, before.falls, before.active) == (1, 1, False)

    # The new run's tracker starts its ids at 1 again: the same live id is a new, separate visit.
    hub = Hub()
    recorder = HistoryRecorder(store, hub, SETTINGS)
    async with SinkRunner([recorder], hub):
        hub.publish(frame_at(t0 + 100, [(1, 4.0, 1.0, "hall", "walking")]))
        await recorded(recorder)
        now = await store.persons(active_only=True)
        assert [(p.live_id, p.zones_visited) for p in now] == [(1, ("hall",))]
        assert now[0].id > before.id
    restored = await store.person(before.id, with_trajectory=True)
    assert restored is not None and restored.zones_visited == ("kitchen",)
    assert len(restored.trajectory) == 10
    await db.close()
