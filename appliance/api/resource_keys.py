"""The application key of the resource routes (pose, analytics, configuration, performance, metrics) and
of the services they read (history, live configuration, the sinks).

aiohttp freezes an application before its startup runs, and setting a key on a frozen application is
deprecated; so one holder is put on the application while it is built, and the parts that need the open
database (the history, the live configuration) are filled in by the startup context. Handlers reach them
through the accessors below, which fail loudly if a route were ever served before startup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from appliance.api.metrics import ApiMetrics
    from appliance.api.performance import ProcessSampler
    from appliance.control import ApplianceControls
    from appliance.integrations.runner import SinkRunner, SinkStatus
    from appliance.live_config import LiveConfig
    from appliance.store.history import HistoryStore


@dataclass(slots=True, eq=False)
class Resources:
    """What the resource routes share: made at build time (metrics, sampler) or at startup (the rest)."""

    metrics: ApiMetrics
    sampler: ProcessSampler
    history: HistoryStore | None = None
    live_config: LiveConfig | None = None
    controls: ApplianceControls | None = None
    sinks: SinkRunner | None = None


RESOURCES = web.AppKey("resources", Resources)


def history_store(app: web.Application) -> HistoryStore:
    store = app[RESOURCES].history
    if store is None:
        raise RuntimeError("the history store opens at startup; no request is served before it")
    return store


def live_config(app: web.Application) -> LiveConfig:
    config = app[RESOURCES].live_config
    if config is None:
        raise RuntimeError("the live configuration loads at startup; no request is served before it")
    return config


def controls(app: web.Application) -> ApplianceControls:
    found = app[RESOURCES].controls
    if found is None:
        raise RuntimeError("the controls load at startup; no request is served before it")
    return found


def sink_statuses(app: web.Application) -> list[SinkStatus]:
    """Every sink's status; none before the sinks have started (or with no resources at all)."""
    resources = app.get(RESOURCES)
    if resources is None or resources.sinks is None:
        return []
    return resources.sinks.status()
