"""End to end on the simulated room: a person walks into a zone, and ``person.entered_zone`` reaches the hub
within 2 s of the true body centre crossing into it.

Everything real runs: the physics simulator in real time, signal preparation, the motion detector's
calibration (which also teaches the model each link's empty room), the shipped int8 model, the tracker
and the zones. The only stand-in is the simulator itself for the radios.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from appliance.app import build_estimator
from appliance.config import load_config
from appliance.csi.simulator import RoomSimulator, Scenario
from appliance.csi.sources.simulated import SimulatedSource
from appliance.events import Event, EventType
from appliance.hub import Hub
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.motion import RoomMotion
from appliance.pose.scene import Zone
from tests.conftest import DEFAULT_CONFIG

EMPTY_S = 14.0
SEED = 21


def centre(keypoints: np.ndarray) -> np.ndarray:
    return keypoints[[5, 6, 11, 12], :2].mean(axis=0)


@pytest.mark.slow
async def test_walking_into_a_zone_fires_entered_zone_within_2_s() -> None:
    config = load_config(DEFAULT_CONFIG)
    sofa = next(z for z in config.zones if z.id == "sofa")
    room = config.room.to_spec()
    scenario = Scenario(room)
    scenario.person().away(EMPTY_S).enter(0).walk_to(2.6, 2.0, 1.0).walk_to(1.2, 3.2, 0.8).stand(15.0)

    truth = RoomSimulator(room, scenario, seed=SEED)
    zone = Zone.of(sofa)
    crossing_s = next(
        t
        for t in np.arange(EMPTY_S, EMPTY_S + 20.0, 0.05)
        if (people := truth.truth_at(float(t)).persons)
        and zone.signed_distance(*centre(people[0].keypoints)) > 0
    )

    source = SimulatedSource(RoomSimulator(room, scenario, seed=SEED), name="zone-test")
    estimator, why = build_estimator(config)
    assert estimator is not None, why
    hub = Hub()
    events = hub.subscribe("test", frames=False, maxsize=1000)
    pipeline = Pipeline(
        [source],
        RoomMotion(config.detector),
        hub,
        rate_hz=10,
        link_timeout_s=3,
        prep=config.prep,
        estimator=estimator,
    )
    started = time.time()
    task = asyncio.create_task(pipeline.run())
    entered: Event | None = None
    try:
        deadline = started + crossing_s + 10.0
        while entered is None and time.time() < deadline:
            item = await asyncio.wait_for(events.get(), timeout=max(0.1, deadline - time.time()))
            if (
                isinstance(item, Event)
                and item.type is EventType.PERSON_ENTERED_ZONE
                and item.data["zone_id"] == "sofa"
            ):
                entered = item
    finally:
        await stop_task(task)
    assert entered is not None, "no person.entered_zone for the sofa"
    delay_s = entered.time - (started + crossing_s)
    assert -0.5 <= delay_s <= 2.0, f"entered_zone {delay_s:.2f} s after the true crossing"
