"""``/api/v1/system``: health (for watchdogs and load balancers) and status (for people and dashboards).

Health is public, so that a watchdog needs no token; status and routers need ``system:read``. Routers also
lists the CSI nodes the mDNS sink found announcing themselves. The response
models below are what the OpenAPI document publishes for these routes.

A component is ``ok``, ``starting``, ``down`` or ``degraded``: working, but something needs a person's
attention. The database is degraded after a damaged file was moved aside at start, or when it raised
errors while running (history writes or reads, settings, accounts); ``system/database`` says what
happened and ``system/database/acknowledge`` (admin) clears it. A degraded box answers health with 200,
since restarting it would not help.
"""

from __future__ import annotations

import dataclasses
import json
import math
import resource
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from appliance import __version__
from appliance.api.keys import CONFIG, DATABASE, HUB, MODEL_UNAVAILABLE, PIPELINE, STARTED_AT
from appliance.api.resource_keys import RESOURCES, sink_statuses
from appliance.api.routing import ApiRouter, Scope, model_response
from appliance.contracts.coco import body_centre
from appliance.csi.simulator import PersonTruth
from appliance.integrations.mdns import MdnsAdvertiser
from appliance.integrations.runner import SinkStatus
from appliance.pipeline import LinkChannel, Pipeline, percentiles_ms
from appliance.store.database import Database

router = ApiRouter()
_TAGS = ["system"]

# A source that has not produced a frame this long after start is reported down, not starting.
_STARTUP_GRACE_S = 15.0


def _component_health(
    pipeline: Pipeline, sinks: Sequence[SinkStatus], now: float, uptime_s: float
) -> dict[str, dict[str, Any]]:
    status = pipeline.status(now)
    components: dict[str, dict[str, Any]] = {}
    for source in status.sources:
        name = f"source:{source.name}"
        if source.error:
            # Health is public: say that the source failed, not why (paths, addresses); status has it.
            components[name] = {"status": "down", "detail": "source failed; see /api/v1/system/status"}
        elif source.last_frame is None:
            state = "starting" if uptime_s < _STARTUP_GRACE_S else "down"
            components[name] = {"status": state, "detail": "no frames received yet"}
        elif now - source.last_frame > pipeline.link_timeout_s:
            silent = round(now - source.last_frame, 1)
            components[name] = {"status": "down", "detail": f"no frames for {silent} s"}
        else:
            components[name] = {"status": "ok", "detail": f"{source.frames} frames"}
    published = pipeline.last_published_at
    if not pipeline.detection_enabled:
        components["pipeline"] = {"status": "ok", "detail": "detection switched off: no readings"}
    elif published is None:
        components["pipeline"] = {"status": "starting", "detail": "no PoseFrame published yet"}
    elif now - published > max(2.0, 5.0 / pipeline.rate_hz):
        components["pipeline"] = {"status": "down", "detail": "publishing has stalled"}
    else:
        components["pipeline"] = {"status": "ok", "detail": f"frame {status.frames_published}"}
    for sink in sinks:
        components[f"sink:{sink.name}"] = _sink_health(sink)
    return components


def _sink_health(sink: SinkStatus) -> dict[str, Any]:
    """A sink that is not delivering fails health if the appliance needs it, and degrades it if not.
    The detail is the sink's own ``last_error`` when it has one (a sink words it for anyone to read: the
    MQTT broker refusing the login, say, without the broker's address); else it stays general."""
    if sink.healthy:
        return {"status": "ok", "detail": f"{sink.stats.delivered} delivered"}
    if sink.state == "starting":
        return {"status": "starting", "detail": "starting"}
    detail = "restarting after a failure" if sink.state == "restarting" else "not delivering"
    if sink.stats.last_error:
        detail = f"{detail}: {sink.stats.last_error}"
    return {"status": "down" if sink.required else "degraded", "detail": f"{detail}; see status"}


