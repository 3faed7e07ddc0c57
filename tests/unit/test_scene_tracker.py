"""The tracker inside the scene: stable ids, no swaps when people cross, no ghosts, dropouts bridged."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.contracts.events import EventType
from appliance.pose.scene import PersonEstimate, Scene, SceneSettings, WindowEstimate
from tests.unit.test_scene_support import DT_S, T0_S, estimate, events, run, skeleton, window


def _walk(start: tuple[float, float], end: tuple[float, float], n: int) -> np.ndarray:
    return np.linspace(start, end, n)


def test_person_walking_a_path_keeps_one_id_and_is_smoothed() -> None:
    rng = np.random.default_rng(0)
    path = _walk((0.5, 0.5), (4.5, 3.5), 60)  # 5 m in 6 s
    scene = Scene()
    noisy = [estimate(skeleton(x, y), rng, noise_m=0.1) for x, y in path]
    updates = run(scene, (window(i, [e]) for i, e in enumerate(noisy)))
    ids = {p.id for u in updates for p in u.persons}
    assert ids == {1}
    assert len(events(updates, EventType.PERSON_DETECTED)) == 1
    assert not events(updates, EventType.PERSON_LOST)
    # Confirmed after confirm_s (1 s at 10 Hz), not before.
    first = next(i for i, u in enumerate(updates) if u.persons)
    assert first == 10
    # The smoothed centre follows the path more closely than the raw estimates do.
    truth = np.array([skeleton(x, y)[[5, 6, 11, 12]].mean(axis=0)[:2] for x, y in path])
    smoothed = np.array([u.persons[0].centre[:2] for u in updates[20:]])
    raw = np.array([e.centre[:2] for e in noisy[20:]])
    smoothed_error = np.linalg.norm(smoothed - truth[20:], axis=1).mean()
    raw_error = np.linalg.norm(raw - truth[20:], axis=1).mean()
    assert smoothed_error < 0.8 * raw_error
    assert updates[-1].persons[0].keypoints.shape == (17, 3)


@pytest.mark.parametrize("lateral_m", [0.0, 0.3])
def test_two_people_crossing_keep_their_ids(lateral_m: float) -> None:
    rng = np.random.default_rng(0)
    n = 50
    a_path = _walk((0.5, 2.0 - lateral_m / 2), (4.5, 2.0 + lateral_m / 2), n)
    b_path = _walk((4.5, 2.0 + lateral_m / 2 + 0.05), (0.5, 2.0 - lateral_m / 2), n)
    scene = Scene()
    updates = []
    for i in range(n):
        people = [estimate(skeleton(*a_path[i]), rng), estimate(skeleton(*b_path[i]), rng)]
        order = rng.permutation(2)  # the model's slots come in no particular order
        updates.append(scene.update(window(i, [people[j] for j in order])))
    by_id: dict[int, list[np.ndarray]] = {}
    for u in updates:
        for p in u.persons:
            by_id.setdefault(p.id, []).append(p.centre[:2])
    assert set(by_id) == {1, 2}
    # Whichever id started on the left ends on the right.
    for track in by_id.values():
        start_x, end_x = track[0][0], track[-1][0]
        assert abs(end_x - start_x) > 3.0
    assert len(events(updates, EventType.PERSON_DETECTED)) == 2


def test_crossing_with_merged_slot_at_the_meeting_point() -> None:
    """Where two people overlap the model may report only one slot; prediction carries the other."""
    rng = np.random.default_rng(0)
    n = 50
    a_path = _walk((0.5, 2.0), (4.5, 2.0), n)
    b_path = _walk((4.5, 2.1), (0.5, 2.1), n)
    scene = Scene()
    updates = []
    for i in range(n):
        people = [estimate(skeleton(*a_path[i]), rng)]
        if abs(a_path[i][0] - b_path[i][0]) > 0.6:
            people.append(estimate(skeleton(*b_path[i]), rng))
        updates.append(scene.update(window(i, people)))
    final = {p.id: p.centre[0] for p in updates[-1].persons}
    assert set(final) == {1, 2}
    first = {p.id: p.centre[0] for p in updates[15].persons}
    for person_id in (1, 2):
        assert (first[person_id] < 2.5) != (final[person_id] < 2.5)


def test_one_window_ghost_is_never_reported() -> None:
    rng = np.random.default_rng(0)
    scene = Scene()
    person = skeleton(1.0, 1.0)
    windows = [window(i, [estimate(person, rng)]) for i in range(40)]
    windows[20] = window(20, [estimate(person, rng), estimate(skeleton(4.0, 3.0), rng)])
    updates = run(scene, windows)
    assert {p.id for u in updates for p in u.persons} == {1}
    assert len(events(updates)) == 1  # the real person's person.detected only


def test_only_ghosts_give_no_events() -> None:
    rng = np.random.default_rng(0)
    scene = Scene()
    windows = []
    for i in range(100):
        spot = rng.uniform([0.5, 0.5], [4.5, 3.5])
        persons = [estimate(skeleton(*spot), rng)] if i % 7 == 0 else []
        windows.append(window(i, persons))
    updates = run(scene, windows)
    assert not events(updates)
    assert not any(u.persons for u in updates)


def test_low_presence_slots_are_ignored() -> None:
    rng = np.random.default_rng(0)
    scene = Scene(SceneSettings(min_presence=0.5))
    updates = run(scene, (window(i, [estimate(skeleton(2, 2), rng, presence=0.3)]) for i in range(30)))
    assert not any(u.persons for u in updates)


def test_brief_dropout_keeps_the_id() -> None:
    rng = np.random.default_rng(0)
    path = _walk((0.5, 2.0), (4.5, 2.0), 50)
    scene = Scene(SceneSettings(lose_s=3.0))
    windows = [window(i, [] if 20 <= i < 35 else [estimate(skeleton(*path[i]), rng)]) for i in range(50)]
    updates = run(scene, windows)
    assert {p.id for u in updates for p in u.persons} == {1}
    assert not events(updates, EventType.PERSON_LOST)
    # While unseen the person is still reported, with fading confidence.
    assert updates[30].persons and updates[30].persons[0].confidence < updates[19].persons[0].confidence


def test_long_absence_loses_the_person_and_ids_are_not_reused() -> None:
    rng = np.random.default_rng(0)
    scene = Scene(SceneSettings(lose_s=2.0))
    windows = [window(i, [] if 20 <= i < 50 else [estimate(skeleton(2, 2), rng)]) for i in range(80)]
    updates = run(scene, windows)
    lost = events(updates, EventType.PERSON_LOST)
    assert [e.data["person_id"] for e in lost] == [1]
    assert lost[0].time == pytest.approx(T0_S + (19 + 20) * DT_S)
    assert [e.data["person_id"] for e in events(updates, EventType.PERSON_DETECTED)] == [1, 2]
    assert {p.id for p in updates[-1].persons} == {2}


def test_model_seeing_one_person_twice_gives_one_person() -> None:
    rng = np.random.default_rng(0)
    scene = Scene()
    person = skeleton(2.0, 2.0)
    updates = run(scene, (window(i, [estimate(person, rng), estimate(person, rng)]) for i in range(30)))
    assert {p.id for p in updates[-1].persons} == {1}


def test_time_going_backwards_does_not_break_tracks() -> None:
    rng = np.random.default_rng(0)
    scene = Scene()
    for i in range(20):
        scene.update(window(i, [estimate(skeleton(2, 2), rng)]))
    update = scene.update(WindowEstimate(T0_S, [estimate(skeleton(2, 2), rng)]))
    assert [p.id for p in update.persons] == [1]
    assert update.persons[0].last_seen >= T0_S + 19 * DT_S


def test_estimate_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="keypoints"):
        PersonEstimate(0.9, np.zeros((16, 3)), np.ones(17), np.ones(6) / 6)
    with pytest.raises(ValueError, match="NaN"):
        PersonEstimate(0.9, np.full((17, 3), np.nan), np.ones(17), np.ones(6) / 6)
