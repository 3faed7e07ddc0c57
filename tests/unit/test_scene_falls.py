"""Falls: a fast drop followed by staying down is one fall; sitting, lying down and stumbling are not.

Realistic motion comes from the simulator's scripts (true keypoints plus noise, a weak activity vote);
drops of chosen speed are built from the same body model to probe the sensitivity setting.
"""

from __future__ import annotations

import numpy as np
import pytest

from appliance.contracts.events import EventType
from appliance.csi.simulator import Scenario, default_room
from appliance.csi.simulator.body import lying, pose, standing
from appliance.pose.scene import Scene, SceneSettings, WindowEstimate
from appliance.pose.scene.falls import FallThresholds
from tests.unit.test_scene_support import BODY, DT_S, T0_S, estimate, events, run, simulated_windows, window

X, Y = 2.5, 2.0


def _drop_windows(
    drop_s: float,
    rng: np.random.Generator,
    *,
    down_s: float = 6.0,
    falling_vote: float = 0.1,
    start: int = 0,
    t_offset: int = 0,
) -> list[WindowEstimate]:
    """Stand 3 s, topple to the floor over ``drop_s`` (gravity easing), lie ``down_s``, then stand up."""
    up = standing(BODY, X, Y, 0.0)
    down = lying(BODY, X + 0.8, Y, 0.0, 0.0, face_down=True)
    times = np.arange(0.0, 3.0 + drop_s + down_s + 3.0, DT_S)
    frac = np.clip((times - 3.0) / drop_s, 0.0, 1.0) ** 2
    rise = np.clip((times - 3.0 - drop_s - down_s) / 3.0, 0.0, 1.0)
    params = up + (frac - rise)[:, None] * (down - up)
    keypoints = pose(BODY, params).keypoints
    windows = []
    for i, t in enumerate(times):
        if t < 3.0:
            activity: str | np.ndarray = "standing"
        elif t < 3.0 + drop_s:
            vote = np.array([0.0, 0.4, 0.0, 0.0, 0.5 - falling_vote, falling_vote]) + 0.1 / 6
            activity = vote / vote.sum()
        elif rise[i] == 0.0:
            activity = "lying"
        else:
            activity = "standing"
        windows.append(
            window(start + i + t_offset, [estimate(keypoints[i], rng, noise_m=0.04, activity=activity)])
        )
    return windows


def test_simulated_fall_is_detected_once() -> None:
    rng = np.random.default_rng(10)
    scenario = Scenario(default_room())
    person = scenario.person()
    person.enter(0).walk_to(X, Y).stand(3).fall(lie_s=30)
    updates = run(Scene(), simulated_windows(scenario, rng, person.duration_s))
    falls = events(updates, EventType.PERSON_FALL_DETECTED)
    assert len(falls) == 1
    data = falls[0].data
    assert set(data) == {"person_id", "position", "confidence", "fall_time", "zone_id", "zone_name"}
    assert data["person_id"] == 1
    assert 0.3 < data["confidence"] <= 1.0
    fall_start = T0_S + person.duration_s - 30 - 0.8
    assert fall_start <= data["fall_time"] <= fall_start + 1.0
    # Reported once the person has stayed down (a few seconds), at where they lie.
    assert falls[0].time - data["fall_time"] < 4.0
    lying_at = np.array([data["position"]["x"], data["position"]["y"]])
    truth = scenario.evaluate(np.array([person.duration_s - 1]))[0].params[0, :2]
    assert np.linalg.norm(lying_at - truth) < 0.6
    assert updates[-1].persons[0].activity == "lying"


@pytest.mark.parametrize("sensitivity", ["low", "medium", "high"])
def test_sitting_and_lying_down_slowly_are_not_falls(sensitivity: str) -> None:
    rng = np.random.default_rng(11)
    scenario = Scenario(default_room())
    person = scenario.person()
    person.enter(0).walk_to(X, Y).stand(2).sit(8).stand(3).lie_down(8).stand(3)
    person.walk_to(1.5, 3.0).sit(5, seat_m=0.40).lie_down(8, surface_m=0.45)
    settings = SceneSettings(fall_sensitivity=sensitivity)
    updates = run(Scene(settings), simulated_windows(scenario, rng, person.duration_s))
    assert {p.id for u in updates for p in u.persons} == {1}
    assert not events(updates, EventType.PERSON_FALL_DETECTED)


