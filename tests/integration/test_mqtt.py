"""The MQTT sink on the real application against a real Mosquitto (``tests/mqtt_support``): topics, qos and
retain as documented; the discovery document accepted by Home Assistant's schema with every state topic
published and every template readable from what arrives; Home Assistant restarts; the broker going away
and coming back; commands and their answers (checked against the shipped JSON Schema); the broker's ACL
as the boundary; passwords and TLS; the bounded queue; health, performance and /metrics.

No part is mocked: the broker is Debian's mosquitto, and the appliance runs in process (aiohttp's test
client) on the shipped configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from appliance.api.keys import HUB, PIPELINE
from appliance.api.resource_keys import RESOURCES
from appliance.contracts import ControlState, Event, EventType
from appliance.hub import topic_matches
from appliance.integrations.mqtt import DeviceInfo, MqttSettings, MqttSink
from appliance.integrations.runner import SinkRunner
from tests.app_support import Client, start, wait_for_health
from tests.conftest import DEFAULT_CONFIG, REPO
from tests.factories import Person, frame_at
from tests.ha_mqtt_discovery import discover
from tests.mdns_support import LOOPBACK, MQTT_SERVICE, registered
from tests.mqtt_support import ACCOUNTS, Mosquitto, Recorder, Seen, recording, running_mosquitto, wait_until
from tests.service_support import start_service

BASE = "invispose/test_box"
DISCOVERY = "homeassistant/device/test_box/config"
AVAILABILITY = f"{BASE}/availability"
RESPONSE_SCHEMA = json.loads((REPO / "docs" / "schemas" / "mqtt-command-response.schema.json").read_text())
TWO: list[Person] = [(1, 1.0, 3.0, "sofa", "sitting"), (2, 0.4, 0.5, "doorway", "walking")]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "broker"
    directory.mkdir()
    with running_mosquitto(directory) as running:
        yield running


def sink(client: Client) -> MqttSink:
    runner = client.app[RESOURCES].sinks
    found = runner.sink("mqtt") if runner is not None else None
    assert isinstance(found, MqttSink), "the MQTT sink is not running"
    return found


def online(message: Seen) -> bool:
    return message.text == "online"


async def command(recorder: Recorder, name: str, payload: str | bytes) -> dict[str, Any]:
    """Send a command as Home Assistant would and return the answer (checked against its schema)."""
    topic = f"{BASE}/response/{name}"
    after = len(recorder.messages)
    await recorder.client.publish(f"{BASE}/command/{name}", payload, qos=1)
    answer: dict[str, Any] = json.loads((await recorder.wait(topic, after=after)).text)
    jsonschema.validate(answer, RESPONSE_SCHEMA)
    return answer


async def test_readings_and_events_go_to_their_topics_with_their_qos_and_retain(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [f"{BASE}/#"]) as live:
        client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=broker.settings())
        await live.wait(AVAILABILITY, online)
        hub = client.app[HUB]
        client.app[PIPELINE].announce(frame_at(None, TWO, frame_id=7))
        hub.publish(Event(EventType.PERSON_FALL_DETECTED, {"person_id": 1, "zone_id": "sofa"}))
        hub.publish(Event(EventType.ALERT_HIGH_OCCUPANCY, {"occupancy": 2, "max_occupancy": 1}))
        expected = {  # topic -> qos, as published (the recorder subscribed with qos 2)
            f"{BASE}/pose/current": 0,
            f"{BASE}/pose/person/1/update": 1,
            f"{BASE}/pose/person/2/update": 1,
            f"{BASE}/pose/zone/sofa/occupancy": 1,
            f"{BASE}/pose/zone/doorway/occupancy": 1,
            f"{BASE}/events/person.fall_detected": 1,
            f"{BASE}/system/alerts/high_occupancy": 2,
        }
        for topic, qos in expected.items():
            seen = await live.wait(topic, lambda m: "frame_id" not in m.text or '"frame_id": 7' in m.text)
            assert seen.qos == qos, topic
        # Payloads are the hub's own JSON, byte for byte.
        assert live.latest(f"{BASE}/pose/current").text == hub.latest("pose").text  # type: ignore[union-attr]
        assert live.latest(f"{BASE}/pose/zone/sofa/occupancy").text == hub.latest("zone/sofa").text  # type: ignore[union-attr]

    # A client arriving now is given the retained readings, and nothing that is not retained.
    async with recording(broker.port, [f"{BASE}/#"]) as later:
        await later.wait(f"{BASE}/system/controls")
        await later.wait(f"{BASE}/pose/zone/sofa/occupancy")
        pose = await later.wait(f"{BASE}/pose/current")
        assert pose.retain and json.loads(pose.text)["frame_id"] == 7
        assert (await later.wait(AVAILABILITY)).retain
        retained = {m.topic for m in later.messages if m.retain}
        assert not any("/person/" in t or "/events/" in t or "/alerts/" in t for t in retained), retained


async def test_discovery_is_valid_and_every_state_topic_is_published_and_readable(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    async with recording(broker.port, ["homeassistant/#", f"{BASE}/#"]) as ha:
        client, _ = await start(aiohttp_client, tmp_path / "data", mqtt=broker.settings())
        await ha.wait(AVAILABILITY, online)
        hub = client.app[HUB]
        # The events behind the fall and zone entities, as the scene would announce them.
        hub.publish(
            Event(EventType.PERSON_FALL_DETECTED, {"person_id": 1, "zone_id": "sofa", "confidence": 0.7})
        )
        hub.publish(
            Event(EventType.PERSON_ENTERED_ZONE, {"person_id": 1, "zone_id": "sofa", "zone_name": "Sofa"})
        )
        # The simulated room's six links reach discovery with the first status.
        document = await ha.wait(DISCOVERY, lambda m: "link_ap_rx6_motion" in m.text)
        discovered = discover(json.loads(document.text))
        components = {d.key: d.config for d in discovered if d.config is not None}
        # 6 room, 6 controls, 2 system, the overlay camera (the shipped video is on), 3 per zone, 5 per link
        assert len(components) == len(discovered) == 6 + 6 + 2 + 1 + 3 * 2 + 5 * 6
        assert len({c["unique_id"] for c in components.values()}) == len(components)
        state_topics = {
            c[k] for c in components.values() for k in ("state_topic", "json_attributes_topic") if k in c
        }
        for pattern in state_topics:
            await ha.wait(pattern.replace("/+", "/person.entered_zone"))
        # Every template reads what actually arrived on its topic.
        jinja = ImmutableSandboxedEnvironment()
        for key, component in components.items():
            for option, template_key in (("state_topic", "value_template"),
                                         ("json_attributes_topic", "json_attributes_template")):  # fmt: skip
                if option not in component or template_key not in component:
                    continue
                payloads = [m.text for m in ha.messages if topic_matches(component[option], m.topic)]
                assert payloads, key
                template = jinja.from_string(component[template_key])
                for payload in payloads:
                    rendered = template.render(value=payload, value_json=json.loads(payload)).strip()
                    if template_key == "json_attributes_template":
                        assert isinstance(json.loads(rendered), dict), key
                    elif component["default_entity_id"].startswith(("binary_sensor.", "switch.")):
                        assert rendered in ("ON", "OFF", "None"), (key, rendered)
                    elif component["default_entity_id"].startswith("event."):
                        assert (
                            rendered == "" or json.loads(rendered)["event_type"] in component["event_types"]
                        )
                    elif "options" in component:
                        assert rendered in (*component["options"], "None"), (key, rendered)
                    else:
                        assert rendered == "None" or isinstance(float(rendered), float), (key, rendered)


async def test_home_assistant_coming_online_gets_discovery_then_the_states_again(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, ["homeassistant/#", f"{BASE}/#"]) as ha:
        client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=broker.settings())
        await ha.wait(AVAILABILITY, online)
        client.app[PIPELINE].announce(frame_at(None, TWO))
        await ha.wait(f"{BASE}/pose/current")
        before = len(ha.messages)
        await ha.client.publish("homeassistant/status", "online", qos=1)
        again = await ha.wait(DISCOVERY, after=before, timeout_s=5)
        order = [m.topic for m in ha.messages[before:]]
        index = order.index(DISCOVERY)
        await ha.wait(f"{BASE}/pose/current", lambda m: m.at >= again.at, after=before + index)
        await ha.wait(f"{BASE}/system/controls", lambda m: m.at >= again.at, after=before + index)
        assert sink(client).stats().details["discovery_sent"] >= 2


async def test_broker_restart_brings_back_availability_and_retained_states_within_5_s(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [AVAILABILITY]) as first:
        client, _ = await start(aiohttp_client, tmp_path / "data", mqtt=broker.settings())
        await first.wait(AVAILABILITY, online)
    mqtt = sink(client)
    broker.stop()  # no persistence: the broker forgets every retained message
    await wait_until(lambda: not mqtt.connected, what="the sink to notice the broker is gone")
    health = await (await client.get("/api/v1/system/health")).json()
    assert health["components"]["sink:mqtt"]["status"] == "degraded"
    broker.start()
    restarted = time.monotonic()
    async with recording(broker.port, ["homeassistant/#", f"{BASE}/#"]) as ha:
        for topic in (DISCOVERY, f"{BASE}/system/controls", f"{BASE}/system/status", f"{BASE}/pose/current"):
            await ha.wait(topic, timeout_s=5)
        await ha.wait(AVAILABILITY, online, timeout_s=5)
        assert time.monotonic() - restarted < 5.0
        # Availability comes after the states it vouches for.
        order = [m.topic for m in ha.messages]
        assert order.index(f"{BASE}/system/controls") < order.index(AVAILABILITY)
    assert mqtt.stats().details["connections"] == 2
    await wait_for_health(client)


async def test_commands_are_carried_out_and_answered_and_bad_ones_refused_precisely(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [f"{BASE}/#", "homeassistant/#"]) as ha:
        client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=broker.settings())
        await ha.wait(AVAILABILITY, online)
        pipeline = client.app[PIPELINE]

        answer = await command(ha, "system/detection", "OFF")
        assert answer["ok"] and answer["result"]["detection_enabled"] is False
        assert pipeline.detection_enabled is False
        state = await ha.wait(f"{BASE}/system/controls", lambda m: '"detection_enabled": false' in m.text)
        assert json.loads(state.text)["detection_enabled"] is False
        assert (await command(ha, "system/detection", "on"))["result"]["detection_enabled"] is True

        answer = await command(ha, "system/sensitivity", "75")
        assert answer["ok"] and answer["result"]["sensitivity"] == 75
        assert pipeline.detector.settings.threshold_factor == pytest.approx(6.0)  # 12 halved, as REST does
        answer = await command(ha, "system/profile", "steady")
        assert answer["result"]["profile"] == "steady"

        refused = await command(ha, "system/sensitivity", "150")
        assert not refused["ok"]
        assert refused["error"]["code"] == "refused" and refused["error"]["field"] == "sensitivity"
        assert "between 0 and 100" in refused["error"]["message"]
        assert (await command(ha, "system/sensitivity", "loud"))["error"]["code"] == "invalid_value"
        assert (await command(ha, "system/detection", "maybe"))["error"]["field"] == "detection_enabled"
        assert (await command(ha, "system/profile", "loud"))["error"]["field"] == "profile"
        unknown = await command(ha, "system/dance", "PRESS")
        assert (
            unknown["error"]["code"] == "unknown_command" and "system/calibrate" in unknown["error"]["known"]
        )
        assert (await command(ha, "system/detection", b"\xff\xfe"))["error"]["code"] == "bad_payload"
        cannot = await command(ha, "system/restart", "PRESS")  # in process, as REST answers it too
        assert cannot["error"] == {
            "code": "refused", "field": "restart",
            "message": "only an appliance started with 'invispose run' can restart itself",
        }  # fmt: skip

        # Zones: created through the same validation as REST; discovery follows.
        hall = {"name": "Hall", "polygon": [[3.0, 0.2], [4.5, 0.2], [4.5, 1.5], [3.0, 1.5]]}
        created = await command(ha, "zone/hall/configure", json.dumps(hall))
        assert created["ok"] and created["result"]["id"] == "hall"
        await ha.wait(DISCOVERY, lambda m: "zone_hall_occupancy" in m.text)
        assert (await command(ha, "zone/hall/configure", "{not json"))["error"]["code"] == "bad_json"
        assert (await command(ha, "zone/hall/configure", "[1, 2]"))["error"]["code"] == "bad_json"
        outside = await command(
            ha, "zone/hall/configure", json.dumps({**hall, "polygon": [[9, 9], [9, 8], [8, 8]]})
        )
        assert outside["error"]["code"] == "refused" and "outside the room" in outside["error"]["message"]
        bad_id = await command(ha, "zone/Hall!/configure", json.dumps(hall))
        assert bad_id["error"]["code"] == "refused" and bad_id["error"]["field"] == "id"

        assert sink(client).stats().details["commands"] >= 16


async def test_a_retained_command_is_not_run_again_when_the_appliance_connects(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [f"{BASE}/#"]) as ha:
        # Left on the broker by a client that set the retain flag: it would run on every reconnect.
        await ha.client.publish(f"{BASE}/command/system/detection", "OFF", qos=1, retain=True)
        client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=broker.settings())
        await ha.wait(AVAILABILITY, online)
        answer = json.loads((await ha.wait(f"{BASE}/response/system/detection")).text)
        jsonschema.validate(answer, RESPONSE_SCHEMA)
        assert (
            answer["error"]["code"] == "refused"
            and "retained command is not run" in answer["error"]["message"]
        )
        assert client.app[PIPELINE].detection_enabled is True


async def test_recalibrate_learns_the_empty_room_again(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [f"{BASE}/#"]) as ha:
        # adapt_s 0: no drift, so only a recalibration moves the learnt noise level.
        client, _ = await start(
            aiohttp_client, tmp_path / "data", mqtt=broker.settings(),
            **{"detector.calibration_s": 1.0, "detector.adapt_s": 0.0},
        )  # fmt: skip
        detector = client.app[PIPELINE].detector
        await wait_until(
            lambda: len(detector.links) == 6 and all(d.calibrated for d in detector.links.values())
        )
        await ha.wait(AVAILABILITY, online)
        before = {link: d.reading.threshold for link, d in detector.links.items() if d.reading is not None}
        sent = len(ha.messages)
        answer = await command(ha, "system/calibrate", "PRESS")
        assert answer["ok"] and answer["result"]["calibrating"] is True
        assert answer["result"]["calibrated_links"] == 0  # forgotten at once, not at each link's next packet
        controls = f"{BASE}/system/controls"
        await ha.wait(controls, lambda m: '"calibrating": true' in m.text, after=sent)
        done = await ha.wait(controls, lambda m: '"calibrating": false' in m.text, after=sent, timeout_s=15)
        assert json.loads(done.text)["calibrated_links"] == 6
        after = {link: d.reading.threshold for link, d in detector.links.items() if d.reading is not None}
        assert after.keys() == before.keys() and all(after[link] != before[link] for link in before)


async def test_a_password_listener_with_an_acl_is_the_boundary_for_commands(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    settings = broker.settings(
        port=broker.password_port, username="appliance", password=ACCOUNTS["appliance"]
    )
    ha_login = {"username": "homeassistant", "password": ACCOUNTS["homeassistant"]}
    async with recording(broker.password_port, [f"{BASE}/#"], **ha_login) as ha:
        client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=settings)
        await ha.wait(AVAILABILITY, online)
        # An account the ACL does not let write commands: the broker refuses it (MQTT 5 tells it so).
        refusals: list[Any] = []
        intruder = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        intruder.username_pw_set("intruder", ACCOUNTS["intruder"])
        intruder.on_publish = lambda _c, _u, _mid, reason, _p: refusals.append(reason)
        intruder.connect("127.0.0.1", broker.password_port)
        intruder.loop_start()
        try:
            intruder.publish(f"{BASE}/command/system/detection", "OFF", qos=1).wait_for_publish(5)
            await wait_until(lambda: bool(refusals), what="the broker's answer to the intruder")
        finally:
            intruder.loop_stop()
            intruder.disconnect()
        assert [str(r) for r in refusals] == ["Not authorized"]
        # Home Assistant's account may: its command is answered, after which the intruder's never was.
        assert (await command(ha, "system/profile", "steady"))["ok"]
        assert ha.on(f"{BASE}/response/system/detection") == []
        assert client.app[PIPELINE].detection_enabled is True


async def test_a_wrong_password_is_a_clear_error_in_health_and_log_and_retried_with_backoff(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="appliance.integrations.mqtt.sink")
    settings = broker.settings(port=broker.password_port, username="appliance", password="wrong")
    client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=settings)
    mqtt = sink(client)
    await wait_until(lambda: mqtt.attempts >= 3, what="three attempts")
    health = await (await client.get("/api/v1/system/health")).json()
    detail = health["components"]["sink:mqtt"]["detail"]
    assert health["components"]["sink:mqtt"]["status"] == "degraded"
    assert "refused the login: not authorised" in detail and "mqtt.password" in detail
    assert "127.0.0.1" not in detail  # health is public: no broker address
    errors = [r for r in caplog.records if "refused the login" in r.getMessage()]
    assert len(errors) == 1  # once, not once per attempt
    assert mqtt.connected is False and mqtt.connections == 0


async def test_tls_with_the_brokers_ca_connects_and_without_it_says_the_certificate_is_not_trusted(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    trusted = broker.settings(port=broker.tls_port, tls={"ca": str(broker.ca)})
    async with recording(broker.port, [AVAILABILITY]) as watcher:
        client, _ = await start(aiohttp_client, tmp_path / "a", silent=True, mqtt=trusted)
        await watcher.wait(AVAILABILITY, online)
        assert sink(client).stats().details["broker"] == f"127.0.0.1:{broker.tls_port}"

    untrusted = broker.settings(port=broker.tls_port, tls={}, device_id="other_box")
    other, _ = await start(aiohttp_client, tmp_path / "b", silent=True, mqtt=untrusted)
    mqtt = sink(other)
    await wait_until(lambda: mqtt.last_error is not None)
    assert "TLS certificate is not trusted" in mqtt.last_error and "mqtt.tls.ca" in mqtt.last_error  # type: ignore[operator]

    plain_on_tls = broker.settings(port=broker.tls_port, device_id="third_box", timeout_s=0.5)
    third, _ = await start(aiohttp_client, tmp_path / "c", silent=True, mqtt=plain_on_tls)
    mqtt = sink(third)
    await wait_until(lambda: mqtt.last_error is not None, timeout_s=10)
    assert "did not answer within 0.5 s" in mqtt.last_error  # type: ignore[operator]


async def test_the_queue_stays_bounded_while_the_broker_is_away_and_events_follow_when_it_is_back(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    client, _ = await start(
        aiohttp_client, tmp_path / "data", silent=True, mqtt=broker.settings(queue_messages=20)
    )
    mqtt = sink(client)
    await wait_until(lambda: mqtt.connected)
    broker.stop()
    await wait_until(lambda: not mqtt.connected)
    hub, pipeline = client.app[HUB], client.app[PIPELINE]
    for n in range(100):
        pipeline.announce(frame_at(None, TWO, frame_id=n))
        hub.publish(Event(EventType.PERSON_ACTIVITY_DETECTED, {"n": n}))
    await wait_until(lambda: all(s.pending == 0 for s in hub.subscriptions if s.name == "mqtt"))
    details = mqtt.stats().details
    assert details["queued_events"] == 20 and details["events_dropped"] == 80
    # One reading per topic: the room, two people, two zones (and the controls from the start).
    assert details["queued_readings"] <= 6
    assert mqtt.outbox.high_water <= 20 + 6
    broker.start()
    async with recording(broker.port, [f"{BASE}/#"]) as after:
        for n in range(80, 100):
            await after.wait(f"{BASE}/events/person.activity_detected", lambda m, n=n: f'"n": {n}' in m.text)
        seen = [json.loads(m.text)["data"]["n"] for m in after.on(f"{BASE}/events/person.activity_detected")]
        assert seen == list(range(80, 100))  # the newest 20, in order


async def test_health_performance_and_metrics_show_the_broker(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(aiohttp_client, tmp_path / "data", mqtt=broker.settings())
    mqtt = sink(client)
    await wait_until(lambda: mqtt.connected and mqtt.sent > 20)
    health = await wait_for_health(client)
    assert health["components"]["sink:mqtt"]["status"] == "ok"
    performance = await (await client.get("/api/v1/system/performance", headers=admin)).json()
    [report] = [s for s in performance["sinks"] if s["name"] == "mqtt"]
    assert report["connected"] is True and report["last_error"] is None
    assert report["details"]["broker"] == f"127.0.0.1:{broker.port}"
    assert report["details"]["broker_found_by"] == "configuration"
    metrics = await (await client.get("/metrics", headers=admin)).text()
    lines = {
        line.split(" ")[0]: line.split(" ")[1] for line in metrics.splitlines() if not line.startswith("#")
    }
    assert lines["invispose_mqtt_connected"] == "1.0"
    assert float(lines["invispose_mqtt_messages_sent_total"]) > 20
    assert lines['invispose_mqtt_messages_dropped_total{kind="event"}'] == "0.0"
    assert lines['invispose_sink_up{sink="mqtt"}'] == "1.0"
    broker.stop()
    await wait_until(lambda: not mqtt.connected)
    metrics = await (await client.get("/metrics", headers=admin)).text()
    assert "invispose_mqtt_connected 0.0" in metrics


async def test_a_clean_stop_says_offline_and_a_zone_gone_since_is_removed_on_the_next_start(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    hall = {"id": "hall", "name": "Hall", "polygon": [[3.0, 0.2], [4.5, 0.2], [4.5, 1.5]]}
    async with recording(broker.port, ["homeassistant/#", f"{BASE}/#"]) as ha:
        first, _ = await start(
            aiohttp_client, tmp_path / "one", silent=True, mqtt=broker.settings(), zones=[hall]
        )
        await ha.wait(DISCOVERY, lambda m: "zone_hall_people" in m.text)
        await ha.wait(AVAILABILITY, online)
        count = len(ha.messages)
        await first.close()
        await ha.wait(AVAILABILITY, lambda m: m.text == "offline", after=count)
        # Started again without the zone (and with the same device id): Home Assistant is told to remove it.
        second, _ = await start(
            aiohttp_client, tmp_path / "two", silent=True, mqtt=broker.settings(), zones=[]
        )
        document = await ha.wait(DISCOVERY, after=count)
        removed = {d.key for d in discover(json.loads(document.text)) if d.config is None}
        assert removed == {"zone_hall_occupancy", "zone_hall_people", "zone_hall_movement"}
        await second.close()


async def test_no_broker_configured_is_said_in_health(aiohttp_client: Any, tmp_path: Path) -> None:
    settings = {"enabled": True, "device_id": "test_box"}  # no host, and mDNS (which would look) is off
    client, _ = await start(
        aiohttp_client, tmp_path / "data", silent=True, mqtt=settings, mdns={"enabled": False}
    )
    await wait_until(lambda: sink(client).last_error is not None)
    health = await (await client.get("/api/v1/system/health")).json()
    assert health["components"]["sink:mqtt"]["status"] == "degraded"
    assert "no broker configured: set mqtt.host" in health["components"]["sink:mqtt"]["detail"]


async def test_the_app_finds_its_broker_over_mdns(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    # The broker is announced (on loopback) only after the app started looking: the first browse finds
    # nothing, says so, and a later one connects. The instance name is random: other runs on this
    # machine may announce brokers of their own on loopback.
    settings = broker.settings(host=None, port=None)
    client, _ = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=settings,
                            mdns={"enabled": True, "interfaces": LOOPBACK})  # fmt: skip
    await wait_until(lambda: "mDNS" in (sink(client).last_error or ""), timeout_s=20)
    async with (
        recording(broker.port, [f"{BASE}/availability"]) as watcher,
        registered(MQTT_SERVICE, f"broker-{uuid.uuid4().hex[:8]}", broker.port, {}),
    ):
        await watcher.wait(f"{BASE}/availability", online, timeout_s=30)
        details = sink(client).stats().details
        assert details["broker_found_by"] == "mdns" and details["broker"] == f"127.0.0.1:{broker.port}"


async def test_a_broker_found_over_mdns_is_used_and_reported(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    # A locator that finds nothing once, then the broker: the sink says so and asks again.
    client, _ = await start(aiohttp_client, tmp_path / "data", silent=True)
    asked: list[float] = []

    async def locate() -> tuple[str, int] | None:
        asked.append(time.monotonic())
        return None if len(asked) == 1 else ("127.0.0.1", broker.port)

    settings = MqttSettings.model_validate({"enabled": True, "device_id": "found_box", "reconnect_min_s": 0.1,
                                            "reconnect_max_s": 0.2})  # fmt: skip
    device = DeviceInfo("InvisPose test", "model", "InvisPose", "0", None)
    mqtt = MqttSink(client.app[HUB], settings, device, "found_box", client.app[RESOURCES].controls, locate)  # type: ignore[arg-type]
    async with (
        recording(broker.port, ["invispose/found_box/availability"]) as watcher,
        SinkRunner([mqtt], client.app[HUB]),
    ):
        await wait_until(lambda: mqtt.last_error is not None and "mDNS" in mqtt.last_error)
        await watcher.wait("invispose/found_box/availability", online)
        details = mqtt.stats().details
        assert details["broker_found_by"] == "mdns" and details["broker"] == f"127.0.0.1:{broker.port}"
        assert len(asked) == 2


async def test_controls_changed_elsewhere_reach_the_switch_number_and_select(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [f"{BASE}/system/controls"]) as ha:
        client, admin = await start(aiohttp_client, tmp_path / "data", silent=True, mqtt=broker.settings())
        await ha.wait(f"{BASE}/system/controls")
        response = await client.put("/api/v1/system/controls", json={"sensitivity": 30}, headers=admin)
        assert response.status == 200
        state = await ha.wait(f"{BASE}/system/controls", lambda m: '"sensitivity": 30' in m.text)
        latest = client.app[HUB].latest("controls")
        assert latest is not None and isinstance(latest.item, ControlState)
        assert state.text == latest.text and latest.item.sensitivity == 30


def service_config(tmp_path: Path, broker: Mosquitto) -> Path:
    """The shipped configuration with MQTT on, as a file for ``invispose run`` and ``invispose mqtt``."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["mqtt"] = broker.settings(keepalive=5)
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def mqtt_remove(config: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "appliance",
        "mqtt",
        "remove",
        "--config",
        str(config),
        "--data-dir",
        str(data_dir),
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


async def test_the_service_restarts_on_command_its_last_will_marks_it_dead_and_remove_clears_it(
    broker: Mosquitto, tmp_path: Path
) -> None:
    config, data_dir = service_config(tmp_path, broker), tmp_path / "data"
    service = start_service(tmp_path, config)
    try:
        async with recording(broker.port, [f"{BASE}/#", "homeassistant/#"]) as ha:
            await ha.wait(AVAILABILITY, online, timeout_s=30)
            # Restart from Home Assistant's button: answered, a clean "offline", then "online" again.
            answer = await command(ha, "system/restart", "PRESS")
            assert answer == {"command": "system/restart", "ok": True, "result": {"restarting": True}}
            gone = await ha.wait(AVAILABILITY, lambda m: m.text == "offline", timeout_s=15)
            await ha.wait(AVAILABILITY, lambda m: online(m) and m.at > gone.at, timeout_s=30)
            assert service.process.poll() is None, "the process exited instead of replacing itself"

            refused = await asyncio.to_thread(mqtt_remove, config, data_dir)
            assert refused.returncode == 1 and "still connected (availability online)" in refused.stderr

            # Killed without a word: the broker publishes the last will.
            count = len(ha.messages)
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(timeout=10)
            await ha.wait(AVAILABILITY, lambda m: m.text == "offline", after=count, timeout_s=8)
    finally:
        if service.process.poll() is None:
            service.stop()
    async with recording(broker.port, [AVAILABILITY]) as later:
        assert (await later.wait(AVAILABILITY)).text == "offline"  # retained for whoever comes next

    removed = await asyncio.to_thread(mqtt_remove, config, data_dir)
    assert removed.returncode == 0, removed.stderr
    assert f"removed test_box from Home Assistant ({DISCOVERY})" in removed.stdout
    assert f"{BASE}/availability" in removed.stdout and f"{BASE}/pose/current" in removed.stdout
    async with recording(broker.port, [f"{BASE}/#", DISCOVERY, f"{BASE}/sync"]) as after:
        await after.client.publish(f"{BASE}/sync", "probe", qos=1)
        await after.wait(f"{BASE}/sync")  # everything retained would have arrived before this
        assert [m.topic for m in after.messages if m.retain] == []
