"""Recording items into a history store through the real recorder and sink runner."""

from __future__ import annotations

import asyncio

from appliance.contracts import Event, PoseFrame
from appliance.hub import Hub
from appliance.integrations.history import HistoryRecorder, HistorySettings
from appliance.integrations.runner import SinkRunner
from appliance.store.history import HistoryStore

# Flushing often, and keeping the fixed test epoch (T0, 2023) out of reach of the recorder's retention run.
FAST = HistorySettings(flush_interval_s=0.05, retention_days=3650)


async def record_all(
    store: HistoryStore, items: list[PoseFrame | Event], settings: HistorySettings = FAST
) -> None:
    """Publish ``items`` on a hub with a recorder running; leaving the runner writes everything."""
    hub = Hub()
    async with SinkRunner([HistoryRecorder(store, hub, settings)], hub):
        for item in items:
            hub.publish(item)
            await asyncio.sleep(0)
