"""Analytics over the stored history: activity timelines, floor heatmaps (JSON and PNG), occupancy reports
and streamed exports.

Everything here reads ``HistoryStore`` and nothing writes. Presence is measured from trajectory points:
each point stands for ``dwell_s`` seconds ending at its ``ts`` (see ``appliance.store.history``), so a
point is the interval ``[ts - dwell_s, ts]``. Sums that aggregate well (the heatmap's seconds per cell,
falls per zone) run in SQL; interval work (merging, unions, peak concurrency) runs in numpy over arrays
gathered page by page, so a long range never becomes one large list of Python rows.

Days and hours are those of ``tz`` (the appliance's local time when ``None``). Heatmap cells and images
have depth (``y``) growing downward from the room's ``y = 0`` wall and width (``x``) growing rightward.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from appliance.contracts.events import EventType
from appliance.contracts.system import ZoneLike
from appliance.store.history import (
    EVENT_COLUMNS,
    MAX_POINT_GAP_S,
    POSE_COLUMNS,
    TRACK_POINT_COLUMNS,
    HistoryStore,
    Row,
)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Dataset = Literal["pose", "events", "tracks"]
ExportFormat = Literal["csv", "jsonl"]
ReportPeriod = Literal["day", "week"]
TimelineSubject = Literal["person", "zone"]

EXPORT_MEDIA_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
# Intervals of the same subject and activity closer than this are one interval on a timeline.
TIMELINE_MERGE_GAP_S = 2.0
SECONDS_PER_HOUR = 3600.0
DAYS_PER_WEEK = 7
# Heatmap grid limits: enough cells for a 10 cm grid over a large room, few enough to render quickly.
MAX_GRID_CELLS = 200
DEFAULT_HEATMAP_CELLS = 20
# PNG layout, in pixels.
DEFAULT_IMAGE_WIDTH_PX = 640
MIN_IMAGE_WIDTH_PX = 200
MAX_IMAGE_WIDTH_PX = 4096
IMAGE_MARGIN_PX = 16
IMAGE_TITLE_PX = 28
IMAGE_LEGEND_PX = 48
LEGEND_BAR_PX = 14
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_BACKGROUND = (32, 32, 32)
_OUTLINE = (255, 255, 255)
_ZONE_COLOUR = (80, 220, 80)
_TEXT = (235, 235, 235)
_COLOUR_MAP = cv2.COLORMAP_INFERNO
_UINT8_MAX = 255
_ROUND = 3


# --------------------------------------------------------------------------------------------------------
# Interval helpers


def merge_intervals(starts: F64, ends: F64, gap_s: float = 0.0) -> tuple[F64, F64]:
    """Union of the intervals ``[starts[i], ends[i]]``, joining those at most ``gap_s`` apart; sorted."""
    if starts.size == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new = np.empty(s.size, dtype=bool)
    new[0] = True
    new[1:] = s[1:] > reach[:-1] + gap_s
    group = np.cumsum(new) - 1
    merged_ends = np.full(int(group[-1]) + 1, -np.inf)
    np.maximum.at(merged_ends, group, e)
    return s[new], merged_ends


def _peak(starts: F64, ends: F64) -> tuple[int, float | None]:
    """Most intervals open at once, and when that was first reached."""
    if starts.size == 0:
        return 0, None
    times = np.concatenate([starts, ends])
    steps = np.concatenate([np.ones(starts.size), -np.ones(ends.size)])
    # At equal times a departure comes before an arrival: touching intervals do not overlap.
    order = np.lexsort((steps, times))
    running = np.cumsum(steps[order])
    best = int(np.argmax(running))
    return int(running[best]), float(times[order][best])


# --------------------------------------------------------------------------------------------------------
# Trajectory points as arrays


@dataclass(frozen=True, slots=True)
class _Points:
    """Trajectory points of a range as arrays, each the interval ``[start, end]``, clipped to the range."""

    track: I64
    start: F64
    end: F64
    zone: list[str | None]
    activity: list[str | None]


async def _load_points(store: HistoryStore, start: float, end: float, track_id: int | None = None) -> _Points:
    columns = {name: i for i, name in enumerate(TRACK_POINT_COLUMNS)}
    tracks: list[I64] = []
    starts: list[F64] = []
    ends: list[F64] = []
    zones: list[str | None] = []
    activities: list[str | None] = []
    # A point's interval ends at its ts, so one up to MAX_POINT_GAP_S after the range still covers its end.
    async for page in store.track_point_pages(start, end + MAX_POINT_GAP_S):
        if track_id is not None:
            page = [r for r in page if r[columns["track_id"]] == track_id]
        if not page:
            continue
        ts = np.fromiter((r[columns["ts"]] for r in page), np.float64, len(page))
        dwell = np.fromiter((r[columns["dwell_s"]] for r in page), np.float64, len(page))
        tracks.append(np.fromiter((r[columns["track_id"]] for r in page), np.int64, len(page)))
        starts.append(np.maximum(ts - dwell, start))
        ends.append(np.minimum(ts, end))
        zones.extend(r[columns["zone"]] for r in page)
        activities.extend(r[columns["activity"]] for r in page)
    track = np.concatenate(tracks) if tracks else np.empty(0, np.int64)
    s = np.concatenate(starts) if starts else np.empty(0)
    e = np.concatenate(ends) if ends else np.empty(0)
    keep = e > s
    return _Points(
        track=track[keep],
        start=s[keep],
        end=e[keep],
        zone=[z for z, k in zip(zones, keep.tolist(), strict=True) if k],
        activity=[a for a, k in zip(activities, keep.tolist(), strict=True) if k],
    )


def _groups(keys: Sequence[Any]) -> dict[Any, I64]:
    """Indices of each distinct key, in order of first appearance."""
    found: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        found.setdefault(key, []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in found.items()}


# --------------------------------------------------------------------------------------------------------
# Activity timelines


@dataclass(frozen=True, slots=True)
class ActivityInterval:
    """A span during which ``subject`` (a person's track id, or a zone id: someone in it) did ``activity``."""

    subject: str
    activity: str
    start: float
    end: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "activity": self.activity,
            "start": self.start,
            "end": self.end,
            "duration_s": round(self.end - self.start, _ROUND),
        }


