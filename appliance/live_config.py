"""The configuration that the API may change while the appliance runs: zones, nodes, alerts and templates.

Items are validated with the very models that validate the YAML file (``ZoneConfig``, ``NodeConfig``,
``RoomConfig``), plus the cross-checks that only make sense against the rest of the configuration: a zone's
polygon lies inside the room, ids are unique, the room keeps a transmitter and a receiver. A change is
saved (``SettingsStore``) and then applied at once through the pipeline: zones and alert thresholds to the
running scene, nodes to the model's room geometry; and the zones in force are announced on the hub
(``ZoneLayout``, topic ``config/zones``) so that sinks such as MQTT discovery follow them. At start the
effective configuration is the YAML's overlaid with the saved changes, so the API's changes survive
restarts while the YAML remains the seed. This is a service, not a route: the API and the MQTT commands
both change the configuration through it.

Which zones are restricted is a property of each zone (``ZoneConfig.restricted``, as in the YAML); the
alert settings show that set as ``restricted_zone_ids`` and replace it when written, so it is kept once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from appliance.config import AppConfig, NodeConfig, RoomConfig, ZoneConfig
from appliance.contracts import ZoneLayout, ZoneShape
from appliance.hub import Hub
from appliance.pipeline import Pipeline
from appliance.store.settings import Item, SettingsStore, overlay

log = logging.getLogger(__name__)

ZONE_KIND = "zone"
NODE_KIND = "node"
ALERTS_KIND = "alerts"
TEMPLATE_KIND = "template"
# The alert settings are one item; this is its id in the settings table.
ALERTS_ID = "default"
# Far above any room; bounds the value so that a typo is caught rather than silently disabling the alert.
MAX_OCCUPANCY_LIMIT = 1000

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

ZoneId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")]


class _Setting(BaseModel):
    """Settings changed through the API: unknown fields are errors, as in the YAML."""

    model_config = ConfigDict(extra="forbid")


class AlertSettings(_Setting):
    """The thresholds the scene acts on: an occupancy limit and the zones whose entry is a breach."""

    max_occupancy: int | None = Field(
        None,
        ge=0,
        le=MAX_OCCUPANCY_LIMIT,
        description="Raise alert.high_occupancy when more people than this are in the room; null: off.",
    )
    restricted_zone_ids: list[ZoneId] = Field(
        default_factory=list,
        description="Zones whose entry raises alert.restricted_zone_breach (each zone's restricted flag).",
    )


class Template(_Setting):
    """A reusable set of zones and alert settings; applying it replaces the current ones."""

    id: str = Field(pattern=r"^[a-z0-9_-]{1,32}$", description="Stable id of the template.")
    name: str = Field(min_length=1, max_length=100, description="Shown in the UI.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="The zones it sets.")
    alerts: AlertSettings = Field(default_factory=AlertSettings, description="The alert settings it sets.")

    def normalized(self) -> Template:
        """A zone is restricted when its flag is set or the alerts list it; the copy says so in both."""
        restricted = {z.id for z in self.zones if z.restricted} | set(self.alerts.restricted_zone_ids)
        zones = [z.model_copy(update={"restricted": z.id in restricted}) for z in self.zones]
        alerts = AlertSettings(
            max_occupancy=self.alerts.max_occupancy,
            restricted_zone_ids=[z.id for z in zones if z.restricted],
        )
        return self.model_copy(update={"zones": zones, "alerts": alerts})


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad field: ``field`` is dotted like the router's validation errors (``polygon.2``)."""

    field: str
    message: str


class ConfigRejectedError(Exception):
    """A change that is well-formed but does not fit the rest of the configuration (status 400 or 409)."""

    def __init__(
        self, problems: Sequence[Problem], status: int = 400, code: str = "validation_error"
    ) -> None:
        self.problems = tuple(problems)
        self.status = status
        self.code = code
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in self.problems))

    def details(self, where: str = "body") -> list[dict[str, str]]:
        """The router's validation-error details, so every 400 reads the same."""
        return [
            {"in": where, "field": p.field, "message": p.message, "type": "value_error"}
            for p in self.problems
        ]


class NotFoundError(Exception):
    """No item of that kind has that id."""


def _zone_problems(zone: ZoneConfig, room: RoomConfig, prefix: str = "") -> list[Problem]:
    return [
        Problem(
            f"{prefix}polygon.{index}",
            f"[{x}, {y}] is outside the room (0..{room.width_m} x 0..{room.depth_m} m)",
        )
        for index, (x, y) in enumerate(zone.polygon)
        if not (0 <= x <= room.width_m and 0 <= y <= room.depth_m)
    ]


def _node_problems(node: NodeConfig, room: RoomConfig) -> list[Problem]:
    x, y, z = node.position
    if 0 <= x <= room.width_m and 0 <= y <= room.depth_m and 0 <= z <= room.height_m:
        return []
    extent = f"0..{room.width_m} x 0..{room.depth_m} x 0..{room.height_m} m"
    return [Problem("position", f"{list(node.position)} is outside the room ({extent})")]


