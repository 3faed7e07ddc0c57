"""Smoothed activity: a wavering model gives one steady activity; a real change gives one event."""

from __future__ import annotations

import itertools

import numpy as np

from appliance.contracts.events import EventType
from appliance.pose.scene import Scene, SceneSettings
from appliance.pose.scene.activity import ActivitySmoother
from tests.unit.test_scene_support import T0_S, activity_probs, estimate, events, run, skeleton, window


def _wavering(rng: np.random.Generator) -> np.ndarray:
    """Standing and walking neck and neck, the leader changing at random from window to window."""
    lead = 0.45 + rng.uniform(0.0, 0.15)
    probs = np.array([0.0, lead, 0.95 - lead, 0.05, 0.0, 0.0])
    return probs if rng.random() < 0.6 else probs[[0, 2, 1, 3, 4, 5]]


def test_activity_flicker_is_suppressed() -> None:
    rng = np.random.default_rng(7)
    raw_leaders = []
    windows = []
    for i in range(300):
        probs = _wavering(rng)
        raw_leaders.append(int(np.argmax(probs)))
        windows.append(window(i, [estimate(skeleton(2, 2), rng, activity=probs)]))
    updates = run(Scene(), windows)
    assert sum(a != b for a, b in itertools.pairwise(raw_leaders)) > 50
    assert len(events(updates, EventType.PERSON_ACTIVITY_DETECTED)) <= 1
    assert updates[-1].persons[0].activity in {"standing", "walking"}


def test_a_real_change_is_reported_once_with_the_previous_activity() -> None:
    rng = np.random.default_rng(8)
    windows = [
        window(
            i,
            [
                estimate(
                    skeleton(2, 2, "standing" if i < 50 else "sitting"),
                    rng,
                    activity="standing" if i < 50 else "sitting",
                )
            ],
        )
        for i in range(100)
    ]
    updates = run(Scene(SceneSettings(activity_dwell_s=1.0)), windows)
    detected = events(updates, EventType.PERSON_DETECTED)
    assert detected[0].data["activity"] == "standing"
    changes = events(updates, EventType.PERSON_ACTIVITY_DETECTED)
    assert [(e.data["activity"], e.data["previous_activity"]) for e in changes] == [("sitting", "standing")]
    assert set(changes[0].data) == {"person_id", "activity", "previous_activity", "position"}
    # Smoothing plus dwell: reported within about 1.5 s of the change (window 50), not before the dwell.
    assert detected[0].time < changes[0].time
    assert T0_S + 6.0 <= changes[0].time <= T0_S + 6.6


def test_empty_is_never_a_persons_activity() -> None:
    smoother = ActivitySmoother(smoothing_s=0.0, dwell_s=0.0)
    smoother.update(0.0, np.array([0.9, 0.02, 0.05, 0.01, 0.01, 0.01]))
    assert smoother.activity == "walking"


def test_without_dwell_the_first_change_is_immediate() -> None:
    smoother = ActivitySmoother(smoothing_s=0.0, dwell_s=0.0)
    assert smoother.update(0.0, activity_probs("standing")) is None
    assert smoother.update(0.1, activity_probs("lying")) == "lying"
    assert smoother.probability("lying") == 0.8
