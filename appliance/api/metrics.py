"""``GET /metrics``: Prometheus text exposition of the API, the pipeline, the hub and the integrations.

Counters the appliance keeps anyway (CSI frames per link, each hub subscriber's queue) are read when
scraped by a collector, not mirrored; what nobody else counts (requests, pose frames per estimator,
inference times) is counted here. Requests are labelled by route *template* (``/api/v1/pose/persons/{id}``),
never the raw path, so a client walking ids cannot grow the label set without bound. Each application has
its own registry: two apps in one process (tests, the bench) never share or collide on metrics.

Each sink's state, lag, drops and deliveries come from the sink runner at scrape time; the open WebSocket
streams from the WebSocket sink, the broker connection and message counts from the MQTT sink, webhook
attempts, backlogs and dead letters from the webhook sink (each at 0 while its sink is off, so dashboards and
alerts can be written against stable names).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance.api.resource_keys import RESOURCES
from appliance.api.routing import ApiRouter, Scope
from appliance.contracts import ESTIMATORS, PoseFrame
from appliance.hub import Hub
from appliance.integrations.base import SinkStats
from appliance.integrations.runner import SinkStatus
from appliance.pipeline import Pipeline

router = ApiRouter()
METRICS_PATH = "/metrics"
NAMESPACE = "invispose"
# Request latency buckets, seconds: from a cached JSON answer (~1 ms) to a long export.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Inference buckets, seconds: an int8 model on a small CPU takes milliseconds to tens of milliseconds.
INFERENCE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# Methods kept as label values; anything else is "other" (a method token is the client's to choose).
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
# nginx's status for a request whose client went away before the answer: no real status was sent.
CLIENT_CLOSED_STATUS = 499

# The metrics subscriber's hub queue: it only counts, so it never falls far behind.
_QUEUE_ITEMS = 256


class PipelineCollector(Collector):
    """Reads the pipeline's, the hub's and the sinks' own counters at scrape time."""

    def __init__(self, pipeline: Pipeline, hub: Hub, sinks: Callable[[], Sequence[SinkStatus]]) -> None:
        self._pipeline = pipeline
        self._hub = hub
        self._sinks = sinks

    def collect(self) -> Iterable[Metric]:
        frames = CounterMetricFamily(
            f"{NAMESPACE}_csi_frames", "CSI frames received, per link", labels=["link", "source"]
        )
        for channel in self._pipeline.links_by_id():
            frames.add_metric([channel.link, channel.source], channel.frames)
        yield frames
        published = CounterMetricFamily(f"{NAMESPACE}_hub_published", "Items published on the hub")
        published.add_metric([], self._hub.published)
        yield published
        pending = GaugeMetricFamily(
            f"{NAMESPACE}_hub_queue_pending", "Items waiting in a subscriber's queue", labels=["subscriber"]
        )
        dropped = CounterMetricFamily(
            f"{NAMESPACE}_hub_dropped",
            "Items a subscriber lost because it fell behind (its lag)",
            labels=["subscriber"],
        )
        for sub in self._hub.subscriptions:
            pending.add_metric([sub.name], sub.pending)
            dropped.add_metric([sub.name], sub.dropped)
        yield pending
        yield dropped
        yield from self._sink_metrics()

    def _sink_metrics(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            f"{NAMESPACE}_sink_up", "1 while a sink runs and reaches where it delivers", labels=["sink"]
        )
        lag = GaugeMetricFamily(f"{NAMESPACE}_sink_pending", "Messages waiting for a sink", labels=["sink"])
        dropped = CounterMetricFamily(
            f"{NAMESPACE}_sink_dropped", "Messages a sink lost because it fell behind", labels=["sink"]
        )
        delivered = CounterMetricFamily(
            f"{NAMESPACE}_sink_delivered", "Messages a sink handed on", labels=["sink"]
        )
        restarts = CounterMetricFamily(
            f"{NAMESPACE}_sink_restarts", "Times a sink was restarted after a failure", labels=["sink"]
        )
        statuses = list(self._sinks())
        clients = next((s.stats.details.get("clients", 0) for s in statuses if s.name == "websocket"), 0)
        connections = GaugeMetricFamily(
            f"{NAMESPACE}_websocket_connections", "Open WebSocket streams", value=float(clients)
        )
        for status in statuses:
            up.add_metric([status.name], 1.0 if status.healthy else 0.0)
            lag.add_metric([status.name], status.stats.pending)
            dropped.add_metric([status.name], status.stats.dropped)
            delivered.add_metric([status.name], status.stats.delivered)
            restarts.add_metric([status.name], status.restarts)
        yield from (up, lag, dropped, delivered, restarts, connections)
        yield from _mqtt_metrics(next((s.stats for s in statuses if s.name == "mqtt"), None))
        yield from _webhook_metrics(next((s for s in statuses if s.name == "webhooks"), None))


