"""``OverlaySnapshot``: one JPEG of the skeleton overlay, for consumers that show a still picture (Home
Assistant's MQTT camera).

Its topic, ``$video/snapshot``, starts with ``$``: as in MQTT, no filter that starts with a wildcard
(``#``, ``+/...``) matches it, so the image (tens of kilobytes every few seconds) reaches only a subscriber
that names it: never the history, webhooks, or a WebSocket client that asked for "everything". It is not
retained: a fresh one follows within the snapshot interval, and an old picture of the room is not worth
keeping.

The JPEG travels base64-encoded, made on the video sink's render thread, so that the hub's JSON encoding
(on the event loop) copies a plain ASCII string and the MQTT camera gets the very same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from appliance.contracts.pose import SourceKind, is_simulated

SNAPSHOT_TOPIC = "$video/snapshot"


@dataclass(frozen=True, slots=True)
class OverlaySnapshot:
    """The overlay as one JPEG (topic ``$video/snapshot``, not retained)."""

    retained: ClassVar[bool] = False
    content_type: ClassVar[Literal["image/jpeg"]] = "image/jpeg"

    timestamp: float  # when it was rendered, seconds since the epoch
    width: int
    height: int
    frame_id: int | None  # the PoseFrame drawn; None before the first reading
    source: SourceKind | None  # of that PoseFrame
    jpeg_base64: str  # the JPEG file, base64 (RFC 4648, no line breaks)

    @property
    def topic(self) -> str:
        return SNAPSHOT_TOPIC

    @property
    def simulated(self) -> bool:
        return self.source is not None and is_simulated(self.source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "width": self.width,
            "height": self.height,
            "frame_id": self.frame_id,
            "source": self.source,
            "simulated": self.simulated,
            "content_type": self.content_type,
            "jpeg_base64": self.jpeg_base64,
        }
