"""The model path between the ring buffers and a PoseFrame: references, window, inference, tracking, view.

Runs the shipped int8 model on the simulator's frames through the real signal preparation. It checks the
plumbing and its contracts, not the model's accuracy (that is `invispose eval pose`'s job).
"""

from __future__ import annotations

import numpy as np
import pytest

from appliance.csi.prep import LinkPreparer, PreparedSample
from appliance.csi.simulator import Body, RoomSimulator, Scenario, default_room
from appliance.pose.estimator import ModelEstimator, ModelSettings
from appliance.pose.features import RoomGeometry
from appliance.pose.runtime import PoseModel
from appliance.pose.scene import Scene, SceneSettings

EMPTY_S = 5.0
Samples = dict[str, list[PreparedSample]]


@pytest.fixture(scope="module")
def prepared() -> tuple[Samples, Samples]:
    """Prepared samples of the default room: EMPTY_S seconds empty, then 8 s with a person walking in."""
    room = default_room()
    scenario = Scenario(room)
    scenario.person(Body(1.8, 1.0, 0.25)).away(EMPTY_S).enter(0).walk_to(2.5, 2.0, 1.0).stand(10.0)
    simulator = RoomSimulator(room, scenario, seed=4)
    preparers: dict[str, LinkPreparer] = {}

    def prepare(seconds: float) -> Samples:
        out: Samples = {}
        for frame in simulator.advance(seconds).frames:
            preparer = preparers.setdefault(frame.link, LinkPreparer())
            out.setdefault(frame.link, []).extend(preparer.push(frame))
        return out

    return prepare(EMPTY_S), prepare(8.0)


def make_estimator(*, min_links: int = 3, presence_gate: bool = True) -> ModelEstimator:
    settings = ModelSettings(enabled=True, min_links=min_links, presence_gate=presence_gate)
    geometry = RoomGeometry.from_room_spec(default_room())
    return ModelEstimator(PoseModel(settings.path), geometry, Scene(SceneSettings(confirm_s=0.2)), settings)


def test_no_window_until_enough_links_know_the_empty_room(prepared: tuple[Samples, Samples]) -> None:
    empty, occupied = prepared
    estimator = make_estimator(min_links=3)
    assert estimator.window(occupied) is None
    for link in list(empty)[:2]:
        estimator.learn_reference(link, empty[link])
    assert (estimator.ready_links, estimator.ready) == (2, False)
    assert estimator.window(occupied) is None
    estimator.learn_reference("not-a-link", empty["ap-rx3"])
    assert "not-a-link" not in estimator.references
    for link, samples in empty.items():
        estimator.learn_reference(link, samples)
    assert estimator.ready_links == 6
    inputs = estimator.window(occupied)
    assert inputs is not None
    assert set(inputs.links) == set(empty)
    estimator.forget_references()
    assert estimator.window(occupied) is None


def test_inference_tracking_and_the_overlay_view(prepared: tuple[Samples, Samples]) -> None:
    empty, occupied = prepared
    estimator = make_estimator(presence_gate=False)
    for link, samples in empty.items():
        estimator.learn_reference(link, samples)
    inputs = estimator.window(occupied)
    assert inputs is not None
    output = estimator.infer(inputs)
    assert output.keypoints.shape == (3, 17, 3)
    assert np.all((output.presence >= 0) & (output.presence <= 1))
    persons = []
    for step in range(20):
        persons = list(estimator.track(output, 100.0 + 0.1 * step).persons)
    assert len(persons) == output.person_count()
    for person in persons:
        pose = estimator.pose(person)
        assert [k.name for k in pose.keypoints][:2] == ["nose", "left_eye"]
        assert pose.keypoints[0].position_m == pytest.approx(tuple(person.keypoints[0]), abs=1e-6)
        x, y, w, h = pose.bbox
        assert 0 <= x <= 1 and 0 <= y <= 1 and 0 <= x + w <= 1 and 0 <= y + h <= 1
        inside = [k for k in pose.keypoints if 0 <= k.position_m[0] <= 5 and 0 <= k.position_m[1] <= 4]
        assert all(0 <= k.x <= 1 and 0 <= k.y <= 1 for k in inside)


def test_presence_gate_keeps_an_empty_room_empty(prepared: tuple[Samples, Samples]) -> None:
    empty, occupied = prepared
    gated = make_estimator(presence_gate=True)
    for link, samples in empty.items():
        gated.learn_reference(link, samples)
    inputs = gated.window(occupied)
    assert inputs is not None
    output = gated.infer(inputs)
    updates = [gated.track(output, 100.0 + 0.1 * step, room_occupied=False) for step in range(20)]
    assert all(not update.persons and not update.events for update in updates)
