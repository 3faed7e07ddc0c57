"""The running pipeline: sources -> per-link estimators -> a ``PoseFrame`` on the hub at a fixed rate.

One task per source feeds every frame to the room's motion detector; a ticker publishes the room's state
``rate_hz`` times a second. Frame counts, rates and latencies are kept here because this is the one place
that sees both ends.

What it publishes: every ``PoseFrame`` (topic ``pose``) with a ``PersonUpdate`` per person in it
(``person/<id>``); a ``ZoneOccupancy`` (``zone/<id>``) for each zone whenever who is in it changes; the
events of the scene and of the links; and a ``SystemStatus`` (``status``) whenever a source or link
changes state, and every ``status_interval_s`` in any case. ``status()`` is the same snapshot on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from appliance import __version__
from appliance.contracts import (
    TRACKER_OUTPUTS,
    Estimator,
    Event,
    EventType,
    LinkReading,
    LinkStatus,
    PersonUpdate,
    PoseFrame,
    SourceKind,
    SourceStatus,
    SystemStatus,
    ZoneOccupancy,
    ZoneShape,
)
from appliance.csi.frame import CsiFrame
from appliance.csi.prep import LinkPreparer, PreparedSample, PrepSettings
from appliance.csi.prep import LinkStats as PrepStats
from appliance.csi.simulator import RoomSpec, SceneTruth
from appliance.csi.sources import CsiSource, TruthSource
from appliance.hub import Hub
from appliance.pose.estimator import SensingEstimator
from appliance.pose.motion import MotionSettings, RoomMotion
from appliance.pose.runtime import TRAINED_ON
from appliance.pose.sensing.geometry import RoomGeometry

log = logging.getLogger(__name__)

_RATE_WINDOW_S = 2.0
_LATENCY_SAMPLES = 2000
# How often links are checked for silence: router.disconnected fires within link_timeout_s + this.
_HEALTH_PERIOD_S = 0.5
# Seconds of prepared samples kept per link for windowed estimators.
_SAMPLE_BUFFER_S = 4.0
# The status is published on every change of state and at least this often (counters move continuously).
STATUS_INTERVAL_S = 30.0


class LinkChannel:
    """One link's running state: signal preparation, a ring buffer of prepared samples, and its health.

    The ring buffer holds the last ``buffer_s`` seconds of fixed-rate samples on the canonical grid, which
    is what windowed estimators read; the host-side counters say whether the link is alive.
    """

    def __init__(self, link: str, source: str, prep: PrepSettings, buffer_s: float) -> None:
        self.link = link
        self.source = source
        self.preparer = LinkPreparer(prep)
        self.samples: deque[PreparedSample] = deque(maxlen=max(1, round(buffer_s * prep.rate_hz)))
        self.frames = 0
        self.last_seen = 0.0
        self.connected = False
        self.rssi_dbm = float("nan")
        self.shape: tuple[int, int, int] = (0, 0, 0)
        self.wire_format = ""
        self.unusable_frames = 0
        self._arrivals: deque[float] = deque()

    def record(self, frame: CsiFrame, now: float) -> list[PreparedSample]:
        """Count the frame and prepare it; returns the fixed-rate samples it settled."""
        self.frames += 1
        self.last_seen = now
        self.rssi_dbm = frame.rssi_dbm
        self.shape = (frame.n_rx, frame.n_tx, frame.n_subcarriers)
        self.wire_format = frame.wire_format
        self._arrivals.append(now)
        while self._arrivals and now - self._arrivals[0] > _RATE_WINDOW_S:
            self._arrivals.popleft()
        samples = self.preparer.push(frame)
        self.samples.extend(samples)
        return samples

    def rate_hz(self, now: float) -> float:
        return sum(1 for t in self._arrivals if now - t <= _RATE_WINDOW_S) / _RATE_WINDOW_S

    @property
    def stats(self) -> PrepStats:
        return self.preparer.stats


@dataclass(slots=True)
class SourceState:
    source: CsiSource
    frames: int = 0
    error: str | None = None
    running: bool = False
    last_frame: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelState:
    """The sensing path's model, for status pages: whether it runs, and if not, why."""

    loaded: bool
    why_not: str | None = None
    version: str | None = None
    runtime: str | None = None
    trained_on: str | None = None
    links_with_reference: int | None = None
    min_links: int | None = None


