"""The history sink: turns the live stream into the rows of ``appliance.store.history``.

It samples pose frames down to ``pose_rate_hz`` and each person's trajectory down to ``track_rate_hz``,
keeps every event, and writes in batches (every ``flush_interval_s`` or ``batch_rows`` rows, whichever
comes first) through ``Database.run``, so the event loop never waits on the disk. When the disk is slower
than the stream the recorder stops pulling from its bounded hub queue and the hub drops the oldest
messages for it (counted in ``stats().dropped``); the pipeline is never slowed. A write that fails is
counted as lost rows and shown as the sink's ``last_error`` (health: degraded) until a write succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from appliance.contracts import Event, EventType, PersonPose, PoseFrame
from appliance.hub import Hub, Message, Subscription
from appliance.integrations.base import Sink, SinkStats
from appliance.store.history import (
    BYTES_PER_MB,
    MAX_POINT_GAP_S,
    SECONDS_PER_DAY,
    HistoryBatch,
    HistoryStore,
    RetentionResult,
    Row,
)

log = logging.getLogger(__name__)

# Seconds between retention runs while recording (and one run at start).
RETENTION_PERIOD_S = 3600.0
# What the recorder takes from the hub: frames and every event and alert (persons are in the frames).
TOPICS = ("pose", "event/#", "alert/#")


class HistorySettings(BaseModel):
    """The ``history:`` section of the configuration: what is kept, how finely, and for how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Record pose frames, events and person tracks in the database.")
    pose_rate_hz: float = Field(
        1.0,
        gt=0,
        le=50,
        description="Pose frames kept per second (the pipeline publishes more). A frame whose presence or "
        "person count changed is kept as well, so state changes are never lost to sampling.",
    )
    track_rate_hz: float = Field(
        1.0,
        gt=0,
        le=50,
        description="Trajectory points kept per person per second, for heatmaps, timelines and reports. "
        "A change of zone or activity is kept as well.",
    )
    retention_days: float = Field(
        30.0, gt=0, le=3650, description="Days of history kept; older rows are deleted every hour."
    )
    max_size_mb: float = Field(
        512.0,
        ge=1,
        le=1_000_000,
        description="Most MiB of the database that history may fill; beyond it the oldest pose frames and "
        "trajectory points go first, then the oldest events. Checked hourly.",
    )
    flush_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Longest time a row waits in memory before it is written; what a power cut can lose.",
    )
    batch_rows: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Rows written in one transaction at most; a full batch is "
        "written at once without waiting for flush_interval_s.",
    )
    queue_items: int = Field(
        1024,
        ge=16,
        le=1_000_000,
        description="Frames and events held for a slow disk before the oldest are dropped.",
    )


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """How the recorder is keeping up: ``dropped`` items the hub discarded because it fell behind,
    ``lag_s`` the age of the oldest row not yet written, ``lost_rows`` rows of batches that failed and items
    that could not be recorded at all."""

    received: int
    dropped: int
    pending: int
    buffered_rows: int
    written_rows: int
    flushes: int
    failed_flushes: int
    lost_rows: int
    lag_s: float
    last_flush_ms: float
    last_retention: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "dropped": self.dropped,
            "pending": self.pending,
            "buffered_rows": self.buffered_rows,
            "written_rows": self.written_rows,
            "flushes": self.flushes,
            "failed_flushes": self.failed_flushes,
            "lost_rows": self.lost_rows,
            "lag_s": round(self.lag_s, 3),
            "last_flush_ms": round(self.last_flush_ms, 3),
            "last_retention": self.last_retention,
        }


@dataclass(slots=True)
class _Track:
    """The recorder's running state of one visit."""

    id: int
    live_id: int
    source: str
    first_seen: float
    last_seen: float
    zones: list[str] = field(default_factory=list)
    activity_seconds: dict[str, float] = field(default_factory=dict)
    confidence_sum: float = 0.0
    samples: int = 0
    falls: int = 0
    active: bool = True
    last_point: tuple[float, str | None, str | None] | None = None  # ts, zone, activity

    def row(self) -> Row:
        return (
            self.id,
            self.live_id,
            self.source,
            self.first_seen,
            self.last_seen,
            int(self.active),
            json.dumps(self.zones),
            json.dumps(self.activity_seconds),
            self.confidence_sum,
            self.samples,
            self.falls,
        )


