"""``/api/v1/system``: health (for watchdogs and load balancers) and status (for people and dashboards)."""

from __future__ import annotations

import math
import resource
import time
from typing import Any

from aiohttp import web

from appliance import __version__
from appliance.api.keys import CONFIG, PIPELINE, STARTED_AT
from appliance.csi.sources.simulated import SimulatedSource
from appliance.pipeline import LinkChannel, Pipeline, percentiles_ms

routes = web.RouteTableDef()

# A source that has not produced a frame this long after start is reported down, not starting.
_STARTUP_GRACE_S = 15.0


def _component_health(pipeline: Pipeline, now: float, uptime_s: float) -> dict[str, dict[str, Any]]:
    components: dict[str, dict[str, Any]] = {}
    for state in pipeline.sources:
        name = f"source:{state.source.name}"
        if state.error:
            components[name] = {"status": "down", "detail": state.error}
        elif state.frames == 0:
            status = "starting" if uptime_s < _STARTUP_GRACE_S else "down"
            components[name] = {"status": status, "detail": "no frames received yet"}
        elif now - state.last_frame > pipeline.link_timeout_s:
            silent = round(now - state.last_frame, 1)
            components[name] = {"status": "down", "detail": f"no frames for {silent} s"}
        else:
            components[name] = {"status": "ok", "detail": f"{state.frames} frames"}
    published = pipeline.last_published
    if published is None:
        components["pipeline"] = {"status": "starting", "detail": "no PoseFrame published yet"}
    elif now - published.timestamp > max(2.0, 5.0 / pipeline.rate_hz):
        components["pipeline"] = {"status": "down", "detail": "publishing has stalled"}
    else:
        components["pipeline"] = {"status": "ok", "detail": f"frame {published.frame_id}"}
    return components


@routes.get("/api/v1/system/health")
async def health(request: web.Request) -> web.Response:
    """200 when every component is ok; 503 (with the same body) while starting or when one is down."""
    pipeline = request.app[PIPELINE]
    now = time.time()
    uptime_s = now - request.app[STARTED_AT]
    components = _component_health(pipeline, now, uptime_s)
    statuses = {c["status"] for c in components.values()}
    overall = "healthy" if statuses == {"ok"} else "starting" if "down" not in statuses else "unhealthy"
    body = {
        "status": overall,
        "version": __version__,
        "uptime_s": round(uptime_s, 1),
        "components": components,
    }
    return web.json_response(body, status=200 if overall == "healthy" else 503)


def _memory_mb() -> float:
    """Resident set size from /proc (current), falling back to the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@routes.get("/api/v1/system/status")
async def status(request: web.Request) -> web.Response:
    pipeline = request.app[PIPELINE]
    config = request.app[CONFIG]
    now = time.time()
    sources = [
        {
            "name": s.source.name,
            "kind": s.source.kind,
            "simulated": s.source.kind == "simulated",
            "running": s.running,
            "frames": s.frames,
            "error": s.error,
        }
        for s in pipeline.sources
    ]
    links = [_link_summary(pipeline, channel, now) for channel in _sorted_links(pipeline)]
    body: dict[str, Any] = {
        "version": __version__,
        "room": config.room.name,
        "uptime_s": round(now - request.app[STARTED_AT], 1),
        "source": pipeline.source_kind,
        "simulated": pipeline.source_kind == "simulated",
        "estimator": "motion",
        "sources": sources,
        "links": links,
        "pose_rate_hz": pipeline.rate_hz,
        "frames_published": pipeline.frame_id,
        "latency_ms": percentiles_ms(pipeline.latency_s),
        "processing_ms": percentiles_ms(pipeline.processing_s),
        "memory_mb": round(_memory_mb(), 1),
        "current": pipeline.last_published.to_dict() if pipeline.last_published else None,
        "simulation": _simulation_truth(pipeline),
    }
    return web.json_response(body)


def _sorted_links(pipeline: Pipeline) -> list[LinkChannel]:
    return sorted(pipeline.links.values(), key=lambda c: c.link)


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


@routes.get("/api/v1/system/routers")
async def routers(request: web.Request) -> web.Response:
    """Every CSI link seen since start: liveness, rates, loss and the signal-preparation counters."""
    pipeline = request.app[PIPELINE]
    now = time.time()
    items = []
    for channel in _sorted_links(pipeline):
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
    return web.json_response({"link_timeout_s": pipeline.link_timeout_s, "routers": items})


def _simulation_truth(pipeline: Pipeline) -> dict[str, Any] | None:
    """What the simulated room really holds, so people can judge the estimators against it."""
    for state in pipeline.sources:
        if isinstance(state.source, SimulatedSource):
            truth = state.source.latest_truth
            if truth is None:
                return {"ground_truth": None}
            return {
                "ground_truth": {
                    "t_s": round(truth.t_s, 2),
                    "person_count": truth.person_count,
                    "persons": [{"id": p.id, "activity": p.activity} for p in truth.persons],
                }
            }
    return None
