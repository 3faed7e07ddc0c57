"""The pipeline: it keeps running through an error in one window, and publishes each frame with the
messages derived from it (persons, changed zones) and its status on change."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from appliance.contracts import Event, EventType, PoseFrame, SourceKind, SystemStatus, ZoneShape
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import Impairments, RoomSimulator, Scenario, default_room
from appliance.hub import Hub
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.motion import MotionSettings, RoomMotion, RoomReading
from tests.factories import T0, frame_at


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


def quiet_pipeline(hub: Hub, status_interval_s: float = 30.0) -> Pipeline:
    return Pipeline(
        [SteadySource()],
        RoomMotion(MotionSettings()),
        hub,
        rate_hz=10,
        link_timeout_s=3.0,
        status_interval_s=status_interval_s,
    )


def test_a_frame_brings_its_persons_and_only_changed_zones() -> None:
    hub = Hub()
    everything = hub.subscribe("test", maxsize=None)
    pipeline = quiet_pipeline(hub)
    sofa = ((0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0))
    pipeline.set_zones([ZoneShape("sofa", "Sofa", sofa, False), ZoneShape("desk", "Desk", sofa, True)])
    pipeline.announce(frame_at(T0, [(1, 1.0, 1.0, "sofa", "sitting"), (2, 4.0, 3.0, None, "walking")], 1))
    first = [m.topic for m in everything.drain()]
    assert first == ["pose", "person/1", "person/2", "zone/sofa", "zone/desk"]
    sofa_now = hub.latest("zone/sofa")
    assert sofa_now is not None and json.loads(sofa_now.text)["person_ids"] == [1]
    # Same occupancy: the zones are not sent again.
    pipeline.announce(
        frame_at(T0 + 0.1, [(1, 1.1, 1.0, "sofa", "sitting"), (2, 4.0, 3.0, None, "walking")], 2)
    )
    assert [m.topic for m in everything.drain()] == ["pose", "person/1", "person/2"]
    # Person 1 leaves the sofa; a removed zone's retained occupancy is forgotten.
    pipeline.announce(frame_at(T0 + 0.2, [(1, 3.0, 1.0, None, "walking")], 3))
    assert [m.topic for m in everything.drain()] == ["pose", "person/1", "zone/sofa"]
    pipeline.set_zones([ZoneShape("desk", "Desk", sofa, True)])
    assert hub.latest("zone/sofa") is None and hub.latest("zone/desk") is not None


def test_the_motion_detector_cannot_count_so_zones_say_unknown() -> None:
    hub = Hub()
    pipeline = quiet_pipeline(hub)
    pipeline.set_zones([ZoneShape("sofa", "Sofa", ((0, 0), (1, 0), (1, 1)), False)])
    pipeline.announce(frame_at(T0))
    message = hub.latest("zone/sofa")
    assert message is not None and json.loads(message.text)["occupancy"] is None


def test_status_is_published_on_change_and_on_its_interval() -> None:
    hub = Hub()
    statuses = hub.subscribe("test", ("status",), maxsize=None)
    pipeline = quiet_pipeline(hub, status_interval_s=30.0)
    pipeline.publish_status(T0)
    pipeline.publish_status(T0 + 1)  # nothing changed
    assert statuses.pending == 1
    pipeline.sources[0].error = "OSError: port gone"
    pipeline.publish_status(T0 + 2)  # a source failed: at once
    pipeline.publish_status(T0 + 31)  # no change, 29 s after the last
    pipeline.publish_status(T0 + 32)  # the interval is up
    published = [m.item for m in statuses.drain()]
    assert [s.timestamp for s in published if isinstance(s, SystemStatus)] == [T0, T0 + 2, T0 + 32]
    latest = hub.latest("status")
    assert latest is not None and json.loads(latest.text)["sources"][0]["error"] == "OSError: port gone"
