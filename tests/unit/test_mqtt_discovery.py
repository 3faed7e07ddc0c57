"""The Home Assistant discovery document: accepted by Home Assistant's schema (``tests/ha_mqtt_discovery``),
ids unique and stable, every value template read with Jinja (as Home Assistant does) from the very payload
the appliance publishes on its state topic, and zones that are gone removed."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from appliance.contracts import (
    ControlState,
    Event,
    EventType,
    Keypoint,
    LinkReading,
    LinkStatus,
    OverlaySnapshot,
    PersonPose,
    SourceStatus,
    SystemStatus,
    ZoneOccupancy,
    ZoneShape,
)
from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.hub import Message, topic_matches
from appliance.integrations.mqtt.discovery import DeviceInfo, Discovery, slugs
from appliance.integrations.mqtt.topics import Topics
from tests.factories import T0, frame_at
from tests.ha_mqtt_discovery import SchemaError, discover

TOPICS = Topics("invispose", "homeassistant", "box_1")
DEVICE = DeviceInfo(
    "InvisPose Living room", "WiFi sensing appliance", "InvisPose", "1.2.3", "http://box.local:8099/"
)
ZONES = (
    ZoneShape("sofa", "Sofa", ((0.3, 2.6), (2.2, 2.6), (2.2, 3.8)), False),
    ZoneShape("door", "Door", ((0.0, 0.0), (0.8, 0.0), (0.8, 1.2)), True),
)
LINKS = ("tx-rx1", "tx-rx2")
JINJA = ImmutableSandboxedEnvironment()


def person(live_id: int, confidence: float, activity: str | None, zone: str | None) -> PersonPose:
    keypoints = tuple(Keypoint(name, 0.5, 0.5, (1.0, 3.0, 1.0), 0.9) for name in KEYPOINT_NAMES)
    return PersonPose(live_id, keypoints, (0.4, 0.2, 0.2, 0.6), zone, activity, confidence)


def link_reading(link: str, motion: bool) -> LinkReading:
    return LinkReading(link, 1.0, 2.0 if motion else 0.1, 1.0, motion, motion, True)


def model_frame() -> Any:
    """Two people (the second more confident), motion on rx1 only."""
    frame = frame_at(T0, [], links=(link_reading("tx-rx1", True), link_reading("tx-rx2", False)))
    persons = (person(1, 0.4, "walking", "door"), person(2, 0.9, "sitting", "sofa"))
    return dataclasses.replace(frame, persons=persons, person_count=2, presence=True, motion=True)


def status() -> SystemStatus:
    return SystemStatus(
        timestamp=T0,
        version="1.2.3",
        uptime_s=60.0,
        source="simulated",
        estimator="model",
        frames_published=600,
        sources=(SourceStatus("room", "simulated", True, 6000, T0, None),),
        links=(
            LinkStatus("tx-rx1", "room", True, 3000, 97.5, -61.0, T0, 3, True),
            LinkStatus("tx-rx2", "room", False, 100, 0.0, None, T0 - 9, 0, False),
        ),
    )


def controls() -> ControlState:
    return ControlState(T0, True, 50.0, "balanced", False, 2, 2)


def published(*items: Any) -> dict[str, list[str]]:
    """MQTT topic -> payloads, exactly as the sink routes these hub items."""
    found: dict[str, list[str]] = {}
    for item in items:
        publication = TOPICS.route(Message.of(item))
        assert publication is not None
        found.setdefault(publication.topic, []).append(publication.payload)
    return found


def render(template: str, payload: str) -> str:
    """Home Assistant's ``async_render_with_possible_json_value``: ``value`` and, if JSON, ``value_json``."""
    variables: dict[str, Any] = {"value": payload}
    with contextlib.suppress(ValueError):
        variables["value_json"] = json.loads(payload)
    return JINJA.from_string(template).render(**variables).strip()