def _room_with(room: RoomConfig, nodes: Sequence[NodeConfig]) -> RoomConfig:
    """The room with these nodes, through the YAML's own validation (roles, ids, positions)."""
    try:
        return RoomConfig.model_validate({**room.model_dump(exclude={"nodes"}), "nodes": list(nodes)})
    except ValidationError as exc:
        messages = [str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()]
        raise ConfigRejectedError(
            [Problem("nodes", m) for m in messages], status=409, code="conflict"
        ) from None


def _dump(model: BaseModel) -> Item:
    return model.model_dump(mode="json")


class LiveConfig:
    """The effective zones, nodes, alerts and templates, saved on change and applied to the running scene.

    Every change holds one lock from validation to application, so two concurrent requests cannot both
    pass a uniqueness check against the same state.
    """

    def __init__(
        self,
        config: AppConfig,
        store: SettingsStore,
        pipeline: Pipeline,
        hub: Hub,
        zones: Sequence[ZoneConfig],
        nodes: Sequence[NodeConfig],
        max_occupancy: int | None,
        templates: Sequence[Template],
    ) -> None:
        self._config = config
        self._store = store
        self._pipeline = pipeline
        self._hub = hub
        self._zones = {z.id: z for z in zones}
        self._room = _room_with(config.room, nodes)
        self._max_occupancy = max_occupancy
        self._templates = {t.id: t for t in templates}
        self._lock = asyncio.Lock()

    @classmethod
    async def load(cls, config: AppConfig, store: SettingsStore, pipeline: Pipeline, hub: Hub) -> LiveConfig:
        """The YAML overlaid with the saved changes, applied to the pipeline. A saved item that no longer
        fits (the YAML's room shrank, a model gained a rule) is skipped with a warning, never fatal."""
        nodes = _valid(
            NodeConfig,
            overlay(((n.id, _dump(n)) for n in config.room.nodes), await store.load(NODE_KIND)),
        )
        try:
            room = _room_with(config.room, nodes)
        except ConfigRejectedError as exc:
            log.warning(
                "saved nodes do not fit the room; using the YAML's", extra={"fields": {"why": str(exc)}}
            )
            room = config.room
        zones = [
            zone
            for zone in _valid(
                ZoneConfig, overlay(((z.id, _dump(z)) for z in config.zones), await store.load(ZONE_KIND))
            )
            if not _skipped_outside(zone, room)
        ]
        alerts_seed = [(ALERTS_ID, {"max_occupancy": config.scene.max_occupancy})]
        alerts = overlay(alerts_seed, await store.load(ALERTS_KIND)).get(ALERTS_ID, {})
        templates = _valid(Template, overlay((), await store.load(TEMPLATE_KIND)))
        live = cls(config, store, pipeline, hub, zones, room.nodes, alerts.get("max_occupancy"), templates)
        live._apply()
        return live

    # -- reading ------------------------------------------------------------------------------------------

    @property
    def room(self) -> RoomConfig:
        return self._room

    @property
    def zones(self) -> list[ZoneConfig]:
        return list(self._zones.values())

    @property
    def nodes(self) -> list[NodeConfig]:
        return list(self._room.nodes)

    @property
    def alerts(self) -> AlertSettings:
        return AlertSettings(
            max_occupancy=self._max_occupancy,
            restricted_zone_ids=[z.id for z in self._zones.values() if z.restricted],
        )

    @property
    def templates(self) -> list[Template]:
        return list(self._templates.values())

    def zone(self, zone_id: str) -> ZoneConfig:
        return _get(self._zones, zone_id)

    def node(self, node_id: str) -> NodeConfig:
        return _get({n.id: n for n in self._room.nodes}, node_id)

    def template(self, template_id: str) -> Template:
        return _get(self._templates, template_id)

    # -- changing -----------------------------------------------------------------------------------------

    async def put_zone(self, zone: ZoneConfig, *, create: bool) -> None:
        """Create (``create``: the id must be new) or replace (the id must exist) a zone."""
        async with self._lock:
            _check_presence(self._zones, zone.id, create)
            _reject(_zone_problems(zone, self._room))
            await self._store.put(ZONE_KIND, zone.id, _dump(zone))
            self._zones[zone.id] = zone
            self._apply()

    async def delete_zone(self, zone_id: str) -> None:
        async with self._lock:
            _get(self._zones, zone_id)
            await self._store.delete(ZONE_KIND, zone_id)
            del self._zones[zone_id]
            self._apply()

    async def put_node(self, node: NodeConfig, *, create: bool) -> None:
        async with self._lock:
            nodes = {n.id: n for n in self._room.nodes}
            _check_presence(nodes, node.id, create)
            _reject(_node_problems(node, self._room))
            nodes[node.id] = node
            room = _room_with(self._room, list(nodes.values()))
            await self._store.put(NODE_KIND, node.id, _dump(node))
            self._room = room
            self._apply()

    async def delete_node(self, node_id: str) -> None:
        async with self._lock:
            nodes = {n.id: n for n in self._room.nodes}
            _get(nodes, node_id)
            del nodes[node_id]
            room = _room_with(self._room, list(nodes.values()))
            await self._store.delete(NODE_KIND, node_id)
            self._room = room
            self._apply()

    async def set_alerts(self, alerts: AlertSettings) -> None:
        async with self._lock:
            await self._set_alerts(alerts)
            self._apply()

    async def put_template(self, template: Template, *, create: bool) -> None:
        async with self._lock:
            _check_presence(self._templates, template.id, create)
            problems = [
                problem
                for index, zone in enumerate(template.zones)
                for problem in _zone_problems(zone, self._room, f"zones.{index}.")
            ]
            problems += _duplicates([z.id for z in template.zones], "zones")
            problems += _unknown_ids(
                template.alerts.restricted_zone_ids, {z.id for z in template.zones}, "alerts."
            )
            _reject(problems)
            template = template.normalized()
            await self._store.put(TEMPLATE_KIND, template.id, _dump(template))
            self._templates[template.id] = template

    async def delete_template(self, template_id: str) -> None:
        async with self._lock:
            _get(self._templates, template_id)
            await self._store.delete(TEMPLATE_KIND, template_id)
            del self._templates[template_id]

    async def apply_template(self, template_id: str) -> None:
        """Make the template's zones the only zones, and its alert settings the alert settings."""
        async with self._lock:
            template = _get(self._templates, template_id)
            problems = [
                problem
                for index, zone in enumerate(template.zones)
                for problem in _zone_problems(zone, self._room, f"zones.{index}.")
            ]
            # The template was valid when saved; the room's nodes may have changed since, its size not.
            _reject(problems, status=409, code="conflict")
            new = {z.id: z for z in template.zones}
            changes: dict[str, Item | None] = {zone_id: None for zone_id in self._zones if zone_id not in new}
            changes.update({zone_id: _dump(zone) for zone_id, zone in new.items()})
            # One transaction: a failure leaves both the old zones and the old alerts, never a mix.
            await self._store.save_kinds(
                {
                    ZONE_KIND: changes,
                    ALERTS_KIND: {ALERTS_ID: {"max_occupancy": template.alerts.max_occupancy}},
                }
            )
            self._zones = new
            self._max_occupancy = template.alerts.max_occupancy
            self._apply()

    async def _set_alerts(self, alerts: AlertSettings) -> None:
        _reject(_unknown_ids(alerts.restricted_zone_ids, set(self._zones)))
        restricted = set(alerts.restricted_zone_ids)
        flipped = {
            zone_id: zone.model_copy(update={"restricted": zone_id in restricted})
            for zone_id, zone in self._zones.items()
            if zone.restricted != (zone_id in restricted)
        }
        await self._store.save_kinds(
            {
                ZONE_KIND: {zone_id: _dump(zone) for zone_id, zone in flipped.items()},
                ALERTS_KIND: {ALERTS_ID: {"max_occupancy": alerts.max_occupancy}},
            }
        )
        self._zones.update(flipped)
        self._max_occupancy = alerts.max_occupancy

    def _apply(self) -> None:
        """Hand the current zones, alerts and room to the pipeline, and announce the zones."""
        shapes = tuple(ZoneShape(z.id, z.name, tuple(z.polygon), z.restricted) for z in self._zones.values())
        self._pipeline.set_zones(shapes, self._max_occupancy)
        self._pipeline.set_room(self._room.to_spec())
        self._hub.publish(ZoneLayout(time.time(), shapes))


