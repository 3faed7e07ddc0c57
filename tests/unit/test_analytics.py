"""Analytics: timelines, heatmaps (numbers and PNG), occupancy reports on a synthetic day, streamed export."""

from __future__ import annotations

import csv
import io
import json
import threading
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.contracts.events import Event, EventType
from appliance.store import analytics
from appliance.store.database import Database
from appliance.store.history import HistoryBatch, HistoryStore, Row
from tests.factories import T0, frames
from tests.history_support import record_all

DAY = date(2024, 3, 5)  # a Tuesday
MIDNIGHT = datetime(2024, 3, 5, tzinfo=UTC).timestamp()
HOUR = 3600.0


@dataclass(frozen=True)
class RoomZone:
    id: str
    name: str
    polygon: list[tuple[float, float]]
    restricted: bool = False


KITCHEN = RoomZone("kitchen", "Kitchen", [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)])
HALL = RoomZone("hall", "Hall", [(3.0, 3.0), (5.0, 3.0), (5.0, 5.0), (3.0, 5.0)])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryStore]:
    database = await Database.open(tmp_path / "analytics.sqlite3")
    yield HistoryStore(database)
    await database.close()


def stay(
    track: int, start: float, seconds: int, zone: str | None, activity: str, x: float = 1.0
) -> list[Row]:
    """Trajectory points at 1 Hz, as the recorder writes them: each stands for the second before it."""
    return [(track, start + i + 1, x, 1.0, 1.0, zone, activity, 0.9, 1.0) for i in range(seconds)]


def test_merge_intervals_joins_overlaps_and_near_gaps() -> None:
    s, e = analytics.merge_intervals(
        np.array([5.0, 0.0, 1.0, 9.0]), np.array([6.0, 2.0, 3.0, 10.0]), gap_s=2.9
    )
    assert s.tolist() == [0.0, 9.0] and e.tolist() == [6.0, 10.0]


async def test_a_person_standing_a_minute_in_one_cell_fills_that_cell(store: HistoryStore) -> None:
    await record_all(store, list(frames(T0, 60, 10, [(1, 1.25, 3.75, None, "standing")])))
    heat = await analytics.heatmap(store, T0 - 10, T0 + 100, width_m=5.0, depth_m=5.0, columns=10, rows=10)
    assert heat.seconds[7, 2] == pytest.approx(60, abs=1.0)
    assert heat.seconds.sum() == pytest.approx(heat.seconds[7, 2])
    body = heat.to_dict()
    assert (body["columns"], body["rows"], body["simulated"]) == (10, 10, True)
    assert body["cell_m"] == {"x": 0.5, "y": 0.5}
    assert json.loads(json.dumps(body))["seconds"][7][2] == pytest.approx(60, abs=1.0)


async def test_heatmap_png_decodes_at_the_documented_size(store: HistoryStore) -> None:
    await store.write(
        HistoryBatch(points=stay(1, T0, 60, "kitchen", "standing") + stay(2, T0, 30, "hall", "sitting", 4.0))
    )
    heat = await analytics.heatmap(store, T0, T0 + HOUR, width_m=6.0, depth_m=4.0, columns=12, rows=8)
    png = analytics.render_heatmap_png(heat, [KITCHEN, HALL], width_px=400, title="Living room")
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    floor_h = round((400 - 2 * analytics.IMAGE_MARGIN_PX) * 4.0 / 6.0)
    expected_h = (
        analytics.IMAGE_TITLE_PX + floor_h + analytics.IMAGE_LEGEND_PX + 2 * analytics.IMAGE_MARGIN_PX
    )
    assert image.shape == (expected_h, 400, 3)
    assert analytics.heatmap_image_size(heat, 400) == (400, expected_h)
    # The hottest cell is painted with the colour map's top colour.
    top = analytics.IMAGE_MARGIN_PX + analytics.IMAGE_TITLE_PX
    cell_px = (400 - 2 * analytics.IMAGE_MARGIN_PX) / 12
    row, col = np.unravel_index(np.argmax(heat.seconds), heat.seconds.shape)
    centre = image[int(top + (row + 0.5) * cell_px), int(analytics.IMAGE_MARGIN_PX + (col + 0.5) * cell_px)]
    hottest = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_INFERNO)[0, 0]
    assert np.abs(centre.astype(int) - hottest.astype(int)).max() <= 2
    with pytest.raises(ValueError, match="width_px"):
        analytics.render_heatmap_png(heat, width_px=50)