def test_stumbling_and_getting_straight_up_is_not_a_fall() -> None:
    rng = np.random.default_rng(12)
    updates = run(Scene(), _drop_windows(0.7, rng, down_s=0.0))
    assert not events(updates, EventType.PERSON_FALL_DETECTED)


def test_a_drop_that_ends_upright_is_not_a_fall() -> None:
    """A fast crouch: head and hips drop quickly but the person neither lies nor stays low."""
    rng = np.random.default_rng(13)
    up = standing(BODY, X, Y, 0.0)
    crouch = up.copy()
    crouch[2] -= 0.45  # root down 45 cm; legs fold
    crouch[[7, 8]] = np.radians(110.0)
    crouch[[5, 6]] = np.radians(60.0)
    times = np.arange(0.0, 12.0, DT_S)
    frac = np.clip((times - 3.0) / 0.4, 0.0, 1.0)
    keypoints = pose(BODY, up + frac[:, None] * (crouch - up)).keypoints
    windows = [window(i, [estimate(k, rng)]) for i, k in enumerate(keypoints)]
    updates = run(Scene(SceneSettings(fall_sensitivity=1.0)), windows)
    assert not events(updates, EventType.PERSON_FALL_DETECTED)


def test_higher_sensitivity_catches_slower_falls() -> None:
    durations = (0.6, 0.9, 1.2, 1.5, 2.0, 3.0)
    detected: dict[float, set[float]] = {}
    for sensitivity in (0.0, 0.5, 1.0):
        detected[sensitivity] = set()
        for drop_s in durations:
            rng = np.random.default_rng(14)
            scene = Scene(SceneSettings(fall_sensitivity=sensitivity))
            if events(run(scene, _drop_windows(drop_s, rng)), EventType.PERSON_FALL_DETECTED):
                detected[sensitivity].add(drop_s)
    assert 0.6 in detected[0.0]  # a real fall is caught even at the lowest sensitivity
    assert detected[0.0] <= detected[0.5] <= detected[1.0]
    assert detected[0.0] != detected[1.0]
    assert 3.0 not in detected[0.5]


def test_thresholds_move_in_the_expected_direction() -> None:
    low, high = FallThresholds.for_sensitivity(0.0), FallThresholds.for_sensitivity(1.0)
    assert high.speed_m_s < low.speed_m_s
    assert high.drop_m < low.drop_m
    assert high.model_probability < low.model_probability
    assert high.down_fraction < low.down_fraction


def test_the_models_falling_vote_catches_a_slow_looking_fall() -> None:
    drop_s = 2.5  # too slow for the kinematic test at medium sensitivity
    quiet = run(Scene(), _drop_windows(drop_s, np.random.default_rng(15), falling_vote=0.1))
    assert not events(quiet, EventType.PERSON_FALL_DETECTED)
    voted = run(Scene(), _drop_windows(drop_s, np.random.default_rng(15), falling_vote=0.9))
    assert len(events(voted, EventType.PERSON_FALL_DETECTED)) == 1


@pytest.mark.parametrize(("refractory_s", "expected"), [(60.0, 1), (5.0, 2)])
def test_refractory_period_between_falls(refractory_s: float, expected: int) -> None:
    rng = np.random.default_rng(16)
    first = _drop_windows(0.7, rng)
    second = _drop_windows(0.7, rng, start=len(first))
    updates = run(Scene(SceneSettings(fall_refractory_s=refractory_s)), first + second)
    assert len(events(updates, EventType.PERSON_FALL_DETECTED)) == expected
    assert {p.id for u in updates for p in u.persons} == {1}


def test_named_sensitivities_map_onto_the_scale() -> None:
    assert SceneSettings(fall_sensitivity="low").fall_sensitivity == 0.25
    assert SceneSettings(fall_sensitivity="HIGH").fall_sensitivity == 0.75
    with pytest.raises(ValueError, match="fall_sensitivity"):
        SceneSettings(fall_sensitivity="extreme")
