"""Zones: polygon geometry, entering and leaving once, no flicker at the border, restricted zones."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.contracts.coco import body_centre
from appliance.contracts.events import EventType
from appliance.pose.scene import Scene, SceneSettings, Zone
from tests.unit.test_scene_support import estimate, events, run, skeleton, window

SOFA = Zone("sofa", "Sofa", ((2.0, 1.0), (4.0, 1.0), (4.0, 3.0), (2.0, 3.0)))
VAULT = Zone("vault", "Vault", ((0.0, 3.0), (1.0, 3.0), (1.0, 4.0), (0.0, 4.0)), restricted=True)
# The body centre (torso) of the skeleton sits this far in x from its pelvis root.
_OFFSET = body_centre(skeleton(0.0, 0.0), np.ones(17))[:2]


def _at(x: float, y: float) -> np.ndarray:
    """A standing skeleton whose body centre is at (x, y)."""
    return skeleton(x - _OFFSET[0], y - _OFFSET[1])


def test_signed_distance_of_a_concave_polygon() -> None:
    ell = Zone("l", "L", ((0, 0), (3, 0), (3, 1), (1, 1), (1, 3), (0, 3)))
    assert ell.signed_distance(0.5, 0.5) == pytest.approx(0.5)
    assert ell.signed_distance(2.0, 2.0) == pytest.approx(-1.0)  # in the notch
    assert ell.signed_distance(2.0, 0.8) == pytest.approx(0.2)
    assert ell.signed_distance(-0.5, 2.0) == pytest.approx(-0.5)


def test_zone_needs_three_points() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        Zone("bad", "Bad", ((0.0, 0.0), (1.0, 1.0)))


def test_duplicate_zone_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Scene(zones=[SOFA, SOFA])


def test_walking_into_and_out_of_a_zone_gives_one_enter_and_one_leave() -> None:
    rng = np.random.default_rng(1)
    path = np.concatenate(
        [
            np.linspace((0.5, 2.0), (3.0, 2.0), 30),
            np.full((30, 2), (3.0, 2.0)),
            np.linspace((3, 2), (3, 3.8), 30),
        ]
    )
    scene = Scene(zones=[SOFA, VAULT])
    updates = run(scene, (window(i, [estimate(_at(*p), rng, noise_m=0.08)]) for i, p in enumerate(path)))
    entered = events(updates, EventType.PERSON_ENTERED_ZONE)
    left = events(updates, EventType.PERSON_LEFT_ZONE)
    assert [(e.data["zone_id"], e.data["zone_name"], e.data["person_id"]) for e in entered] == [
        ("sofa", "Sofa", 1)
    ]
    assert [e.data["zone_id"] for e in left] == ["sofa"]
    assert entered[0].time < left[0].time
    assert set(entered[0].data) == {"person_id", "zone_id", "zone_name", "position"}
    assert set(entered[0].data["position"]) == {"x", "y", "z"}
    inside = [u for u in updates if u.persons and u.persons[0].zone == "sofa"]
    assert inside and all(u.zone_occupancy == {"sofa": 1, "vault": 0} for u in inside)
    assert updates[-1].zone_occupancy == {"sofa": 0, "vault": 0}
    assert not events(updates, EventType.ALERT_RESTRICTED_ZONE_BREACH)


def test_standing_on_the_border_with_jitter_does_not_flicker() -> None:
    rng = np.random.default_rng(2)
    scene = Scene(zones=[SOFA])
    # Right on the sofa's left edge (x = 2.0), with a model that puts the person 10 cm either way.
    updates = run(scene, (window(i, [estimate(_at(2.0, 2.0), rng, noise_m=0.1)]) for i in range(600)))
    changes = events(updates, EventType.PERSON_ENTERED_ZONE) + events(updates, EventType.PERSON_LEFT_ZONE)
    assert len(changes) <= 1


def test_without_hysteresis_the_border_would_flicker() -> None:
    """The counterpart of the test above: it shows the jitter really crosses the border."""
    rng = np.random.default_rng(2)
    settings = SceneSettings(zone_margin_m=0.0, zone_dwell_s=0.0, smoothing_s=0.0, measurement_noise_m=0.01)
    scene = Scene(settings, zones=[SOFA])
    updates = run(scene, (window(i, [estimate(_at(2.0, 2.0), rng, noise_m=0.1)]) for i in range(600)))
    assert len(events(updates, EventType.PERSON_ENTERED_ZONE)) > 5


def test_entering_a_restricted_zone_raises_a_breach_once() -> None:
    rng = np.random.default_rng(3)
    path = np.concatenate([np.linspace((2.5, 2.0), (0.5, 3.5), 25), np.full((50, 2), (0.5, 3.5))])
    scene = Scene(zones=[SOFA, VAULT])
    updates = run(scene, (window(i, [estimate(_at(*p), rng)]) for i, p in enumerate(path)))
    breaches = events(updates, EventType.ALERT_RESTRICTED_ZONE_BREACH)
    assert len(breaches) == 1
    assert breaches[0].data["zone_id"] == "vault"
    assert breaches[0].data["person_id"] == 1
    # The sofa was crossed before the person was confirmed: no event for a zone already left.
    entered = events(updates, EventType.PERSON_ENTERED_ZONE)
    assert [e.data["zone_id"] for e in entered] == ["vault"]
    assert breaches[0].time == entered[0].time


def test_person_confirmed_inside_a_zone_enters_it_after_being_detected() -> None:
    rng = np.random.default_rng(4)
    scene = Scene(zones=[SOFA])
    updates = run(scene, (window(i, [estimate(_at(3.0, 2.0), rng)]) for i in range(20)))
    kinds = [e.type for e in events(updates)]
    assert kinds == [EventType.PERSON_DETECTED, EventType.PERSON_ENTERED_ZONE]


def test_a_lost_person_leaves_their_zones_first() -> None:
    rng = np.random.default_rng(5)
    scene = Scene(SceneSettings(lose_s=1.0), zones=[SOFA])
    windows = [window(i, [estimate(_at(3.0, 2.0), rng)] if i < 20 else []) for i in range(40)]
    updates = run(scene, windows)
    kinds = [e.type for e in events(updates)]
    assert kinds == [
        EventType.PERSON_DETECTED,
        EventType.PERSON_ENTERED_ZONE,
        EventType.PERSON_LEFT_ZONE,
        EventType.PERSON_LOST,
    ]
    assert updates[-1].zone_occupancy == {"sofa": 0}


def test_zones_can_be_replaced_live() -> None:
    rng = np.random.default_rng(6)
    scene = Scene(zones=[SOFA])
    run(scene, (window(i, [estimate(_at(3.0, 2.0), rng)]) for i in range(20)))
    desk = Zone("desk", "Desk", ((2.5, 1.5), (3.5, 1.5), (3.5, 2.5), (2.5, 2.5)))
    scene.set_zones([SOFA, desk])
    updates = run(scene, (window(i, [estimate(_at(3.0, 2.0), rng)]) for i in range(20, 40)))
    assert [e.data["zone_id"] for e in events(updates, EventType.PERSON_ENTERED_ZONE)] == ["desk"]
    assert updates[-1].zone_occupancy == {"sofa": 1, "desk": 1}
    assert updates[-1].persons[0].zone == "desk"  # the latest entered
    scene.set_zones([desk])
    update = scene.update(window(40, [estimate(_at(3.0, 2.0), rng)]))
    assert update.zone_occupancy == {"desk": 1}
    assert not update.events
    assert update.persons[0].zones == ("desk",)
