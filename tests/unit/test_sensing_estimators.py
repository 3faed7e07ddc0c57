"""The trackers, the fall detector, the rendered skeleton, the classifier's input and the presence logic,
each against what the physics or the definitions say (the crossing point of two shadowed links, a
fall's Doppler burst then stillness, a body model's proportions)."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.contracts.coco import ACTIVITIES, KEYPOINT_INDEX
from appliance.pose.sensing.classifier import (
    LINK_INPUTS,
    MAX_LINKS,
    STEP_S,
    STEPS,
    CueHistory,
    RoomClass,
    SensingModel,
    room_activity,
)
from appliance.pose.sensing.cues import N_CUE_FEATURES, RSSI_SCALE_DB, LinkCues, RoomCues
from appliance.pose.sensing.falls import FallDetector, FallThresholds
from appliance.pose.sensing.geometry import LinkGeometry, RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.sensing.room import RoomSensing, SensingSettings
from appliance.pose.sensing.skeleton import joint_confidence, render
from appliance.pose.sensing.tracker import MultiTracker

# A 5 x 4 m room crossed by a grid of links (two transmitters on the left and bottom walls, receivers
# opposite): each link's line of sight is a straight line across the floor.
LINKS = {
    "a-1": LinkGeometry((0.05, 1.0, 1.2), (4.95, 1.0, 1.2)),
    "a-2": LinkGeometry((0.05, 2.0, 1.2), (4.95, 2.0, 1.2)),
    "a-3": LinkGeometry((0.05, 3.0, 1.2), (4.95, 3.0, 1.2)),
    "b-1": LinkGeometry((1.5, 0.05, 1.2), (1.5, 3.95, 1.2)),
    "b-2": LinkGeometry((2.5, 0.05, 1.2), (2.5, 3.95, 1.2)),
    "b-3": LinkGeometry((3.5, 0.05, 1.2), (3.5, 3.95, 1.2)),
}
GEOMETRY = RoomGeometry(5.0, 4.0, 2.7, LINKS)


def link_cues(link: str, t: float, *, beat: float = 1.0, doppler: float = 1.0) -> LinkCues:
    return LinkCues(
        link, t, True, 0.0, -50.0, beat, -90.0, np.full(41, doppler, np.float32), 0.0, 1.0, None, None
    )


def shadowed(t: float, links: set[str], likelihood: LinkLikelihood) -> RoomCues:
    """Cues of a still person shadowing ``links``: their RSSI down by the fitted shadow depth."""
    vectors = np.zeros((len(LINKS), N_CUE_FEATURES), np.float32)
    vectors[:, 2] = 0.0  # beat as the empty room's (log 1)
    for row, link in enumerate(LINKS):
        if link in links:
            vectors[row, 0] = -likelihood.shadow_db / RSSI_SCALE_DB
    return RoomCues(t, tuple(LINKS), vectors, tuple(link_cues(link, t) for link in LINKS))


def test_tracker_settles_where_the_shadowed_links_cross() -> None:
    likelihood = LinkLikelihood()
    tracker = MultiTracker(GEOMETRY, likelihood, seed=1)
    [blind] = tracker.update(shadowed(0.0, set(), likelihood), count=1)
    estimates = []
    for i in range(1, 80):
        estimates = tracker.update(shadowed(i * 0.1, {"a-3", "b-3"}, likelihood), count=1)
    [estimate] = estimates
    assert np.linalg.norm(estimate.position - np.array([3.5, 3.0])) < 0.35
    # The belief narrows (points along either shadowed line keep some of it: a shadow says "on this
    # line", only the crossing says where on it).
    assert estimate.uncertainty_m < 0.7 * blind.uncertainty_m
    assert np.linalg.norm(GEOMETRY.centre - np.array([3.5, 3.0])) > 1.0  # not where a blind guess goes


def test_tracker_keeps_as_many_filters_as_people_counted() -> None:
    likelihood = LinkLikelihood()
    tracker = MultiTracker(GEOMETRY, likelihood, seed=2)
    assert len(tracker.update(shadowed(0.0, set(), likelihood), count=2)) == 2
    assert len(tracker.update(shadowed(0.1, set(), likelihood), count=0)) == 0


def room_cues(t: float, *, beat: float, high_doppler: float) -> RoomCues:
    cues = tuple(link_cues(link, t, beat=beat, doppler=high_doppler) for link in LINKS)
    return RoomCues(t, tuple(LINKS), np.zeros((len(LINKS), N_CUE_FEATURES), np.float32), cues)


def lying(probability: float) -> np.ndarray:
    activity = np.full(len(ACTIVITIES), (1 - probability) / (len(ACTIVITIES) - 1))
    activity[ACTIVITIES.index("lying")] = probability
    return activity


def run_falls(detector: FallDetector, burst: float, still_after: bool, lying_p: float) -> list[float]:
    found = []
    for i in range(100):
        t = i * 0.1
        if 20 <= i < 26:  # a 0.6 s burst of fast Doppler
            cues = room_cues(t, beat=500.0, high_doppler=burst)
        elif i >= 26 and still_after:
            cues = room_cues(t, beat=1.0, high_doppler=1.0)
        else:
            cues = room_cues(t, beat=200.0, high_doppler=5.0)
        fall = detector.update(cues, lying(lying_p if i >= 26 else 0.1))
        if fall is not None:
            found.append(fall.t_s)
    return found


def test_a_burst_then_stillness_lying_is_one_fall_at_the_burst() -> None:
    detector = FallDetector(0.5, confirm_s=2.0, refractory_s=60.0)
    assert run_falls(detector, burst=1000.0, still_after=True, lying_p=0.8) == [pytest.approx(2.0)]


def test_no_fall_without_stillness_or_without_lying_or_without_a_burst() -> None:
    assert run_falls(FallDetector(0.5, 2.0, 60.0), burst=1000.0, still_after=False, lying_p=0.8) == []
    assert run_falls(FallDetector(0.5, 2.0, 60.0), burst=1000.0, still_after=True, lying_p=0.1) == []
    assert run_falls(FallDetector(0.5, 2.0, 60.0), burst=5.0, still_after=True, lying_p=0.8) == []


def test_sensitivity_moves_every_threshold_towards_catching_more() -> None:
    low, high = FallThresholds.for_sensitivity(0.0), FallThresholds.for_sensitivity(1.0)
    assert high.burst < low.burst and high.falling_probability < low.falling_probability
    assert high.down_share < low.down_share
    burst = (FallThresholds.for_sensitivity(0.5).burst + high.burst) / 2
    assert run_falls(FallDetector(1.0, 2.0, 60.0), burst=burst, still_after=True, lying_p=0.8)
    assert not run_falls(FallDetector(0.0, 2.0, 60.0), burst=burst, still_after=True, lying_p=0.8)


def test_rendered_skeleton_stands_sits_and_lies_over_the_tracked_position() -> None:
    hips = [KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]]
    position = np.array([2.0, 1.5])
    for posture, top in (("standing", (1.5, 1.7)), ("sitting", (1.1, 1.35)), ("lying", (0.5, 0.8))):
        keypoints = render(position, 0.3, posture)  # type: ignore[arg-type]
        np.testing.assert_allclose(keypoints[hips, :2].mean(axis=0), position, atol=1e-9)
        assert top[0] < keypoints[:, 2].max() < top[1], posture
    on_floor = render(position, 0.3, "lying", on_floor=True)
    assert on_floor[:, 2].max() < 0.45
    sure, unsure = joint_confidence(0.1), joint_confidence(1.0)
    assert np.all(sure > unsure)
    assert sure[KEYPOINT_INDEX["left_hip"]] > sure[KEYPOINT_INDEX["left_wrist"]]


def test_room_activity_takes_the_most_telling() -> None:
    index = ACTIVITIES.index
    assert room_activity([]) == index("empty")
    assert room_activity([index("sitting"), index("walking")]) == index("walking")
    assert room_activity([index("lying"), index("falling"), index("walking")]) == index("falling")


def test_history_holds_steps_apart_and_masks_links_it_never_saw() -> None:
    history = CueHistory(GEOMETRY)
    t = 0.0
    while not history.full:
        links = tuple(LINKS)[:4] if t < 1.0 else tuple(LINKS)[:3]
        vectors = np.full((len(links), N_CUE_FEATURES), 0.5, np.float32)
        history.add(RoomCues(t, links, vectors, ()))
        history.add(RoomCues(t + 0.05, links, vectors, ()))  # too soon: ignored
        t += STEP_S
    x, mask = history.inputs()
    assert x.shape == (STEPS, MAX_LINKS, LINK_INPUTS) and mask.sum() == 4
    assert np.all(x[:, mask == 0] == 0.0)
    # A link's length over 10 m rides with its cues: a-1 is 4.9 m long.
    assert x[-1, 0, -2] == pytest.approx(0.49)


def test_the_shipped_model_gives_probabilities() -> None:
    model = SensingModel()
    x = np.zeros((STEPS, MAX_LINKS, LINK_INPUTS), np.float32)
    mask = np.zeros(MAX_LINKS, np.float32)
    mask[:6] = 1.0
    result = model.classify(x, mask)
    assert result.count.shape == (4,) and result.activity.shape == (len(ACTIVITIES),)
    assert result.count.sum() == pytest.approx(1.0, abs=0.02)
    assert result.activity.sum() == pytest.approx(1.0, abs=0.02)


def make_room() -> RoomSensing:
    return RoomSensing(
        GEOMETRY,
        SensingSettings(enter_presence=0.6, leave_presence=0.2, clear_s=2.0, adapt_after_s=5.0),
        SensingModel(),
        LinkLikelihood(),
        rate_hz=100.0,
        calibration_s=1.0,
        fall_sensitivity=0.5,
        fall_confirm_s=2.0,
        fall_refractory_s=60.0,
    )


def verdict(p_present: float) -> RoomClass:
    count = np.array([1 - p_present, p_present, 0.0, 0.0], np.float32)
    return RoomClass(count, lying(0.5).astype(np.float32))


def test_presence_has_hysteresis_and_clears_only_after_the_quiet_spell() -> None:
    room = make_room()
    likelihood = LinkLikelihood()
    readings = []
    for i, p in enumerate([0.1] * 5 + [0.7] * 5 + [0.4] * 10 + [0.1] * 15 + [0.1] * 30):
        readings.append(room.read(shadowed(i * 0.1, set(), likelihood), verdict(p)))
    present = [r.presence for r in readings]
    assert present[:5] == [False] * 5
    assert all(present[5:20])  # between the thresholds: stays present
    assert all(present[20:39]) and not any(present[41:])  # 2 s below leave_presence before clearing
    assert [len(r.persons) for r in readings[5:8]] == [1, 1, 1]
    assert readings[-1].count == 0 and not readings[-1].persons


def test_references_adapt_only_after_the_room_was_confidently_empty_long_enough() -> None:
    room = make_room()
    likelihood = LinkLikelihood()
    adapted: list[float] = []
    room.cues.adapt = adapted.append  # type: ignore[method-assign]
    for i in range(40):  # 4 s empty: not yet
        room.read(shadowed(i * 0.1, set(), likelihood), verdict(0.05))
    assert adapted == []
    for i in range(40, 80):  # past 5 s: once a second
        room.read(shadowed(i * 0.1, set(), likelihood), verdict(0.05))
    assert 2 <= len(adapted) <= 4
    room.read(shadowed(8.0, set(), likelihood), verdict(0.9))  # someone: the empty spell starts over
    for i in range(81, 120):
        room.read(shadowed(i * 0.1, set(), likelihood), verdict(0.05))
    assert len(adapted) <= 4
