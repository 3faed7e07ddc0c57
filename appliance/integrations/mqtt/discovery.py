"""Home Assistant device discovery: one retained ``<discovery_prefix>/device/<device_id>/config``.

The document has the device (``dev``), the origin (``o``), the availability every entity shares, and the
components (``cmps``), each with its platform (``p``), a ``unique_id`` of ``<device_id>_<key>`` and a
``default_entity_id`` of ``<platform>.<device_id>_<key>``, so entity ids are the same on every start of
either side. Every state topic carries the hub's own JSON, read by a value template; nothing is published
twice in another shape.

Entities: occupancy and motion of the room, people counted, the main person's activity, falls (an event
entity and a ``safety`` sensor that stays on for ``fall_hold_s``), per zone its occupancy, people and
entered/left events, per link its motion and diagnostics (packets/s, RSSI, lost packets, link up), the
estimator in use, whether the source is simulated, the controls (detection switch, sensitivity,
detector profile, recalibrate and restart buttons), and, while the video's snapshots are on, a ``camera``
showing the skeleton overlay (base64 JPEGs on ``camera/overlay``, ``image_encoding: b64``).

A component that existed and no longer does (a deleted zone) is sent with only its ``p``, which Home
Assistant reads as "remove it". Components announced earlier are known from this process's own documents
and from the document the broker still retained from the previous run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.contracts import ESTIMATORS, ZoneShape
from appliance.contracts.coco import ACTIVITIES
from appliance.contracts.control import DETECTOR_PROFILES, SENSITIVITY_RANGE
from appliance.integrations.mqtt.topics import AVAILABLE, UNAVAILABLE, Topics

Component = dict[str, Any]

ON, OFF = "ON", "OFF"
PRESS = "PRESS"
# Commands a component sends, under <base>/command/.
DETECTION_COMMAND = "system/detection"
SENSITIVITY_COMMAND = "system/sensitivity"
PROFILE_COMMAND = "system/profile"
CALIBRATE_COMMAND = "system/calibrate"
RESTART_COMMAND = "system/restart"
FALL_EVENT = "person.fall_detected"
ZONE_EVENTS = {"person.entered_zone": "entered", "person.left_zone": "left"}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The device as Home Assistant lists it."""

    name: str
    model: str
    manufacturer: str
    sw_version: str
    configuration_url: str | None  # the local web UI


def slugs(ids: Iterable[str]) -> dict[str, str]:
    """A component key part ([a-z0-9_]) for each id. Ids that would share one (``a-b`` and ``a_b``) are
    told apart by a short hash, given in sorted order so the same ids always get the same keys."""
    taken: set[str] = set()
    result: dict[str, str] = {}
    for item in sorted(set(ids)):
        slug = re.sub(r"[^a-z0-9]+", "_", item.lower()).strip("_") or "id"
        if slug in taken:
            slug = f"{slug}_{hashlib.sha1(item.encode()).hexdigest()[:6]}"
        taken.add(slug)
        result[item] = slug
    return result


def _quoted(text: str) -> str:
    """A Jinja string literal of ``text`` (JSON's double-quoted form is one)."""
    return json.dumps(text)


def _link_template(link: str, expression: str) -> str:
    """A template reading ``expression`` of one link's entry (``l``) in a payload's ``links`` list, or
    ``None`` (Home Assistant's "unknown") while the link is absent."""
    return (
        f"{{% set l = value_json.links | selectattr('link', 'eq', {_quoted(link)}) | first %}}"
        f"{{{{ ({expression}) if l is defined else 'None' }}}}"
    )