def _get(items: dict[str, T], item_id: str) -> T:
    try:
        return items[item_id]
    except KeyError:
        raise NotFoundError(item_id) from None


def _check_presence(items: dict[str, Any], item_id: str, create: bool) -> None:
    if create and item_id in items:
        raise ConfigRejectedError([Problem("id", f"{item_id!r} already exists")], status=409, code="conflict")
    if not create and item_id not in items:
        raise NotFoundError(item_id)


def _reject(problems: Sequence[Problem], status: int = 400, code: str = "validation_error") -> None:
    if problems:
        raise ConfigRejectedError(problems, status, code)


def _duplicates(ids: Sequence[str], field: str) -> list[Problem]:
    return [
        Problem(f"{field}.{index}.id", f"{item_id!r} is repeated")
        for index, item_id in enumerate(ids)
        if item_id in ids[:index]
    ]


def _unknown_ids(ids: Iterable[str], known: set[str], prefix: str = "") -> list[Problem]:
    return [
        Problem(f"{prefix}restricted_zone_ids.{index}", f"no zone {zone_id!r}")
        for index, zone_id in enumerate(ids)
        if zone_id not in known
    ]


def _valid(model: type[M], items: dict[str, Item]) -> list[M]:
    valid: list[M] = []
    for item_id, item in items.items():
        try:
            valid.append(model.model_validate(item))
        except ValidationError as exc:
            log.warning(
                "skipping a saved setting that is no longer valid",
                extra={"fields": {"kind": model.__name__, "id": item_id, "why": str(exc)}},
            )
    return valid


def _skipped_outside(zone: ZoneConfig, room: RoomConfig) -> bool:
    problems = _zone_problems(zone, room)
    if problems:
        log.warning(
            "skipping a zone outside the room",
            extra={"fields": {"zone": zone.id, "why": "; ".join(p.message for p in problems)}},
        )
    return bool(problems)
