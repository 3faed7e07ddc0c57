"""Home Assistant's MQTT device discovery schema, as far as this appliance uses it: a test oracle.

Transcribed by hand (keys, which are required, the type each value must have) from Home Assistant's own
source, never from the appliance's code:

- the device document: ``homeassistant/components/mqtt/schemas.py`` (``DEVICE_DISCOVERY_SCHEMA``,
  ``MQTT_ENTITY_COMMON_SCHEMA`` with ``default_entity_id``, ``MQTT_ENTITY_DEVICE_INFO_SCHEMA``,
  ``MQTT_ORIGIN_INFO_SCHEMA``, ``SHARED_OPTIONS``) in M2D-sOxOs/home-assistant-core, a fork of
  home-assistant/core, at 484df5c63299b06c5306503aeecbe7a4a9000fb7;
- how a device document becomes components: ``homeassistant/components/mqtt/discovery.py``
  (``_parse_device_payload``, ``_merge_common_device_options``, ``async_discovery_message_received``: the
  platform is popped; a component left empty is removed; shared options fill what a component lacks) in
  cdce8p/ha-core at 90d26a1eb0758b1f0d2539065a5bb77128e902c2;
- the platforms: ``homeassistant/components/mqtt/{binary_sensor,sensor,event,switch,number,select,
  button}.py`` (``PLATFORM_SCHEMA_MODERN`` / ``_PLATFORM_SCHEMA_BASE`` and their validators) in
  rpavlik/core at 61b7dd638d340dc0c0a915316eec6dbcc900fccd; ``MQTT_BASE_SCHEMA``, ``MQTT_RO_SCHEMA`` and
  ``MQTT_RW_SCHEMA`` from ``homeassistant/components/mqtt/config.py`` in home-assistant/core at
  a5c8209270205b905bb35a9082c39708b0d5f52f; the camera from ``homeassistant/components/mqtt/camera.py``
  (``PLATFORM_SCHEMA_BASE``: ``MQTT_BASE_SCHEMA`` plus ``name``, a required subscribe ``topic`` and
  ``image_encoding`` that may only be ``b64``; its message callback base64-decodes the whole payload), as the
  code search of this project's tool library returned it, and home-assistant.io's
  ``integrations/camera.mqtt``; binary sensor device classes from
  ``homeassistant/components/binary_sensor/__init__.py`` at becaef0a00971e1f74e1b0db525a9c71b044aa01;
- abbreviations: ``DEVICE_ABBREVIATIONS`` and ``ORIGIN_ABBREVIATIONS`` of
  ``homeassistant/components/mqtt/abbreviations.py`` in wayne-uts/core at
  7325ef6055e0d0ee72b46aa798603b5e1f2f6d9b; ``dev``, ``o``, ``cmps`` and ``p`` as the device discovery
  section of home-assistant.io's ``source/_integrations/mqtt.markdown`` shows them.

Stricter than Home Assistant in one way: a key its discovery schemas would silently drop
(``extra=REMOVE_EXTRA``) is an error here, because in our document it can only be a typo.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Check = Callable[[Any], str | None]  # None: valid; else what is wrong

ROOT_ABBREVIATIONS = {"dev": "device", "o": "origin", "cmps": "components", "avty": "availability"}
COMPONENT_ABBREVIATIONS = {"p": "platform"}
DEVICE_ABBREVIATIONS = {
    "cns": "connections",
    "cu": "configuration_url",
    "ids": "identifiers",
    "name": "name",
    "mf": "manufacturer",
    "mdl": "model",
    "hw": "hw_version",
    "sw": "sw_version",
    "sa": "suggested_area",
    "sn": "serial_number",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
# schemas.py SHARED_OPTIONS: given at the root, they fill in what a component does not set itself.
SHARED_OPTIONS = (
    "availability",
    "availability_mode",
    "availability_template",
    "availability_topic",
    "command_topic",
    "encoding",
    "message_expiry_interval",
    "payload_available",
    "payload_not_available",
    "state_topic",
    "qos",
)
BINARY_SENSOR_DEVICE_CLASSES = frozenset(
    {
        "battery", "battery_charging", "cold", "connectivity", "door", "garage_door", "gas", "heat",
        "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power",
        "presence", "problem", "safety", "smoke", "sound", "vibration", "window",
    }
)  # fmt: skip
ENTITY_CATEGORIES = frozenset({"config", "diagnostic"})
STATE_CLASSES = frozenset({"measurement", "total", "total_increasing"})
NUMBER_MODES = frozenset({"auto", "box", "slider"})
BUTTON_DEVICE_CLASSES = frozenset({"identify", "restart", "update"})
EVENT_DEVICE_CLASSES = frozenset({"doorbell", "button", "motion"})


# -- value checks (Home Assistant's validators) -------------------------------------------------------


def string(value: Any) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {value!r}"


template = string


def boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def positive_int(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else f"expected an integer >= 0, got {value!r}"


def number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok else f"expected a number, got {value!r}"


def one_of(allowed: frozenset[str]) -> Check:
    return lambda value: None if value in allowed else f"expected one of {sorted(allowed)}, got {value!r}"


def string_list(value: Any) -> str | None:
    ok = isinstance(value, list) and value and all(isinstance(v, str) for v in value)
    return None if ok else f"expected a non-empty list of strings, got {value!r}"


def qos(value: Any) -> str | None:
    return None if value in (0, 1, 2) and not isinstance(value, bool) else f"qos is 0, 1 or 2, got {value!r}"


def icon(value: Any) -> str | None:
    return None if isinstance(value, str) and ":" in value else f"an icon is prefix:name, got {value!r}"


def url(value: Any) -> str | None:
    ok = isinstance(value, str) and value.startswith(("http://", "https://", "homeassistant://"))
    return None if ok else f"expected an http(s) URL, got {value!r}"


def subscribe_topic(value: Any) -> str | None:
    """``util.valid_subscribe_topic``: UTF-8, no NUL, wildcards only as whole levels, ``#`` last."""
    if not isinstance(value, str) or not value or "\0" in value or len(value.encode()) > 65535:
        return f"not a topic: {value!r}"
    levels = value.split("/")
    for index, level in enumerate(levels):
        if "+" in level and level != "+":
            return f"'+' must be a whole level: {value!r}"
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return f"'#' must be the last whole level: {value!r}"
    return None


