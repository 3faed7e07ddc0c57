"""History: pose frames, events and person tracks kept in SQLite for the API, analytics and export.

``HistoryStore`` is the repository: the schema, batched writes, the API's queries, keyset-paged streams
for export, and retention. The sink that turns the live stream into its rows is
``appliance.integrations.history.HistoryRecorder``.

People: the tracker's ids restart at 1 whenever the service starts, so each visit (a person from first
sighting until lost) is stored as a *track* with its own stable ``id``; ``live_id`` is the id the pipeline
used for it during the visit (``PoseFrame.persons[].id`` and the events' ``person_id``). The API's
``/pose/persons/{id}`` is the track id.

Trajectory points: every point stores ``dwell_s``, the seconds of presence it stands for (the time since
the track's previous point, capped at ``MAX_POINT_GAP_S`` so a gap in the data is not counted as presence;
a track's first point stands for one sampling interval). Summing ``dwell_s`` gives seconds of presence,
which is what the heatmap and the occupancy reports do.

Retention deletes in small chunks, each its own transaction, so recorder batches interleave with it. Size
is measured as the pages in use (``page_count - freelist_count``), not the file's length: SQLite reuses
freed pages, so once retention holds the pages in use under the limit the file stops growing. The file
only shrinks when it was created with ``auto_vacuum = INCREMENTAL``; a migration cannot switch that on (the
setting only takes effect before the first table exists, and ``schema_versions`` always exists first, and
turning it on later needs a full ``VACUUM`` that would stall the database thread for minutes on a large
file), so ``Database`` should set it when it creates a new file. Where it is on, retention returns the
freed pages to the file system with ``PRAGMA incremental_vacuum``.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from appliance.contracts import Event, EventType
from appliance.store.database import Database, register_schema

log = logging.getLogger(__name__)

BYTES_PER_MB = 2**20
SECONDS_PER_DAY = 86_400.0
# Largest page the API's list endpoints return; export streams instead.
MAX_PAGE_ROWS = 1000
# Rows per page of the export streams: large enough to amortise a database round trip, small enough that
# a page (and the bytes chunk made from it) stays well under a megabyte.
STREAM_PAGE_ROWS = 2000
# Rows deleted per retention transaction, so a recorder batch never waits long behind retention.
RETENTION_CHUNK_ROWS = 5000
# Size retention deletes slices sized to the excess, but never smaller than this, so it converges quickly.
RETENTION_MIN_SLICE_ROWS = 100
# Size retention deletes until the pages in use are under this share of the limit, so it does not run
# again on the very next check.
RETENTION_TARGET_FRACTION = 0.9
# A person unseen longer than this between two frames or trajectory points was not present in between
# (frames were dropped or the service was down): the gap counts for at most this.
MAX_POINT_GAP_S = 5.0
# Hands back at most 100,000 free pages (about 400 MB) per retention run, the rest on the next run, so one
# run never rewrites the tail of a huge file at once. A PRAGMA takes no parameters, hence the literal; it
# runs through ``executescript`` because ``execute`` steps it once, which frees a single page.
_INCREMENTAL_VACUUM = "PRAGMA incremental_vacuum(100000)"
_AUTO_VACUUM_INCREMENTAL = 2

SCHEMA = [
    """
    CREATE TABLE history_pose (
        ts REAL NOT NULL,
        source TEXT NOT NULL,
        estimator TEXT NOT NULL,
        presence INTEGER NOT NULL,
        motion INTEGER NOT NULL,
        person_count INTEGER,
        frame TEXT NOT NULL
    );
    CREATE INDEX history_pose_ts ON history_pose (ts);
    CREATE TABLE history_events (
        id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        time REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX history_events_time ON history_events (time);
    CREATE INDEX history_events_type_time ON history_events (type, time);
    CREATE TABLE history_tracks (
        id INTEGER PRIMARY KEY,
        live_id INTEGER NOT NULL,
        source TEXT NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        active INTEGER NOT NULL,
        zones TEXT NOT NULL,
        activity_seconds TEXT NOT NULL,
        confidence_sum REAL NOT NULL,
        samples INTEGER NOT NULL,
        falls INTEGER NOT NULL
    );
    CREATE INDEX history_tracks_last_seen ON history_tracks (last_seen);
    CREATE TABLE history_track_points (
        track_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        x REAL NOT NULL,
        y REAL NOT NULL,
        z REAL NOT NULL,
        zone TEXT,
        activity TEXT,
        confidence REAL NOT NULL,
        dwell_s REAL NOT NULL
    );
    CREATE INDEX history_track_points_ts ON history_track_points (ts);
    CREATE INDEX history_track_points_track ON history_track_points (track_id, ts)
    """,
]
register_schema("history", SCHEMA)

# Column order of the rows that the ``*_pages`` streams yield (and of the CSV export).
POSE_COLUMNS = ("ts", "source", "estimator", "presence", "motion", "person_count", "frame")
EVENT_COLUMNS = ("id", "type", "time", "data")
TRACK_POINT_COLUMNS = ("track_id", "ts", "x", "y", "z", "zone", "activity", "confidence", "dwell_s")

# Tables that size retention trims, as (table, time column): trajectory samples first, then events.
_SAMPLE_TABLES = (("history_pose", "ts"), ("history_track_points", "ts"))
_EVENT_TABLES = (("history_events", "time"),)

Order = Literal["newest", "oldest"]
Row = tuple[Any, ...]


# --------------------------------------------------------------------------------------------------------
# Records the queries return


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One trajectory point: where a person was (metres, room coordinates), in which zone, doing what."""

    ts: float
    x: float
    y: float
    z: float
    zone: str | None
    activity: str | None
    confidence: float
    dwell_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "position": {"x": self.x, "y": self.y, "z": self.z},
            "zone": self.zone,
            "activity": self.activity,
            "confidence": round(self.confidence, 3),
            "dwell_s": round(self.dwell_s, 3),
        }


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One stored visit of one person (a track). ``id`` is stable across restarts; ``live_id`` is the
    pipeline's id during the visit. ``trajectory`` is empty unless asked for."""

    id: int
    live_id: int
    source: str
    active: bool
    first_seen: float
    last_seen: float
    zones_visited: tuple[str, ...]
    activity_seconds: dict[str, float]
    average_confidence: float
    falls: int
    trajectory: tuple[TrackPoint, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "live_id": self.live_id,
            "source": self.source,
            "simulated": self.source == "simulated",
            "active": self.active,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "duration_s": round(self.last_seen - self.first_seen, 3),
            "zones_visited": list(self.zones_visited),
            "activity_seconds": {k: round(v, 3) for k, v in self.activity_seconds.items()},
            "average_confidence": round(self.average_confidence, 3),
            "falls": self.falls,
            "trajectory": [p.to_dict() for p in self.trajectory],
        }


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list query: ``items`` as JSON-ready dicts, ``has_more`` when a further page exists."""

    items: list[dict[str, Any]]
    has_more: bool


@dataclass(frozen=True, slots=True)
class RetentionResult:
    deleted: dict[str, int]
    used_bytes_before: int
    used_bytes_after: int
    file_bytes_after: int


@dataclass(slots=True)
class HistoryBatch:
    """Rows gathered by the recorder between two flushes, written in one transaction."""

    pose: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    points: list[Row] = field(default_factory=list)
    tracks: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pose) + len(self.events) + len(self.points) + len(self.tracks)


# --------------------------------------------------------------------------------------------------------
# Repository


def _bounds(start: float | None, end: float | None) -> tuple[float, float]:
    return (-math.inf if start is None else start, math.inf if end is None else end)


def _check_page(limit: int, skip: int) -> None:
    if not 1 <= limit <= MAX_PAGE_ROWS:
        raise ValueError(f"limit must be 1..{MAX_PAGE_ROWS}, got {limit}")
    if skip < 0:
        raise ValueError(f"skip must be 0 or more, got {skip}")


def _direction(order: Order) -> str:
    # Only ever one of two literals, never caller text, so it is safe to place in the statement.
    return "DESC" if order == "newest" else "ASC"


def _person_record(row: sqlite3.Row, trajectory: tuple[TrackPoint, ...] = ()) -> PersonRecord:
    samples = int(row["samples"])
    return PersonRecord(
        id=int(row["id"]),
        live_id=int(row["live_id"]),
        source=str(row["source"]),
        active=bool(row["active"]),
        first_seen=float(row["first_seen"]),
        last_seen=float(row["last_seen"]),
        zones_visited=tuple(json.loads(row["zones"])),
        activity_seconds=dict(json.loads(row["activity_seconds"])),
        average_confidence=float(row["confidence_sum"]) / samples if samples else 0.0,
        falls=int(row["falls"]),
        trajectory=trajectory,
    )


class HistoryStore:
    """The history tables of one open ``Database``: batched writes, queries, export streams, retention.

    Times are seconds since the epoch; ranges are half-open ``[start, end)`` and ``None`` leaves a side
    open. List queries are newest first unless ``order="oldest"``; streams are always oldest first.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    # -- writing ------------------------------------------------------------------------------------------

    async def write(self, batch: HistoryBatch) -> None:
        """Write ``batch`` in one transaction (one ``Database.run``)."""
        await self.database.run(lambda c: _write_batch(c, batch))

    async def next_track_id(self) -> int:
        row = await self.database.fetchone("SELECT COALESCE(MAX(id), 0) + 1 FROM history_tracks")
        assert row is not None  # an aggregate always returns a row
        return int(row[0])

    async def end_active_tracks(self) -> int:
        """Mark tracks left active by a previous run (a crash, a power cut) as ended; returns how many."""
        return await self.database.execute("UPDATE history_tracks SET active = 0 WHERE active = 1")

    # -- queries for the API ------------------------------------------------------------------------------

    async def pose_history(
        self,
        start: float | None = None,
        end: float | None = None,
        person_id: int | None = None,
        limit: int = 100,
        skip: int = 0,
        order: Order = "newest",
    ) -> Page:
        """Stored pose frames (``PoseFrame.to_dict()`` shapes) in ``[start, end)``; with ``person_id`` (a
        track id) only the frames of that visit that show the person."""
        _check_page(limit, skip)
        lo, hi = _bounds(start, end)
        sql = "SELECT frame FROM history_pose WHERE ts >= ? AND ts < ?"
        params: list[Any] = [lo, hi]
        if person_id is not None:
            track = await self.database.fetchone(
                "SELECT live_id, first_seen, last_seen FROM history_tracks WHERE id = ?", (person_id,)
            )
            if track is None:
                return Page([], False)
            sql += (
                " AND ts >= ? AND ts <= ? AND EXISTS (SELECT 1 FROM json_each(frame, '$.persons')"
                " WHERE json_extract(value, '$.id') = ?)"
            )
            params += [track["first_seen"], track["last_seen"], track["live_id"]]
        sql += f" ORDER BY ts {_direction(order)}, rowid {_direction(order)} LIMIT ? OFFSET ?"
        rows = await self.database.fetchall(sql, [*params, limit + 1, skip])
        return Page([json.loads(r["frame"]) for r in rows[:limit]], len(rows) > limit)

    async def events(
        self,
        start: float | None = None,
        end: float | None = None,
        types: Sequence[str] | None = None,
        limit: int = 100,
        skip: int = 0,
        order: Order = "newest",
    ) -> Page:
        """Stored events (``Event.to_dict()`` shapes) in ``[start, end)``, optionally of ``types`` only."""
        _check_page(limit, skip)
        lo, hi = _bounds(start, end)
        sql = "SELECT id, type, time, data FROM history_events WHERE time >= ? AND time < ?"
        params: list[Any] = [lo, hi]
        if types:
            sql += f" AND type IN ({', '.join('?' for _ in types)})"
            params += list(types)
        sql += f" ORDER BY time {_direction(order)}, rowid {_direction(order)} LIMIT ? OFFSET ?"
        rows = await self.database.fetchall(sql, [*params, limit + 1, skip])
        items = [
            Event(EventType(r["type"]), json.loads(r["data"]), r["id"], r["time"]).to_dict()
            for r in rows[:limit]
        ]
        return Page(items, len(rows) > limit)

    async def persons(self, active_only: bool = False, limit: int = 100, skip: int = 0) -> list[PersonRecord]:
        """Stored visits, most recently seen first, without trajectories."""
        _check_page(limit, skip)
        sql = "SELECT * FROM history_tracks"
        if active_only:
            sql += " WHERE active = 1"
        rows = await self.database.fetchall(
            f"{sql} ORDER BY last_seen DESC, id DESC LIMIT ? OFFSET ?", (limit, skip)
        )
        return [_person_record(r) for r in rows]

    async def person(
        self, person_id: int, with_trajectory: bool = False, trajectory_limit: int = MAX_PAGE_ROWS
    ) -> PersonRecord | None:
        """One visit by track id; with its latest ``trajectory_limit`` points, oldest first, if asked."""
        row = await self.database.fetchone("SELECT * FROM history_tracks WHERE id = ?", (person_id,))
        if row is None:
            return None
        points: tuple[TrackPoint, ...] = ()
        if with_trajectory:
            rows = await self.database.fetchall(
                "SELECT ts, x, y, z, zone, activity, confidence, dwell_s FROM history_track_points "
                "WHERE track_id = ? ORDER BY ts DESC LIMIT ?",
                (person_id, trajectory_limit),
            )
            points = tuple(TrackPoint(*r) for r in reversed(rows))
        return _person_record(row, points)

    async def sources(self, start: float | None = None, end: float | None = None) -> set[str]:
        """The sources of the visits that overlap ``[start, end)``, so analytics can flag simulated data."""
        lo, hi = _bounds(start, end)
        rows = await self.database.fetchall(
            "SELECT DISTINCT source FROM history_tracks WHERE last_seen >= ? AND first_seen < ?", (lo, hi)
        )
        return {str(r[0]) for r in rows}

    # -- streams for export and analytics -----------------------------------------------------------------

    def pose_pages(
        self, start: float | None = None, end: float | None = None, page_rows: int = STREAM_PAGE_ROWS
    ) -> AsyncIterator[list[Row]]:
        """Pose rows (``POSE_COLUMNS``) in ``[start, end)``, oldest first, one page per database call."""
        return self._pages("history_pose", "ts", POSE_COLUMNS, start, end, page_rows)

    def event_pages(
        self, start: float | None = None, end: float | None = None, page_rows: int = STREAM_PAGE_ROWS
    ) -> AsyncIterator[list[Row]]:
        """Event rows (``EVENT_COLUMNS``) in ``[start, end)``, oldest first."""
        return self._pages("history_events", "time", EVENT_COLUMNS, start, end, page_rows)

    def track_point_pages(
        self, start: float | None = None, end: float | None = None, page_rows: int = STREAM_PAGE_ROWS
    ) -> AsyncIterator[list[Row]]:
        """Trajectory rows (``TRACK_POINT_COLUMNS``) in ``[start, end)``, oldest first."""
        return self._pages("history_track_points", "ts", TRACK_POINT_COLUMNS, start, end, page_rows)

    async def _pages(
        self,
        table: str,
        time_column: str,
        columns: Sequence[str],
        start: float | None,
        end: float | None,
        page_rows: int,
    ) -> AsyncIterator[list[Row]]:
        """Keyset pagination on ``(time, rowid)``: each page starts after the last row of the one before,
        so a page costs the same at the end of a long range as at its start and memory holds one page.
        ``table``, ``time_column`` and ``columns`` are this module's constants, never caller text."""
        lo, hi = _bounds(start, end)
        sql = (
            f"SELECT rowid, {', '.join(columns)} FROM {table} "
            f"WHERE {time_column} >= ? AND {time_column} < ? AND ({time_column}, rowid) > (?, ?) "
            f"ORDER BY {time_column}, rowid LIMIT ?"
        )
        after: tuple[float, int] = (-math.inf, -1)
        time_index = 1 + list(columns).index(time_column)
        while True:
            rows = await self.database.run(partial(_fetch_page, sql, (lo, hi, *after, page_rows)))
            if not rows:
                return
            after = (rows[-1][time_index], rows[-1][0])
            yield [tuple(r)[1:] for r in rows]
            if len(rows) < page_rows:
                return

    # -- retention ----------------------------------------------------------------------------------------

    async def used_bytes(self) -> int:
        """Bytes of the database file in use (its free pages, which SQLite reuses, not counted)."""
        return await self.database.run(_used_bytes)

    async def apply_retention(
        self, max_age_s: float, max_bytes: int, now: float | None = None
    ) -> RetentionResult:
        """Delete history older than ``max_age_s``, then, while the pages in use exceed ``max_bytes``,
        the oldest pose frames and trajectory points, then the oldest events; in chunks of
        ``RETENTION_CHUNK_ROWS`` rows, one transaction each."""
        cutoff = (time.time() if now is None else now) - max_age_s
        deleted = {"pose": 0, "events": 0, "track_points": 0, "tracks": 0}
        before = await self.used_bytes()
        deleted["pose"] += await self._delete_before("history_pose", "ts", cutoff)
        deleted["track_points"] += await self._delete_before("history_track_points", "ts", cutoff)
        deleted["events"] += await self._delete_before("history_events", "time", cutoff)
        target = int(max_bytes * RETENTION_TARGET_FRACTION)
        if await self.used_bytes() > max_bytes:
            while (used := await self.used_bytes()) > target:
                end = await self.database.run(
                    partial(_oldest_slice_end, _SAMPLE_TABLES, (used - target) / used)
                )
                if end is None:
                    break
                cutoff = max(cutoff, end)
                deleted["pose"] += await self._delete_before("history_pose", "ts", end, inclusive=True)
                deleted["track_points"] += await self._delete_before(
                    "history_track_points", "ts", end, inclusive=True
                )
            while (used := await self.used_bytes()) > target:
                end = await self.database.run(
                    partial(_oldest_slice_end, _EVENT_TABLES, (used - target) / used)
                )
                if end is None:
                    break
                deleted["events"] += await self._delete_before("history_events", "time", end, inclusive=True)
        deleted["tracks"] = await self.database.execute(
            "DELETE FROM history_tracks WHERE active = 0 AND last_seen < ?", (cutoff,)
        )
        await self.database.run(_give_back_free_pages)
        return RetentionResult(
            deleted=deleted,
            used_bytes_before=before,
            used_bytes_after=await self.used_bytes(),
            file_bytes_after=self.database.path.stat().st_size,
        )

    async def _delete_before(
        self, table: str, time_column: str, cutoff: float, inclusive: bool = False
    ) -> int:
        total = 0
        while removed := await self._delete_chunk(table, time_column, cutoff, inclusive):
            total += removed
        return total

    async def _delete_chunk(self, table: str, time_column: str, cutoff: float, inclusive: bool) -> int:
        # ``table`` and ``time_column`` are this module's constants, never caller text.
        comparison = "<=" if inclusive else "<"
        return await self.database.execute(
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
            f"WHERE {time_column} {comparison} ? ORDER BY {time_column} LIMIT ?)",
            (cutoff, RETENTION_CHUNK_ROWS),
        )


