"""The contracts: the messages every part exchanges, and the one serializer and JSON Schema of each.

``PoseFrame`` (with ``PersonPose``, ``Keypoint``, ``LinkReading``), the messages derived from it
(``PersonUpdate``, ``ZoneOccupancy``), ``Event``, the appliance's ``SystemStatus`` and ``ZoneLayout``, the
controls' ``ControlState`` and the ``Controls`` a sink may call, the overlay video's ``OverlaySnapshot`` (a
JPEG), and the COCO-17 names. Each message has a hub ``topic`` and a ``retained`` flag (whether the hub keeps
its latest copy for sinks that connect later).

The bottom of the import graph: imports nothing else of ``appliance`` (numpy and pydantic only).
"""

from appliance.contracts.control import ControlError, Controls, ControlState
from appliance.contracts.events import Event, EventType
from appliance.contracts.pose import (
    ESTIMATORS,
    MOTION_OUTPUTS,
    SOURCE_KINDS,
    TRACKER_OUTPUTS,
    Estimator,
    Keypoint,
    LinkReading,
    PersonPose,
    PersonUpdate,
    PoseFrame,
    Producer,
    SkeletonKind,
    SourceKind,
    ZoneOccupancy,
    is_simulated,
)
from appliance.contracts.snapshot import SNAPSHOT_TOPIC, OverlaySnapshot
from appliance.contracts.system import LinkStatus, SourceStatus, SystemStatus, ZoneLayout, ZoneShape

__all__ = [
    "ESTIMATORS",
    "MOTION_OUTPUTS",
    "SNAPSHOT_TOPIC",
    "SOURCE_KINDS",
    "TRACKER_OUTPUTS",
    "ControlError",
    "ControlState",
    "Controls",
    "Estimator",
    "Event",
    "EventType",
    "Keypoint",
    "LinkReading",
    "LinkStatus",
    "OverlaySnapshot",
    "PersonPose",
    "PersonUpdate",
    "PoseFrame",
    "Producer",
    "SkeletonKind",
    "SourceKind",
    "SourceStatus",
    "SystemStatus",
    "ZoneLayout",
    "ZoneOccupancy",
    "ZoneShape",
    "is_simulated",
]