def _mqtt_metrics(stats: SinkStats | None) -> Iterable[Metric]:
    """The MQTT sink's own figures (at 0 while it is off, so the names are always there)."""
    details = stats.details if stats is not None else {}
    yield GaugeMetricFamily(
        f"{NAMESPACE}_mqtt_connected",
        "1 while connected to the MQTT broker, else 0",
        value=1.0 if stats is not None and stats.connected else 0.0,
    )
    yield CounterMetricFamily(
        f"{NAMESPACE}_mqtt_messages_sent",
        "Messages the MQTT broker accepted",
        value=stats.delivered if stats is not None else 0,
    )
    dropped = CounterMetricFamily(
        f"{NAMESPACE}_mqtt_messages_dropped",
        "Messages never sent to the broker: events beyond the queue's limit, readings replaced by a newer "
        "one while they waited",
        labels=["kind"],
    )
    dropped.add_metric(["event"], details.get("events_dropped", 0))
    dropped.add_metric(["reading"], details.get("readings_superseded", 0))
    yield dropped


def _webhook_metrics(status: SinkStatus | None) -> Iterable[Metric]:
    """Attempts by outcome (since start), and each webhook's backlog and dead letters, from the webhook
    sink's stats."""
    endpoints: dict[str, dict[str, Any]] = status.stats.details.get("endpoints", {}) if status else {}
    attempts = CounterMetricFamily(
        f"{NAMESPACE}_webhook_deliveries", "Webhook delivery attempts, by outcome", labels=["outcome"]
    )
    attempts.add_metric(["delivered"], sum(e["delivered"] for e in endpoints.values()))
    attempts.add_metric(["failed"], sum(e["failed_attempts"] for e in endpoints.values()))
    backlog = GaugeMetricFamily(
        f"{NAMESPACE}_webhook_backlog", "Deliveries waiting in the outbox, per webhook", labels=["webhook"]
    )
    dead = GaugeMetricFamily(
        f"{NAMESPACE}_webhook_dead_letters",
        "Deliveries that failed for good, per webhook",
        labels=["webhook"],
    )
    for webhook, figures in endpoints.items():
        backlog.add_metric([webhook], figures["backlog"])
        dead.add_metric([webhook], figures["dead_letters"])
    yield from (attempts, backlog, dead)


class ApiMetrics:
    """One application's registry and the metrics that handlers, sinks and the middleware update."""

    def __init__(self, pipeline: Pipeline, hub: Hub, sinks: Callable[[], Sequence[SinkStatus]]) -> None:
        self.registry = CollectorRegistry()
        self._pipeline = pipeline
        registry = self.registry
        self.requests = Counter(
            f"{NAMESPACE}_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            f"{NAMESPACE}_http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: until it ended), by route template",
            ["method", "route"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self.pose_frames = Counter(
            f"{NAMESPACE}_pose_frames", "PoseFrames published, by estimator", ["estimator"], registry=registry
        )
        for estimator in ESTIMATORS:
            self.pose_frames.labels(estimator=estimator)
        self.inference_seconds = Histogram(
            f"{NAMESPACE}_inference_duration_seconds",
            "One pose model run",
            buckets=INFERENCE_BUCKETS,
            registry=registry,
        )
        registry.register(PipelineCollector(pipeline, hub, sinks))
        ProcessCollector(namespace=NAMESPACE, registry=registry)
        self._last_inference: float | None = None

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _KNOWN_METHODS else "other"
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.request_seconds.labels(method=method, route=route).observe(seconds)

    def observe_frame(self, frame: PoseFrame) -> None:
        self.pose_frames.labels(estimator=frame.estimator).inc()
        for seconds in self._new_inference_times():
            self.inference_seconds.observe(seconds)

    def _new_inference_times(self) -> list[float]:
        """Inference times the pipeline added since the last call, oldest first.

        The pipeline keeps a bounded window of sample objects (``deque`` of floats) without a running
        count, so the samples already seen are recognised by the identity of the newest one taken: each
        is a distinct float object, and holding a reference to it keeps its identity from being reused.
        """
        samples: deque[float] = self._pipeline.inference_s
        fresh: list[float] = []
        for sample in reversed(samples):
            if sample is self._last_inference:
                break
            fresh.append(sample)
        if samples:
            self._last_inference = samples[-1]
        fresh.reverse()
        return fresh

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def follow(self, hub: Hub) -> None:
        """Count the frames the hub carries until cancelled (or the hub closes)."""
        subscription = hub.subscribe("metrics", ("pose",), maxsize=_QUEUE_ITEMS)
        try:
            async for message in subscription:
                if isinstance(message.item, PoseFrame):
                    self.observe_frame(message.item)
        finally:
            hub.unsubscribe(subscription)


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request and time it, by method, route template and final status. Place it first (outside
    the error middleware), so the status recorded is the one the client got."""
    resources = request.app.get(RESOURCES)
    if resources is None:
        return await handler(request)
    started = time.perf_counter()
    status = web.HTTPInternalServerError.status_code
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED_STATUS
        raise
    finally:
        resources.metrics.observe_request(
            request.method, route_template(request), status, time.perf_counter() - started
        )


@router.get(
    METRICS_PATH,
    scope=Scope.SYSTEM_READ,
    summary="Prometheus metrics (text exposition format)",
    content_types=["text/plain"],
    tags=["system"],
)
async def metrics(request: web.Request, query: None, body: None) -> web.Response:
    """Scrape with any API token that holds ``system:read`` (Prometheus: ``authorization.credentials``)."""
    body_bytes = request.app[RESOURCES].metrics.exposition()
    return web.Response(body=body_bytes, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})