def percentiles_ms(samples: Sequence[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None, "p99": None}
    values = np.asarray(samples) * 1000.0
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "p99": round(float(p99), 3)}


class Pipeline:
    """Owns the source tasks and the publishing ticker; start with ``run()`` as a task, stop by cancelling."""

    def __init__(
        self,
        sources: Sequence[CsiSource],
        detector: RoomMotion,
        hub: Hub,
        *,
        rate_hz: float,
        link_timeout_s: float,
        prep: PrepSettings | None = None,
        estimator: SensingEstimator | None = None,
        status_interval_s: float = STATUS_INTERVAL_S,
    ) -> None:
        if not sources:
            raise ValueError("the pipeline needs at least one source")
        self.sources = [SourceState(s) for s in sources]
        self.detector = detector
        self.hub = hub
        self.rate_hz = rate_hz
        self.link_timeout_s = link_timeout_s
        self.prep = prep or PrepSettings()
        self.estimator = estimator
        # The interpreter is not thread-safe and inference must stay off the event loop: one thread.
        self._inference_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.inference_s: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.links: dict[str, LinkChannel] = {}
        self.frame_id = 0
        self.started_at = time.time()
        self.last_published_at: float | None = None
        # time.monotonic() of the publishing loop's latest turn: the pipeline's heartbeat (systemd watchdog).
        self.last_tick: float | None = None
        self.estimator_in_use: Estimator | None = None
        self.latency_s: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self.processing_s: deque[float] = deque(maxlen=_LATENCY_SAMPLES)
        self._newest_frame_host_ts = 0.0
        self.status_interval_s = status_interval_s
        self._zones: tuple[ZoneShape, ...] = ()
        self._zone_states: dict[str, tuple[int | None, tuple[int, ...]]] = {}
        self._last_status: SystemStatus | None = None
        # Off: the links are still read and calibrated, but no reading is published (a user's choice).
        self.detection_enabled = True

    @property
    def source_kind(self) -> SourceKind:
        """The kind every output is labelled with; any simulated input makes the whole output simulated."""
        kinds = [s.source.kind for s in self.sources]
        return "simulated" if "simulated" in kinds else kinds[0]

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for state in self.sources:
                    group.create_task(self._consume(state), name=f"source:{state.source.name}")
                group.create_task(self._publish_loop(), name="pipeline:publish")
                group.create_task(self._health_loop(), name="pipeline:health")
        finally:
            self._inference_thread.shutdown(wait=False, cancel_futures=True)

    async def _consume(self, state: SourceState) -> None:
        state.running = True
        try:
            async for frame in state.source.frames():
                self._on_frame(state, frame)
            log.info("source finished", extra={"fields": {"source": state.source.name}})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.error = f"{type(exc).__name__}: {exc}"
            log.exception("source failed", extra={"fields": {"source": state.source.name}})
            self.hub.publish(
                Event(
                    EventType.ALERT_SYSTEM_ERROR,
                    {"component": f"source:{state.source.name}", "error": state.error},
                )
            )
        finally:
            state.running = False

    def _on_frame(self, state: SourceState, frame: CsiFrame) -> None:
        now = time.time()
        state.frames += 1
        state.last_frame = now
        channel = self.links.get(frame.link)
        if channel is None:
            channel = self.links[frame.link] = LinkChannel(
                frame.link, state.source.name, self.prep, _SAMPLE_BUFFER_S
            )
        samples = channel.record(frame, now)
        if not channel.connected:
            channel.connected = True
            self._link_event(EventType.ROUTER_CONNECTED, channel, now)
        self.detector.update(frame)
        if self.estimator is not None:
            self.estimator.push(samples)
        self._newest_frame_host_ts = max(self._newest_frame_host_ts, frame.host_ts or now)

    async def _publish_loop(self) -> None:
        period = 1.0 / self.rate_hz
        next_tick = time.monotonic()
        failing: str | None = None
        while True:
            # After a stall, start again from now rather than publishing a burst to catch up.
            next_tick = max(next_tick + period, time.monotonic())
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            self.last_tick = time.monotonic()
            if not self.links or not self.detection_enabled:
                continue
            try:
                await self.publish_frame()
            except Exception as exc:
                # An error in one window (the model, the scene) must not end the task group, which would
                # stop every source with it. Each new failure is logged and announced once; health
                # reports the stall while it lasts.
                error = f"{type(exc).__name__}: {exc}"
                if error != failing:
                    log.exception("publishing a frame failed")
                    self.hub.publish(
                        Event(EventType.ALERT_SYSTEM_ERROR, {"component": "pipeline", "error": error})
                    )
                failing = error
            else:
                failing = None

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(_HEALTH_PERIOD_S)
            now = time.time()
            self.check_links(now)
            self.publish_status(now)

    def check_links(self, now: float) -> None:
        """Mark links silent for longer than ``link_timeout_s`` as disconnected, once, with an event."""
        for channel in self.links.values():
            if channel.connected and not self.link_up(channel, now):
                channel.connected = False
                self._link_event(EventType.ROUTER_DISCONNECTED, channel, now)

    def _link_event(self, kind: EventType, channel: LinkChannel, now: float) -> None:
        data = {"link": channel.link, "source": channel.source, "last_seen": channel.last_seen}
        if kind is EventType.ROUTER_DISCONNECTED:
            data["silent_s"] = round(now - channel.last_seen, 2)
        log.info(kind.value, extra={"fields": {"link": channel.link, "source": channel.source}})
        self.hub.publish(Event(kind, data))

    async def publish_frame(self) -> PoseFrame:
        """The room now: the sensing path's people once it has a reading, else the motion detector's."""
        started = time.perf_counter()
        reading = self.detector.reading()
        frame = PoseFrame(
            timestamp=time.time(),
            frame_id=self.frame_id + 1,
            source=self.source_kind,
            estimator="motion",
            model_version=None,
            presence=reading.presence,
            motion=reading.motion,
            motion_score=reading.score,
            person_count=None,
            persons=(),
            confidence=_detector_confidence(reading.links),
            processing_ms=0.0,
            links=reading.links,
        )
        if self.estimator is not None:
            frame = await self._sensing_frame(self.estimator, frame)
        self.frame_id = frame.frame_id
        frame = dataclasses.replace(frame, processing_ms=(time.perf_counter() - started) * 1000.0)
        self.announce(frame)
        self.last_published_at = frame.timestamp
        self.processing_s.append(time.perf_counter() - started)
        if self._newest_frame_host_ts:
            self.latency_s.append(max(0.0, time.time() - self._newest_frame_host_ts))
        return frame

    def announce(self, frame: PoseFrame) -> None:
        """The frame, each person in it, and each zone whose occupancy changed."""
        self.hub.publish(frame)
        for person in frame.persons:
            self.hub.publish(PersonUpdate(frame, person))
        for zone in self._zones:
            occupancy = ZoneOccupancy.of(frame, zone.id, zone.name)
            if self._zone_states.get(zone.id) != occupancy.state:
                self._zone_states[zone.id] = occupancy.state
                self.hub.publish(occupancy)
        self.estimator_in_use = frame.estimator

    def set_zones(self, zones: Sequence[ZoneShape], max_occupancy: int | None = None) -> None:
        """Replace the zones while running: the occupancy of each is published from the next frame on, a
        removed zone's retained occupancy is forgotten, and the model path's scene follows (membership,
        alert thresholds; restricted zones are those flagged ``restricted``)."""
        kept = {z.id for z in zones}
        for zone_id in list(self._zone_states):
            if zone_id not in kept:
                del self._zone_states[zone_id]
                self.hub.forget(f"zone/{zone_id}")
        self._zones = tuple(zones)
        if self.estimator is not None:
            self.estimator.scene.set_zones(self._zones)
            self.estimator.scene.set_alerts(max_occupancy, [z.id for z in self._zones if z.restricted])

    def recalibrate(self) -> None:
        """Learn the empty room again: every link's detector, and the model path's references."""
        self.detector.calibrate_now()
        if self.estimator is not None:
            self.estimator.forget_references()

    def retune(self, settings: MotionSettings) -> None:
        self.detector.retune(settings)

    def calibration(self) -> tuple[int, int]:
        """(links whose detector has learnt the empty room, links seen). Asked of the detectors, not of
        their latest readings: right after ``recalibrate`` those still say "calibrated" until each link's
        next packet, and the answer to a recalibration must already say it runs."""
        return sum(d.calibrated for d in self.detector.links.values()), len(self.links)

    def set_room(self, room: RoomSpec) -> None:
        """The room's nodes changed while running: the model path follows (the motion detector is per
        link and needs nothing)."""
        if self.estimator is not None:
            self.estimator.set_geometry(RoomGeometry.from_room_spec(room))

    @property
    def zones(self) -> tuple[ZoneShape, ...]:
        return self._zones

    def status(self, now: float | None = None) -> SystemStatus:
        """What is running and how well, now: the snapshot the ``status`` topic and the API share."""
        now = time.time() if now is None else now
        calibrated = {r.link: r.calibrated for r in self.detector.reading().links}
        return SystemStatus(
            timestamp=now,
            version=__version__,
            uptime_s=now - self.started_at,
            source=self.source_kind,
            estimator=self.estimator_in_use,
            frames_published=self.frame_id,
            sources=tuple(
                SourceStatus(s.source.name, s.source.kind, s.running, s.frames, s.last_frame or None, s.error)
                for s in self.sources
            ),
            links=tuple(
                LinkStatus(
                    link=c.link,
                    source=c.source,
                    up=self.link_up(c, now),
                    frames=c.frames,
                    packets_per_s=c.rate_hz(now),
                    rssi_dbm=None if math.isnan(c.rssi_dbm) else c.rssi_dbm,
                    last_seen=c.last_seen,
                    packets_lost=c.stats.lost,
                    calibrated=calibrated.get(c.link, False),
                )
                for c in self.links_by_id()
            ),
        )

    def publish_status(self, now: float) -> None:
        """Publish the status when a source or link changed state, or ``status_interval_s`` after the
        last one."""
        status = self.status(now)
        last = self._last_status
        if last is None or last.state != status.state or now - last.timestamp >= self.status_interval_s:
            self._last_status = status
            self.hub.publish(status)

    def model_state(self, why_not: str) -> ModelState:
        """The model path now; ``why_not`` is the composition root's reason when it never loaded."""
        estimator = self.estimator
        if estimator is None:
            return ModelState(loaded=False, why_not=why_not)
        return ModelState(
            loaded=True,
            version=estimator.model.version,
            runtime=estimator.model.runtime,
            trained_on=TRAINED_ON,
            links_with_reference=estimator.ready_links,
            min_links=estimator.settings.min_links,
        )

    def ground_truth(self) -> SceneTruth | None:
        """What the simulated room (or a replayed simulator recording) really holds now, if any source
        knows."""
        for state in self.sources:
            if isinstance(state.source, TruthSource):
                return state.source.latest_truth
        return None

    @property
    def knows_truth(self) -> bool:
        return any(isinstance(state.source, TruthSource) for state in self.sources)

    async def _sensing_frame(self, estimator: SensingEstimator, base: PoseFrame) -> PoseFrame:
        """The sensing path's reading, or ``base`` while it has none (links still calibrating)."""
        cues, inputs = estimator.observe(base.timestamp)
        room_class = None
        if inputs is not None:
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            room_class = await loop.run_in_executor(self._inference_thread, estimator.classify, inputs)
            self.inference_s.append(time.perf_counter() - started)
        reading = estimator.read(cues, room_class)
        if not reading.ready:
            return base
        update = estimator.track(reading)
        for event in update.events:
            self.hub.publish(event)
        persons = tuple(estimator.pose(person) for person in update.persons)
        # With nobody tracked, the confidence is the model's belief that the room is empty.
        confidence = (
            float(np.mean([p.confidence for p in persons])) if persons else 1.0 - reading.presence_probability
        )
        return dataclasses.replace(
            base,
            estimator="tracker",
            estimators=dict(TRACKER_OUTPUTS),
            model_version=estimator.model.version,
            presence=reading.presence,
            person_count=len(persons),
            persons=persons,
            confidence=confidence,
        )

    def links_by_id(self) -> list[LinkChannel]:
        """Every link seen since start, in a stable order for pages and tables."""
        return sorted(self.links.values(), key=lambda c: c.link)

    def link_up(self, channel: LinkChannel, now: float) -> bool:
        return now - channel.last_seen <= self.link_timeout_s


def _detector_confidence(links: Sequence[LinkReading]) -> float:
    """Share of links whose detector is calibrated: an uncalibrated detector's verdict is a guess."""
    if not links:
        return 0.0
    return sum(r.calibrated for r in links) / len(links)


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
