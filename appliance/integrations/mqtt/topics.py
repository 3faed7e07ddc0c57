"""The topic layout under ``<topic_prefix>/<device_id>/``, and where each hub message goes.

| hub topic | MQTT topic | qos | retained |
|---|---|---|---|
| ``pose`` | ``pose/current`` | 0 | yes |
| ``person/<id>`` | ``pose/person/<id>/update`` | 1 | no |
| ``zone/<id>`` | ``pose/zone/<id>/occupancy`` | 1 | yes |
| ``status`` | ``system/status`` | 1 | yes |
| ``controls`` | ``system/controls`` | 1 | yes |
| ``alert/<category>`` | ``system/alerts/<category>`` | 2 | no |
| ``event/<type>`` | ``events/<type>`` | 1 | no |
| ``$video/snapshot`` | ``camera/overlay`` | 0 | no |

Payloads are the hub's JSON (``Message.text``), the same bytes REST and WebSocket serve, except on
``camera/overlay``: there Home Assistant's MQTT camera wants the image alone, so the payload is the
snapshot's ``jpeg_base64`` (``image_encoding: b64``), the very string inside the hub's JSON. The camera is
qos 0 and not retained: the next picture follows within ``video.snapshot_interval_s``, so a lost one costs
nothing and a late subscriber waits one interval; retained, a picture of the room would stay on the broker
after the appliance (or the video) is gone, and every client subscribing to ``<prefix>/#`` would be sent
tens of kilobytes it did not ask for.

The readings (all but alerts and events) matter only as the latest of each topic, so a newer one replaces
an older one still waiting. Alerts and events are *events*: each one is owed, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.contracts import SNAPSHOT_TOPIC, OverlaySnapshot
from appliance.hub import Message

AVAILABLE = "online"
UNAVAILABLE = "offline"
# Home Assistant announces itself on <discovery_prefix>/status with these payloads.
HA_ONLINE = "online"


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: str
    qos: int
    retain: bool
    reading: bool  # only the latest of its topic matters (a newer one replaces it while it waits)


# hub topic root -> (MQTT topic template, qos, retained, reading); {0} is the rest of the hub topic.
_ROUTES: dict[str, tuple[str, int, bool, bool]] = {
    "pose": ("pose/current", 0, True, True),
    "person": ("pose/person/{0}/update", 1, False, True),
    "zone": ("pose/zone/{0}/occupancy", 1, True, True),
    "status": ("system/status", 1, True, True),
    "controls": ("system/controls", 1, True, True),
    "alert": ("system/alerts/{0}", 2, False, False),
    "event": ("events/{0}", 1, False, False),
    SNAPSHOT_TOPIC.partition("/")[0]: ("camera/overlay", 0, False, True),
}
# What the sink takes from the hub: every routed topic but the camera's, and the zones in force (for
# discovery). The camera's snapshots are taken only while connected (see ``MqttSink``).
HUB_TOPICS = ("pose", "person/+", "zone/+", "status", "controls", "alert/#", "event/#", "config/zones")
# Retained hub topics re-published on every (re)connect, in this order.
RETAINED_HUB_TOPICS = ("controls", "status", "zone/+", "pose")


class Topics:
    """Every topic of one appliance on the broker."""

    def __init__(self, topic_prefix: str, discovery_prefix: str, device_id: str) -> None:
        self.device_id = device_id
        self.base = f"{topic_prefix}/{device_id}"
        self.availability = f"{self.base}/availability"
        self.discovery = f"{discovery_prefix}/device/{device_id}/config"
        self.ha_status = f"{discovery_prefix}/status"
        self.commands = f"{self.base}/command/#"
        self.everything = f"{self.base}/#"
        self.pose = f"{self.base}/pose/current"
        self.status = f"{self.base}/system/status"
        self.controls = f"{self.base}/system/controls"
        self.all_events = f"{self.base}/events/+"
        self.camera = f"{self.base}/camera/overlay"
        self.sync = f"{self.base}/sync"

    def route(self, message: Message) -> Publication | None:
        """Where a hub message goes, or None for one that is not published as it is (``config/zones``)."""
        root, _, rest = message.topic.partition("/")
        route = _ROUTES.get(root)
        if route is None:
            return None
        template, qos, retain, reading = route
        item = message.item
        payload = item.jpeg_base64 if isinstance(item, OverlaySnapshot) else message.text
        return Publication(f"{self.base}/{template.format(rest)}", payload, qos, retain, reading)

    def zone_occupancy(self, zone_id: str) -> str:
        return f"{self.base}/pose/zone/{zone_id}/occupancy"

    def event(self, event_type: str) -> str:
        return f"{self.base}/events/{event_type}"

    def command(self, name: str) -> str:
        """``name`` is the command's path, as ``system/sensitivity`` or ``zone/kitchen/configure``."""
        return f"{self.base}/command/{name}"

    def command_name(self, topic: str) -> str | None:
        """The command path of a command topic; None for any other topic."""
        prefix = f"{self.base}/command/"
        return topic[len(prefix) :] if topic.startswith(prefix) else None

    def response(self, name: str) -> str:
        return f"{self.base}/response/{name}"