def publish_topic(value: Any) -> str | None:
    """``util.valid_publish_topic``: a subscribe topic without wildcards."""
    problem = subscribe_topic(value)
    if problem is None and ("+" in value or "#" in value):
        return f"a publish topic has no wildcards: {value!r}"
    return problem


def entity_id(value: Any) -> str | None:
    """``default_entity_id`` is ``<domain>.<object id>``; Home Assistant uses what follows the dot."""
    if not isinstance(value, str) or value.count(".") != 1 or not all(value.split(".")):
        return f"expected <domain>.<object_id>, got {value!r}"
    return None


def availability_list(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return f"availability is a list of {{topic, ...}}, got {value!r}"
    for entry in value:
        if not isinstance(entry, dict) or "topic" not in entry:
            return f"every availability entry needs a topic: {entry!r}"
        known = {"topic", "payload_available", "payload_not_available", "value_template"}
        if set(entry) - known:
            return f"unknown availability keys {sorted(set(entry) - known)}"
        for key, check in (("topic", subscribe_topic), ("payload_available", string)):
            if key in entry and (problem := check(entry[key])) is not None:
                return problem
    return None


# -- schemas: key -> (check, required) ----------------------------------------------------------------

Schema = dict[str, tuple[Check, bool]]

AVAILABILITY: Schema = {
    "availability_topic": (subscribe_topic, False),
    "availability_template": (template, False),
    "payload_available": (string, False),
    "payload_not_available": (string, False),
    "availability_mode": (one_of(frozenset({"all", "any", "latest"})), False),
    "availability": (availability_list, False),
}
DEVICE: Schema = {
    "identifiers": (string_list, False),
    "connections": (lambda v: None if isinstance(v, list) else f"expected a list, got {v!r}", False),
    "manufacturer": (string, False),
    "model": (string, False),
    "model_id": (string, False),
    "name": (string, False),
    "hw_version": (string, False),
    "serial_number": (string, False),
    "sw_version": (string, False),
    "via_device": (string, False),
    "suggested_area": (string, False),
    "configuration_url": (url, False),
}
ORIGIN: Schema = {"name": (string, True), "sw_version": (string, False), "support_url": (url, False)}
DEVICE_DOCUMENT: Schema = {
    **AVAILABILITY,
    "device": (lambda v: None if isinstance(v, dict) else "device is a mapping", True),
    "components": (lambda v: None if isinstance(v, dict) else "components is a mapping", True),
    "origin": (lambda v: None if isinstance(v, dict) else "origin is a mapping", True),
    "state_topic": (subscribe_topic, False),
    "command_topic": (publish_topic, False),
    "message_expiry_interval": (positive_int, False),
    "qos": (qos, False),
    "encoding": (string, False),
}
ENTITY_COMMON: Schema = {
    **AVAILABILITY,
    "device": (lambda v: None if isinstance(v, dict) else "device is a mapping", False),
    "entity_picture": (url, False),
    "origin": (lambda v: None if isinstance(v, dict) else "origin is a mapping", False),
    "enabled_by_default": (boolean, False),
    "entity_category": (one_of(ENTITY_CATEGORIES), False),
    "icon": (icon, False),
    "json_attributes_topic": (subscribe_topic, False),
    "json_attributes_template": (template, False),
    "default_entity_id": (entity_id, False),
    "message_expiry_interval": (positive_int, False),
    "unique_id": (string, False),
}
BASE: Schema = {"qos": (qos, False), "encoding": (string, False)}
READ_ONLY: Schema = {**BASE, "state_topic": (subscribe_topic, True), "value_template": (template, False)}
READ_WRITE: Schema = {
    **BASE,
    "command_topic": (publish_topic, True),
    "optimistic": (boolean, False),
    "retain": (boolean, False),
    "state_topic": (subscribe_topic, False),
}
NAME: Schema = {"name": (lambda v: None if v is None else string(v), False)}

PLATFORMS: dict[str, Schema] = {
    "binary_sensor": {
        **READ_ONLY,
        **NAME,
        "device_class": (one_of(BINARY_SENSOR_DEVICE_CLASSES), False),
        "expire_after": (positive_int, False),
        "force_update": (boolean, False),
        "off_delay": (positive_int, False),
        "payload_off": (string, False),
        "payload_on": (string, False),
        **ENTITY_COMMON,
    },
    "sensor": {
        **READ_ONLY,
        **NAME,
        "device_class": (string, False),
        "expire_after": (positive_int, False),
        "force_update": (boolean, False),
        "last_reset_value_template": (template, False),
        "options": (string_list, False),
        "suggested_display_precision": (positive_int, False),
        "state_class": (one_of(STATE_CLASSES), False),
        "unit_of_measurement": (string, False),
        **ENTITY_COMMON,
    },
    "event": {
        **READ_ONLY,
        **NAME,
        "device_class": (one_of(EVENT_DEVICE_CLASSES), False),
        "event_types": (string_list, True),
        **ENTITY_COMMON,
    },
    "switch": {
        **READ_WRITE,
        **NAME,
        "command_template": (template, False),
        "payload_off": (string, False),
        "payload_on": (string, False),
        "state_off": (string, False),
        "state_on": (string, False),
        "value_template": (template, False),
        "device_class": (one_of(frozenset({"outlet", "switch"})), False),
        **ENTITY_COMMON,
    },
    "number": {
        **READ_WRITE,
        **NAME,
        "command_template": (template, False),
        "device_class": (string, False),
        "max": (number, False),
        "min": (number, False),
        "mode": (one_of(NUMBER_MODES), False),
        "payload_reset": (string, False),
        "step": (number, False),
        "unit_of_measurement": (string, False),
        "value_template": (template, False),
        **ENTITY_COMMON,
    },
    "select": {
        **READ_WRITE,
        **NAME,
        "command_template": (template, False),
        "options": (string_list, True),
        "value_template": (template, False),
        **ENTITY_COMMON,
    },
    "camera": {
        **BASE,
        **NAME,
        "topic": (subscribe_topic, True),
        "image_encoding": (one_of(frozenset({"b64"})), False),
        **ENTITY_COMMON,
    },
    "button": {
        **BASE,
        **NAME,
        "command_template": (template, False),
        "command_topic": (publish_topic, True),
        "device_class": (one_of(BUTTON_DEVICE_CLASSES), False),
        "payload_press": (string, False),
        "retain": (boolean, False),
        **ENTITY_COMMON,
    },
}


def _sensor_rules(config: Mapping[str, Any]) -> str | None:
    """sensor.py ``validate_sensor_state_and_device_class_config``: ``options`` only on ``enum`` sensors,
    never with a state class or unit; ``last_reset_value_template`` only with state class ``total``."""
    if "options" in config:
        if config.get("device_class") != "enum":
            return "options need device_class enum"
        if "state_class" in config or "unit_of_measurement" in config:
            return "options exclude state_class and unit_of_measurement"
    if "last_reset_value_template" in config and config.get("state_class") != "total":
        return "last_reset_value_template needs state_class total"
    return None


def _number_rules(config: Mapping[str, Any]) -> str | None:
    """number.py ``validate_config``: max must be above min (defaults 0 and 100); step at least 0.001."""
    low, high = config.get("min", 0.0), config.get("max", 100.0)
    if low >= high:
        return "'max' must be > 'min'"
    if config.get("step", 1.0) < 1e-3:
        return "step must be at least 0.001"
    return None


PLATFORM_RULES: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "sensor": _sensor_rules,
    "number": _number_rules,
}