def _database_health(database: Database) -> dict[str, Any]:
    # Public, like all of health: what happened, not where (paths); system/database has the rest.
    problems = []
    if database.recoveries:
        problems.append("a damaged database file was moved aside at start")
    if database.failures.count:
        problems.append(f"{database.failures.count} database errors")
    if not problems:
        return {"status": "ok", "detail": "no errors"}
    detail = "; ".join(problems) + "; see /api/v1/system/database, then acknowledge"
    return {"status": "degraded", "detail": detail}


class _Response(BaseModel):
    """Response models reject keys they do not declare: a field added to a handler's dict but not here
    fails the tests loudly instead of silently vanishing from the API and the OpenAPI document."""

    model_config = ConfigDict(extra="forbid")


ComponentState = Literal["ok", "starting", "degraded", "down"]
# The overall status is the worst component's: the first of these that any component is in.
_OVERALL = (("down", "unhealthy"), ("starting", "starting"), ("degraded", "degraded"))


class ComponentHealth(_Response):
    status: ComponentState
    detail: str


class Health(_Response):
    status: Literal["healthy", "degraded", "starting", "unhealthy"] = Field(
        description="healthy: all ok; degraded: working, but a component says why not fully (an optional "
        "sink not delivering, a damaged database set aside); starting; unhealthy: a source, the pipeline or "
        "a required part is down"
    )
    version: str
    uptime_s: float
    components: dict[str, ComponentHealth]


class SourceStatus(_Response):
    name: str
    kind: str
    simulated: bool
    running: bool
    frames: int
    error: str | None


class LinkSummary(_Response):
    link: str
    source: str
    up: bool
    frames: int
    packets_per_s: float
    rssi_dbm: float | None
    last_seen_s_ago: float
    csi_shape: list[int]


class Percentiles(_Response):
    p50: float | None
    p95: float | None
    p99: float | None


class TruthPoint(_Response):
    x: float
    y: float
    z: float


class TruthPerson(_Response):
    id: int
    activity: str
    position_m: TruthPoint = Field(description="body centre in room metres")
    keypoints_m: list[TruthPoint] = Field(description="the 17 COCO joints in room metres")


class GroundTruth(_Response):
    t_s: float
    person_count: int
    persons: list[TruthPerson]


class SimulationTruth(_Response):
    ground_truth: GroundTruth | None = Field(description="what the simulated room really holds now")


class ModelStatus(_Response):
    loaded: bool
    why_not: str | None = Field(None, description="why the pose model is not in use")
    version: str | None = None
    runtime: str | None = None
    trained_on: str | None = None
    links_with_reference: int | None = Field(None, description="links whose empty-room reference is learnt")
    min_links: int | None = None
    inference_ms: Percentiles | None = None


class Status(_Response):
    version: str
    room: str
    uptime_s: float
    source: str
    simulated: bool
    estimator: str | None = Field(description="model or motion; null before the first reading")
    model: ModelStatus
    sources: list[SourceStatus]
    links: list[LinkSummary]
    pose_rate_hz: float
    frames_published: int
    latency_ms: Percentiles
    processing_ms: Percentiles
    memory_mb: float
    current: dict[str, Any] | None = Field(description="the latest PoseFrame, as on every other output")
    simulation: SimulationTruth | None = Field(description="simulated rooms only")


class RouterLink(LinkSummary):
    connected: bool
    last_seen: float
    wire_format: str
    device_packets_per_s: float
    packets_lost: int
    loss_ratio: float
    duplicates: int
    reordered: int
    sequence_resets: int
    clock_wraps: int
    reboots: int
    unusable_frames: int
    outliers_replaced: int
    samples: int
    missing_samples: int


class DiscoveredNode(_Response):
    service: str = Field(description="_invispose-node._udp (our provisioning) or _espectre._tcp")
    name: str = Field(description="the node's mDNS instance name")
    addresses: list[str]
    port: int
    properties: dict[str, str] = Field(description="its TXT record")
    last_seen: float


class Routers(_Response):
    link_timeout_s: float
    routers: list[RouterLink]
    discovered: list[DiscoveredNode] = Field(
        description="CSI nodes that announce themselves over mDNS, whether or not they send to this "
        "appliance yet (empty while mdns is off)"
    )


