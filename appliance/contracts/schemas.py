"""JSON Schemas of the messages, as pydantic models of exactly what each ``to_dict`` produces.

The serializers are the dataclasses' ``to_dict`` (fast, no validation on the hot path); the models here
describe their output for the OpenAPI document and the shipped schemas (``docs/schemas``, written by
``invispose schemas``). ``extra="forbid"`` both ways: a field added to a serializer and not here fails the
tests rather than the clients.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.contracts.events import EventType

SourceKindField = Literal["esp32", "atheros", "replay", "simulated"]
EstimatorField = Literal["model", "motion", "tracker"]
ProducerField = Literal["model", "motion", "tracker", "rendered"]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoomPosition(_Shape):
    x: float
    y: float
    z: float


class KeypointModel(_Shape):
    name: str
    x: float = Field(description="overlay view, 0..1 from the left")
    y: float = Field(description="overlay view, 0..1 from the top")
    position_m: RoomPosition = Field(description="room coordinates in metres")
    confidence: float


class BoundingBox(_Shape):
    x: float
    y: float
    width: float
    height: float


class PersonPoseModel(_Shape):
    id: int = Field(description="the pipeline's id for this visit (a history person's live_id)")
    position_m: RoomPosition | None = Field(
        description="the tracked body centre in room metres (x, y on the floor; z the pelvis height)"
    )
    uncertainty_m: float | None = Field(description="one standard deviation of the position on the floor")
    keypoints: list[KeypointModel]
    skeleton: Literal["rendered"] = Field(
        description="rendered: the keypoints are drawn from position, heading and posture, not measured "
        "joint by joint; their confidence follows the position's uncertainty"
    )
    bbox: BoundingBox
    zone: str | None
    activity: str | None
    confidence: float


class LinkReadingModel(_Shape):
    link: str
    motion: bool
    presence: bool
    score: float
    calibrated: bool


class PoseFrameModel(_Shape):
    """One reading of the room, as on every output (REST, WebSocket, MQTT, webhooks)."""

    timestamp: float
    frame_id: int
    source: SourceKindField
    simulated: bool
    estimator: EstimatorField = Field(
        description="tracker: the sensing path (trackers and the count/activity model); motion: the motion "
        "detector alone"
    )
    estimators: dict[str, ProducerField] = Field(
        description="what produced each output: presence, person_count, activity (model), position "
        "(tracker), motion (motion), skeleton (rendered)"
    )
    model_version: str | None
    presence: bool
    motion: bool
    motion_score: float
    person_count: int | None = Field(description="null when the estimator cannot count (motion detector)")
    persons: list[PersonPoseModel]
    confidence: float
    processing_ms: float
    links: list[LinkReadingModel]


class PersonUpdateModel(_Shape):
    """One person of a reading (topic ``person/<id>``)."""

    timestamp: float
    frame_id: int
    source: SourceKindField
    simulated: bool
    estimator: EstimatorField
    person: PersonPoseModel


class ZoneOccupancyModel(_Shape):
    """Who is in one zone (topic ``zone/<id>``), sent when it changes."""

    timestamp: float
    zone_id: str
    name: str
    occupancy: int | None = Field(description="null when the estimator cannot count (motion detector)")
    person_ids: list[int]
    source: SourceKindField
    simulated: bool
    estimator: EstimatorField


class EventModel(_Shape):
    """Something that happened once (topic ``event/<type>``, or ``alert/<category>`` for alerts)."""

    type: EventType
    id: str = Field(description="unique; receivers deduplicate on it")
    time: float = Field(description="seconds since the epoch")
    data: dict[str, Any] = Field(description="what happened; keys depend on the type")


class SourceStatusModel(_Shape):
    name: str
    kind: SourceKindField
    simulated: bool
    running: bool
    frames: int
    last_frame: float | None = Field(description="host time of the latest frame; null before one")
    error: str | None = Field(description="why the source stopped, when it failed")


class LinkStatusModel(_Shape):
    link: str
    source: str
    up: bool
    frames: int
    packets_per_s: float
    rssi_dbm: float | None
    last_seen: float
    packets_lost: int
    calibrated: bool


class SystemStatusModel(_Shape):
    """What is running and how well (topic ``status``)."""

    timestamp: float
    version: str
    uptime_s: float
    source: SourceKindField
    simulated: bool
    estimator: EstimatorField | None
    frames_published: int
    sources: list[SourceStatusModel]
    links: list[LinkStatusModel]


class ZoneShapeModel(_Shape):
    id: str
    name: str
    polygon: list[list[float]]
    restricted: bool


class ZoneLayoutModel(_Shape):
    """The zones in force (topic ``config/zones``)."""

    timestamp: float
    zones: list[ZoneShapeModel]


class ControlStateModel(_Shape):
    """The controls' settings now (topic ``controls``)."""

    timestamp: float
    detection_enabled: bool = Field(description="false: no readings are published")
    sensitivity: float = Field(ge=0, le=100, description="50: the configured threshold; +25 halves it")
    profile: Literal["balanced", "responsive", "steady"]
    calibrating: bool = Field(description="the empty room is being learnt now")
    calibrated_links: int
    links: int


class OverlaySnapshotModel(_Shape):
    """The skeleton overlay as one JPEG (topic ``$video/snapshot``), every ``video.snapshot_interval_s``
    while someone subscribes to it."""

    timestamp: float = Field(description="when it was rendered, seconds since the epoch")
    width: int = Field(description="pixels, the video's configured width")
    height: int = Field(description="pixels, the video's configured height")
    frame_id: int | None = Field(description="the PoseFrame drawn; null before the first reading")
    source: SourceKindField | None = Field(description="the source of that PoseFrame")
    simulated: bool = Field(description="the picture shows simulated data (it also says so on screen)")
    content_type: Literal["image/jpeg"]
    jpeg_base64: str = Field(description="the JPEG file, base64 (RFC 4648, no line breaks)")


# The shipped schema files (docs/schemas/<name>.schema.json) and the model of each.
MESSAGE_SCHEMAS: dict[str, type[BaseModel]] = {
    "pose-frame": PoseFrameModel,
    "person-update": PersonUpdateModel,
    "zone-occupancy": ZoneOccupancyModel,
    "event": EventModel,
    "system-status": SystemStatusModel,
    "zone-layout": ZoneLayoutModel,
    "control-state": ControlStateModel,
    "overlay-snapshot": OverlaySnapshotModel,
}


def json_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """A standalone JSON Schema (2020-12) document for ``model``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{name}.schema.json",
        **model.model_json_schema(),
    }


def schema_text(model: type[BaseModel], name: str) -> str:
    return json.dumps(json_schema(model, name), indent=2, sort_keys=True) + "\n"
