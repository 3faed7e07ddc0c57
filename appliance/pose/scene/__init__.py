"""scene: from per-window person estimates to tracked people, zones, activities, falls and events.

``estimate`` (what the estimators say about one window), ``tracker`` (stable ids, prediction, smoothing),
``zones`` (floor polygons with hysteresis), ``activity`` (smoothed activity) and ``scene`` (``Scene``,
which ties them together and emits ``Event``s once per change, falls included as the estimator found them).
Imports only numpy, scipy, pydantic, ``appliance.contracts.coco`` and ``appliance.contracts.events``.
"""

from appliance.contracts.system import ZoneLike
from appliance.pose.scene.estimate import Fall, PersonEstimate, WindowEstimate
from appliance.pose.scene.scene import PersonHistory, Scene, SceneSettings, SceneUpdate, TrackedPerson
from appliance.pose.scene.zones import Zone

__all__ = [
    "Fall",
    "PersonEstimate",
    "PersonHistory",
    "Scene",
    "SceneSettings",
    "SceneUpdate",
    "TrackedPerson",
    "WindowEstimate",
    "Zone",
    "ZoneLike",
]