@router.get(
    "/api/v1/system/health",
    public=True,
    summary="Per-component health (for watchdogs and load balancers)",
    response=Health,
    tags=_TAGS,
    responses={503: "starting, or a component is down (same body)"},
    body_on=[503],
)
async def health(request: web.Request, query: None, body: None) -> web.Response:
    """200 when every component is ok or degraded (working, but see its detail); 503 (with the same
    body) while starting or when one is down."""
    pipeline = request.app[PIPELINE]
    now = time.time()
    uptime_s = now - request.app[STARTED_AT]
    components = _component_health(pipeline, sink_statuses(request.app), now, uptime_s)
    components["database"] = _database_health(request.app[DATABASE])
    statuses = {c["status"] for c in components.values()}
    overall = next((name for state, name in _OVERALL if state in statuses), "healthy")
    result = Health.model_validate(
        {
            "status": overall,
            "version": __version__,
            "uptime_s": round(uptime_s, 1),
            "components": components,
        }
    )
    return model_response(result, status=200 if overall in ("healthy", "degraded") else 503)


class DatabaseRecovery(_Response):
    moved_to: str = Field(description="where the damaged file (and its -wal/-shm) was kept")
    problem: str = Field(description="what the integrity check found")
    at: float


class DatabaseState(_Response):
    file: str
    status: Literal["ok", "degraded"]
    recoveries: list[DatabaseRecovery] = Field(
        description="damaged files moved aside at start and not yet acknowledged"
    )
    errors: int = Field(description="errors the database raised since start or the last acknowledgement")
    last_error: str | None
    last_error_at: float | None


def _database_state(database: Database) -> DatabaseState:
    return DatabaseState(
        file=str(database.path),
        status=_database_health(database)["status"],
        recoveries=[
            DatabaseRecovery(moved_to=r.moved_to, problem=r.problem, at=r.at) for r in database.recoveries
        ],
        errors=database.failures.count,
        last_error=database.failures.last,
        last_error_at=database.failures.last_at,
    )


@router.get(
    "/api/v1/system/database",
    scope=Scope.SYSTEM_READ,
    summary="The database: damaged files moved aside at start, and errors since",
    response=DatabaseState,
    tags=_TAGS,
)
async def database_state(request: web.Request, query: None, body: None) -> DatabaseState:
    return _database_state(request.app[DATABASE])


@router.post(
    "/api/v1/system/database/acknowledge",
    scope=Scope.ADMIN_ALL,
    summary="Acknowledge the database's recoveries and errors, so that health reports it ok again",
    response=DatabaseState,
    tags=_TAGS,
)
async def acknowledge_database(request: web.Request, query: None, body: None) -> DatabaseState:
    """The moved-aside files stay where `system/database` said; new errors degrade health again."""
    database = request.app[DATABASE]
    await database.acknowledge()
    return _database_state(database)