async def test_activity_timelines_merge_per_person_and_per_zone(store: HistoryStore) -> None:
    points = (
        stay(1, T0, 30, "kitchen", "sitting")
        + stay(1, T0 + 30, 30, "kitchen", "walking")
        + stay(2, T0 + 10, 40, "kitchen", "sitting", x=1.5)
    )
    await store.write(HistoryBatch(points=points))
    person = await analytics.activity_timeline(store, T0, T0 + HOUR, by="person", person_id=1)
    assert [(i.activity, i.start, i.end) for i in person] == [
        ("sitting", T0, T0 + 30),
        ("walking", T0 + 30, T0 + 60),
    ]
    zone = await analytics.activity_timeline(store, T0, T0 + HOUR, by="zone", zone_id="kitchen")
    assert [(i.activity, i.start - T0, i.end - T0) for i in zone] == [("sitting", 0, 50), ("walking", 30, 60)]
    assert zone[0].to_dict()["duration_s"] == 50
    clipped = await analytics.activity_timeline(store, T0 + 40, T0 + 45, by="person")
    assert {(i.subject, i.activity, i.start - T0, i.end - T0) for i in clipped} == {
        ("1", "walking", 40, 45),
        ("2", "sitting", 40, 45),
    }


async def test_daily_report_on_a_synthetic_day(store: HistoryStore) -> None:
    points = (
        stay(1, MIDNIGHT + 8.5 * HOUR, int(1.5 * HOUR), "kitchen", "standing")  # 08:30-10:00
        + stay(2, MIDNIGHT + 9 * HOUR, int(0.5 * HOUR), "kitchen", "sitting")  # 09:00-09:30
        + stay(2, MIDNIGHT + 9.5 * HOUR, 600, "hall", "walking")  # 09:30-09:40
        + stay(2, MIDNIGHT + 9.75 * HOUR, 300, "kitchen", "sitting")  # back 09:45-09:50
        + stay(3, MIDNIGHT - HOUR, 2 * 3600, None, "walking")  # 23:00 the day before to 01:00
    )
    await store.write(
        HistoryBatch(
            points=points,
            tracks=[(t, t, "esp32", MIDNIGHT, MIDNIGHT, 0, "[]", "{}", 0.0, 0, 0) for t in (1, 2, 3)],
            events=[
                (
                    "f1",
                    EventType.PERSON_FALL_DETECTED.value,
                    MIDNIGHT + 9.2 * HOUR,
                    json.dumps({"zone_id": "kitchen"}),
                ),
                (
                    "f0",
                    EventType.PERSON_FALL_DETECTED.value,
                    MIDNIGHT - HOUR,
                    json.dumps({"zone_id": "kitchen"}),
                ),
            ],
        )
    )
    report = await analytics.occupancy_report(store, DAY, "day", [KITCHEN, HALL], UTC)
    kitchen, hall = report.zones
    assert kitchen.occupied_s == pytest.approx(1.5 * HOUR)
    assert kitchen.visits == 3  # person 1 once, person 2 twice (left for the hall in between)
    assert kitchen.persons == 2
    assert kitchen.peak == 2 and kitchen.peak_time == pytest.approx(MIDNIGHT + 9 * HOUR)
    assert kitchen.busiest_hour == MIDNIGHT + 9 * HOUR and kitchen.busiest_hour_s == pytest.approx(HOUR)
    assert kitchen.falls == 1 and hall.falls == 0
    assert hall.occupied_s == pytest.approx(600)
    assert (hall.visits, hall.peak) == (1, 1)
    assert report.room.occupied_s == pytest.approx(1.5 * HOUR + HOUR)  # person 3 after midnight counts
    assert report.room.persons == 3 and report.falls == 1 and not report.simulated
    body = report.to_dict()
    assert body["zones"][0]["busiest_hour"]["hour"] == 9
    assert body["period"] == "day" and body["days"] == []

    week = await analytics.occupancy_report(store, DAY, "week", [KITCHEN, HALL], UTC)
    assert week.day == date(2024, 3, 4) and len(week.days) == 7
    assert week.room.occupied_s == pytest.approx(sum(d.room.occupied_s for d in week.days))
    assert week.days[0].room.occupied_s == pytest.approx(HOUR)  # 23:00-24:00 on Monday
    assert week.falls == 2 and week.zones[0].falls == 2


