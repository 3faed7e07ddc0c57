"""``/api/v1/config``: the room's nodes (CSI routers), zones, alert thresholds and zone templates.

Each collection answers list (GET), get, create (POST, 201 with ``Location``), replace (PUT) and delete
(DELETE, 204). Bodies are the YAML's own models, so the API accepts exactly what the file accepts; what
only makes sense against the rest of the configuration (a polygon inside the room, a unique id, a room
that keeps a transmitter and a receiver) is checked by ``LiveConfig``, which saves a change and applies it
to the running scene before answering. Reading needs ``system:read``; nodes and alerts need
``config:write`` to change; zones and templates need ``zone:write`` (``admin:all`` grants both).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from appliance.api.errors import error_response
from appliance.api.resource_keys import live_config
from appliance.api.routing import ApiRouter, Handler, Scope, model_response
from appliance.config import NodeConfig, ZoneConfig
from appliance.live_config import (
    AlertSettings,
    ConfigRejectedError,
    LiveConfig,
    NotFoundError,
    Template,
)

router = ApiRouter()
PREFIX = "/api/v1/config"
_TAGS = ["config"]
_CREATED = 201
_DELETED = 204
_NOT_FOUND = {404: "no item with that id"}
_WRITE_ERRORS = {404: "no item with that id", 409: "the id exists already, or the change conflicts"}

ItemT = TypeVar("ItemT", bound=BaseModel)
# The items of a collection: each has an ``id`` that its path names.
IdItemT = TypeVar("IdItemT", NodeConfig, ZoneConfig, Template)


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
# Collections: nodes (CSI routers), zones and templates each answer list, get, create, replace, delete


@dataclass(frozen=True, kw_only=True)
class _Collection(Generic[IdItemT]):
    """One collection's routes under ``{PREFIX}/{path}``.

    ``kind`` names an item in error messages and in the operationIds (``list_zones``, ``get_zone``, ...),
    ``noun`` in the get and replace summaries; ``saved`` is what create and replace answer with once the
    change is made.
    """

    kind: str
    noun: str
    path: str
    item: type[IdItemT]
    listing: type[ItemList[IdItemT]]
    write_scope: Scope
    items: Callable[[LiveConfig], list[IdItemT]]
    lookup: Callable[[LiveConfig, str], IdItemT]
    put: Callable[[LiveConfig, IdItemT, bool], Awaitable[None]]
    remove: Callable[[LiveConfig, str], Awaitable[None]]
    saved: Callable[[LiveConfig, IdItemT], IdItemT] = lambda live, item: item
    list_summary: str
    create_summary: str
    delete_summary: str
    create_description: str
    rules: str  # what the body must satisfy beyond its schema, for create and replace alike
    create_conflict: str
    replace_responses: Mapping[int, str] = field(default_factory=lambda: _NOT_FOUND)
    delete_responses: Mapping[int, str] = field(default_factory=lambda: _NOT_FOUND)


def _named(handler: Handler, name: str, doc: str | None = None) -> Handler:
    """Name a generated handler: its name is the OpenAPI operationId, its doc the operation's description."""
    handler.__name__ = handler.__qualname__ = name
    handler.__doc__ = doc
    return handler


