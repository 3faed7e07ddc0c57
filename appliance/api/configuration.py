"""``/api/v1/config``: the room's nodes (CSI routers), zones, alert thresholds and zone templates.

Each collection answers list (GET), get, create (POST, 201 with ``Location``), replace (PUT) and delete
(DELETE, 204). Bodies are the YAML's own models, so the API accepts exactly what the file accepts; what
only makes sense against the rest of the configuration (a polygon inside the room, a unique id, a room
that keeps a transmitter and a receiver) is checked by ``LiveConfig``, which saves a change and applies it
to the running scene before answering. Reading needs ``system:read``; nodes and alerts need
``config:write`` to change; zones and templates need ``zone:write`` (``admin:all`` grants both).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from appliance.api.errors import error_response
from appliance.api.live_config import (
    AlertSettings,
    ConfigRejectedError,
    NotFoundError,
    Template,
)
from appliance.api.resource_keys import live_config
from appliance.api.routing import ApiRouter, Scope, model_response
from appliance.config import NodeConfig, ZoneConfig

router = ApiRouter()
PREFIX = "/api/v1/config"
_TAGS = ["config"]
_CREATED = 201
_DELETED = 204
_NOT_FOUND = {404: "no item with that id"}
_WRITE_ERRORS = {404: "no item with that id", 409: "the id exists already, or the change conflicts"}

ItemT = TypeVar("ItemT", bound=BaseModel)


class ItemList(BaseModel, Generic[ItemT]):
    items: list[ItemT] = Field(description="In the configuration's order: the YAML's first, then the API's.")


class NodeList(ItemList[NodeConfig]):
    """The room's CSI nodes and routers."""


class ZoneList(ItemList[ZoneConfig]):
    """The room's zones."""


class TemplateList(ItemList[Template]):
    """The saved zone templates."""


def _not_found(kind: str, item_id: str) -> web.Response:
    return error_response(404, "not_found", f"no {kind} {item_id!r}", {"id": item_id})


async def _attempt(kind: str, item_id: str, change: Awaitable[None]) -> web.Response | None:
    """Run a change; the error response if it was refused, None if it was made."""
    try:
        await change
    except NotFoundError:
        return _not_found(kind, item_id)
    except ConfigRejectedError as exc:
        return error_response(exc.status, exc.code, f"the {kind} was not saved: {exc}", exc.details())
    return None


def _id_mismatch(path_id: str, body_id: str) -> web.Response | None:
    if path_id == body_id:
        return None
    return error_response(
        400,
        "validation_error",
        "the request body is not valid",
        [{"in": "body", "field": "id", "message": "must equal the id in the path", "type": "value_error"}],
    )


def _created(model: BaseModel, location: str) -> web.Response:
    return model_response(model, status=_CREATED, headers={"Location": location})


# --------------------------------------------------------------------------------------------------------
# Nodes (CSI routers)


@router.get(
    f"{PREFIX}/routers",
    scope=Scope.SYSTEM_READ,
    summary="The room's CSI nodes and routers",
    response=NodeList,
    tags=_TAGS,
)
async def list_nodes(request: web.Request, query: None, body: None) -> NodeList:
    return NodeList(items=live_config(request.app).nodes)