class Discovery:
    """Builds the discovery document, and remembers which components were announced so that the next
    document removes the ones that are gone."""

    def __init__(self, topics: Topics, device: DeviceInfo, fall_hold_s: int, *, camera: bool) -> None:
        self.topics = topics
        self.device = device
        self.fall_hold_s = fall_hold_s
        self.camera = camera
        self._entity_prefix = re.sub(r"[^a-z0-9]+", "_", topics.device_id.lower()).strip("_")
        self._announced: dict[str, str] = {}  # component key -> platform

    def remember(self, retained_document: str | bytes) -> None:
        """Take note of the components of a document the broker retained (from an earlier run)."""
        try:
            document = json.loads(retained_document)
            components = document["cmps"]
        except (ValueError, KeyError, TypeError):
            return
        if not isinstance(components, dict):
            return
        for key, component in components.items():
            # A component with only its platform was already a removal; it need not be repeated.
            if isinstance(component, dict) and isinstance(component.get("p"), str) and len(component) > 1:
                self._announced.setdefault(key, component["p"])

    def document(self, zones: Sequence[ZoneShape], links: Sequence[str]) -> dict[str, Any]:
        components = self.components(zones, links)
        removed = {key: {"p": platform} for key, platform in self._announced.items() if key not in components}
        self._announced.update({key: component["p"] for key, component in components.items()})
        device = self.device
        dev: dict[str, Any] = {
            "ids": [self.topics.device_id],
            "name": device.name,
            "mf": device.manufacturer,
            "mdl": device.model,
            "sw": device.sw_version,
        }
        origin: dict[str, Any] = {"name": device.manufacturer, "sw": device.sw_version}
        if device.configuration_url is not None:
            dev["cu"] = device.configuration_url
            origin["url"] = device.configuration_url
        return {
            "dev": dev,
            "o": origin,
            "availability": [
                {
                    "topic": self.topics.availability,
                    "payload_available": AVAILABLE,
                    "payload_not_available": UNAVAILABLE,
                }
            ],
            "cmps": {**components, **removed},
        }

    def components(self, zones: Sequence[ZoneShape], links: Sequence[str]) -> dict[str, Component]:
        items = [*self._room(), *self._controls(), *self._system()]
        if self.camera:
            items.append(self._camera())
        for zone in zones:
            items.extend(self._zone(zone))
        for link, slug in slugs(links).items():
            items.extend(self._link(link, slug))
        return dict(items)

    # -- components ------------------------------------------------------------------------------------

    def _component(self, platform: str, key: str, name: str, **options: Any) -> tuple[str, Component]:
        object_id = f"{self._entity_prefix}_{key}"
        return key, {
            "p": platform,
            "unique_id": f"{self.topics.device_id}_{key}",
            "default_entity_id": f"{platform}.{object_id}",
            "name": name,
            **options,
        }

    def _room(self) -> list[tuple[str, Component]]:
        pose = self.topics.pose
        falls = self.topics.event(FALL_EVENT)
        main_person = "(value_json.persons | sort(attribute='confidence', reverse=true) | first)"
        return [
            self._component(
                "binary_sensor", "occupancy", "Occupancy",
                device_class="occupancy",
                state_topic=pose,
                value_template=f"{{{{ '{ON}' if value_json.presence else '{OFF}' }}}}",
                json_attributes_topic=pose,
                json_attributes_template="{{ {'source': value_json.source, "
                "'simulated': value_json.simulated, 'estimator': value_json.estimator, "
                "'confidence': value_json.confidence} | tojson }}",
            ),
            self._component(
                "binary_sensor", "motion", "Motion",
                device_class="motion",
                state_topic=pose,
                value_template=f"{{{{ '{ON}' if value_json.motion else '{OFF}' }}}}",
            ),
            self._component(
                "sensor", "people", "People",
                state_class="measurement",
                icon="mdi:account-group",
                state_topic=pose,
                # null while the estimator cannot count (the motion detector): Home Assistant's unknown.
                value_template="{{ value_json.person_count }}",
            ),
            self._component(
                "sensor", "activity", "Activity",
                device_class="enum",
                options=list(ACTIVITIES),
                state_topic=pose,
                # "empty" when nobody is there; unknown when the estimator cannot tell.
                value_template="{% if value_json.person_count is none %}None"
                "{% elif not value_json.persons %}empty"
                f"{{% else %}}{{{{ {main_person}.activity or 'None' }}}}{{% endif %}}",
            ),
            self._component(
                "binary_sensor", "fall", "Fall",
                device_class="safety",
                state_topic=falls,
                value_template=f"{{{{ '{ON}' if value_json.type == '{FALL_EVENT}' else '{OFF}' }}}}",
                off_delay=self.fall_hold_s,
                json_attributes_topic=falls,
                json_attributes_template="{{ value_json.data | tojson }}",
            ),
            self._component(
                "event", "fall_detected", "Fall detected",
                event_types=["fall_detected"],
                state_topic=falls,
                value_template="{{ {'event_type': 'fall_detected', 'person_id': value_json.data.person_id, "
                "'zone_id': value_json.data.zone_id, 'confidence': value_json.data.confidence} | tojson }}",
            ),
        ]  # fmt: skip

    def _camera(self) -> tuple[str, Component]:
        # Home Assistant's MQTT camera reads the whole payload as the image; b64: it is base64 text.
        return self._component(
            "camera", "overlay", "Skeleton overlay",
            topic=self.topics.camera,
            image_encoding="b64",
        )  # fmt: skip

    def _zone(self, zone: ZoneShape) -> list[tuple[str, Component]]:
        key = f"zone_{zone.id}"
        topic = self.topics.zone_occupancy(zone.id)
        entered, left = ZONE_EVENTS
        return [
            self._component(
                "binary_sensor", f"{key}_occupancy", f"{zone.name} occupancy",
                device_class="occupancy",
                state_topic=topic,
                value_template="{{ 'None' if value_json.occupancy is none else "
                f"('{ON}' if value_json.occupancy > 0 else '{OFF}') }}}}",
            ),
            self._component(
                "sensor", f"{key}_people", f"{zone.name} people",
                state_class="measurement",
                icon="mdi:account-group",
                state_topic=topic,
                value_template="{{ value_json.occupancy }}",
            ),
            self._component(
                "event", f"{key}_movement", f"{zone.name} movement",
                event_types=list(ZONE_EVENTS.values()),
                # Every event topic: the template keeps this zone's entries and exits, and renders
                # nothing (ignored by Home Assistant) for anything else.
                state_topic=self.topics.all_events,
                value_template=f"{{% if value_json.type in ('{entered}', '{left}') and "
                f"value_json.data.zone_id == {_quoted(zone.id)} %}}"
                f"{{{{ {{'event_type': '{ZONE_EVENTS[entered]}' if value_json.type == '{entered}' "
                f"else '{ZONE_EVENTS[left]}', 'person_id': value_json.data.person_id}} | tojson }}}}"
                "{% endif %}",
            ),
        ]  # fmt: skip

    def _link(self, link: str, slug: str) -> list[tuple[str, Component]]:
        key = f"link_{slug}"
        status = self.topics.status
        diagnostic = {"entity_category": "diagnostic", "state_topic": status}
        return [
            self._component(
                "binary_sensor", f"{key}_motion", f"{link} motion",
                device_class="motion",
                state_topic=self.topics.pose,
                value_template=_link_template(link, f"'{ON}' if l.motion else '{OFF}'"),
            ),
            self._component(
                "sensor", f"{key}_packets", f"{link} packets",
                state_class="measurement",
                unit_of_measurement="packets/s",
                value_template=_link_template(link, "l.packets_per_s"),
                **diagnostic,
            ),
            self._component(
                "sensor", f"{key}_rssi", f"{link} RSSI",
                device_class="signal_strength",
                state_class="measurement",
                unit_of_measurement="dBm",
                value_template=_link_template(link, "l.rssi_dbm"),
                **diagnostic,
            ),
            self._component(
                "sensor", f"{key}_lost", f"{link} lost packets",
                state_class="total_increasing",
                value_template=_link_template(link, "l.packets_lost"),
                **diagnostic,
            ),
            self._component(
                "binary_sensor", f"{key}_up", f"{link} link",
                device_class="connectivity",
                value_template=_link_template(link, f"'{ON}' if l.up else '{OFF}'"),
                **diagnostic,
            ),
        ]  # fmt: skip

    def _system(self) -> list[tuple[str, Component]]:
        status = self.topics.status
        return [
            self._component(
                "sensor", "estimator", "Estimator",
                device_class="enum",
                options=list(ESTIMATORS),
                entity_category="diagnostic",
                state_topic=status,
                value_template="{{ value_json.estimator }}",
            ),
            self._component(
                "binary_sensor", "simulated", "Simulated source",
                entity_category="diagnostic",
                icon="mdi:test-tube",
                state_topic=status,
                value_template=f"{{{{ '{ON}' if value_json.simulated else '{OFF}' }}}}",
            ),
        ]  # fmt: skip

    def _controls(self) -> list[tuple[str, Component]]:
        topics = self.topics
        controls = {"entity_category": "config", "state_topic": topics.controls}
        low, high = SENSITIVITY_RANGE
        return [
            self._component(
                "switch", "detection", "Detection",
                command_topic=topics.command(DETECTION_COMMAND),
                payload_on=ON,
                payload_off=OFF,
                value_template=f"{{{{ '{ON}' if value_json.detection_enabled else '{OFF}' }}}}",
                **controls,
            ),
            self._component(
                "number", "sensitivity", "Sensitivity",
                command_topic=topics.command(SENSITIVITY_COMMAND),
                min=low,
                max=high,
                step=1,
                mode="slider",
                value_template="{{ value_json.sensitivity }}",
                **controls,
            ),
            self._component(
                "select", "profile", "Detector profile",
                command_topic=topics.command(PROFILE_COMMAND),
                options=list(DETECTOR_PROFILES),
                value_template="{{ value_json.profile }}",
                **controls,
            ),
            self._component(
                "binary_sensor", "calibrating", "Calibrating",
                entity_category="diagnostic",
                icon="mdi:progress-clock",
                state_topic=topics.controls,
                value_template=f"{{{{ '{ON}' if value_json.calibrating else '{OFF}' }}}}",
            ),
            self._component(
                "button", "recalibrate", "Recalibrate",
                entity_category="config",
                icon="mdi:tune-variant",
                command_topic=topics.command(CALIBRATE_COMMAND),
                payload_press=PRESS,
            ),
            self._component(
                "button", "restart", "Restart",
                device_class="restart",
                entity_category="config",
                command_topic=topics.command(RESTART_COMMAND),
                payload_press=PRESS,
            ),
        ]  # fmt: skip