def _add_collection(c: _Collection[IdItemT]) -> None:
    collection = f"{PREFIX}/{c.path}"
    one = f"{collection}/{{id}}"

    async def list_items(request: web.Request, query: None, body: None) -> ItemList[IdItemT]:
        return c.listing(items=c.items(live_config(request.app)))

    async def get_item(request: web.Request, query: None, body: None) -> IdItemT | web.Response:
        item_id = request.match_info["id"]
        try:
            return c.lookup(live_config(request.app), item_id)
        except NotFoundError:
            return _not_found(c.kind, item_id)

    async def create_item(request: web.Request, query: None, body: IdItemT) -> web.Response:
        live = live_config(request.app)
        refused = await _attempt(c.kind, body.id, c.put(live, body, True))
        return refused or _created(c.saved(live, body), f"{collection}/{body.id}")

    async def replace_item(request: web.Request, query: None, body: IdItemT) -> IdItemT | web.Response:
        item_id = request.match_info["id"]
        live = live_config(request.app)
        refused = _id_mismatch(item_id, body.id) or await _attempt(c.kind, item_id, c.put(live, body, False))
        return refused or c.saved(live, body)

    async def delete_item(request: web.Request, query: None, body: None) -> web.Response | None:
        item_id = request.match_info["id"]
        return await _attempt(c.kind, item_id, c.remove(live_config(request.app), item_id))

    read = {"scope": Scope.SYSTEM_READ, "tags": _TAGS}
    write = {"scope": c.write_scope, "tags": _TAGS}
    # The path's {id} is the item's id, with the item's own pattern.
    item_path = {"path_params_from": c.item}
    router.get(collection, summary=c.list_summary, response=c.listing, **read)(
        _named(list_items, f"list_{c.kind}s")
    )
    router.get(one, summary=f"One {c.noun}", response=c.item, responses=_NOT_FOUND, **item_path, **read)(
        _named(get_item, f"get_{c.kind}")
    )
    router.post(
        collection,
        summary=c.create_summary,
        body=c.item,
        response=c.item,
        status=_CREATED,
        responses={409: c.create_conflict},
        **write,
    )(_named(create_item, f"create_{c.kind}", f"{c.create_description} {c.rules}"))
    router.put(
        one,
        summary=f"Replace a {c.noun}",
        body=c.item,
        response=c.item,
        responses=c.replace_responses,
        **item_path,
        **write,
    )(
        _named(
            replace_item, f"replace_{c.kind}", f"The body's `id` must equal the `id` in the path. {c.rules}"
        )
    )
    router.delete(
        one, summary=c.delete_summary, status=_DELETED, responses=c.delete_responses, **item_path, **write
    )(_named(delete_item, f"delete_{c.kind}"))


_add_collection(
    _Collection(
        kind="node",
        noun="CSI node",
        path="routers",
        item=NodeConfig,
        listing=NodeList,
        write_scope=Scope.CONFIG_WRITE,
        items=lambda live: live.nodes,
        lookup=LiveConfig.node,
        put=lambda live, node, create: live.put_node(node, create=create),
        remove=LiveConfig.delete_node,
        list_summary="The room's CSI nodes and routers",
        create_summary="Add a CSI node",
        delete_summary="Remove a CSI node",
        create_description="The model's room geometry follows at once.",
        rules="Refused with 400: a `position` outside the room the configuration file describes "
        "(`room.width_m` x `room.depth_m` x `room.height_m`, from its corner). Refused with 409: a room "
        "that would lose its last transmitter or receiver.",
        create_conflict="a node with that id exists, or the room would not be valid",
        replace_responses=_WRITE_ERRORS,
        delete_responses={
            404: "no node with that id",
            409: "the room would lose its last transmitter or receiver",
        },
    )
)
_add_collection(
    _Collection(
        kind="zone",
        noun="zone",
        path="zones",
        item=ZoneConfig,
        listing=ZoneList,
        write_scope=Scope.ZONE_WRITE,
        items=lambda live: live.zones,
        lookup=LiveConfig.zone,
        put=lambda live, zone, create: live.put_zone(zone, create=create),
        remove=LiveConfig.delete_zone,
        list_summary="The room's zones",
        create_summary="Add a zone",
        delete_summary="Remove a zone (a zone from the YAML file stays removed)",
        create_description="The running scene uses the zone from its next window.",
        rules="Refused with 400: a `polygon` point outside the room the configuration file describes "
        "(`room.width_m` x `room.depth_m`, from its corner).",
        create_conflict="a zone with that id exists",
    )
)


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
    """`restricted_zone_ids` becomes the full set of restricted zones. Refused with 400: an entry that
    names no zone (see `GET /api/v1/config/zones`)."""
    live = live_config(request.app)
    return await _attempt("alert settings", "", live.set_alerts(body)) or live.alerts


# --------------------------------------------------------------------------------------------------------
# Templates


_add_collection(
    _Collection(
        kind="template",
        noun="zone template",
        path="templates",
        item=Template,
        listing=TemplateList,
        write_scope=Scope.ZONE_WRITE,
        items=lambda live: live.templates,
        lookup=LiveConfig.template,
        put=lambda live, template, create: live.put_template(template, create=create),
        remove=LiveConfig.delete_template,
        # The stored template: a zone listed in the alerts' restricted zones comes back restricted.
        saved=lambda live, template: live.template(template.id),
        list_summary="Saved zone templates",
        create_summary="Save a zone template",
        delete_summary="Delete a zone template",
        create_description="A zone listed in `alerts.restricted_zone_ids` is saved as restricted.",
        rules="Refused with 400: a zone `polygon` point outside the room the configuration file describes "
        "(`room.width_m` x `room.depth_m`), zone ids repeated within the template, or an "
        "`alerts.restricted_zone_ids` entry that is not one of the template's zones.",
        create_conflict="a template with that id exists",
    )
)


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
