"""``SensingEstimator`` on a simulated room: links learn their empty room, a person is placed and drawn in
the ``PoseFrame`` contract, and a recalibration or a moved node starts the empty rooms over."""

from __future__ import annotations

import dataclasses

import numpy as np

from appliance.contracts.coco import N_KEYPOINTS
from appliance.csi.prep import LinkPreparer
from appliance.csi.simulator import Body, RoomSimulator, Scenario, default_room
from appliance.pose.estimator import SensingEstimator
from appliance.pose.scene import Scene, SceneSettings
from appliance.pose.sensing.classifier import SensingModel
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.sensing.room import SensingSettings

CALIBRATION_S = 5.0


def test_links_calibrate_a_person_is_placed_and_recalibration_starts_over() -> None:
    room = default_room()
    scenario = Scenario(room)
    scenario.person(Body()).away(CALIBRATION_S + 1.0).enter(0).walk_to(2.5, 2.0, 1.0).stand(30.0)
    simulator = RoomSimulator(room, scenario, seed=3)
    estimator = SensingEstimator(
        SensingModel(),
        LinkLikelihood.load(),
        RoomGeometry.from_room_spec(room),
        Scene(SceneSettings()),
        SensingSettings(),
        rate_hz=100.0,
        calibration_s=CALIBRATION_S,
    )
    preparers: dict[str, LinkPreparer] = {}
    persons = []
    while simulator.t_s < CALIBRATION_S + 12.0:
        for frame in simulator.advance(0.1).frames:
            estimator.push(preparers.setdefault(frame.link, LinkPreparer()).push(frame))
        cues, inputs = estimator.observe(simulator.t_s)
        reading = estimator.read(cues, estimator.classify(inputs) if inputs is not None else None)
        persons = [estimator.pose(p) for p in estimator.track(reading).persons]
    assert estimator.ready_links == len(room.link_ids)
    assert persons  # the model may count one too many; the nearest must be the person
    truth = simulator.truth_at(simulator.t_s).persons[0].keypoints[[11, 12], :2].mean(axis=0)
    person = min(
        persons, key=lambda p: float(np.linalg.norm(np.array((p.position_m or (9, 9, 9))[:2]) - truth))
    )
    assert person.skeleton == "rendered" and len(person.keypoints) == N_KEYPOINTS
    assert person.position_m is not None and person.uncertainty_m is not None
    assert np.linalg.norm(np.array(person.position_m[:2]) - truth) < 2.0
    assert all(0.0 <= k.confidence <= 1.0 for k in person.keypoints)

    estimator.forget_references()
    assert estimator.ready_links == 0
    moved = dataclasses.replace(
        room,
        nodes=tuple(
            dataclasses.replace(n, position=(4.9, 2.0, 1.0)) if n.id == "rx5" else n for n in room.nodes
        ),
    )
    estimator.set_geometry(RoomGeometry.from_room_spec(moved))
    assert estimator.geometry.links["ap-rx5"].rx == (4.9, 2.0, 1.0)
    assert estimator.ready_links == 0
