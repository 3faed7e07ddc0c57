"""``Event``: something that happened once (a person appeared, a link dropped), with its one serializer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    PERSON_DETECTED = "person.detected"
    PERSON_LOST = "person.lost"
    PERSON_ENTERED_ZONE = "person.entered_zone"
    PERSON_LEFT_ZONE = "person.left_zone"
    PERSON_FALL_DETECTED = "person.fall_detected"
    PERSON_ACTIVITY_DETECTED = "person.activity_detected"
    SYSTEM_STARTED = "system.started"
    SYSTEM_STOPPED = "system.stopped"
    ROUTER_CONNECTED = "router.connected"
    ROUTER_DISCONNECTED = "router.disconnected"
    ALERT_HIGH_OCCUPANCY = "alert.high_occupancy"
    ALERT_RESTRICTED_ZONE_BREACH = "alert.restricted_zone_breach"
    ALERT_SYSTEM_ERROR = "alert.system_error"
    ALERT_PERFORMANCE_DEGRADED = "alert.performance_degraded"
    ANALYTICS_REPORT_GENERATED = "analytics.report_generated"
    ANALYTICS_THRESHOLD_EXCEEDED = "analytics.threshold_exceeded"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "id": self.id, "time": self.time, "data": self.data}