async def _export_bytes(
    store: HistoryStore, dataset: analytics.Dataset, fmt: analytics.ExportFormat
) -> bytes:
    return b"".join([chunk async for chunk, _ in analytics.export_chunks(store, dataset, fmt)])


async def test_csv_and_jsonl_exports_of_every_dataset(store: HistoryStore) -> None:
    await record_all(
        store,
        [
            *frames(T0, 3, 10, [(1, 1.0, 1.0, "kitchen", "walking")]),
            Event(EventType.PERSON_LOST, {"person_id": 1}),
        ],
    )
    pose = list(csv.reader(io.StringIO((await _export_bytes(store, "pose", "csv")).decode())))
    assert pose[0] == ["ts", "source", "estimator", "presence", "motion", "person_count", "frame"]
    assert len(pose) == 4 and json.loads(pose[1][-1])["persons"][0]["zone"] == "kitchen"
    frames_jsonl = (await _export_bytes(store, "pose", "jsonl")).decode().splitlines()
    assert [json.loads(line)["timestamp"] for line in frames_jsonl] == pytest.approx([T0, T0 + 1, T0 + 2])
    events = [
        json.loads(line) for line in (await _export_bytes(store, "events", "jsonl")).decode().splitlines()
    ]
    assert events[0]["type"] == "person.lost" and events[0]["data"] == {"person_id": 1}
    tracks = [
        json.loads(line) for line in (await _export_bytes(store, "tracks", "jsonl")).decode().splitlines()
    ]
    assert tracks[0]["zone"] == "kitchen" and tracks[0]["x"] == pytest.approx(1.0)
    header = (await _export_bytes(store, "tracks", "csv")).decode().splitlines()[0]
    assert header == "track_id,ts,x,y,z,zone,activity,confidence,dwell_s"


@pytest.mark.slow
async def test_a_large_export_streams_in_chunks_with_bounded_memory(store: HistoryStore) -> None:
    rows = 200_000
    frame = json.dumps({"timestamp": 0, "persons": [{"id": 1, "zone": "kitchen"}], "pad": "p" * 120})
    for start in range(0, rows, 50_000):
        await store.write(
            HistoryBatch(
                pose=[(T0 + i * 0.1, "esp32", "model", 1, 0, 1, frame) for i in range(start, start + 50_000)]
            )
        )
    chunks = 0
    total = 0
    tracemalloc.start()
    try:
        async for chunk, _ in analytics.export_chunks(store, "pose", "jsonl"):
            chunks += 1
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == rows * (len(frame) + 1)
    assert chunks >= rows // 2000
    assert peak < total / 10  # one page of rows and its chunk, never the range


async def test_timelines_and_reports_compute_off_the_event_loop(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A month of points must not stall the loop: the interval arithmetic runs on a worker thread."""
    seen: list[int] = []
    timeline, occupancy = analytics._timeline, analytics._occupancy

    def spy_timeline(*args: Any) -> Any:
        seen.append(threading.get_ident())
        return timeline(*args)

    def spy_occupancy(*args: Any) -> Any:
        seen.append(threading.get_ident())
        return occupancy(*args)

    monkeypatch.setattr(analytics, "_timeline", spy_timeline)
    monkeypatch.setattr(analytics, "_occupancy", spy_occupancy)
    await analytics.activity_timeline(store, 0.0, 1e10)
    await analytics.occupancy_report(store, date(2026, 11, 24))
    assert seen
    assert threading.get_ident() not in seen
