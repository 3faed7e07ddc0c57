"""scene: from per-window person estimates to tracked people, zones, activities, falls and events.

``estimate`` (the pose model's output for one window), ``tracker`` (stable ids, prediction, smoothing),
``zones`` (floor polygons with hysteresis), ``activity`` (smoothed activity), ``falls`` (fall detection per
person) and ``scene`` (``Scene``, which ties them together and emits ``Event``s once per change).
Imports only numpy, scipy, pydantic, ``appliance.contracts.coco`` and ``appliance.contracts.events``.
"""

from appliance.pose.scene.estimate import PersonEstimate, WindowEstimate
from appliance.pose.scene.scene import PersonHistory, Scene, SceneSettings, SceneUpdate, TrackedPerson
from appliance.pose.scene.zones import Zone, ZoneLike

__all__ = [
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
