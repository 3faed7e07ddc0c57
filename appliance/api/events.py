"""``/api/v1/events``: the stored events (what the history recorded from ``event/#`` and ``alert/#``).

The live ones arrive on the WebSocket stream; this is the past, newest first, a page at a time, for the
web UI's event log and for scripts that want less than a whole export.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from appliance.api.pose import DEFAULT_PAGE_ROWS, MAX_SKIP, TimeRange
from appliance.api.resource_keys import history_store
from appliance.api.routing import ApiRouter, Scope
from appliance.contracts import EventType
from appliance.contracts.schemas import EventModel
from appliance.store.history import MAX_PAGE_ROWS

router = ApiRouter()


class EventsQuery(TimeRange):
    type: list[EventType] | None = Field(
        None, description="only these types; repeat the parameter for several (type=a&type=b)"
    )
    limit: int = Field(DEFAULT_PAGE_ROWS, ge=1, le=MAX_PAGE_ROWS)
    skip: int = Field(0, ge=0, le=MAX_SKIP)


class EventPage(BaseModel):
    items: list[EventModel] = Field(description="newest first")
    has_more: bool = Field(description="a further page exists (skip + limit)")


@router.get(
    "/api/v1/events",
    scope=Scope.ANALYTICS_READ,
    summary="Stored events in a time range, newest first (filter by type)",
    query=EventsQuery,
    response=EventPage,
    tags=["analytics"],
)
async def stored_events(request: web.Request, query: EventsQuery, body: None) -> EventPage:
    """Events as the history recorded them; for a whole range use ``/api/v1/analytics/export``."""
    types = None if query.type is None else [t.value for t in query.type]
    page = await history_store(request.app).events(
        query.start_time, query.end_time, types, query.limit, query.skip
    )
    return EventPage.model_validate({"items": page.items, "has_more": page.has_more})
