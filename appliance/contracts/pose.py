"""What the pipeline knows about the room at one instant, and the messages derived from it.

``PoseFrame`` is the room now; ``PersonUpdate`` is one person of a frame (topic ``person/<id>``) and
``ZoneOccupancy`` one zone's occupancy (topic ``zone/<id>``). Each has its one serializer (``to_dict``)
and its hub topic; the JSON Schemas in ``contracts.schemas`` describe exactly what ``to_dict`` produces.

Every message says where it came from (``source``: esp32, atheros, replay or simulated, and ``simulated``
as a flag answered by ``is_simulated``) and what produced it: ``estimator`` is ``tracker`` when the
sensing path (trackers that localise people, the count/activity ``model``) made the reading and
``motion`` when the motion detector alone did; ``estimators`` says, output by output, which one
(``presence``, ``person_count``, ``activity``: the model; ``position``: the tracker; ``motion``: the
motion detector; ``skeleton``: rendered). A person's keypoints are *rendered* from the tracked position,
heading and posture (``PersonPose.skeleton``), never measured joint by joint, and their confidence
follows the position's uncertainty, so no sink can show simulated, detector-only or rendered data as if
it were a measured pose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from appliance.contracts.coco import N_KEYPOINTS, body_centre

SourceKind = Literal["esp32", "atheros", "replay", "simulated"]
Estimator = Literal["model", "motion", "tracker"]
# What made one output: an estimator, or "rendered" for a skeleton drawn from measured quantities.
Producer = Literal["model", "motion", "tracker", "rendered"]
SkeletonKind = Literal["rendered"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("esp32", "atheros", "replay", "simulated")
ESTIMATORS: tuple[Estimator, ...] = ("model", "motion", "tracker")
# Who makes each output of a tracker reading, and of a motion-detector reading.
TRACKER_OUTPUTS: dict[str, Producer] = {
    "presence": "model",
    "person_count": "model",
    "activity": "model",
    "position": "tracker",
    "motion": "motion",
    "skeleton": "rendered",
}
MOTION_OUTPUTS: dict[str, Producer] = {"presence": "motion", "motion": "motion"}
# Metres in room coordinates are given to the millimetre.
_COORDINATE_DECIMALS = 3


def is_simulated(source: SourceKind) -> bool:
    """The one answer to "is this simulated": outputs carry it as ``simulated`` and show it to people."""
    return source == "simulated"


@dataclass(frozen=True, slots=True)
class LinkReading:
    """One link's motion verdict after a packet. ``score`` is the moving variance over ``threshold``:
    motion starts at 1.0. Until calibration ends, ``score`` and ``threshold`` are 0 and nothing is
    detected."""

    link: str
    t_s: float  # device time of the packet, seconds
    score: float
    threshold: float  # in moving-variance units
    motion: bool
    presence: bool
    calibrated: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "motion": self.motion,
            "presence": self.presence,
            "score": round(self.score, 4),
            "calibrated": self.calibrated,
        }


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
    """One person: where they are (``position_m``, the tracked body centre, and ``uncertainty_m``, one
    standard deviation of it on the floor), the rendered skeleton, zone, activity and confidence."""

    id: int
    keypoints: tuple[Keypoint, ...]
    bbox: tuple[float, float, float, float]  # overlay view: x, y, width, height in 0..1
    zone: str | None
    activity: str | None
    confidence: float
    position_m: tuple[float, float, float] | None = None
    uncertainty_m: float | None = None
    skeleton: SkeletonKind = "rendered"

    def to_dict(self) -> dict[str, Any]:
        x, y, w, h = self.bbox
        position = None
        if self.position_m is not None:
            px, py, pz = self.position_m
            position = {"x": round(px, 3), "y": round(py, 3), "z": round(pz, 3)}
        return {
            "id": self.id,
            "position_m": position,
            "uncertainty_m": None if self.uncertainty_m is None else round(self.uncertainty_m, 3),
            "keypoints": [k.to_dict() for k in self.keypoints],
            "skeleton": self.skeleton,
            "bbox": {"x": round(x, 4), "y": round(y, 4), "width": round(w, 4), "height": round(h, 4)},
            "zone": self.zone,
            "activity": self.activity,
            "confidence": round(self.confidence, 3),
        }

    def centre_m(self) -> tuple[float, float, float] | None:
        """The body centre in room metres: the torso weighted by joint confidence (as the tracker places
        people); ``None`` without keypoints or when a position is not finite."""
        keypoints = np.array([k.position_m for k in self.keypoints], dtype=np.float64).reshape(-1, 3)
        if len(keypoints) == 0 or not np.isfinite(keypoints).all():
            return None
        if len(keypoints) == N_KEYPOINTS:
            confidence = np.array([k.confidence for k in self.keypoints], dtype=np.float64)
            centre = body_centre(keypoints, confidence)
        else:
            centre = keypoints.mean(axis=0)
        x, y, z = (round(float(v), _COORDINATE_DECIMALS) for v in centre)
        return (x, y, z)


@dataclass(frozen=True, slots=True)
class PoseFrame:
    """The room at one instant (topic ``pose``)."""

    retained: ClassVar[bool] = True

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
    # Output name -> what produced it (TRACKER_OUTPUTS or MOTION_OUTPUTS).
    estimators: Mapping[str, Producer] = field(default_factory=lambda: dict(MOTION_OUTPUTS))

    @property
    def topic(self) -> str:
        return "pose"

    @property
    def simulated(self) -> bool:
        return is_simulated(self.source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "frame_id": self.frame_id,
            "source": self.source,
            "simulated": self.simulated,
            "estimator": self.estimator,
            "estimators": dict(self.estimators),
            "model_version": self.model_version,
            "presence": self.presence,
            "motion": self.motion,
            "motion_score": round(self.motion_score, 4),
            "person_count": self.person_count,
            "persons": [p.to_dict() for p in self.persons],
            "confidence": round(self.confidence, 3),
            "processing_ms": round(self.processing_ms, 3),
            "links": [r.to_dict() for r in self.links],
        }


@dataclass(frozen=True, slots=True)
class PersonUpdate:
    """One person of a frame (topic ``person/<id>``), with the frame's time and origin."""

    retained: ClassVar[bool] = False

    frame: PoseFrame
    person: PersonPose

    @property
    def topic(self) -> str:
        return f"person/{self.person.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.frame.timestamp,
            "frame_id": self.frame.frame_id,
            "source": self.frame.source,
            "simulated": self.frame.simulated,
            "estimator": self.frame.estimator,
            "person": self.person.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ZoneOccupancy:
    """Who is in one zone (topic ``zone/<id>``); ``occupancy`` is None when the estimator cannot count
    people (the motion detector), so a sink shows "unknown" rather than "empty"."""

    retained: ClassVar[bool] = True

    timestamp: float
    zone_id: str
    name: str
    occupancy: int | None
    person_ids: tuple[int, ...]
    source: SourceKind
    estimator: Estimator

    @classmethod
    def of(cls, frame: PoseFrame, zone_id: str, name: str) -> ZoneOccupancy:
        """A person counts in the zone they entered most recently (``PersonPose.zone``)."""
        inside = tuple(p.id for p in frame.persons if p.zone == zone_id)
        return cls(
            timestamp=frame.timestamp,
            zone_id=zone_id,
            name=name,
            occupancy=len(inside) if frame.person_count is not None else None,
            person_ids=inside,
            source=frame.source,
            estimator=frame.estimator,
        )

    @property
    def topic(self) -> str:
        return f"zone/{self.zone_id}"

    @property
    def simulated(self) -> bool:
        return is_simulated(self.source)

    @property
    def state(self) -> tuple[int | None, tuple[int, ...]]:
        """What a change of occupancy is judged by (not the time)."""
        return (self.occupancy, self.person_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "zone_id": self.zone_id,
            "name": self.name,
            "occupancy": self.occupancy,
            "person_ids": list(self.person_ids),
            "source": self.source,
            "simulated": self.simulated,
            "estimator": self.estimator,
        }