def memory_mb() -> float:
    """Resident set size from /proc (current), falling back to the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@router.get(
    "/api/v1/system/status",
    scope=Scope.SYSTEM_READ,
    summary="Source, links, latency, memory, the current reading and the simulation's ground truth",
    response=Status,
    tags=_TAGS,
)
async def status(request: web.Request, query: None, body: None) -> Status:
    pipeline = request.app[PIPELINE]
    config = request.app[CONFIG]
    now = time.time()
    snapshot = pipeline.status(now)
    current = request.app[HUB].latest("pose")
    model = dataclasses.asdict(pipeline.model_state(request.app[MODEL_UNAVAILABLE]))
    if model["loaded"]:
        model["inference_ms"] = percentiles_ms(pipeline.inference_s)
    result: dict[str, Any] = {
        "version": snapshot.version,
        "room": config.room.name,
        "uptime_s": round(now - request.app[STARTED_AT], 1),
        "source": snapshot.source,
        "simulated": snapshot.simulated,
        "estimator": snapshot.estimator,
        "model": {key: value for key, value in model.items() if value is not None},
        "sources": [
            {k: v for k, v in source.to_dict().items() if k != "last_frame"} for source in snapshot.sources
        ],
        "links": [_link_summary(pipeline, channel, now) for channel in pipeline.links_by_id()],
        "pose_rate_hz": pipeline.rate_hz,
        "frames_published": snapshot.frames_published,
        "latency_ms": percentiles_ms(pipeline.latency_s),
        "processing_ms": percentiles_ms(pipeline.processing_s),
        "memory_mb": round(memory_mb(), 1),
        "current": json.loads(current.text) if current else None,
        "simulation": _simulation_truth(pipeline),
    }
    return Status.model_validate(result)


def _link_summary(pipeline: Pipeline, channel: LinkChannel, now: float) -> dict[str, Any]:
    rssi = channel.rssi_dbm
    return {
        "link": channel.link,
        "source": channel.source,
        "up": pipeline.link_up(channel, now),
        "frames": channel.frames,
        "packets_per_s": round(channel.rate_hz(now), 1),
        "rssi_dbm": None if math.isnan(rssi) else round(rssi, 1),
        "last_seen_s_ago": round(now - channel.last_seen, 2),
        "csi_shape": list(channel.shape),
    }


@router.get(
    "/api/v1/system/routers",
    scope=Scope.SYSTEM_READ,
    summary="Every CSI link seen since start, with its counters",
    response=Routers,
    tags=_TAGS,
)
async def routers(request: web.Request, query: None, body: None) -> Routers:
    """Every CSI link seen since start: liveness, rates, loss and the signal-preparation counters."""
    pipeline = request.app[PIPELINE]
    now = time.time()
    items = []
    for channel in pipeline.links_by_id():
        stats = channel.stats
        items.append(
            {
                **_link_summary(pipeline, channel, now),
                "connected": channel.connected,
                "last_seen": channel.last_seen,
                "wire_format": channel.wire_format,
                "device_packets_per_s": round(stats.packets_per_s, 1),
                "packets_lost": stats.lost,
                "loss_ratio": round(stats.lost / max(1, stats.lost + stats.packets), 4),
                "duplicates": stats.duplicates,
                "reordered": stats.reordered,
                "sequence_resets": stats.sequence_resets,
                "clock_wraps": stats.clock_wraps,
                "reboots": stats.reboots,
                "unusable_frames": stats.unusable,
                "outliers_replaced": stats.outliers,
                "samples": stats.samples,
                "missing_samples": stats.missing_samples,
            }
        )
    runner = request.app[RESOURCES].sinks
    advertiser = runner.sink(MdnsAdvertiser.name) if runner is not None else None
    discovered = [s.to_dict() for s in advertiser.found()] if isinstance(advertiser, MdnsAdvertiser) else []
    return Routers.model_validate(
        {"link_timeout_s": pipeline.link_timeout_s, "routers": items, "discovered": discovered}
    )


def _truth_person(person: PersonTruth) -> dict[str, Any]:
    keypoints = np.asarray(person.keypoints, dtype=np.float64)
    centre = body_centre(keypoints, np.ones(len(keypoints)))

    def point(xyz: Iterable[float]) -> dict[str, float]:
        return {axis: round(float(v), 3) for axis, v in zip("xyz", xyz, strict=True)}

    return {
        "id": person.id,
        "activity": person.activity,
        "position_m": point(centre),
        "keypoints_m": [point(k) for k in keypoints],
    }


def _simulation_truth(pipeline: Pipeline) -> dict[str, Any] | None:
    """What the simulated room really holds, so people can judge the estimators against it."""
    if not pipeline.knows_truth:
        return None
    truth = pipeline.ground_truth()
    if truth is None:
        return {"ground_truth": None}
    return {
        "ground_truth": {
            "t_s": round(truth.t_s, 2),
            "person_count": truth.person_count,
            "persons": [_truth_person(p) for p in truth.persons],
        }
    }
