"""``Event``: something that happened once (a person appeared, a link dropped), with its one serializer.

An event's hub topic is ``alert/<category>`` for the ``alert.*`` types (``alert/high_occupancy``) and
``event/<dotted type>`` for every other (``event/person.detected``); sinks that want every event
subscribe to both.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

ALERT_PREFIX = "alert."


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

    retained: ClassVar[bool] = False

    @property
    def topic(self) -> str:
        name = self.type.value
        if name.startswith(ALERT_PREFIX):
            return f"alert/{name.removeprefix(ALERT_PREFIX)}"
        return f"event/{name}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "id": self.id, "time": self.time, "data": self.data}