async def activity_timeline(
    store: HistoryStore,
    start: float,
    end: float,
    by: TimelineSubject = "person",
    person_id: int | None = None,
    zone_id: str | None = None,
    merge_gap_s: float = TIMELINE_MERGE_GAP_S,
) -> list[ActivityInterval]:
    """Merged activity intervals in ``[start, end)``, per person (``subject`` = track id) or per zone
    (``subject`` = zone id; overlapping people doing the same thing make one interval), sorted by start.
    ``person_id`` and ``zone_id`` narrow the result to one person or one zone."""
    points = await _load_points(store, start, end, person_id)
    # Up to a month of points: the grouping and merging run on a worker thread, not on the event loop.
    return await asyncio.to_thread(_timeline, points, by, zone_id, merge_gap_s)


def _timeline(
    points: _Points, by: TimelineSubject, zone_id: str | None, merge_gap_s: float
) -> list[ActivityInterval]:
    subjects: list[str | None] = (
        [str(t) for t in points.track.tolist()] if by == "person" else list(points.zone)
    )
    keys = [
        (subject, activity) if subject is not None and activity is not None else None
        for subject, activity in zip(subjects, points.activity, strict=True)
    ]
    result: list[ActivityInterval] = []
    for key, index in _groups(keys).items():
        if key is None or (zone_id is not None and by == "zone" and key[0] != zone_id):
            continue
        if zone_id is not None and by == "person" and not any(points.zone[i] == zone_id for i in index):
            continue
        s, e = merge_intervals(points.start[index], points.end[index], merge_gap_s)
        result.extend(
            ActivityInterval(key[0], key[1], a, b) for a, b in zip(s.tolist(), e.tolist(), strict=True)
        )
    result.sort(key=lambda i: (i.start, i.subject, i.activity))
    return result