def states(component: dict[str, Any], payloads: dict[str, list[str]]) -> list[str]:
    """What Home Assistant's value template makes of every payload on the component's state topic."""
    if "state_topic" not in component:  # a button: commands only
        return []
    matching = [
        p for topic, ps in payloads.items() if topic_matches(component["state_topic"], topic) for p in ps
    ]
    template = component.get("value_template", "{{ value }}")
    return [render(template, payload) for payload in matching]


@pytest.fixture
def components() -> dict[str, dict[str, Any]]:
    discovered = discover(Discovery(TOPICS, DEVICE, 300, camera=True).document(ZONES, LINKS))
    assert all(d.config is not None for d in discovered)
    return {d.key: d.config for d in discovered if d.config is not None}


def test_home_assistant_accepts_the_document_with_unique_stable_ids(components: dict[str, Any]) -> None:
    unique_ids = [c["unique_id"] for c in components.values()]
    entity_ids = [c["default_entity_id"] for c in components.values()]
    assert len(set(unique_ids)) == len(unique_ids) == len(components)
    assert len(set(entity_ids)) == len(entity_ids)
    # 6 room, 6 controls, 2 system, the camera, 3 per zone, 5 per link
    assert len(components) == 6 + 6 + 2 + 1 + 3 * len(ZONES) + 5 * len(LINKS)
    assert components["occupancy"]["unique_id"] == "box_1_occupancy"
    assert components["occupancy"]["default_entity_id"] == "binary_sensor.box_1_occupancy"
    assert components["zone_sofa_people"]["default_entity_id"] == "sensor.box_1_zone_sofa_people"
    again = discover(Discovery(TOPICS, DEVICE, 300, camera=True).document(ZONES, LINKS))
    assert [(d.key, d.config) for d in again] == list(components.items())


def test_the_device_origin_and_availability_are_shared(components: dict[str, Any]) -> None:
    document = Discovery(TOPICS, DEVICE, 300, camera=True).document(ZONES, LINKS)
    assert document["dev"]["ids"] == ["box_1"] and document["dev"]["cu"] == "http://box.local:8099/"
    assert document["o"] == {"name": "InvisPose", "sw": "1.2.3", "url": "http://box.local:8099/"}
    for component in components.values():
        assert component["availability"] == [
            {"topic": "invispose/box_1/availability", "payload_available": "online",
             "payload_not_available": "offline"}
        ]  # fmt: skip


def test_the_oracle_refuses_what_home_assistant_would() -> None:
    good = Discovery(TOPICS, DEVICE, 300, camera=True).document(ZONES, LINKS)
    wrong = [
        lambda d: d["cmps"]["occupancy"].update(stat_t="x"),  # a key HA would drop: a typo here
        lambda d: d["cmps"]["people"].update(state_class="sometimes"),
        lambda d: d["cmps"]["activity"].update(state_class="measurement"),  # options with a state class
        lambda d: d["cmps"]["detection"].pop("command_topic"),
        lambda d: d["cmps"]["restart"].update(command_topic="a/+/b"),
        lambda d: d["cmps"]["sensitivity"].update(min=100),
        lambda d: d["cmps"]["motion"].update(default_entity_id="sensor.box_1_motion"),
        lambda d: d["cmps"]["fall_detected"].pop("event_types"),
        lambda d: d["cmps"]["overlay"].pop("topic"),
        lambda d: d["cmps"]["overlay"].update(image_encoding="base64"),
        lambda d: d.pop("o"),
        lambda d: d["dev"].pop("ids"),
    ]
    for change in wrong:
        document = json.loads(json.dumps(good))
        change(document)
        with pytest.raises(SchemaError):
            discover(document)


