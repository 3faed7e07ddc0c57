"""``/api/v1/pose``: the current reading, stored history, persons (visits) and the zones' live occupancy.

Frames are served as the hub encoded them (``PoseFrame.to_dict()``, the one serializer every output
shares); ``appliance.contracts.schemas`` describes that shape for the OpenAPI document.
Persons are the history's visits (``PersonRecord``): their ``id`` is stable across restarts; ``live_id``
is the id the pipeline uses during the visit.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from appliance.api.errors import error_response
from appliance.api.keys import HUB
from appliance.api.resource_keys import history_store, live_config
from appliance.api.routing import JSON_CONTENT_TYPE, ApiModel, ApiRouter, Scope
from appliance.contracts import PoseFrame
from appliance.contracts.schemas import EstimatorField, PoseFrameModel, RoomPosition
from appliance.store.history import MAX_PAGE_ROWS

router = ApiRouter()
_TAGS = ["pose"]
DEFAULT_PAGE_ROWS = 100
# Trajectory points returned with one person at most (the latest ones).
MAX_TRAJECTORY_POINTS = MAX_PAGE_ROWS
# Ids and offsets reach SQLite, whose integers are 64-bit signed: larger numbers cannot name a row and
# SQLite refuses to even compare them. An offset leaves room for the page's limit (and one more row).
SQLITE_MAX_INTEGER = 2**63 - 1
MAX_PERSON_ID = SQLITE_MAX_INTEGER
MAX_SKIP = SQLITE_MAX_INTEGER - MAX_PAGE_ROWS - 1
PersonId = Annotated[int, Field(ge=1, le=MAX_PERSON_ID)]


# --------------------------------------------------------------------------------------------------------
# Times in query strings


def parse_time(value: object) -> object:
    """Seconds since the epoch, from a number or an ISO 8601 text (without an offset: the appliance's
    local time, as the analytics' days are)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
        seconds = moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError("not a time: give seconds since the epoch or ISO 8601") from None
    return seconds


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("a time must be finite")
    return value


# A time in a query: epoch seconds or ISO 8601; documented as either.
QueryTime = Annotated[
    float,
    BeforeValidator(parse_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
            "description": "seconds since the epoch, or ISO 8601 (without an offset: local time)",
        }
    ),
]


class TimeRange(ApiModel):
    """Half-open ``[start_time, end_time)``; either side may be left open."""

    start_time: QueryTime | None = Field(
        None, description="from this time on (seconds since the epoch, or ISO 8601 in local time)"
    )
    end_time: QueryTime | None = Field(
        None,
        description="before this time (seconds since the epoch, or ISO 8601 in local time); must be "
        "after start_time when both are given",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        for value in (self.start_time, self.end_time):
            if value is not None:
                _finite(value)
        if self.start_time is not None and self.end_time is not None and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


# --------------------------------------------------------------------------------------------------------
# Current


class CurrentQuery(ApiModel):
    zone_id: str | None = Field(None, max_length=64, description="only the persons in this zone")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="only persons at least this confident")


def no_reading_yet() -> web.Response:
    return error_response(
        503, "no_reading_yet", "the pipeline has not published a reading yet; retry shortly"
    )


@router.get(
    "/api/v1/pose/current",
    scope=Scope.POSE_READ,
    summary="The latest reading, optionally only some persons",
    query=CurrentQuery,
    response=PoseFrameModel,
    tags=_TAGS,
)
async def current(request: web.Request, query: CurrentQuery, body: None) -> web.Response:
    """503 with the error shape before the first reading. With a filter, ``persons`` holds the persons
    that pass it and ``person_count`` counts them."""
    message = request.app[HUB].latest("pose")
    if message is None:
        return no_reading_yet()
    if query.zone_id is None and query.min_confidence <= 0:
        return web.Response(text=message.text, content_type=JSON_CONTENT_TYPE)
    data = json.loads(message.text)
    data["persons"] = [
        p
        for p in data["persons"]
        if p["confidence"] >= query.min_confidence and (query.zone_id in (None, p["zone"]))
    ]
    if data["person_count"] is not None:
        data["person_count"] = len(data["persons"])
    return web.Response(text=json.dumps(data), content_type=JSON_CONTENT_TYPE)


# --------------------------------------------------------------------------------------------------------
# History


class HistoryQuery(TimeRange):
    person_id: PersonId | None = Field(None, description="only the frames of this person's visit")
    limit: int = Field(DEFAULT_PAGE_ROWS, ge=1, le=MAX_PAGE_ROWS)
    skip: int = Field(0, ge=0, le=MAX_SKIP)


class PoseHistory(BaseModel):
    items: list[PoseFrameModel] = Field(description="newest first")
    has_more: bool = Field(description="a further page exists (skip + limit)")


@router.get(
    "/api/v1/pose/history",
    scope=Scope.POSE_READ,
    summary="Stored readings in a time range, newest first",
    query=HistoryQuery,
    response=PoseHistory,
    tags=_TAGS,
)
async def pose_history(request: web.Request, query: HistoryQuery, body: None) -> web.Response:
    """Stored at the history's sampling rate (``history.pose_rate_hz``), plus every change of presence or
    person count. For a whole range use ``/api/v1/analytics/export``."""
    page = await history_store(request.app).pose_history(
        query.start_time, query.end_time, query.person_id, query.limit, query.skip
    )
    return web.Response(
        text=json.dumps({"items": page.items, "has_more": page.has_more}), content_type=JSON_CONTENT_TYPE
    )


