"""``/api/v1/analytics``: activity timelines, floor heatmaps (JSON or PNG), occupancy reports and exports.

Everything reads the stored history through ``appliance.store.analytics``. Rendering a PNG is CPU work
and runs in the default executor, off the event loop. Exports are streamed page by page as the history
yields them, so a year of data costs one page of memory, and the client sees bytes from the first page.
Because the ``200`` is sent before the history has been read to the end, an export whose read fails
part-way cannot change its status: it is logged at error level with the rows sent, a JSON-lines export
ends with an ``{"error": {"code": "export_failed", ...}}`` line, and in both formats the connection is
closed without chunked encoding's final chunk, so the client sees an incomplete body, never a short
export that looks whole. A complete export is only its rows, ended by that final chunk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from contextlib import aclosing, suppress
from typing import Literal

from aiohttp import hdrs, web
from pydantic import BaseModel, Field, model_validator

from appliance.api.errors import error_body
from appliance.api.keys import CONFIG
from appliance.api.pose import PersonId, TimeRange
from appliance.api.resource_keys import history_store, live_config
from appliance.api.routing import JSON_CONTENT_TYPE, ApiModel, ApiRouter, Scope, model_response
from appliance.store.analytics import (
    DEFAULT_HEATMAP_CELLS,
    DEFAULT_IMAGE_WIDTH_PX,
    EXPORT_MEDIA_TYPES,
    MAX_GRID_CELLS,
    MAX_IMAGE_WIDTH_PX,
    MIN_IMAGE_WIDTH_PX,
    MIN_OCCUPANCY_BUCKET_S,
    Dataset,
    ExportFormat,
    activity_timeline,
    export_chunks,
    heatmap,
    occupancy_report,
    occupancy_series,
    render_heatmap_png,
)

log = logging.getLogger(__name__)
router = ApiRouter()
_TAGS = ["analytics"]
PNG_MEDIA_TYPE = "image/png"
SECONDS_PER_DAY = 86_400.0
# The error code of the line that ends a JSON-lines export cut short by a history failure.
EXPORT_FAILED = "export_failed"
# Range a timeline covers when none is given, and the longest it may cover: a timeline gathers its
# trajectory points in memory, which a month of them fits comfortably and a year may not.
DEFAULT_RANGE_S = SECONDS_PER_DAY
MAX_TIMELINE_RANGE_S = 31 * SECONDS_PER_DAY
# Report days that every platform's clock can represent with the following week.
MIN_REPORT_DATE = dt.date(1970, 1, 2)
MAX_REPORT_DATE = dt.date(9999, 12, 20)


def _range(query: TimeRange, now: float) -> tuple[float, float]:
    """The query's range with open sides filled: it ends now (or just after a later start), and starts
    ``DEFAULT_RANGE_S`` before its end."""
    start = query.start_time
    end = query.end_time if query.end_time is not None else max(now, now if start is None else start + 1.0)
    return (end - DEFAULT_RANGE_S if start is None else start), end


# --------------------------------------------------------------------------------------------------------
# Activity


class ActivityQuery(TimeRange):
    by: Literal["person", "zone"] = Field("person", description="one timeline per person, or per zone")
    person_id: PersonId | None = Field(None, description="only this person (a history person id)")
    zone_id: str | None = Field(None, max_length=64, description="only this zone")

    @model_validator(mode="after")
    def _bounded(self) -> ActivityQuery:
        start, end = _range(self, time.time())
        if end - start > MAX_TIMELINE_RANGE_S:
            raise ValueError(f"a timeline covers at most {MAX_TIMELINE_RANGE_S / SECONDS_PER_DAY:.0f} days")
        return self


class ActivityIntervalModel(BaseModel):
    subject: str = Field(description="a person's id, or a zone id (someone in it doing this)")
    activity: str
    start: float
    end: float
    duration_s: float


class ActivityTimeline(BaseModel):
    start: float
    end: float
    by: Literal["person", "zone"]
    intervals: list[ActivityIntervalModel] = Field(description="sorted by start")


@router.get(
    "/api/v1/analytics/activity",
    scope=Scope.ANALYTICS_READ,
    summary="Activity timeline per person or per zone (default: the last 24 hours)",
    query=ActivityQuery,
    response=ActivityTimeline,
    tags=_TAGS,
)
async def activity(request: web.Request, query: ActivityQuery, body: None) -> ActivityTimeline:
    """The range covers at most 31 days: `end_time` (default: now, or just after a later `start_time`)
    minus `start_time` (default: 24 hours before the end); a longer one is refused with 400."""
    start, end = _range(query, time.time())
    intervals = await activity_timeline(
        history_store(request.app), start, end, query.by, query.person_id, query.zone_id
    )
    return ActivityTimeline.model_validate(
        {"start": start, "end": end, "by": query.by, "intervals": [i.to_dict() for i in intervals]}
    )


# --------------------------------------------------------------------------------------------------------
# Heatmaps


class HeatmapQuery(TimeRange):
    person_id: PersonId | None = Field(None, description="only this person (a history person id)")
    columns: int = Field(DEFAULT_HEATMAP_CELLS, ge=1, le=MAX_GRID_CELLS, description="cells along x")
    rows: int = Field(DEFAULT_HEATMAP_CELLS, ge=1, le=MAX_GRID_CELLS, description="cells along y")
    format: Literal["json", "png"] | None = Field(
        None, description="png: an image; unset: JSON unless the Accept header asks for image/png"
    )
    width_px: int = Field(
        DEFAULT_IMAGE_WIDTH_PX, ge=MIN_IMAGE_WIDTH_PX, le=MAX_IMAGE_WIDTH_PX, description="PNG width"
    )


class CellSize(BaseModel):
    x: float
    y: float


class HeatmapModel(BaseModel):
    """Seconds of presence per floor cell: ``seconds[row][column]``, rows along y, columns along x."""

    start: float
    end: float
    person_id: int | None
    simulated: bool
    width_m: float
    depth_m: float
    columns: int
    rows: int
    cell_m: CellSize
    seconds: list[list[float]]
    max_seconds: float
    total_seconds: float


def _wants_png(request: web.Request, query: HeatmapQuery) -> bool:
    if query.format is not None:
        return query.format == "png"
    return PNG_MEDIA_TYPE in request.headers.get(hdrs.ACCEPT, "")


@router.get(
    "/api/v1/analytics/heatmaps",
    scope=Scope.ANALYTICS_READ,
    summary="Where people spent time: a floor heatmap as JSON or PNG (default: the last 24 hours)",
    query=HeatmapQuery,
    response=HeatmapModel,
    content_types=[JSON_CONTENT_TYPE, PNG_MEDIA_TYPE],
    tags=_TAGS,
)
async def heatmaps(request: web.Request, query: HeatmapQuery, body: None) -> web.Response:
    """``format=png`` or ``Accept: image/png`` renders the image with the zones drawn in."""
    room = live_config(request.app).room
    start, end = _range(query, time.time())
    result = await heatmap(
        history_store(request.app), start, end, room.width_m, room.depth_m, query.columns, query.rows,
        query.person_id,
    )  # fmt: skip
    if not _wants_png(request, query):
        return model_response(HeatmapModel.model_validate(result.to_dict()))
    zones = live_config(request.app).zones
    png = await asyncio.get_running_loop().run_in_executor(
        None, render_heatmap_png, result, zones, query.width_px, request.app[CONFIG].room.name
    )
    return web.Response(body=png, content_type=PNG_MEDIA_TYPE)


# --------------------------------------------------------------------------------------------------------
# Occupancy over time


class OccupancyQuery(TimeRange):
    bucket_s: float = Field(
        900.0, ge=MIN_OCCUPANCY_BUCKET_S, le=SECONDS_PER_DAY, description="length of each bucket"
    )

    @model_validator(mode="after")
    def _bounded(self) -> OccupancyQuery:
        start, end = _range(self, time.time())
        if end - start > MAX_TIMELINE_RANGE_S:
            raise ValueError(f"a series covers at most {MAX_TIMELINE_RANGE_S / SECONDS_PER_DAY:.0f} days")
        return self


class OccupancySeriesModel(BaseModel):
    start: float
    bucket_s: float
    times: list[float] = Field(description="start of each bucket")
    presence: list[float | None] = Field(
        description="share of the stored readings that said present; null: nothing stored"
    )
    zones: dict[str, list[float | None]] = Field(
        description="per zone id, the mean number of people in it; null where no reading came from an "
        "estimator that counts people (the motion detector cannot tell who is where)"
    )


@router.get(
    "/api/v1/analytics/occupancy",
    scope=Scope.ANALYTICS_READ,
    summary="Room presence and people per zone over time, in buckets (default: the last 24 hours)",
    query=OccupancyQuery,
    response=OccupancySeriesModel,
    tags=_TAGS,
)
async def occupancy(request: web.Request, query: OccupancyQuery, body: None) -> OccupancySeriesModel:
    start, end = _range(query, time.time())
    zone_ids = [z.id for z in live_config(request.app).zones]
    series = await occupancy_series(history_store(request.app), start, end, query.bucket_s, zone_ids)
    return OccupancySeriesModel.model_validate(series.to_dict())


# --------------------------------------------------------------------------------------------------------
# Reports


class ReportQuery(ApiModel):
    period: Literal["day", "week"] = Field("day", description="the day, or its week (Monday to Sunday)")
    date: dt.date | None = Field(
        None, ge=MIN_REPORT_DATE, le=MAX_REPORT_DATE, description="a day, YYYY-MM-DD (default: today)"
    )


class BusiestHour(BaseModel):
    start: float
    hour: int = Field(description="local clock hour, 0..23")
    occupied_s: float


class OccupancyModel(BaseModel):
    zone_id: str | None = Field(description="null for the whole room")
    name: str
    occupied_s: float
    visits: int
    persons: int
    peak_occupancy: int
    peak_time: float | None
    busiest_hour: BusiestHour | None
    falls: int


class ReportModel(BaseModel):
    period: Literal["day", "week"]
    day: dt.date = Field(description="the day, or the Monday of the week")
    start: float
    end: float
    simulated: bool
    falls: int
    room: OccupancyModel
    zones: list[OccupancyModel]
    days: list[ReportModel] = Field(description="a week's days; empty for a day")


@router.get(
    "/api/v1/analytics/reports",
    scope=Scope.ANALYTICS_READ,
    summary="Occupancy report of a day or a week, per zone",
    query=ReportQuery,
    response=ReportModel,
    tags=_TAGS,
)
async def reports(request: web.Request, query: ReportQuery, body: None) -> ReportModel:
    """Days are the appliance's local days. Reading a report announces nothing; the scheduled reports
    (the ``reports:`` section) are announced as ``analytics.report_generated``."""
    day = query.date or dt.date.today()
    report = await occupancy_report(
        history_store(request.app), day, query.period, live_config(request.app).zones
    )
    return ReportModel.model_validate(report.to_dict())


# --------------------------------------------------------------------------------------------------------
# Export


class ExportQuery(TimeRange):
    dataset: Literal["pose", "events", "tracks"] = Field(
        description="pose: stored readings; events: every event; tracks: persons' trajectory points"
    )
    format: Literal["csv", "jsonl"] = Field("csv", description="CSV with a header row, or JSON lines")


def _filename(dataset: Dataset, fmt: ExportFormat, start: float | None, end: float | None) -> str:
    span = "-".join("open" if t is None else str(int(t)) for t in (start, end))
    return f"invispose-{dataset}-{span}.{fmt}"


@router.get(
    "/api/v1/analytics/export",
    scope=Scope.ANALYTICS_READ,
    summary="Download stored history (pose, events or tracks) as CSV or JSON lines, streamed",
    query=ExportQuery,
    content_types=list(EXPORT_MEDIA_TYPES.values()),
    tags=_TAGS,
)
async def export(request: web.Request, query: ExportQuery, body: None) -> web.StreamResponse:
    """Oldest first; an open side of the range exports everything on that side.

    The body is sent with chunked transfer encoding as the history is read, so the `200` status goes out
    before the last row is known to be readable. A complete export ends with chunked encoding's final
    (zero-length) chunk and nothing else: the rows are exactly the data. If reading the history fails
    part-way, the export is cut short and the connection is closed **without** that final chunk, so every
    HTTP client reports an incomplete body (curl: exit 18; requests: `ChunkedEncodingError`; aiohttp:
    `ClientPayloadError`). A JSON-lines export also gets, before the close, one last line in the API's
    error shape: `{"error": {"code": "export_failed", "message": "...", "details": {"rows_sent": N}}}`,
    `N` being the rows before it (no data row has a top-level `error` key). A CSV export gets no extra
    row: its body simply ends after the last whole page of rows. Treat an export as complete only when the
    body ended normally."""
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: EXPORT_MEDIA_TYPES[query.format],
            hdrs.CONTENT_DISPOSITION: "attachment; filename="
            f'"{_filename(query.dataset, query.format, query.start_time, query.end_time)}"',
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    if request.method == hdrs.METH_HEAD:  # the headers a GET gets; aiohttp would send what is written
        return response
    rows_sent = 0
    async with aclosing(
        export_chunks(
            history_store(request.app), query.dataset, query.format, query.start_time, query.end_time
        )
    ) as chunks:
        while True:
            try:
                chunk, rows = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception:
                # The status line is gone: say so in the body where the format allows, then cut it short.
                log.error(
                    "export of %s as %s failed after %d rows sent; the client gets a truncated body",
                    query.dataset, query.format, rows_sent, exc_info=True,
                )  # fmt: skip
                if query.format == "jsonl":
                    with suppress(ConnectionError):  # the client may be gone too; nothing to tell then
                        await response.write(_export_error_line(rows_sent))
                _abort(request)
                return response
            await response.write(chunk)
            rows_sent += rows
    await response.write_eof()
    return response


def _export_error_line(rows_sent: int) -> bytes:
    """The last line of a failed JSON-lines export, in the API's error shape."""
    body = error_body(
        EXPORT_FAILED,
        "reading the history failed; the export is incomplete (see the appliance log)",
        {"rows_sent": rows_sent},
    )
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def _abort(request: web.Request) -> None:
    """Close the connection without chunked encoding's final chunk. What was written is still flushed
    first (``Transport.close``), and the client then sees the body end early. aiohttp's own ``write_eof``
    after the handler returns finds the transport closing and treats it as a client disconnection."""
    transport = request.transport
    if transport is not None:
        transport.close()
