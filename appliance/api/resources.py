"""The resource routes (pose, analytics, configuration, performance, metrics) and their shared holder.

``setup_resources`` is the one call ``app.py`` makes while building the application: it puts the holder
on the application and returns the routers to install. ``app.py``'s startup contexts fill the holder in
(history, live configuration, sinks) and run the background tasks the routes read (``run_resources``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from appliance.api import analytics, configuration, metrics, performance, pose
from appliance.api.keys import HUB, PIPELINE
from appliance.api.resource_keys import RESOURCES, Resources, sink_statuses
from appliance.api.routing import ApiRouter
from appliance.pipeline import stop_task


def setup_resources(app: web.Application) -> list[ApiRouter]:
    """Prepare ``app`` (which already holds ``PIPELINE`` and ``HUB``); returns the routers."""
    app[RESOURCES] = Resources(
        metrics=metrics.ApiMetrics(app[PIPELINE], app[HUB], lambda: sink_statuses(app)),
        sampler=performance.ProcessSampler(),
    )
    return [pose.router, analytics.router, configuration.router, performance.router, metrics.router]


@asynccontextmanager
async def run_resources(app: web.Application) -> AsyncIterator[None]:
    """The performance sampler and the metrics' frame counter, for the life of the block."""
    resources, pipeline, hub = app[RESOURCES], app[PIPELINE], app[HUB]
    tasks = [
        asyncio.create_task(resources.sampler.run(pipeline), name="performance-sampler"),
        asyncio.create_task(resources.metrics.follow(hub), name="metrics"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            await stop_task(task)
