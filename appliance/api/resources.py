"""The resource routes (pose, analytics, configuration, performance, metrics) and what they need running.

``setup_resources`` is the one call ``app.py`` makes: it puts the shared holder on the application, adds
the startup context, and returns the routers to install. The context opens the history and the live
configuration on the application's database and starts the history recorder *before* the pipeline
context starts publishing (it must be appended after the database context and before the pipeline's), so
the first frames are recorded; it stops them after the pipeline has stopped, so the last ones are too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from appliance.api import analytics, configuration, metrics, performance, pose
from appliance.api.keys import CONFIG, DATABASE, HUB, PIPELINE
from appliance.api.live_config import LiveConfig
from appliance.api.resource_keys import RESOURCES, Resources
from appliance.api.routing import ApiRouter
from appliance.config import AppConfig
from appliance.pipeline import stop_task
from appliance.store.history import HistoryRecorder, HistoryStore
from appliance.store.settings import SettingsStore


def setup_resources(app: web.Application) -> list[ApiRouter]:
    """Prepare ``app`` (which already holds ``CONFIG``, ``PIPELINE`` and ``HUB``); returns the routers."""
    app[RESOURCES] = Resources(
        metrics=metrics.ApiMetrics(app[PIPELINE], app[HUB]), sampler=performance.ProcessSampler()
    )
    app.cleanup_ctx.append(_resources_ctx)
    return [pose.router, analytics.router, configuration.router, performance.router, metrics.router]


async def _resources_ctx(app: web.Application) -> AsyncIterator[None]:
    resources = app[RESOURCES]
    config: AppConfig = app[CONFIG]
    database = app[DATABASE]
    pipeline, hub = app[PIPELINE], app[HUB]
    resources.history = HistoryStore(database)
    resources.live_config = await LiveConfig.load(config, SettingsStore(database), pipeline)
    if config.history.enabled:
        resources.recorder = HistoryRecorder(resources.history, hub, config.history)
        await resources.recorder.start()
    tasks = [
        asyncio.create_task(resources.sampler.run(pipeline), name="performance-sampler"),
        asyncio.create_task(resources.metrics.follow(hub), name="metrics"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            await stop_task(task)
        if resources.recorder is not None:
            await resources.recorder.stop()
