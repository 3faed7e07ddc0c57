"""Scene-wide events and state: occupancy alerts, event payloads, per-person history, settings."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
from pydantic_core import PydanticUndefined

from appliance.contracts.events import EventType
from appliance.csi.simulator import Scenario, default_room
from appliance.pose.scene import Scene, SceneSettings, WindowEstimate, Zone
from tests.unit.test_scene_support import (
    DT_S,
    T0_S,
    estimate,
    events,
    run,
    simulated_windows,
    skeleton,
    window,
)

SPOTS = ((1.0, 1.0), (2.5, 1.0), (4.0, 1.0), (1.0, 3.0), (4.0, 3.0))


def _crowd(counts: list[int], rng: np.random.Generator) -> list[WindowEstimate]:
    """One window per entry, with that many people standing at fixed spots."""
    return [window(i, [estimate(skeleton(*SPOTS[k]), rng) for k in range(n)]) for i, n in enumerate(counts)]


def test_high_occupancy_alert_fires_once_per_crossing() -> None:
    rng = np.random.default_rng(20)
    counts = [2] * 20 + [4] * 40 + [3] * 5 + [4] * 20 + [2] * 60 + [4] * 40
    scene = Scene(SceneSettings(max_occupancy=3, lose_s=1.0))
    updates = run(scene, _crowd(counts, rng))
    alerts = events(updates, EventType.ALERT_HIGH_OCCUPANCY)
    # Over 3 at ~window 30; the dip to 3 lasts less than lose_s, so no re-arm; it re-arms after the long
    # drop to 2 (people 3 and 4 lost) and fires again when two new people are confirmed.
    assert len(alerts) == 2
    assert alerts[0].data == {"occupancy": 4, "max_occupancy": 3, "person_ids": [1, 2, 3, 4]}
    assert alerts[1].data["person_ids"] == [1, 2, 5, 6]


def test_occupancy_alert_is_off_by_default() -> None:
    rng = np.random.default_rng(21)
    updates = run(Scene(), _crowd([5] * 30, rng))
    assert len(updates[-1].persons) == 5
    assert not events(updates, EventType.ALERT_HIGH_OCCUPANCY)


def test_detected_and_lost_payloads() -> None:
    rng = np.random.default_rng(22)
    scene = Scene(SceneSettings(lose_s=1.0))
    updates = run(scene, (window(i, [estimate(skeleton(2, 2), rng)] if i < 30 else []) for i in range(50)))
    (detected,) = events(updates, EventType.PERSON_DETECTED)
    assert set(detected.data) == {"person_id", "position", "activity", "confidence"}
    assert detected.data["activity"] == "standing"
    assert detected.time == pytest.approx(T0_S + 10 * DT_S)
    assert abs(detected.data["position"]["x"] - 2.0) < 0.3
    (lost,) = events(updates, EventType.PERSON_LOST)
    assert set(lost.data) == {"person_id", "position", "first_seen", "last_seen"}
    assert lost.data["first_seen"] == pytest.approx(T0_S + 10 * DT_S)
    assert lost.data["last_seen"] == pytest.approx(T0_S + 29 * DT_S)
    for event in (detected, lost):
        assert event.to_dict()["type"] in {"person.detected", "person.lost"}


def test_history_of_a_visit() -> None:
    rng = np.random.default_rng(23)
    zone = Zone("desk", "Desk", ((1.5, 1.5), (3.5, 1.5), (3.5, 3.5), (1.5, 3.5)))
    scene = Scene(SceneSettings(lose_s=1.0, trajectory_interval_s=1.0), zones=[zone])
    path = np.linspace((0.5, 2.5), (2.5, 2.5), 30)
    windows = [window(i, [estimate(skeleton(*path[min(i, 29)]), rng, presence=0.8)]) for i in range(60)]
    windows += [window(i, []) for i in range(60, 80)]
    run(scene, windows)
    (history,) = scene.histories()
    assert scene.history(history.person_id) == history
    assert scene.history(99) is None
    assert not history.active
    assert history.zones_visited == ("desk",)
    assert history.activity_seconds["standing"] == pytest.approx(
        history.last_seen - history.first_seen, abs=1.1
    )
    assert history.activity_changes[0][1] == "standing"
    assert history.average_confidence == pytest.approx(0.8, abs=0.01)
    assert history.falls == 0
    assert 4 <= len(history.trajectory) <= 8
    xs = [x for _, x, _ in history.trajectory]
    assert xs[0] < 1.5 < 2.3 < xs[-1] < 2.7  # walked right, then stood


def test_history_keeps_only_the_latest_visitors() -> None:
    rng = np.random.default_rng(24)
    scene = Scene(SceneSettings(lose_s=0.5, history_size=2))
    windows = [window(i, [estimate(skeleton(2, 2), rng)] if (i // 20) % 2 == 0 else []) for i in range(200)]
    run(scene, windows)
    assert [h.person_id for h in scene.histories()] == [4, 5]


def test_settings_reject_unknown_keys_and_describe_every_field() -> None:
    with pytest.raises(pydantic.ValidationError):
        SceneSettings.model_validate({"confirm_seconds": 1.0})
    for name, field in SceneSettings.model_fields.items():
        assert field.description, name
        assert field.default is not PydanticUndefined, name


def test_household_demo_loop() -> None:
    """The simulator's demo: one person, a second who falls, the first coming back; true keypoints + noise."""
    scenario = Scenario.demo(default_room(), seed=0)
    assert scenario.loop_s is not None
    updates = run(
        Scene(), simulated_windows(scenario, np.random.default_rng(25), scenario.loop_s, noise_m=0.08)
    )
    assert [e.data["person_id"] for e in events(updates, EventType.PERSON_DETECTED)] == [1, 2, 3]
    assert [e.data["person_id"] for e in events(updates, EventType.PERSON_LOST)] == [1, 2, 3]
    assert [e.data["person_id"] for e in events(updates, EventType.PERSON_FALL_DETECTED)] == [2]
    assert max(len(u.persons) for u in updates) == 2
