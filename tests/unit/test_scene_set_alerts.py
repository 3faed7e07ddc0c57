"""``Scene.set_alerts``: the occupancy limit and the restricted zones change while the scene runs."""

from __future__ import annotations

import numpy as np

from appliance.contracts.events import EventType
from appliance.pose.scene import Scene, SceneSettings, Zone
from tests.unit.test_scene_events import _crowd
from tests.unit.test_scene_support import events, run

SOFA = Zone("sofa", "Sofa", ((2.0, 1.0), (4.0, 1.0), (4.0, 3.0), (2.0, 3.0)))
HALL = Zone("hall", "Hall", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)), restricted=True)


def test_a_limit_set_while_running_alerts_and_one_removed_stops_alerting() -> None:
    rng = np.random.default_rng(30)
    scene = Scene(SceneSettings(lose_s=1.0))
    assert not events(run(scene, _crowd([4] * 30, rng)), EventType.ALERT_HIGH_OCCUPANCY)
    scene.set_alerts(3, [])
    alerts = events(run(scene, _crowd([4] * 5, rng)), EventType.ALERT_HIGH_OCCUPANCY)
    assert [a.data["max_occupancy"] for a in alerts] == [3]
    scene.set_alerts(None, [])
    assert scene.settings.max_occupancy is None
    assert not events(run(scene, _crowd([2] * 40 + [4] * 40, rng)), EventType.ALERT_HIGH_OCCUPANCY)


def test_restricted_zones_are_replaced_and_other_settings_kept() -> None:
    scene = Scene(SceneSettings(lose_s=2.5), [SOFA, HALL])
    scene.set_alerts(7, ["sofa"])
    assert {z.id: z.restricted for z in scene.zones} == {"sofa": True, "hall": False}
    assert [z.polygon for z in scene.zones] == [SOFA.polygon, HALL.polygon]
    assert (scene.settings.max_occupancy, scene.settings.lose_s) == (7, 2.5)
