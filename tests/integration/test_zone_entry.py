"""End to end: a simulated person walks into a zone, and ``person.entered_zone`` follows within 2 s.

Everything runs as in the service: the room simulator as a real-time source (every realism switch on),
per-link preparation, the motion detector, the sensing path (cues, the shipped model and likelihood, the
localising trackers) and the scene with its zone hysteresis, publishing on the hub. Only the radio is
simulated. The room is a router with three 3-antenna receivers (the ``atheros-3rx`` setup), the layout
whose evaluation places moving people well (``invispose eval sensing``); the clock is the simulation's
ground truth: the moment the person's pelvis crosses into the zone, against the event's publication.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.contracts import TRACKER_OUTPUTS, Event, EventType, PoseFrame, ZoneShape
from appliance.csi.simulator import Body, NodeSpec, RoomSimulator, RoomSpec, Scenario
from appliance.csi.sources.simulated import SimulatedSource
from appliance.hub import Hub
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.estimator import SensingEstimator
from appliance.pose.motion import MotionSettings, RoomMotion
from appliance.pose.scene import Scene, SceneSettings
from appliance.pose.sensing.classifier import SensingModel
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.sensing.room import SensingSettings

CALIBRATION_S = 10.0
ZONE = ZoneShape("desk", "Desk", ((3.0, 2.2), (4.7, 2.2), (4.7, 3.7), (3.0, 3.7)), False)
ZONE_EDGE_X = 3.0


def room() -> RoomSpec:
    return RoomSpec(
        5.0,
        4.0,
        2.7,
        (
            NodeSpec("ap", "atheros", "tx", (2.5, 0.05, 2.0), antennas=2),
            NodeSpec("r1", "atheros", "rx", (0.05, 2.5, 1.3), antennas=3),
            NodeSpec("r2", "atheros", "rx", (4.95, 1.2, 1.3), antennas=3),
            NodeSpec("r3", "atheros", "rx", (2.0, 3.95, 1.3), antennas=3),
        ),
        doors=((0.0, 1.0),),
    )


@pytest.mark.slow
async def test_walking_into_a_zone_fires_entered_zone_within_two_seconds() -> None:
    spec = room()
    scenario = Scenario(spec)
    # In through the door, a few steps across the room, then into the desk zone to stand there.
    scenario.person(Body()).away(CALIBRATION_S + 2.0).enter(0).walk_to(1.5, 1.8, 0.9).stand(1.0).walk_to(
        4.0, 3.0, 0.9
    ).stand(15.0)
    simulator = RoomSimulator(spec, scenario, seed=11)
    source = SimulatedSource(simulator, name="room", realtime=True)
    hub = Hub()
    events = hub.subscribe("test", maxsize=100_000)
    scene = Scene(SceneSettings(), [ZONE])
    estimator = SensingEstimator(
        SensingModel(),
        LinkLikelihood.load(),
        RoomGeometry.from_room_spec(spec),
        scene,
        SensingSettings(),
        rate_hz=100.0,
        calibration_s=CALIBRATION_S,
    )
    pipeline = Pipeline(
        [source], RoomMotion(MotionSettings()), hub, rate_hz=10.0, link_timeout_s=3.0, estimator=estimator
    )
    pipeline.set_zones([ZONE])
    task = asyncio.create_task(pipeline.run())
    truly_inside_at: float | None = None
    entered_at: float | None = None
    last_frame: PoseFrame | None = None
    deadline = time.monotonic() + 60.0
    try:
        # Until the event, and the reading that carries it (the scene's events go out just before it).
        while (entered_at is None or last_frame is None) and time.monotonic() < deadline:
            message = await asyncio.wait_for(events.get(), timeout=5.0)
            truth = source.latest_truth
            if truly_inside_at is None and truth is not None and truth.persons:
                hips = truth.persons[0].keypoints[[11, 12], :2].mean(axis=0)
                if hips[0] >= ZONE_EDGE_X and hips[1] >= 2.2:
                    truly_inside_at = time.monotonic()
            item = message.item
            if isinstance(item, PoseFrame) and entered_at is not None:
                last_frame = item
            entered = isinstance(item, Event) and item.type is EventType.PERSON_ENTERED_ZONE
            if entered and isinstance(item, Event) and item.data["zone_id"] == ZONE.id:
                entered_at = time.monotonic()
    finally:
        await stop_task(task)
    assert truly_inside_at is not None, "the simulated person never reached the zone"
    assert entered_at is not None, "no person.entered_zone for the desk"
    print(f"entered_zone {entered_at - truly_inside_at:.2f} s after the person did")
    assert entered_at - truly_inside_at <= 2.0
    # The reading that placed them says what produced what, and that the skeleton is rendered.
    assert last_frame is not None
    assert last_frame.estimator == "tracker" and dict(last_frame.estimators) == TRACKER_OUTPUTS
    assert last_frame.model_version == estimator.model.version
    # Counting is the model's (measured by `invispose eval sensing`, not exact every reading): of the people
    # it counted, one is placed in the zone.
    placed = [p for p in last_frame.persons if p.zone == ZONE.id]
    assert placed, f"nobody placed in the zone: {[(p.id, p.zone) for p in last_frame.persons]}"
    person = placed[0]
    assert person.skeleton == "rendered"
    assert person.position_m is not None and person.uncertainty_m is not None
    assert 0.0 < person.uncertainty_m < 2.0
