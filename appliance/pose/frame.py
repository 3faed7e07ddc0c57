"""``PoseFrame``: what the pipeline knows about the room at one instant, with its one serializer.

Every frame says where it came from (``source``: esp32, atheros, replay or simulated) and what produced it
(``estimator``: the pose ``model`` or the ``motion`` detector), so no sink can show simulated or
detector-only data as if it were a measured pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from appliance.csi.sources import SourceKind
from appliance.pose.motion import LinkReading

Estimator = Literal["model", "motion"]


@dataclass(frozen=True, slots=True)
class Keypoint:
    name: str
    x: float  # overlay view, 0..1 from the left
    y: float  # overlay view, 0..1 from the top
    position_m: tuple[float, float, float]  # room coordinates: x along width, y along depth, z up
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        px, py, pz = self.position_m
        return {
            "name": self.name,
            "x": round(self.x, 4),
            "y": round(self.y, 4),
            "position_m": {"x": round(px, 3), "y": round(py, 3), "z": round(pz, 3)},
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True, slots=True)
class PersonPose:
    id: int
    keypoints: tuple[Keypoint, ...]
    bbox: tuple[float, float, float, float]  # overlay view: x, y, width, height in 0..1
    zone: str | None
    activity: str | None
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        x, y, w, h = self.bbox
        return {
            "id": self.id,
            "keypoints": [k.to_dict() for k in self.keypoints],
            "bbox": {"x": round(x, 4), "y": round(y, 4), "width": round(w, 4), "height": round(h, 4)},
            "zone": self.zone,
            "activity": self.activity,
            "confidence": round(self.confidence, 3),
        }


@dataclass(frozen=True, slots=True)
class PoseFrame:
    timestamp: float  # host time, seconds since the epoch
    frame_id: int
    source: SourceKind
    estimator: Estimator
    model_version: str | None
    presence: bool
    motion: bool
    motion_score: float
    person_count: int | None  # None when the estimator cannot count (the motion detector)
    persons: tuple[PersonPose, ...]
    confidence: float
    processing_ms: float
    links: tuple[LinkReading, ...]

    @property
    def simulated(self) -> bool:
        return self.source == "simulated"

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "frame_id": self.frame_id,
            "source": self.source,
            "simulated": self.simulated,
            "estimator": self.estimator,
            "model_version": self.model_version,
            "presence": self.presence,
            "motion": self.motion,
            "motion_score": round(self.motion_score, 4),
            "person_count": self.person_count,
            "persons": [p.to_dict() for p in self.persons],
            "confidence": round(self.confidence, 3),
            "processing_ms": round(self.processing_ms, 3),
            "links": [
                {
                    "link": r.link,
                    "motion": r.motion,
                    "presence": r.presence,
                    "score": round(r.score, 4),
                    "calibrated": r.calibrated,
                }
                for r in self.links
            ],
        }