def test_every_template_reads_the_payload_of_its_state_topic(components: dict[str, Any]) -> None:
    fall_data = {"person_id": 2, "position": {"x": 1, "y": 3, "z": 0.2}, "confidence": 0.8, "fall_time": T0,
                 "zone_id": "sofa", "zone_name": "Sofa"}  # fmt: skip
    fall = Event(EventType.PERSON_FALL_DETECTED, fall_data, time=T0)
    entered = Event(EventType.PERSON_ENTERED_ZONE, {"person_id": 2, "zone_id": "sofa", "zone_name": "Sofa",
                    "position": {"x": 1, "y": 3, "z": 1}}, time=T0)  # fmt: skip
    left_door = Event(EventType.PERSON_LEFT_ZONE, {"person_id": 1, "zone_id": "door", "zone_name": "Door",
                      "position": {"x": 0.5, "y": 0.5, "z": 1}}, time=T0)  # fmt: skip
    frame = model_frame()
    payloads = published(
        frame, status(), controls(), fall, entered, left_door,
        ZoneOccupancy.of(frame, "sofa", "Sofa"), ZoneOccupancy.of(frame, "door", "Door"),
    )  # fmt: skip
    # Golden values: what a person reading these payloads expects each entity to show.
    expected = {
        "occupancy": ["ON"], "motion": ["ON"], "people": ["2"], "activity": ["sitting"],
        "fall": ["ON"], "zone_sofa_occupancy": ["ON"], "zone_sofa_people": ["1"],
        "zone_door_occupancy": ["ON"], "zone_door_people": ["1"],
        "link_tx_rx1_motion": ["ON"], "link_tx_rx2_motion": ["OFF"],
        "link_tx_rx1_packets": ["97.5"], "link_tx_rx1_rssi": ["-61.0"], "link_tx_rx1_lost": ["3"],
        "link_tx_rx1_up": ["ON"], "link_tx_rx2_rssi": ["None"], "link_tx_rx2_up": ["OFF"],
        "estimator": ["model"], "simulated": ["ON"], "detection": ["ON"], "sensitivity": ["50.0"],
        "profile": ["balanced"], "calibrating": ["OFF"],
    }  # fmt: skip
    for key, values in expected.items():
        assert states(components[key], payloads) == values, key
    events = {key: [json.loads(s) if s else None for s in states(components[key], payloads)]
              for key in ("fall_detected", "zone_sofa_movement", "zone_door_movement")}  # fmt: skip
    assert events["fall_detected"] == [
        {"event_type": "fall_detected", "person_id": 2, "zone_id": "sofa", "confidence": 0.8}
    ]
    # events/+ carries all three events; each zone keeps its own entry or exit only.
    assert sorted(events["zone_sofa_movement"], key=str) == sorted(
        [None, None, {"event_type": "entered", "person_id": 2}], key=str
    )
    assert sorted(events["zone_door_movement"], key=str) == sorted(
        [None, None, {"event_type": "left", "person_id": 1}], key=str
    )
    attributes = json.loads(
        render(components["occupancy"]["json_attributes_template"], payloads[TOPICS.pose][0])
    )
    assert attributes == {"source": "simulated", "simulated": True, "estimator": "model", "confidence": 0.9}
    fall_topic = TOPICS.event("person.fall_detected")
    assert (
        json.loads(render(components["fall"]["json_attributes_template"], payloads[fall_topic][0]))["zone_id"]
        == "sofa"
    )


def test_what_the_motion_detector_cannot_tell_is_unknown_not_zero(components: dict[str, Any]) -> None:
    frame = frame_at(T0, None, links=(link_reading("tx-rx1", False),))  # motion detector: no count
    payloads = published(frame, ZoneOccupancy.of(frame, "sofa", "Sofa"))
    for key in ("people", "activity", "zone_sofa_occupancy", "zone_sofa_people"):
        assert states(components[key], payloads) == ["None"], key  # Home Assistant shows "unknown"
    assert states(components["activity"], published(frame_at(T0, []))) == ["empty"]  # the model: nobody
    absent = published(frame_at(T0, None, links=()))
    assert states(components["link_tx_rx1_motion"], absent) == ["None"]