def _fetch_page(sql: str, params: tuple[Any, ...], connection: sqlite3.Connection) -> list[sqlite3.Row]:
    return connection.execute(sql, params).fetchall()


def _write_batch(connection: sqlite3.Connection, batch: HistoryBatch) -> None:
    connection.executemany(
        "INSERT INTO history_pose (ts, source, estimator, presence, motion, person_count, frame) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        batch.pose,
    )
    connection.executemany(
        "INSERT OR IGNORE INTO history_events (id, type, time, data) VALUES (?, ?, ?, ?)", batch.events
    )
    connection.executemany(
        "INSERT INTO history_track_points (track_id, ts, x, y, z, zone, activity, confidence, dwell_s) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        batch.points,
    )
    connection.executemany(
        "INSERT INTO history_tracks (id, live_id, source, first_seen, last_seen, active, zones, "
        "activity_seconds, confidence_sum, samples, falls) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(id) DO UPDATE SET last_seen = excluded.last_seen, active = excluded.active, "
        "zones = excluded.zones, activity_seconds = excluded.activity_seconds, "
        "confidence_sum = excluded.confidence_sum, samples = excluded.samples, falls = excluded.falls",
        batch.tracks,
    )


def _used_bytes(connection: sqlite3.Connection) -> int:
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    size = connection.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _oldest_slice_end(
    tables: Sequence[tuple[str, str]], excess: float, connection: sqlite3.Connection
) -> float | None:
    """The time that ends the oldest slice of ``tables`` (name, time column) worth deleting to remove about
    ``excess`` (a fraction) of the pages in use, at most ``RETENTION_CHUNK_ROWS`` rows of each; ``None``
    when they are all empty. Slicing several tables at one time keeps what remains of them aligned."""
    ends = []
    for table, column in tables:
        count = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        if not count:
            continue
        rows = min(RETENTION_CHUNK_ROWS, count, max(RETENTION_MIN_SLICE_ROWS, math.ceil(count * excess)))
        row = connection.execute(
            f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?", (rows - 1,)
        ).fetchone()
        ends.append(float(row[0]))
    return min(ends) if ends else None


def _give_back_free_pages(connection: sqlite3.Connection) -> None:
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] == _AUTO_VACUUM_INCREMENTAL:
        connection.executescript(_INCREMENTAL_VACUUM)