# --------------------------------------------------------------------------------------------------------
# Occupancy over time


# Shortest bucket of an occupancy series: a trajectory point spans at most MAX_POINT_GAP_S, so with buckets
# at least this long a point overlaps at most two of them.
MIN_OCCUPANCY_BUCKET_S = 60.0


@dataclass(frozen=True, slots=True)
class OccupancySeries:
    """Per time bucket: the share of stored readings that said "present", and per zone the mean number of
    people in it. A zone's value is ``None`` where no reading of the bucket came from an estimator that
    counts people (the motion detector senses presence but cannot tell who is where)."""

    start: float
    bucket_s: float
    times: list[float]  # start of each bucket
    presence: list[float | None]  # None: nothing stored in the bucket
    zones: dict[str, list[float | None]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "bucket_s": self.bucket_s,
            "times": self.times,
            "presence": self.presence,
            "zones": self.zones,
        }


async def occupancy_series(
    store: HistoryStore, start: float, end: float, bucket_s: float, zone_ids: Sequence[str]
) -> OccupancySeries:
    """Room presence and zone occupancy in ``[start, end)`` in buckets of ``bucket_s`` (at least
    ``MIN_OCCUPANCY_BUCKET_S``)."""
    if bucket_s < MIN_OCCUPANCY_BUCKET_S:
        raise ValueError(f"bucket_s must be at least {MIN_OCCUPANCY_BUCKET_S:g}")
    n = max(1, int(np.ceil((end - start) / bucket_s)))
    readings = np.zeros(n)
    present = np.zeros(n)
    counted = np.zeros(n)
    columns = {name: i for i, name in enumerate(POSE_COLUMNS)}
    async for page in store.pose_pages(start, end):
        index = np.fromiter(((r[columns["ts"]] - start) // bucket_s for r in page), np.int64, len(page))
        readings += np.bincount(index, minlength=n)
        present += np.bincount(index, [float(r[columns["presence"]]) for r in page], n)
        counting = [float(r[columns["person_count"]] is not None) for r in page]
        counted += np.bincount(index, counting, n)
    points = await _load_points(store, start, end)
    seconds = await asyncio.to_thread(_zone_seconds, points, start, bucket_s, n, zone_ids)
    stored = readings > 0
    presence_share = np.divide(present, readings, out=np.zeros(n), where=stored)
    known = counted > 0
    return OccupancySeries(
        start=start,
        bucket_s=bucket_s,
        times=[start + i * bucket_s for i in range(n)],
        presence=[
            round(float(v), _ROUND) if ok else None for v, ok in zip(presence_share, stored, strict=True)
        ],
        zones={
            zone_id: [
                round(float(v) / bucket_s, _ROUND) if ok else None
                for v, ok in zip(seconds[zone_id], known, strict=True)
            ]
            for zone_id in zone_ids
        },
    )


def _zone_seconds(
    points: _Points, start: float, bucket_s: float, n: int, zone_ids: Sequence[str]
) -> dict[str, F64]:
    """Person-seconds per zone and bucket; a point that crosses a bucket edge is split at it."""
    groups = _groups(points.zone)
    result: dict[str, F64] = {}
    for zone_id in zone_ids:
        index = groups.get(zone_id, np.empty(0, np.int64))
        s, e = points.start[index] - start, points.end[index] - start
        first = np.clip((s // bucket_s).astype(np.int64), 0, n - 1)
        last = np.clip((np.nextafter(e, -np.inf) // bucket_s).astype(np.int64), 0, n - 1)
        edge = (first + 1) * bucket_s
        before = np.where(last > first, edge - s, e - s)
        after = np.where(last > first, e - edge, 0.0)
        result[zone_id] = (np.bincount(first, before, n) + np.bincount(last, after, n)).astype(np.float64)
    return result


# --------------------------------------------------------------------------------------------------------
# Heatmaps


@dataclass(frozen=True, slots=True)
class Heatmap:
    """Seconds of presence per floor cell: ``seconds[row, column]``, row along depth (y), column along
    width (x), each cell ``width_m / columns`` by ``depth_m / rows``."""

    start: float
    end: float
    width_m: float
    depth_m: float
    seconds: F64
    simulated: bool
    person_id: int | None = None

    @property
    def rows(self) -> int:
        return int(self.seconds.shape[0])

    @property
    def columns(self) -> int:
        return int(self.seconds.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "person_id": self.person_id,
            "simulated": self.simulated,
            "width_m": self.width_m,
            "depth_m": self.depth_m,
            "columns": self.columns,
            "rows": self.rows,
            "cell_m": {"x": self.width_m / self.columns, "y": self.depth_m / self.rows},
            "seconds": np.round(self.seconds, _ROUND).tolist(),
            "max_seconds": round(float(self.seconds.max()), _ROUND),
            "total_seconds": round(float(self.seconds.sum()), _ROUND),
        }


async def heatmap(
    store: HistoryStore,
    start: float,
    end: float,
    width_m: float,
    depth_m: float,
    columns: int = DEFAULT_HEATMAP_CELLS,
    rows: int = DEFAULT_HEATMAP_CELLS,
    person_id: int | None = None,
) -> Heatmap:
    """Seconds of presence per cell of a ``columns`` x ``rows`` grid over the floor, in ``[start, end)``.
    Positions outside the room (estimates near a wall) count in the nearest edge cell."""
    if not (1 <= columns <= MAX_GRID_CELLS and 1 <= rows <= MAX_GRID_CELLS):
        raise ValueError(f"columns and rows must be 1..{MAX_GRID_CELLS}")
    sql = (
        "SELECT MIN(MAX(CAST(x * ? AS INTEGER), 0), ?) AS col, MIN(MAX(CAST(y * ? AS INTEGER), 0), ?) AS row,"
        " SUM(dwell_s) FROM history_track_points WHERE ts >= ? AND ts < ?"
    )
    params: list[Any] = [columns / width_m, columns - 1, rows / depth_m, rows - 1, start, end]
    if person_id is not None:
        sql += " AND track_id = ?"
        params.append(person_id)
    cells = await store.database.fetchall(f"{sql} GROUP BY col, row", params)
    seconds = np.zeros((rows, columns))
    for col, row, total in cells:
        seconds[int(row), int(col)] = float(total)
    sources = await store.sources(start, end)
    return Heatmap(start, end, width_m, depth_m, seconds, "simulated" in sources, person_id)


def heatmap_image_size(heatmap: Heatmap, width_px: int = DEFAULT_IMAGE_WIDTH_PX) -> tuple[int, int]:
    """(width, height) in pixels of ``render_heatmap_png``'s image: the floor to scale, a title band above
    and a legend band below."""
    floor_w = width_px - 2 * IMAGE_MARGIN_PX
    floor_h = max(1, round(floor_w * heatmap.depth_m / heatmap.width_m))
    return width_px, IMAGE_TITLE_PX + floor_h + IMAGE_LEGEND_PX + 2 * IMAGE_MARGIN_PX


def _duration_text(seconds: float) -> str:
    if seconds < 2 * 60:
        return f"{seconds:.0f} s"
    if seconds < 2 * SECONDS_PER_HOUR:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / SECONDS_PER_HOUR:.1f} h"


def render_heatmap_png(
    heatmap: Heatmap, zones: Sequence[ZoneLike] = (), width_px: int = DEFAULT_IMAGE_WIDTH_PX, title: str = ""
) -> bytes:
    """The heatmap as a PNG: cells coloured by seconds of presence (inferno: black none, yellow most),
    the room's outline, each zone's polygon and name, and a colour scale from 0 to the busiest cell."""
    if not MIN_IMAGE_WIDTH_PX <= width_px <= MAX_IMAGE_WIDTH_PX:
        raise ValueError(f"width_px must be {MIN_IMAGE_WIDTH_PX}..{MAX_IMAGE_WIDTH_PX}")
    width, height = heatmap_image_size(heatmap, width_px)
    floor_w = width - 2 * IMAGE_MARGIN_PX
    floor_h = height - IMAGE_TITLE_PX - IMAGE_LEGEND_PX - 2 * IMAGE_MARGIN_PX
    left, top = IMAGE_MARGIN_PX, IMAGE_MARGIN_PX + IMAGE_TITLE_PX
    image = np.full((height, width, 3), _BACKGROUND, dtype=np.uint8)

    peak = float(heatmap.seconds.max())
    scaled = heatmap.seconds / peak if peak > 0 else heatmap.seconds
    cells = np.round(scaled * _UINT8_MAX).astype(np.uint8)
    coloured = cv2.applyColorMap(cells, _COLOUR_MAP)
    image[top : top + floor_h, left : left + floor_w] = cv2.resize(
        coloured, (floor_w, floor_h), interpolation=cv2.INTER_NEAREST
    )
    cv2.rectangle(image, (left, top), (left + floor_w - 1, top + floor_h - 1), _OUTLINE, 2)

    scale_x, scale_y = floor_w / heatmap.width_m, floor_h / heatmap.depth_m
    for zone in zones:
        polygon = np.array(
            [[left + x * scale_x, top + y * scale_y] for x, y in zone.polygon], dtype=np.float64
        ).round()
        cv2.polylines(image, [polygon.astype(np.int32)], isClosed=True, color=_ZONE_COLOUR, thickness=2)
        anchor = polygon.min(axis=0).astype(int) + 4
        cv2.putText(
            image, zone.name, (int(anchor[0]), int(anchor[1]) + 12), _FONT, _FONT_SCALE, _ZONE_COLOUR, 1
        )

    heading = title or "Seconds of presence per cell"
    if heatmap.simulated:
        heading += " (SIMULATED DATA)"
    cv2.putText(image, heading, (left, IMAGE_MARGIN_PX + 14), _FONT, _FONT_SCALE, _TEXT, 1, cv2.LINE_AA)

    bar_top = top + floor_h + IMAGE_MARGIN_PX // 2
    ramp = np.linspace(0, _UINT8_MAX, floor_w).astype(np.uint8)[None, :]
    bar = cv2.applyColorMap(np.repeat(ramp, LEGEND_BAR_PX, axis=0), _COLOUR_MAP)
    image[bar_top : bar_top + LEGEND_BAR_PX, left : left + floor_w] = bar
    label_y = bar_top + LEGEND_BAR_PX + 16
    cv2.putText(image, "0", (left, label_y), _FONT, _FONT_SCALE, _TEXT, 1, cv2.LINE_AA)
    peak_text = f"{_duration_text(peak)} per cell"
    (text_w, _), _ = cv2.getTextSize(peak_text, _FONT, _FONT_SCALE, 1)
    cv2.putText(
        image, peak_text, (left + floor_w - text_w, label_y), _FONT, _FONT_SCALE, _TEXT, 1, cv2.LINE_AA
    )

    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV could not encode the heatmap as PNG")
    return bytes(encoded.tobytes())


# --------------------------------------------------------------------------------------------------------
# Occupancy reports


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Occupancy of one zone (or, with ``zone_id`` None, the whole room) over a report's range.

    ``occupied_s``: seconds anyone was there; ``visits``: separate stays (per person, a stay ends when the
    person leaves); ``peak``: most people there at once, first reached at ``peak_time``; ``busiest_hour``:
    start of the clock hour with the most occupied seconds (``busiest_hour_s``)."""

    zone_id: str | None
    name: str
    occupied_s: float
    visits: int
    persons: int
    peak: int
    peak_time: float | None
    busiest_hour: float | None
    busiest_hour_s: float
    falls: int

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        hour = None if self.busiest_hour is None else datetime.fromtimestamp(self.busiest_hour, tz)
        return {
            "zone_id": self.zone_id,
            "name": self.name,
            "occupied_s": round(self.occupied_s, _ROUND),
            "visits": self.visits,
            "persons": self.persons,
            "peak_occupancy": self.peak,
            "peak_time": self.peak_time,
            "busiest_hour": None
            if hour is None
            else {
                "start": self.busiest_hour,
                "hour": hour.hour,
                "occupied_s": round(self.busiest_hour_s, _ROUND),
            },
            "falls": self.falls,
        }


@dataclass(frozen=True, slots=True)
class OccupancyReport:
    """A day's or a week's occupancy: the room, each zone, falls; a week also has its ``days``."""

    period: ReportPeriod
    day: date
    start: float
    end: float
    tz: tzinfo | None
    room: Occupancy
    zones: tuple[Occupancy, ...]
    falls: int
    simulated: bool
    days: tuple[OccupancyReport, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "day": self.day.isoformat(),
            "start": self.start,
            "end": self.end,
            "simulated": self.simulated,
            "falls": self.falls,
            "room": self.room.to_dict(self.tz),
            "zones": [z.to_dict(self.tz) for z in self.zones],
            "days": [d.to_dict() for d in self.days],
        }


def _local_midnight(day: date, tz: tzinfo | None) -> float:
    moment = datetime.combine(day, time(0), tz) if tz is not None else datetime.combine(day, time(0))
    return moment.timestamp()


def _occupancy(
    zone_id: str | None, name: str, points: _Points, index: I64, start: float, end: float, falls: int
) -> Occupancy:
    s, e, track = points.start[index], points.end[index], points.track[index]
    inside = (e > start) & (s < end)
    s, e, track = np.maximum(s[inside], start), np.minimum(e[inside], end), track[inside]
    union_s, union_e = merge_intervals(s, e)
    stays_s: list[F64] = []
    stays_e: list[F64] = []
    for person in np.unique(track):
        a, b = merge_intervals(s[track == person], e[track == person])
        stays_s.append(a)
        stays_e.append(b)
    stay_s = np.concatenate(stays_s) if stays_s else np.empty(0)
    stay_e = np.concatenate(stays_e) if stays_e else np.empty(0)
    peak, peak_time = _peak(stay_s, stay_e)
    hours = np.arange(start, end, SECONDS_PER_HOUR)
    per_hour = np.array(
        [
            float(np.clip(np.minimum(union_e, h + SECONDS_PER_HOUR) - np.maximum(union_s, h), 0, None).sum())
            for h in hours
        ]
    )
    busiest = int(np.argmax(per_hour)) if per_hour.size and per_hour.max() > 0 else None
    return Occupancy(
        zone_id=zone_id,
        name=name,
        occupied_s=float((union_e - union_s).sum()),
        visits=int(stay_s.size),
        persons=int(np.unique(track).size),
        peak=peak,
        peak_time=peak_time,
        busiest_hour=None if busiest is None else float(hours[busiest]),
        busiest_hour_s=0.0 if busiest is None else float(per_hour[busiest]),
        falls=falls,
    )


async def _falls_by_zone(store: HistoryStore, start: float, end: float) -> dict[str | None, int]:
    rows = await store.database.fetchall(
        "SELECT json_extract(data, '$.zone_id'), COUNT(*) FROM history_events "
        "WHERE type = ? AND time >= ? AND time < ? GROUP BY 1",
        (EventType.PERSON_FALL_DETECTED.value, start, end),
    )
    return {row[0]: int(row[1]) for row in rows}


async def occupancy_report(
    store: HistoryStore,
    day: date,
    period: ReportPeriod = "day",
    zones: Sequence[ZoneLike] = (),
    tz: tzinfo | None = None,
) -> OccupancyReport:
    """The occupancy report of ``day``, or of the week (Monday to Sunday) that contains it. Zones are the
    configured ones (all listed, even if empty) plus any others the data names (zones since removed)."""
    first = day if period == "day" else day - timedelta(days=day.weekday())
    count = 1 if period == "day" else DAYS_PER_WEEK
    bounds = [_local_midnight(first + timedelta(days=i), tz) for i in range(count + 1)]
    points = await _load_points(store, bounds[0], bounds[-1])
    sources = await store.sources(bounds[0], bounds[-1])
    names = {z.id: z.name for z in zones}
    for zone_id in points.zone:
        if zone_id is not None:
            names.setdefault(zone_id, zone_id)
    by_zone = _groups(points.zone)
    everything = np.arange(points.track.size, dtype=np.int64)
    empty = np.empty(0, dtype=np.int64)

    async def build(day_: date, kind: ReportPeriod, start: float, end: float) -> OccupancyReport:
        falls = await _falls_by_zone(store, start, end)
        total_falls = sum(falls.values())

        def occupancy() -> tuple[Occupancy, tuple[Occupancy, ...]]:
            room = _occupancy(None, "room", points, everything, start, end, total_falls)
            per_zone = tuple(
                _occupancy(z, name, points, by_zone.get(z, empty), start, end, falls.get(z, 0))
                for z, name in names.items()
            )
            return room, per_zone

        # The interval arithmetic over a week of points runs on a worker thread, not on the event loop.
        room, per_zone = await asyncio.to_thread(occupancy)
        return OccupancyReport(
            period=kind,
            day=day_,
            start=start,
            end=end,
            tz=tz,
            room=room,
            zones=per_zone,
            falls=total_falls,
            simulated="simulated" in sources,
        )

    if period == "day":
        return await build(first, "day", bounds[0], bounds[1])
    days = tuple(
        [await build(first + timedelta(days=i), "day", bounds[i], bounds[i + 1]) for i in range(count)]
    )
    week = await build(first, "week", bounds[0], bounds[-1])
    return OccupancyReport(
        period="week",
        day=first,
        start=week.start,
        end=week.end,
        tz=tz,
        room=week.room,
        zones=week.zones,
        falls=week.falls,
        simulated=week.simulated,
        days=days,
    )


# --------------------------------------------------------------------------------------------------------
# Export


def _pages(
    store: HistoryStore, dataset: Dataset, start: float | None, end: float | None
) -> AsyncIterator[list[Row]]:
    if dataset == "pose":
        return store.pose_pages(start, end)
    if dataset == "events":
        return store.event_pages(start, end)
    return store.track_point_pages(start, end)


EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "pose": POSE_COLUMNS,
    "events": EVENT_COLUMNS,
    "tracks": TRACK_POINT_COLUMNS,
}


def _jsonl(dataset: Dataset, page: list[Row]) -> str:
    if dataset == "pose":
        # The stored frame is already PoseFrame.to_dict() as compact JSON: pass it through untouched.
        return "".join(f"{row[-1]}\n" for row in page)
    if dataset == "events":
        return "".join(
            json.dumps({"type": t, "id": i, "time": ts, "data": json.loads(d)}, separators=(",", ":")) + "\n"
            for i, t, ts, d in page
        )
    columns = TRACK_POINT_COLUMNS
    return "".join(
        json.dumps(dict(zip(columns, row, strict=True)), separators=(",", ":")) + "\n" for row in page
    )


async def export_chunks(
    store: HistoryStore,
    dataset: Dataset,
    fmt: ExportFormat = "csv",
    start: float | None = None,
    end: float | None = None,
) -> AsyncGenerator[tuple[bytes, int], None]:
    """``dataset`` in ``[start, end)`` as UTF-8 CSV (a header row first; nested data as JSON text) or JSON
    lines, oldest first, one ``bytes`` chunk per page of the history's keyset-paged stream: memory holds
    one page however long the range. Serve with ``EXPORT_MEDIA_TYPES[fmt]``.

    Each chunk comes with the number of stored rows it holds (0 for the CSV header row), so a server
    streaming them knows how many rows it has sent when the history fails mid-range. A database error
    reading a page is raised from the iteration, after the chunks of the pages before it."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS[dataset])
        yield buffer.getvalue().encode(), 0
        async for page in _pages(store, dataset, start, end):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(page)
            yield buffer.getvalue().encode(), len(page)
        return
    async for page in _pages(store, dataset, start, end):
        yield _jsonl(dataset, page).encode(), len(page)