@dataclass(frozen=True, slots=True)
class Discovered:
    """One component as Home Assistant would set it up (``config`` None: a removal)."""

    key: str
    platform: str
    config: dict[str, Any] | None


class SchemaError(AssertionError):
    pass


def _validate(where: str, data: Mapping[str, Any], schema: Schema) -> None:
    unknown = sorted(set(data) - set(schema))
    if unknown:
        raise SchemaError(f"{where}: keys Home Assistant does not know: {unknown}")
    for key, (check, required) in schema.items():
        if key not in data:
            if required:
                raise SchemaError(f"{where}: {key} is required")
            continue
        problem = check(data[key])
        if problem is not None:
            raise SchemaError(f"{where}.{key}: {problem}")


def _expand(data: Mapping[str, Any], abbreviations: Mapping[str, str]) -> dict[str, Any]:
    return {abbreviations.get(key, key): value for key, value in data.items()}


def discover(document: Mapping[str, Any]) -> list[Discovered]:
    """What Home Assistant makes of a device discovery document; raises ``SchemaError`` where it (or
    this stricter oracle) would refuse it."""
    root = _expand(document, ROOT_ABBREVIATIONS)
    _validate("document", root, DEVICE_DOCUMENT)
    device = _expand(root["device"], DEVICE_ABBREVIATIONS)
    _validate("device", device, DEVICE)
    if not device.get("identifiers") and not device.get("connections"):
        raise SchemaError("device: needs identifiers or connections")
    origin = _expand(root["origin"], ORIGIN_ABBREVIATIONS)
    _validate("origin", origin, ORIGIN)
    found: list[Discovered] = []
    for key, raw in root["components"].items():
        if not isinstance(raw, dict):
            raise SchemaError(f"components.{key}: a component is a mapping")
        component = _expand(raw, {**ROOT_ABBREVIATIONS, **COMPONENT_ABBREVIATIONS})
        platform = component.pop("platform", None)
        if platform not in PLATFORMS:
            raise SchemaError(f"components.{key}: platform {platform!r} is not one this oracle knows")
        if not component:
            found.append(Discovered(key, platform, None))
            continue
        if "unique_id" not in component:
            raise SchemaError(f"components.{key}: entity components need a unique_id")
        for option in SHARED_OPTIONS:
            if option in root and option not in component:
                component[option] = root[option]
        component["device"], component["origin"] = device, origin
        _validate(f"components.{key}", component, PLATFORMS[platform])
        rule = PLATFORM_RULES.get(platform)
        if rule is not None and (problem := rule(component)) is not None:
            raise SchemaError(f"components.{key}: {problem}")
        # Home Assistant takes what follows the dot; the domain before it is this appliance's promise.
        if not str(component.get("default_entity_id", "")).startswith(f"{platform}."):
            raise SchemaError(f"components.{key}: default_entity_id must be {platform}.<object_id>")
        found.append(Discovered(key, platform, component))
    return found
