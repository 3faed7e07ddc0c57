"""Home Assistant's MQTT camera of the skeleton overlay, on the real application against a real Mosquitto
(``tests/mqtt_support``): the camera component passes Home Assistant's discovery schema
(``tests/ha_mqtt_discovery``), what arrives on its topic base64-decodes to a JPEG that OpenCV reads at the
configured size with the skeleton where the reading puts it, it is neither retained nor sent while the
broker is away (nothing is rendered then), and without the video's snapshots the camera is absent, or
removed when an earlier run announced it.

No part is mocked: the broker is Debian's mosquitto, the overlay is rendered by the video sink's own
renderer, and the appliance runs in process (aiohttp's test client).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.api.keys import HUB
from appliance.api.resource_keys import RESOURCES
from appliance.contracts import SNAPSHOT_TOPIC
from appliance.integrations.mqtt import MqttSink
from tests.app_support import Client, start
from tests.ha_mqtt_discovery import Discovered, discover
from tests.mqtt_support import Mosquitto, Seen, recording, running_mosquitto, wait_until
from tests.video_support import STANDING, Image, Publisher, person_at, saturation, video_sink

BASE = "invispose/test_box"
DISCOVERY = "homeassistant/device/test_box/config"
AVAILABILITY = f"{BASE}/availability"
CAMERA = f"{BASE}/camera/overlay"
WIDTH, HEIGHT = 320, 180
INTERVAL_S = 0.2
VIDEO = {"video.width": WIDTH, "video.height": HEIGHT, "video.snapshot_interval_s": INTERVAL_S}
BODY_JOINTS = STANDING[5:]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "broker"
    directory.mkdir()
    with running_mosquitto(directory) as running:
        yield running


def jpeg_image(message: Seen) -> Image | None:
    """What Home Assistant's camera shows for this payload (``b64decode`` of it all), read by OpenCV;
    None when it is not a base64 JPEG."""
    try:
        jpeg = base64.b64decode(message.payload, validate=True)
    except binascii.Error:
        return None
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, dtype=np.uint8)


def shows_the_person(message: Seen) -> bool:
    image = jpeg_image(message)
    return image is not None and all(saturation(image, x, y) > 60 for x, y in BODY_JOINTS)


def camera_of(document: Seen) -> Discovered | None:
    return next((d for d in discover(json.loads(document.text)) if d.platform == "camera"), None)


def online(message: Seen) -> bool:
    return message.text == "online"


async def started(aiohttp_client: Any, data: Path, broker: Mosquitto, **overrides: Any) -> Client:
    client, _ = await start(aiohttp_client, data, silent=True, mqtt=broker.settings(), **overrides)
    return client


async def test_the_camera_shows_the_overlay_jpeg_at_the_configured_size(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, ["homeassistant/#", f"{BASE}/#"]) as ha:
        client = await started(aiohttp_client, tmp_path / "data", broker, **VIDEO)
        camera = camera_of(await ha.wait(DISCOVERY))
        assert camera is not None and camera.config is not None, "discovery lists no camera"
        assert camera.config["topic"] == CAMERA and camera.config["image_encoding"] == "b64"
        assert camera.config["default_entity_id"] == "camera.test_box_overlay"
        await ha.wait(AVAILABILITY, online)
        async with Publisher(client, (person_at(1),)):
            seen = await ha.wait(CAMERA, shows_the_person)
        image = jpeg_image(seen)
        assert image is not None and image.shape == (HEIGHT, WIDTH, 3)
        assert seen.qos == 0 and not seen.retain
        # The payload is the very string the hub's JSON carries (encoded once, on the render thread).
        assert all(m.payload.isascii() for m in ha.on(CAMERA))

    # Not retained: a client arriving now is sent the retained availability and no old picture.
    async with recording(broker.port, [CAMERA, AVAILABILITY]) as later:
        assert (await later.wait(AVAILABILITY)).retain
        assert not any(m.retain for m in later.on(CAMERA))


async def test_no_snapshot_is_rendered_while_the_broker_is_away(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path
) -> None:
    async with recording(broker.port, [CAMERA]) as ha:
        client = await started(aiohttp_client, tmp_path / "data", broker, **VIDEO)
        await ha.wait(CAMERA)
    video, hub = video_sink(client), client.app[HUB]
    broker.stop()
    await wait_until(lambda: not mqtt_sink(client).connected, what="the sink to notice the broker is gone")
    assert not hub.wanted(SNAPSHOT_TOPIC), "the MQTT sink still takes snapshots while the broker is away"
    made = video.snapshots
    # Ten intervals without a session: at most the one being rendered as the session ended.
    await asyncio.sleep(10 * INTERVAL_S)
    paused = video.snapshots
    assert paused <= made + 1
    broker.start()
    async with recording(broker.port, [CAMERA]) as back:
        await back.wait(CAMERA, lambda m: jpeg_image(m) is not None)
        await wait_until(lambda: video.snapshots > paused, what="snapshots to be rendered again")
    assert hub.wanted(SNAPSHOT_TOPIC)


@pytest.mark.parametrize(
    "video_off", [{"video.enabled": False}, {"video.snapshot_interval_s": 0}], ids=["video", "snapshots"]
)
async def test_without_snapshots_the_camera_is_absent_and_one_announced_before_is_removed(
    broker: Mosquitto, aiohttp_client: Any, tmp_path: Path, video_off: dict[str, Any]
) -> None:
    async with recording(broker.port, ["homeassistant/#", f"{BASE}/#"]) as ha:
        # A box that never had the camera: none in its document, and no snapshot is rendered for MQTT.
        fresh = await started(aiohttp_client, tmp_path / "fresh", broker, **{**VIDEO, **video_off})
        assert camera_of(await ha.wait(DISCOVERY)) is None
        await ha.wait(AVAILABILITY, online)
        assert not fresh.app[HUB].wanted(SNAPSHOT_TOPIC)
        await fresh.close()
        # The same device with the camera, then without: Home Assistant is told to remove it.
        count = len(ha.messages)
        with_camera = await started(aiohttp_client, tmp_path / "one", broker, **VIDEO)
        assert camera_of(await ha.wait(DISCOVERY, after=count)) is not None
        await ha.wait(CAMERA, after=count)
        await with_camera.close()
        await ha.wait(AVAILABILITY, lambda m: m.text == "offline", after=count)
        count = len(ha.messages)
        without = await started(aiohttp_client, tmp_path / "two", broker, **{**VIDEO, **video_off})
        removed = camera_of(await ha.wait(DISCOVERY, after=count))
        assert removed is not None and removed.config is None, "the camera was not removed"
        assert removed.platform == "camera"
        await without.close()


def mqtt_sink(client: Client) -> MqttSink:
    runner = client.app[RESOURCES].sinks
    found = runner.sink("mqtt") if runner is not None else None
    assert isinstance(found, MqttSink), "the MQTT sink is not running"
    return found