# --------------------------------------------------------------------------------------------------------
# Persons


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrackPointModel(_Shape):
    ts: float
    position: RoomPosition
    zone: str | None
    activity: str | None
    confidence: float
    dwell_s: float = Field(description="seconds of presence this point stands for")


class PersonModel(_Shape):
    """One visit: from first sighting until lost."""

    id: int = Field(description="stable across restarts")
    live_id: int = Field(description="the pipeline's id during the visit (PoseFrame persons[].id)")
    source: str
    simulated: bool
    active: bool
    first_seen: float
    last_seen: float
    duration_s: float
    zone: str | None = Field(description="the zone the person is in now (active visits only)")
    zones_visited: list[str]
    activity_seconds: dict[str, float] = Field(description="seconds spent per activity")
    average_confidence: float
    falls: int
    trajectory: list[TrackPointModel] = Field(description="empty unless trajectory=true; oldest first")


class PersonsQuery(ApiModel):
    active_only: bool = Field(False, description="only the persons present now")
    limit: int = Field(DEFAULT_PAGE_ROWS, ge=1, le=MAX_PAGE_ROWS)
    skip: int = Field(0, ge=0, le=MAX_SKIP)


class PersonList(BaseModel):
    items: list[PersonModel] = Field(description="most recently seen first")
    has_more: bool


class PersonQuery(ApiModel):
    trajectory: bool = Field(False, description=f"include the latest {MAX_TRAJECTORY_POINTS} positions")


def latest_frame(app: web.Application) -> PoseFrame | None:
    message = app[HUB].latest("pose")
    return message.item if message is not None and isinstance(message.item, PoseFrame) else None


def _current_zones(frame: PoseFrame | None) -> dict[int, str | None]:
    return {} if frame is None else {p.id: p.zone for p in frame.persons}


def _person(record: dict[str, Any], zones: dict[int, str | None]) -> dict[str, Any]:
    return {**record, "zone": zones.get(record["live_id"]) if record["active"] else None}


@router.get(
    "/api/v1/pose/persons",
    scope=Scope.POSE_READ,
    summary="Persons seen (each visit), most recent first",
    query=PersonsQuery,
    response=PersonList,
    tags=_TAGS,
)
async def persons(request: web.Request, query: PersonsQuery, body: None) -> web.Response:
    store = history_store(request.app)
    records = await store.persons(query.active_only, query.limit, query.skip)
    has_more = len(records) == query.limit and bool(
        await store.persons(query.active_only, 1, query.skip + query.limit)
    )
    zones = _current_zones(latest_frame(request.app))
    items = [_person(r.to_dict(), zones) for r in records]
    return web.Response(
        text=json.dumps({"items": items, "has_more": has_more}), content_type=JSON_CONTENT_TYPE
    )


@router.get(
    "/api/v1/pose/persons/{id}",
    scope=Scope.POSE_READ,
    summary="One person's visit, optionally with its trajectory",
    query=PersonQuery,
    response=PersonModel,
    tags=_TAGS,
    responses={404: "no person with that id"},
)
async def person(request: web.Request, query: PersonQuery, body: None) -> web.Response:
    raw_id = request.match_info["id"]
    record = None
    if raw_id.isascii() and raw_id.isdigit() and int(raw_id) <= MAX_PERSON_ID:
        record = await history_store(request.app).person(int(raw_id), query.trajectory, MAX_TRAJECTORY_POINTS)
    if record is None:
        return error_response(404, "not_found", f"no person {raw_id!r}", {"id": raw_id})
    data = _person(record.to_dict(), _current_zones(latest_frame(request.app)))
    return web.Response(text=json.dumps(data), content_type=JSON_CONTENT_TYPE)


# --------------------------------------------------------------------------------------------------------
# Zones


class ZoneOccupancy(BaseModel):
    id: str
    name: str
    polygon: list[tuple[float, float]]
    restricted: bool
    occupancy: int | None = Field(
        description="persons in the zone now; null when the estimator cannot count (motion detector)"
    )
    person_ids: list[int] = Field(description="their ids in the latest reading (persons[].id)")


class ZonesNow(BaseModel):
    timestamp: float | None = Field(description="of the reading the occupancy comes from; null before one")
    estimator: EstimatorField | None
    simulated: bool | None
    zones: list[ZoneOccupancy]


@router.get(
    "/api/v1/pose/zones",
    scope=Scope.POSE_READ,
    summary="Every zone with who is in it now",
    response=ZonesNow,
    tags=_TAGS,
)
async def zones(request: web.Request, query: None, body: None) -> ZonesNow:
    """A person counts in the zone they entered most recently (``persons[].zone`` of the latest reading)."""
    frame = latest_frame(request.app)
    counting = frame is not None and frame.person_count is not None
    items = []
    for zone in live_config(request.app).zones:
        inside = [p.id for p in frame.persons if p.zone == zone.id] if frame is not None else []
        items.append(
            ZoneOccupancy(
                id=zone.id,
                name=zone.name,
                polygon=list(zone.polygon),
                restricted=zone.restricted,
                occupancy=len(inside) if counting else None,
                person_ids=inside,
            )
        )
    return ZonesNow(
        timestamp=frame.timestamp if frame else None,
        estimator=frame.estimator if frame else None,
        simulated=frame.simulated if frame else None,
        zones=items,
    )
