"""``/api/v1/system/performance``: how fast the appliance is really going, and where it falls behind.

Rates are measured, not configured: pose frames per second and process CPU come from a ``ProcessSampler``
that a background task feeds every ``SAMPLE_PERIOD_S``; a request compares the present with the oldest
sample of the last ``WINDOW_S`` seconds, so a handler never sleeps to measure an interval, and two requests
in a row both get a figure over a useful span. Latency and timing percentiles come from the pipeline's own
sample windows; the sinks are reported as the sink runner sees them, and every hub subscription's queue
with them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from appliance.api.keys import HUB, PIPELINE
from appliance.api.resource_keys import RESOURCES, sink_statuses
from appliance.api.routing import ApiRouter, Scope
from appliance.api.system import Percentiles, memory_mb
from appliance.integrations.runner import SinkStatus
from appliance.pipeline import Pipeline, percentiles_ms

router = ApiRouter()
SAMPLE_PERIOD_S = 1.0
WINDOW_S = 10.0
# A span shorter than this (just after start) gives rates too noisy to report: they are null instead.
MIN_SPAN_S = 0.2
_PERCENT = 100.0


@dataclass(frozen=True, slots=True)
class ProcessSample:
    at: float  # time.monotonic()
    cpu_s: float  # time.process_time(): CPU of every thread of this process
    frames: int  # pipeline.frame_id: PoseFrames published so far


@dataclass(frozen=True, slots=True)
class Rates:
    span_s: float
    cpu_percent: float
    pose_fps: float


class ProcessSampler:
    """Samples of CPU time and published frames over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = WINDOW_S, period_s: float = SAMPLE_PERIOD_S) -> None:
        self.window_s = window_s
        self.period_s = period_s
        self._samples: deque[ProcessSample] = deque(maxlen=max(2, round(window_s / period_s) + 1))

    @staticmethod
    def now(pipeline: Pipeline) -> ProcessSample:
        return ProcessSample(time.monotonic(), time.process_time(), pipeline.frame_id)

    def record(self, sample: ProcessSample) -> None:
        self._samples.append(sample)

    async def run(self, pipeline: Pipeline) -> None:
        """Sample every ``period_s`` until cancelled."""
        while True:
            self.record(self.now(pipeline))
            await asyncio.sleep(self.period_s)

    def rates(self, current: ProcessSample) -> Rates | None:
        """CPU (100 % = one core) and frames per second from the oldest kept sample to ``current``."""
        if not self._samples:
            return None
        oldest = self._samples[0]
        span = current.at - oldest.at
        if span < MIN_SPAN_S:
            return None
        return Rates(
            span_s=span,
            cpu_percent=(current.cpu_s - oldest.cpu_s) / span * _PERCENT,
            pose_fps=(current.frames - oldest.frames) / span,
        )


class LinkRate(BaseModel):
    link: str
    packets_per_s: float


class SubscriptionLag(BaseModel):
    name: str = Field(description="the hub subscriber (history, metrics, a WebSocket client, ...)")
    pending: int = Field(description="messages waiting in its queue now")
    capacity: int | None = Field(description="its queue's bound; null: lossless (never drops)")
    dropped: int = Field(description="messages it lost because it fell behind (oldest dropped first)")
    delivered: int


class SinkReport(BaseModel):
    """One sink as the sink runner sees it."""

    name: str
    required: bool = Field(description="whether health fails (rather than degrades) when it is down")
    state: Literal["starting", "running", "restarting", "stopped"]
    connected: bool = Field(description="reaching where it delivers (database, broker, listeners)")
    pending: int = Field(description="messages waiting in its hub queue: its lag")
    dropped: int = Field(description="messages it lost because it fell behind")
    delivered: int
    restarts: int
    last_error: str | None = Field(description="its latest failure, until it recovers")
    details: dict[str, Any] = Field(description="the sink's own figures")


def sink_report(status: SinkStatus) -> SinkReport:
    stats = status.stats
    return SinkReport(
        name=status.name,
        required=status.required,
        state=status.state,
        connected=stats.connected,
        pending=stats.pending,
        dropped=stats.dropped,
        delivered=stats.delivered,
        restarts=status.restarts,
        last_error=stats.last_error or status.last_failure,
        details=dict(stats.details),
    )


class Performance(BaseModel):
    measured_over_s: float | None = Field(description="span the fps and CPU figures are measured over")
    pose_fps: float | None = Field(description="PoseFrames published per second, measured")
    pose_rate_hz: float = Field(description="the configured rate, for comparison")
    csi_packets_per_s: float = Field(description="all links together, over the last 2 s")
    links: list[LinkRate]
    latency_ms: Percentiles = Field(description="newest CSI frame to PoseFrame published")
    processing_ms: Percentiles = Field(description="building one PoseFrame")
    inference_ms: Percentiles = Field(description="one pose model run (empty without the model)")
    cpu_percent: float | None = Field(description="this process, all threads; 100 = one core")
    memory_rss_mb: float
    sinks: list[SinkReport] = Field(description="each sink: state, lag, drops and its own figures")
    subscriptions: list[SubscriptionLag] = Field(description="every hub subscriber's queue")


@router.get(
    "/api/v1/system/performance",
    scope=Scope.SYSTEM_READ,
    summary="Measured rates, latency and timing percentiles, CPU, memory and each sink's lag",
    response=Performance,
    tags=["system"],
)
async def performance(request: web.Request, query: None, body: None) -> Performance:
    pipeline = request.app[PIPELINE]
    rates = request.app[RESOURCES].sampler.rates(ProcessSampler.now(pipeline))
    now = time.time()
    links = [
        LinkRate(link=channel.link, packets_per_s=round(channel.rate_hz(now), 1))
        for channel in pipeline.links_by_id()
    ]
    return Performance(
        measured_over_s=round(rates.span_s, 2) if rates else None,
        pose_fps=round(rates.pose_fps, 2) if rates else None,
        pose_rate_hz=pipeline.rate_hz,
        csi_packets_per_s=round(sum(link.packets_per_s for link in links), 1),
        links=links,
        latency_ms=Percentiles.model_validate(percentiles_ms(pipeline.latency_s)),
        processing_ms=Percentiles.model_validate(percentiles_ms(pipeline.processing_s)),
        inference_ms=Percentiles.model_validate(percentiles_ms(pipeline.inference_s)),
        cpu_percent=round(rates.cpu_percent, 1) if rates else None,
        memory_rss_mb=round(memory_mb(), 1),
        sinks=[sink_report(status) for status in sink_statuses(request.app)],
        subscriptions=[
            SubscriptionLag(
                name=sub.name,
                pending=sub.pending,
                capacity=sub.maxsize,
                dropped=sub.dropped,
                delivered=sub.delivered,
            )
            for sub in request.app[HUB].subscriptions
        ],
    )