def test_every_rendered_state_is_one_home_assistant_takes(components: dict[str, Any]) -> None:
    frame = model_frame()
    payloads = published(frame, status(), controls(), ZoneOccupancy.of(frame, "sofa", "Sofa"))
    for key, component in components.items():
        for state in states(component, payloads):
            platform = component["default_entity_id"].split(".")[0]
            if platform in ("binary_sensor", "switch"):
                assert state in ("ON", "OFF", "None"), (key, state)
            elif platform == "sensor" and "options" in component:
                assert state in (*component["options"], "None"), (key, state)
            elif platform == "sensor":
                assert state == "None" or float(state) == float(state), (key, state)
            elif platform == "number":
                assert component["min"] <= float(state) <= component["max"], (key, state)
            elif platform == "select":
                assert state in component["options"], (key, state)


def test_a_zone_that_is_gone_is_sent_with_only_its_platform() -> None:
    discovery = Discovery(TOPICS, DEVICE, 300, camera=True)
    discovery.document(ZONES, LINKS)
    after = discover(discovery.document(ZONES[:1], LINKS))
    removed = {d.key: d.platform for d in after if d.config is None}
    assert removed == {
        "zone_door_occupancy": "binary_sensor", "zone_door_people": "sensor", "zone_door_movement": "event",
    }  # fmt: skip
    again = discover(discovery.document(ZONES, LINKS))
    assert all(d.config is not None for d in again)


def test_components_of_the_previous_run_that_are_gone_are_removed() -> None:
    earlier = Discovery(TOPICS, DEVICE, 300, camera=True).document(ZONES, LINKS)
    earlier["cmps"]["zone_old_people"] = {"p": "sensor"}  # already removed back then: not repeated
    discovery = Discovery(TOPICS, DEVICE, 300, camera=True)
    discovery.remember(json.dumps(earlier))
    now = discover(discovery.document(ZONES[:1], LINKS[:1]))
    removed = sorted(d.key for d in now if d.config is None)
    assert removed == sorted(
        ["zone_door_occupancy", "zone_door_people", "zone_door_movement"]
        + [f"link_tx_rx2_{part}" for part in ("motion", "packets", "rssi", "lost", "up")]
    )
    for garbage in ("not json", "[]", '{"cmps": 3}', b"\xff"):
        discovery.remember(garbage)  # ignored, never raised


def test_the_camera_shows_the_jpeg_of_the_snapshot_published_on_its_topic(
    components: dict[str, Any],
) -> None:
    camera = components["overlay"]
    assert camera["default_entity_id"] == "camera.box_1_overlay"
    assert camera["image_encoding"] == "b64"
    jpeg = b"\xff\xd8\xff\xe0 a JPEG's first bytes \xff\xd9"
    snapshot = OverlaySnapshot(T0, 320, 180, 7, "simulated", base64.b64encode(jpeg).decode())
    publication = TOPICS.route(Message.of(snapshot))
    assert publication is not None
    assert topic_matches(camera["topic"], publication.topic)
    # Home Assistant's camera: b64decode(the whole payload) is the image; qos 0, not retained.
    assert base64.b64decode(publication.payload) == jpeg
    assert (publication.qos, publication.retain, publication.reading) == (0, False, True)


def test_without_snapshots_there_is_no_camera_and_one_announced_before_is_removed() -> None:
    without = discover(Discovery(TOPICS, DEVICE, 300, camera=False).document(ZONES, LINKS))
    assert all(d.platform != "camera" for d in without)
    discovery = Discovery(TOPICS, DEVICE, 300, camera=False)
    discovery.remember(json.dumps(Discovery(TOPICS, DEVICE, 300, camera=True).document(ZONES, LINKS)))
    removed = [(d.key, d.platform) for d in discover(discovery.document(ZONES, LINKS)) if d.config is None]
    assert removed == [("overlay", "camera")]


def test_ids_that_would_share_a_key_are_told_apart_the_same_way_every_time() -> None:
    assert slugs(["tx-rx1", "TX.rx2"]) == {"tx-rx1": "tx_rx1", "TX.rx2": "tx_rx2"}
    first = slugs(["a-b", "a_b", "a:b"])
    assert len(set(first.values())) == 3 and first["a-b"] == "a_b"
    assert slugs(["a:b", "a_b", "a-b"]) == first
