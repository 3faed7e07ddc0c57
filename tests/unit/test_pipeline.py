"""The pipeline keeps running through an error in one window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from appliance.contracts import SourceKind
from appliance.contracts.events import Event, EventType
from appliance.contracts.pose import PoseFrame
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import Impairments, RoomSimulator, Scenario, default_room
from appliance.hub import Hub
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.motion import MotionSettings, RoomMotion, RoomReading


class SteadySource:
    """Simulated nodes sending in real time for as long as they are read."""

    def __init__(self) -> None:
        room = default_room()
        self._simulator = RoomSimulator(room, Scenario(room), seed=5, impairments=Impairments.none())

    @property
    def name(self) -> str:
        return "steady"

    @property
    def kind(self) -> SourceKind:
        return "esp32"

    async def frames(self) -> AsyncIterator[CsiFrame]:
        while True:
            for frame in self._simulator.advance(0.1).frames:
                yield frame
            await asyncio.sleep(0.1)


class FailsTwice(RoomMotion):
    """A detector whose first two readings fail (a bug in one window, a transient model error)."""

    def __init__(self) -> None:
        super().__init__(MotionSettings())
        self.failures = 0

    def reading(self, now_s: float | None = None) -> RoomReading:
        if self.failures < 2:
            self.failures += 1
            raise RuntimeError("window went wrong")
        return super().reading(now_s)


async def test_an_error_in_one_window_does_not_stop_the_pipeline() -> None:
    hub = Hub()
    items = hub.subscribe("test", maxsize=10_000)
    detector = FailsTwice()
    pipeline = Pipeline([SteadySource()], detector, hub, rate_hz=20, link_timeout_s=3.0)
    task = asyncio.create_task(pipeline.run())
    frames: list[PoseFrame] = []
    alerts: list[Event] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(frames) < 3:
            item = (await asyncio.wait_for(items.get(), timeout=deadline - time.monotonic())).item
            if isinstance(item, PoseFrame):
                frames.append(item)
            elif isinstance(item, Event) and item.type is EventType.ALERT_SYSTEM_ERROR:
                alerts.append(item)
        assert not task.done(), "the pipeline task ended"
    finally:
        await stop_task(task)
    assert detector.failures == 2
    assert len(frames) == 3
    assert pipeline.sources[0].error is None
    # The same failure twice in a row is announced once.
    assert [a.data for a in alerts] == [{"component": "pipeline", "error": "RuntimeError: window went wrong"}]
