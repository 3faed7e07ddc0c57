"""What users may change while the appliance runs, as one contract for every door (REST, MQTT, the UI).

``ControlState`` (topic ``controls``, retained) is the current setting of each control, announced on
every change so that sinks show it (Home Assistant's switch, number and select follow it).
``Controls`` is what a sink may ask for; the composition root gives sinks the one implementation
(``appliance.control.ApplianceControls``), so a sink changes the appliance without knowing its parts.
A refused change raises ``ControlError`` naming the field and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

DetectorProfile = Literal["balanced", "responsive", "steady"]
DETECTOR_PROFILES: tuple[DetectorProfile, ...] = ("balanced", "responsive", "steady")
SENSITIVITY_RANGE = (0.0, 100.0)


class ControlError(ValueError):
    """A change that is refused; ``field`` says which value, the message what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ControlState:
    """The controls' current settings (topic ``controls``)."""

    retained: ClassVar[bool] = True

    timestamp: float
    detection_enabled: bool  # false: no readings are published (privacy, or while working in the room)
    sensitivity: float  # 0..100; 50 is the configured threshold, each 25 up halves it
    profile: DetectorProfile
    calibrating: bool  # the empty room is being learnt now
    calibrated_links: int
    links: int

    @property
    def topic(self) -> str:
        return "controls"

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "detection_enabled": self.detection_enabled,
            "sensitivity": self.sensitivity,
            "profile": self.profile,
            "calibrating": self.calibrating,
            "calibrated_links": self.calibrated_links,
            "links": self.links,
        }


class Controls(Protocol):
    """The changes a user may make at run time. Each returns (or announces) the new state."""

    def state(self) -> ControlState: ...

    async def set_detection(self, enabled: bool) -> ControlState: ...

    async def set_sensitivity(self, value: float) -> ControlState: ...

    async def set_profile(self, profile: str) -> ControlState: ...

    async def recalibrate(self) -> ControlState:
        """Learn the empty room again (the room should be empty and still for the calibration time)."""
        ...

    async def configure_zone(self, zone_id: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a zone from its settings (validated as the REST API does); the zone as saved."""
        ...

    async def restart(self) -> None:
        """Stop cleanly and start again (the process replaces itself)."""
        ...