@router.get(
    f"{PREFIX}/routers/{{id}}",
    scope=Scope.SYSTEM_READ,
    summary="One CSI node",
    response=NodeConfig,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def get_node(request: web.Request, query: None, body: None) -> NodeConfig | web.Response:
    node_id = request.match_info["id"]
    for node in live_config(request.app).nodes:
        if node.id == node_id:
            return node
    return _not_found("node", node_id)


@router.post(
    f"{PREFIX}/routers",
    scope=Scope.CONFIG_WRITE,
    summary="Add a CSI node",
    body=NodeConfig,
    response=NodeConfig,
    status=_CREATED,
    tags=_TAGS,
    responses={409: "a node with that id exists, or the room would not be valid"},
)
async def create_node(request: web.Request, query: None, body: NodeConfig) -> web.Response:
    """The node must lie inside the room; the model's room geometry follows at once."""
    refused = await _attempt("node", body.id, live_config(request.app).put_node(body, create=True))
    return refused or _created(body, f"{PREFIX}/routers/{body.id}")


@router.put(
    f"{PREFIX}/routers/{{id}}",
    scope=Scope.CONFIG_WRITE,
    summary="Replace a CSI node",
    body=NodeConfig,
    response=NodeConfig,
    tags=_TAGS,
    responses=_WRITE_ERRORS,
)
async def replace_node(request: web.Request, query: None, body: NodeConfig) -> NodeConfig | web.Response:
    node_id = request.match_info["id"]
    refused = _id_mismatch(node_id, body.id) or await _attempt(
        "node", node_id, live_config(request.app).put_node(body, create=False)
    )
    return refused or body


@router.delete(
    f"{PREFIX}/routers/{{id}}",
    scope=Scope.CONFIG_WRITE,
    summary="Remove a CSI node",
    status=_DELETED,
    tags=_TAGS,
    responses={404: "no node with that id", 409: "the room would lose its last transmitter or receiver"},
)
async def delete_node(request: web.Request, query: None, body: None) -> web.Response | None:
    node_id = request.match_info["id"]
    return await _attempt("node", node_id, live_config(request.app).delete_node(node_id))


# --------------------------------------------------------------------------------------------------------
# Zones


@router.get(
    f"{PREFIX}/zones", scope=Scope.SYSTEM_READ, summary="The room's zones", response=ZoneList, tags=_TAGS
)
async def list_zones(request: web.Request, query: None, body: None) -> ZoneList:
    return ZoneList(items=live_config(request.app).zones)


@router.get(
    f"{PREFIX}/zones/{{id}}",
    scope=Scope.SYSTEM_READ,
    summary="One zone",
    response=ZoneConfig,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def get_zone(request: web.Request, query: None, body: None) -> ZoneConfig | web.Response:
    zone_id = request.match_info["id"]
    try:
        return live_config(request.app).zone(zone_id)
    except NotFoundError:
        return _not_found("zone", zone_id)


@router.post(
    f"{PREFIX}/zones",
    scope=Scope.ZONE_WRITE,
    summary="Add a zone",
    body=ZoneConfig,
    response=ZoneConfig,
    status=_CREATED,
    tags=_TAGS,
    responses={409: "a zone with that id exists"},
)
async def create_zone(request: web.Request, query: None, body: ZoneConfig) -> web.Response:
    """The polygon must lie inside the room; the running scene uses the zone from its next window."""
    refused = await _attempt("zone", body.id, live_config(request.app).put_zone(body, create=True))
    return refused or _created(body, f"{PREFIX}/zones/{body.id}")


@router.put(
    f"{PREFIX}/zones/{{id}}",
    scope=Scope.ZONE_WRITE,
    summary="Replace a zone",
    body=ZoneConfig,
    response=ZoneConfig,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def replace_zone(request: web.Request, query: None, body: ZoneConfig) -> ZoneConfig | web.Response:
    zone_id = request.match_info["id"]
    refused = _id_mismatch(zone_id, body.id) or await _attempt(
        "zone", zone_id, live_config(request.app).put_zone(body, create=False)
    )
    return refused or body


@router.delete(
    f"{PREFIX}/zones/{{id}}",
    scope=Scope.ZONE_WRITE,
    summary="Remove a zone (a zone from the YAML file stays removed)",
    status=_DELETED,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def delete_zone(request: web.Request, query: None, body: None) -> web.Response | None:
    zone_id = request.match_info["id"]
    return await _attempt("zone", zone_id, live_config(request.app).delete_zone(zone_id))


# --------------------------------------------------------------------------------------------------------
# Alerts


@router.get(
    f"{PREFIX}/alerts",
    scope=Scope.SYSTEM_READ,
    summary="Alert thresholds: occupancy limit and restricted zones",
    response=AlertSettings,
    tags=_TAGS,
)
async def get_alerts(request: web.Request, query: None, body: None) -> AlertSettings:
    return live_config(request.app).alerts


@router.put(
    f"{PREFIX}/alerts",
    scope=Scope.CONFIG_WRITE,
    summary="Replace the alert thresholds",
    body=AlertSettings,
    response=AlertSettings,
    tags=_TAGS,
)
async def replace_alerts(
    request: web.Request, query: None, body: AlertSettings
) -> AlertSettings | web.Response:
    """``restricted_zone_ids`` becomes the full set of restricted zones; each must name a zone."""
    live = live_config(request.app)
    return await _attempt("alert settings", "", live.set_alerts(body)) or live.alerts


# --------------------------------------------------------------------------------------------------------
# Templates


@router.get(
    f"{PREFIX}/templates",
    scope=Scope.SYSTEM_READ,
    summary="Saved zone templates",
    response=TemplateList,
    tags=_TAGS,
)
async def list_templates(request: web.Request, query: None, body: None) -> TemplateList:
    return TemplateList(items=live_config(request.app).templates)


@router.get(
    f"{PREFIX}/templates/{{id}}",
    scope=Scope.SYSTEM_READ,
    summary="One zone template",
    response=Template,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def get_template(request: web.Request, query: None, body: None) -> Template | web.Response:
    template_id = request.match_info["id"]
    try:
        return live_config(request.app).template(template_id)
    except NotFoundError:
        return _not_found("template", template_id)


@router.post(
    f"{PREFIX}/templates",
    scope=Scope.ZONE_WRITE,
    summary="Save a zone template",
    body=Template,
    response=Template,
    status=_CREATED,
    tags=_TAGS,
    responses={409: "a template with that id exists"},
)
async def create_template(request: web.Request, query: None, body: Template) -> web.Response:
    """Its zones are checked against the room now; a zone listed in ``alerts.restricted_zone_ids`` is
    saved as restricted."""
    live = live_config(request.app)
    refused = await _attempt("template", body.id, live.put_template(body, create=True))
    return refused or _created(live.template(body.id), f"{PREFIX}/templates/{body.id}")


@router.put(
    f"{PREFIX}/templates/{{id}}",
    scope=Scope.ZONE_WRITE,
    summary="Replace a zone template",
    body=Template,
    response=Template,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def replace_template(request: web.Request, query: None, body: Template) -> Template | web.Response:
    template_id = request.match_info["id"]
    live = live_config(request.app)
    refused = _id_mismatch(template_id, body.id) or await _attempt(
        "template", template_id, live.put_template(body, create=False)
    )
    return refused or live.template(template_id)


@router.delete(
    f"{PREFIX}/templates/{{id}}",
    scope=Scope.ZONE_WRITE,
    summary="Delete a zone template",
    status=_DELETED,
    tags=_TAGS,
    responses=_NOT_FOUND,
)
async def delete_template(request: web.Request, query: None, body: None) -> web.Response | None:
    template_id = request.match_info["id"]
    return await _attempt("template", template_id, live_config(request.app).delete_template(template_id))


@router.post(
    f"{PREFIX}/templates/{{id}}/apply",
    scope=Scope.ZONE_WRITE,
    summary="Apply a template: its zones replace all zones, its alert settings the current ones",
    response=ZoneList,
    tags=_TAGS,
    responses={404: "no template with that id", 409: "a zone of the template no longer fits the room"},
)
async def apply_template(request: web.Request, query: None, body: None) -> ZoneList | web.Response:
    """Answers with the zones now in force; the running scene uses them from its next window."""
    template_id = request.match_info["id"]
    live = live_config(request.app)
    refused = await _attempt("template", template_id, live.apply_template(template_id))
    return refused or ZoneList(items=live.zones)
