"""History: settings, downsampling, batched writes, queries, person tracks, retention and a slow disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.contracts.events import Event, EventType
from appliance.contracts.pose import PoseFrame
from appliance.hub import Hub
from appliance.integrations.history import HistoryRecorder, HistorySettings
from appliance.integrations.runner import SinkRunner
from appliance.store import history
from appliance.store.database import Database
from appliance.store.history import HistoryBatch, HistoryStore
from tests.factories import T0, frame_at, frames
from tests.history_support import FAST, KEEP_ALL_DAYS, record_all, recorded


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "history.sqlite3")
    yield database
    await database.close()


@pytest.fixture
def store(db: Database) -> HistoryStore:
    return HistoryStore(db)


def count_runs(monkeypatch: pytest.MonkeyPatch, db: Database) -> list[float]:
    """Record the time of every ``Database.run`` (one transaction each)."""
    calls: list[float] = []
    original = db.run

    async def counted(work: Callable[[sqlite3.Connection], Any]) -> Any:
        calls.append(time.monotonic())
        return await original(work)

    monkeypatch.setattr(db, "run", counted)
    return calls


def test_settings_are_validated_and_described() -> None:
    settings = HistorySettings()
    assert (settings.pose_rate_hz, settings.retention_days, settings.max_size_mb) == (1.0, 30.0, 512.0)
    assert all(f.description for f in HistorySettings.model_fields.values())
    with pytest.raises(ValidationError):
        HistorySettings(pose_rate_hz=0)
    with pytest.raises(ValidationError):
        HistorySettings.model_validate({"retention": 3})


async def test_frames_are_sampled_down_and_written_in_few_transactions(
    store: HistoryStore, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = HistorySettings(flush_interval_s=30, batch_rows=500, retention_days=KEEP_ALL_DAYS)
    await store.next_track_id()
    calls = count_runs(monkeypatch, db)
    items: list[PoseFrame | Event] = list(frames(T0, 120, 10, [(1, 1.0, 1.0, "kitchen", "standing")]))
    await record_all(store, items, settings)
    pose = await db.fetchall("SELECT ts FROM history_pose ORDER BY ts")
    points = await db.fetchall("SELECT ts, dwell_s FROM history_track_points ORDER BY ts")
    assert len(pose) == 120  # 1200 frames at 10 Hz, kept at 1 Hz
    assert len(points) == 120
    assert sum(p["dwell_s"] for p in points) == pytest.approx(120, abs=0.01)
    # 1200 frames, 240 sample rows and a track: a handful of transactions (start-up, retention, batches).
    assert len(calls) < 15


async def test_a_change_of_presence_is_kept_between_samples(store: HistoryStore, db: Database) -> None:
    items: list[PoseFrame | Event] = [
        frame_at(T0, []),
        frame_at(T0 + 0.3, [(1, 1.0, 1.0, None, "walking")]),
        frame_at(T0 + 0.6, [(1, 1.0, 1.0, None, "walking")]),
    ]
    await record_all(store, items)
    rows = await db.fetchall("SELECT ts, presence, person_count FROM history_pose ORDER BY ts")
    assert [(r["ts"], r["presence"], r["person_count"]) for r in rows] == [(T0, 0, 0), (T0 + 0.3, 1, 1)]


async def test_queries_page_filter_and_order(store: HistoryStore) -> None:
    fall = Event(EventType.PERSON_FALL_DETECTED, {"person_id": 2, "zone_id": "hall"}, time=T0 + 20)
    lost = Event(EventType.PERSON_LOST, {"person_id": 1}, time=T0 + 30.05)
    items: list[PoseFrame | Event] = [
        *frames(T0, 30, 10, [(1, 1.0, 1.0, "kitchen", "walking"), (2, 3.0, 3.0, "hall", "standing")]),
        fall,
        lost,
        *frames(T0 + 30.1, 30, 10, [(2, 3.0, 3.0, "hall", "lying")]),
    ]
    await record_all(store, items)

    newest = await store.pose_history(limit=10)
    assert len(newest.items) == 10 and newest.has_more
    assert newest.items[0]["timestamp"] > newest.items[-1]["timestamp"]
    oldest = await store.pose_history(T0, T0 + 5, limit=1000, order="oldest")
    assert [f["timestamp"] for f in oldest.items] == pytest.approx([T0 + i for i in range(5)])
    assert not oldest.has_more
    skipped = await store.pose_history(T0, T0 + 5, limit=2, skip=3, order="oldest")
    assert [f["timestamp"] for f in skipped.items] == pytest.approx([T0 + 3, T0 + 4])
    with pytest.raises(ValueError, match="limit"):
        await store.pose_history(limit=1001)

    falls = await store.events(types=[EventType.PERSON_FALL_DETECTED.value])
    assert [e["id"] for e in falls.items] == [fall.id]
    assert falls.items[0]["data"] == {"person_id": 2, "zone_id": "hall"}
    assert [e["type"] for e in (await store.events(T0 + 15, T0 + 31, order="oldest")).items] == [
        "person.fall_detected",
        "person.lost",
    ]

    persons = await store.persons()
    assert [(p.live_id, p.active) for p in persons] == [(2, False), (1, False)]  # the recorder stopped
    first = await store.person(persons[1].id, with_trajectory=True)
    assert first is not None
    assert first.zones_visited == ("kitchen",)
    assert first.activity_seconds["walking"] == pytest.approx(30, abs=0.2)
    assert first.average_confidence == pytest.approx(0.8)
    assert 29 <= len(first.trajectory) <= 31
    assert first.trajectory[0].x == pytest.approx(1.0)
    second = await store.person(persons[0].id)
    assert second is not None and second.falls == 1 and second.trajectory == ()
    assert set(second.activity_seconds) == {"standing", "lying"}
    assert await store.person(999) is None

    own = await store.pose_history(person_id=first.id, limit=1000, order="oldest")
    assert own.items and all(any(p["id"] == 1 for p in f["persons"]) for f in own.items)
    assert own.items[-1]["timestamp"] <= T0 + 30


async def test_a_person_who_is_no_longer_shown_ends_even_without_the_lost_event(store: HistoryStore) -> None:
    hub = Hub()
    recorder = HistoryRecorder(store, hub, FAST)
    async with SinkRunner([recorder], hub):
        hub.publish(frame_at(T0, [(4, 1.0, 1.0, None, None)]))
        hub.publish(frame_at(T0 + 0.1, None))  # the motion detector cannot tell: the track stays open
        await recorded(recorder)
        assert [p.live_id for p in await store.persons(active_only=True)] == [4]
        hub.publish(frame_at(T0 + 0.2, []))
        await recorded(recorder)
        assert await store.persons(active_only=True) == []
        assert recorder.recorder_stats().written_rows > 0


async def test_retention_by_age_removes_the_oldest_only(store: HistoryStore, db: Database) -> None:
    day = history.SECONDS_PER_DAY
    batch = HistoryBatch(
        pose=[(T0 + d * day, "esp32", "model", 1, 0, 1, "{}") for d in range(10)],
        events=[(f"e{d}", "person.detected", T0 + d * day, "{}") for d in range(10)],
        points=[(1, T0 + d * day, 1.0, 1.0, 1.0, None, None, 0.9, 1.0) for d in range(10)],
        tracks=[
            (1, 1, "esp32", T0, T0 + 2 * day, 0, "[]", "{}", 0.0, 0, 0),  # ended before the cutoff: goes
            (2, 2, "esp32", T0, T0 + 6 * day, 0, "[]", "{}", 0.0, 0, 0),  # began before, ended after: stays
            (3, 3, "esp32", T0, T0 + 1 * day, 1, "[]", "{}", 0.0, 0, 0),  # still active: stays
        ],
    )
    await store.write(batch)
    result = await store.apply_retention(max_age_s=5 * day, max_bytes=2**30, now=T0 + 9.5 * day)
    assert result.deleted == {"pose": 5, "events": 5, "track_points": 5, "tracks": 1}
    kept = await db.fetchall("SELECT ts FROM history_pose ORDER BY ts")
    assert [r["ts"] for r in kept] == [T0 + d * day for d in range(5, 10)]
    assert [p.id for p in await store.persons()] == [2, 3]  # most recently seen first


def _filler(start: int, count: int, payload: int = 400) -> HistoryBatch:
    return HistoryBatch(
        pose=[(T0 + i, "esp32", "model", 1, 0, 1, "x" * payload) for i in range(start, start + count)],
        events=[(f"e{i}", "person.detected", T0 + i, "{}") for i in range(start, start + count, 10)],
        points=[(1, T0 + i, 1.0, 1.0, 1.0, "z", "standing", 0.9, 1.0) for i in range(start, start + count)],
    )


@pytest.mark.parametrize("incremental", [True, False])
async def test_retention_by_size_keeps_the_newest_within_the_limit(tmp_path: Path, incremental: bool) -> None:
    path = tmp_path / "sized.sqlite3"
    if incremental:
        with sqlite3.connect(path) as fresh:
            fresh.execute("PRAGMA auto_vacuum = INCREMENTAL")
            fresh.execute("CREATE TABLE placeholder (x)")
    db = await Database.open(path)
    store = HistoryStore(db)
    limit = 1 * history.BYTES_PER_MB
    for start in range(0, 8000, 1000):
        await store.write(_filler(start, 1000))
    tracks = [
        (1, 1, "esp32", T0, T0 + 10, 0, "[]", "{}", 0.0, 0, 0),
        (2, 2, "esp32", T0, T0 + 7999, 0, "[]", "{}", 0.0, 0, 0),
    ]
    await store.write(HistoryBatch(tracks=tracks))
    assert await store.used_bytes() > 3 * limit
    result = await store.apply_retention(max_age_s=1e12, max_bytes=limit, now=T0)
    assert result.used_bytes_after <= limit
    assert result.deleted["pose"] > 0 and result.deleted["track_points"] > 0
    newest = await db.fetchone("SELECT MAX(ts) AS ts, MIN(ts) AS first FROM history_pose")
    assert newest is not None and newest["ts"] == T0 + 7999 and newest["first"] > T0
    # The track that ended among the deleted samples goes with them; the one still in range stays.
    assert result.deleted["tracks"] == 1
    assert [p.id for p in await store.persons()] == [2]
    await db.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    if incremental:
        assert path.stat().st_size <= 1.2 * limit
    # Refill and trim again: the file stays near its first peak because freed pages are reused.
    peak = path.stat().st_size
    for start in range(8000, 16000, 1000):
        await store.write(_filler(start, 1000))
        await store.apply_retention(max_age_s=1e12, max_bytes=limit, now=T0)
    await db.run(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    assert path.stat().st_size <= max(peak, 1.2 * limit) * 1.1
    await db.close()


async def test_retention_removes_events_once_samples_are_gone(store: HistoryStore) -> None:
    await store.write(
        HistoryBatch(
            events=[(f"e{i}", "person.detected", T0 + i, json.dumps("y" * 2000)) for i in range(2000)]
        )
    )
    result = await store.apply_retention(max_age_s=1e12, max_bytes=history.BYTES_PER_MB, now=T0)
    assert result.deleted["events"] > 0
    assert result.used_bytes_after <= history.BYTES_PER_MB
    remaining = await store.events(limit=1)
    assert remaining.items[0]["id"] == "e1999"


async def test_a_slow_disk_drops_for_the_recorder_and_never_blocks_publish(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = history._write_batch

    def slow_write(connection: sqlite3.Connection, batch: HistoryBatch) -> None:
        time.sleep(0.2)
        real_write(connection, batch)

    monkeypatch.setattr(history, "_write_batch", slow_write)
    hub = Hub()
    settings = HistorySettings(
        flush_interval_s=0.05, batch_rows=50, queue_items=64, retention_days=KEEP_ALL_DAYS
    )
    slowest = 0.0
    recorder = HistoryRecorder(store, hub, settings)
    async with SinkRunner([recorder], hub):
        for i, frame in enumerate(frames(T0, 200, 10, [(1, 1.0, 1.0, None, "walking")])):
            began = time.perf_counter()
            hub.publish(frame)
            slowest = max(slowest, time.perf_counter() - began)
            if i % 20 == 0:
                await asyncio.sleep(0.001)
        stats = recorder.recorder_stats()
        assert stats.dropped > 0
        assert stats.pending <= settings.queue_items
        assert stats.buffered_rows <= 2 * settings.batch_rows
    assert slowest < 0.1  # a publish that waited for the disk would take a write's 0.2 s
    assert recorder.recorder_stats().written_rows > 0


async def test_a_failed_write_is_counted_and_recording_goes_on(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = history._write_batch
    failures = iter([True])

    def flaky_write(connection: sqlite3.Connection, batch: HistoryBatch) -> None:
        if next(failures, False):
            raise sqlite3.OperationalError("disk I/O error")
        real_write(connection, batch)

    monkeypatch.setattr(history, "_write_batch", flaky_write)
    hub = Hub()
    recorder = HistoryRecorder(store, hub, FAST)
    async with SinkRunner([recorder], hub):
        hub.publish(frame_at(T0, []))
        await recorded(recorder)
        hub.publish(frame_at(T0 + 5, []))
        await recorded(recorder)
    stats = recorder.recorder_stats()
    assert stats.failed_flushes == 1 and stats.lost_rows == 1
    assert len((await store.pose_history()).items) == 1


async def test_pages_stream_oldest_first_without_repeats(store: HistoryStore) -> None:
    same_time = [(T0, "esp32", "model", 1, 0, 1, f"{i}") for i in range(7)]
    await store.write(HistoryBatch(pose=[*same_time, (T0 + 1, "esp32", "model", 1, 0, 1, "7")]))
    pages = [page async for page in store.pose_pages(page_rows=3)]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [row[-1] for page in pages for row in page] == [str(i) for i in range(8)]
    assert [row[-1] for page in [p async for p in store.pose_pages(T0 + 0.5)] for row in page] == ["7"]


async def test_an_unencodable_event_is_refused_by_the_hub_and_recording_goes_on(store: HistoryStore) -> None:
    hub = Hub()
    recorder = HistoryRecorder(store, hub, FAST)
    async with SinkRunner([recorder], hub):
        assert hub.publish(Event(EventType.SYSTEM_STARTED, {"not json": object()})) is None
        hub.publish(Event(EventType.SYSTEM_STOPPED, {"uptime_s": 1.0}))
        await recorded(recorder)
    assert hub.unencodable == 1
    page = await store.events(None, None, None, 10, 0)
    assert [e["type"] for e in page.items] == ["system.stopped"]
