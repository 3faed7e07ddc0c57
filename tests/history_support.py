"""Recording items into a history store through the real recorder and sink runner."""

from __future__ import annotations

import asyncio
import time

from appliance.contracts import Event, PoseFrame
from appliance.hub import Hub
from appliance.integrations.history import HistoryRecorder, HistorySettings
from appliance.integrations.runner import SinkRunner
from appliance.store.history import HistoryStore

# T0 is in 2023: the recorder's retention, which runs in the background as it starts, must keep it, or on a
# loaded machine it deletes rows the test has just written (by age: 30 days by default).
KEEP_ALL_DAYS = 3650
FAST = HistorySettings(flush_interval_s=0.05, retention_days=KEEP_ALL_DAYS)


async def recorded(recorder: HistoryRecorder, timeout_s: float = 5.0) -> None:
    """Wait until the recorder has taken every item published so far off its queue, then write them: the
    condition itself, not a sleep that hopes it is long enough."""
    deadline = time.monotonic() + timeout_s
    while recorder.recorder_stats().pending:
        assert time.monotonic() < deadline, recorder.recorder_stats()
        await asyncio.sleep(0.005)
    await recorder.flush()


async def record_all(
    store: HistoryStore, items: list[PoseFrame | Event], settings: HistorySettings = FAST
) -> None:
    """Publish ``items`` with a recorder running, without losing any: a full queue would drop the oldest (on
    a loaded machine the recorder falls behind a publisher that never waits), so wait for room, as live
    sources' pace allows. Leaving the runner writes everything."""
    hub = Hub()
    recorder = HistoryRecorder(store, hub, settings)
    async with SinkRunner([recorder], hub):
        for item in items:
            while recorder.recorder_stats().pending >= settings.queue_items:  # noqa: ASYNC110 - no event
                await asyncio.sleep(0.001)
            hub.publish(item)
            await asyncio.sleep(0)
    assert recorder.recorder_stats().dropped == 0