class HistoryRecorder(Sink):
    """The sink that records history. Entering it ends tracks a previous run left active and subscribes;
    ``run`` records, flushes and applies retention (at once, then hourly); leaving it records what the
    queue still holds, ends the open tracks and writes everything buffered.
    """

    def __init__(
        self, store: HistoryStore, hub: Hub, settings: HistorySettings, name: str = "history"
    ) -> None:
        self.store = store
        self.hub = hub
        self.settings = settings
        self.name = name
        self._pose_interval = 1.0 / settings.pose_rate_hz
        self._point_interval = 1.0 / settings.track_rate_hz
        self._subscription: Subscription | None = None
        self._batch = HistoryBatch()
        self._dirty: dict[int, _Track] = {}
        self._oldest_buffered: float | None = None
        self._oldest_writing: float | None = None
        self._flush_lock = asyncio.Lock()
        self._tracks: dict[int, _Track] = {}
        self._next_track_id = 1
        self._last_pose: tuple[int, bool, int | None] | None = None  # sample slot, presence, count
        self._received = 0
        self._written_rows = 0
        self._flushes = 0
        self._failed_flushes = 0
        self._lost_rows = 0
        self._last_flush_ms = 0.0
        self._last_retention: float | None = None
        self._last_error: str | None = None

    async def __aenter__(self) -> Self:
        await self.store.end_active_tracks()
        self._next_track_id = await self.store.next_track_id()
        self._subscription = self.hub.subscribe(self.name, TOPICS, maxsize=self.settings.queue_items)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._subscription is not None:
            self.hub.unsubscribe(self._subscription)
            for message in self._subscription.drain():
                self._record_safely(message)
        for track in list(self._tracks.values()):
            self._end(track)
        await self.flush()

    async def run(self) -> None:
        if self._subscription is None:
            raise RuntimeError("enter the recorder (async with) before running it")
        async with asyncio.TaskGroup() as group:
            group.create_task(self._flush_periodically(), name=f"{self.name}-flush")
            group.create_task(self._retain_periodically(), name=f"{self.name}-retention")
            group.create_task(self._consume(self._subscription), name=f"{self.name}-consume")

    def stats(self) -> SinkStats:
        recorder = self.recorder_stats()
        return SinkStats(
            connected=self._last_error is None,
            pending=recorder.pending,
            dropped=recorder.dropped,
            delivered=recorder.received,
            last_error=self._last_error,
            details=recorder.to_dict(),
        )

    def recorder_stats(self) -> RecorderStats:
        sub = self._subscription
        now = time.monotonic()
        return RecorderStats(
            received=self._received,
            dropped=sub.dropped if sub else 0,
            pending=sub.pending if sub else 0,
            buffered_rows=len(self._batch) + len(self._dirty),
            written_rows=self._written_rows,
            flushes=self._flushes,
            failed_flushes=self._failed_flushes,
            lost_rows=self._lost_rows,
            lag_s=max(
                (now - t for t in (self._oldest_writing, self._oldest_buffered) if t is not None), default=0.0
            ),
            last_flush_ms=self._last_flush_ms,
            last_retention=self._last_retention,
        )

    async def run_retention(self) -> RetentionResult:
        result = await self.store.apply_retention(
            self.settings.retention_days * SECONDS_PER_DAY, int(self.settings.max_size_mb * BYTES_PER_MB)
        )
        self._last_retention = time.time()
        if any(result.deleted.values()):
            log.info(
                "history retention", extra={"fields": {**result.deleted, "bytes": result.used_bytes_after}}
            )
        return result

    async def flush(self) -> None:
        """Write what is buffered in one transaction. A failed write is logged and its rows are counted
        in ``lost_rows``: history is best effort and must not stop the recorder."""
        async with self._flush_lock:
            self._batch.tracks = [t.row() for t in self._dirty.values()]
            batch, self._batch, self._dirty = self._batch, HistoryBatch(), {}
            self._oldest_writing, self._oldest_buffered = self._oldest_buffered, None
            if not len(batch):
                return
            began = time.perf_counter()
            try:
                # Shielded: a sink being stopped mid-write still writes the batch it took.
                await asyncio.shield(self.store.write(batch))
            except sqlite3.Error as exc:
                self._failed_flushes += 1
                self._lost_rows += len(batch)
                self._last_error = f"history write failed: {type(exc).__name__}: {exc}"
                log.exception("history write failed", extra={"fields": {"rows": len(batch)}})
                return
            finally:
                self._oldest_writing = None
                self._last_flush_ms = (time.perf_counter() - began) * 1000.0
            self._flushes += 1
            self._written_rows += len(batch)
            self._last_error = None

    # -- turning items into rows -----------------------------------------------------------------------------

    def record(self, message: Message) -> None:
        """Turn one hub message into buffered rows (no I/O)."""
        self._received += 1
        if isinstance(message.item, Event):
            self._record_event(message.item)
        elif isinstance(message.item, PoseFrame):
            self._record_frame(message.item, message.text)
        if self._oldest_buffered is None and (len(self._batch) or self._dirty):
            self._oldest_buffered = time.monotonic()

    def _buffered(self) -> int:
        return len(self._batch) + len(self._dirty)

    def _record_event(self, event: Event) -> None:
        self._batch.events.append((event.id, event.type.value, event.time, json.dumps(event.data)))
        live_id = event.data.get("person_id")
        track = self._tracks.get(live_id) if isinstance(live_id, int) else None
        if track is None:
            return
        if event.type is EventType.PERSON_FALL_DETECTED:
            track.falls += 1
            self._dirty[track.id] = track
        elif event.type is EventType.PERSON_LOST:
            self._end(track)

    def _record_frame(self, frame: PoseFrame, text: str) -> None:
        ts = frame.timestamp
        slot = math.floor(ts / self._pose_interval)
        state = (slot, frame.presence, frame.person_count)
        last = self._last_pose
        if last is None or slot != last[0] or state[1:] != last[1:]:
            self._last_pose = state
            self._batch.pose.append(
                (
                    ts,
                    frame.source,
                    frame.estimator,
                    int(frame.presence),
                    int(frame.motion),
                    frame.person_count,
                    text,
                )
            )
        for person in frame.persons:
            self._record_person(frame, person)
        if frame.person_count is not None:
            # This estimator counts people, so anyone it no longer shows has gone, even if the
            # ``person.lost`` event was dropped on the way here.
            shown = {p.id for p in frame.persons}
            for track in [t for t in self._tracks.values() if t.live_id not in shown]:
                self._end(track)

    def _record_person(self, frame: PoseFrame, person: PersonPose) -> None:
        ts = frame.timestamp
        track = self._tracks.get(person.id)
        if track is None:
            track = _Track(self._next_track_id, person.id, frame.source, ts, ts)
            self._next_track_id += 1
            self._tracks[person.id] = track
        gap = min(max(ts - track.last_seen, 0.0), MAX_POINT_GAP_S)
        if person.activity is not None and gap > 0:
            track.activity_seconds[person.activity] = track.activity_seconds.get(person.activity, 0.0) + gap
        track.last_seen = max(track.last_seen, ts)
        track.confidence_sum += person.confidence
        track.samples += 1
        if person.zone is not None and person.zone not in track.zones:
            track.zones.append(person.zone)
        self._dirty[track.id] = track
        last = track.last_point
        if last is None:
            dwell = self._point_interval
        elif (
            math.floor(ts / self._point_interval) != math.floor(last[0] / self._point_interval)
            or (person.zone, person.activity) != last[1:]
        ):
            dwell = min(max(ts - last[0], 0.0), MAX_POINT_GAP_S)
        else:
            return
        position = person.centre_m()
        if position is None:
            return
        track.last_point = (ts, person.zone, person.activity)
        x, y, z = position
        self._batch.points.append(
            (track.id, ts, x, y, z, person.zone, person.activity, person.confidence, dwell)
        )

    def _end(self, track: _Track) -> None:
        track.active = False
        self._dirty[track.id] = track
        self._tracks.pop(track.live_id, None)

    # -- tasks -----------------------------------------------------------------------------------------------

    def _record_safely(self, message: Message) -> None:
        try:
            self.record(message)
        except (TypeError, ValueError):
            # One item the store cannot represent is counted and logged; it must not end the recording of
            # everything after it.
            self._lost_rows += 1
            log.exception("history: cannot record %s", message.topic)

    async def _consume(self, subscription: Subscription) -> None:
        async for message in subscription:
            self._record_safely(message)
            if self._buffered() >= self.settings.batch_rows:
                # Waiting here (not buffering more) is what lets the hub drop for a slow disk while the
                # recorder's memory stays bounded.
                await self.flush()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval_s)
            await self.flush()

    async def _retain_periodically(self) -> None:
        """Retention at start, then every ``RETENTION_PERIOD_S``; in the background, so a large first
        clean-up never delays the service's start."""
        while True:
            try:
                await self.run_retention()
            except sqlite3.Error:
                log.exception("history retention failed")
            await asyncio.sleep(RETENTION_PERIOD_S)
