"""``UdpSource``: ESP32 nodes that send their CSI as UDP datagrams to the appliance.

One listener takes every ESP32 UDP format at once; ``parse_datagram`` tells each datagram's format from its
first bytes (RuView ADR-018 binary frames, Micro-ESPectre stream packets, ``CSI_DATA`` text lines), so nodes
with different firmware can share the port.

The default port is 5566 on every interface. No firmware agrees on a port (Micro-ESPectre's streamer
defaults to 5001, RuView's node takes its target from provisioning), so point each node at the appliance's
address and this port, or set ``port`` to what the nodes already use.

Link ids: ``links`` maps a key to a link id, looked up in this order: the ADR-018 node id (as a string,
e.g. ``"3"``), the sender's IP address, the ``mac`` of a ``CSI_DATA`` line (the transmitter the node
measured). Without a match an ADR-018 frame is ``esp32-<node id>`` and anything else ``esp32-<sender IP>``:
Micro-ESPectre packets name only the chip and a ``CSI_DATA`` MAC names the transmitter, so neither tells
two receiving nodes apart, while the sender's address does.

A datagram that does not parse is counted by reason (which format it looked like) and dropped; the
listener never stops for bad input, nor for a parser that fails on it (logged with its traceback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from appliance.contracts import SourceKind
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import LINE_TAG
from appliance.csi.formats.esp_udp import ADR018_MAGIC, ESPECTRE_MAGIC, parse_datagram
from appliance.csi.frame import CsiFrame
from appliance.csi.sources.queue import BoundedFrameQueue

log = logging.getLogger(__name__)

DEFAULT_UDP_HOST: Final = "0.0.0.0"
DEFAULT_UDP_PORT: Final = 5566
# About ten seconds of six nodes at 100 packets/s: a consumer that falls further behind than this loses
# the oldest packets, which are worth the least to a live detector.
DEFAULT_QUEUE_FRAMES: Final = 8192
LINK_PREFIX: Final = "esp32"

_ADR018_PREFIX: Final = ADR018_MAGIC.to_bytes(4, "little")
_ESPECTRE_PREFIX: Final = ESPECTRE_MAGIC.to_bytes(2, "little")
_LINE_TAG_BYTES: Final = LINE_TAG.encode()


def datagram_kind(data: bytes) -> str:
    """Which format a datagram claims to be, for counting bad ones by reason."""
    if data.startswith(_ADR018_PREFIX):
        return "adr018"
    if data.startswith(_ESPECTRE_PREFIX):
        return "espectre"
    if _LINE_TAG_BYTES in data:
        return "csi_data"
    return "unrecognized"


@dataclass(slots=True)
class UdpStats:
    datagrams: int = 0
    frames: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, str], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_datagram(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors and the like: the socket stays usable, so note it and keep listening.
        log.warning("udp csi listener: %s", exc)


class UdpSource:
    """Listens on ``host:port`` for ESP32 CSI datagrams while ``frames()`` is iterated.

    Datagrams are parsed in the protocol callback: one is a few hundred bytes and takes tens of
    microseconds, less than handing it to a thread would. ``local_address`` is the bound address once
    ``ready`` is set (useful with port 0).
    """

    def __init__(
        self,
        *,
        name: str = "esp32-udp",
        host: str = DEFAULT_UDP_HOST,
        port: int = DEFAULT_UDP_PORT,
        links: Mapping[str, str] | None = None,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
    ) -> None:
        self._name = name
        self.host = host
        self.port = port
        self._links = {k.lower(): v for k, v in (links or {}).items()}
        self._queue_frames = queue_frames
        self._queue = BoundedFrameQueue(queue_frames)
        self.stats = UdpStats()
        self.ready = asyncio.Event()
        self.local_address: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SourceKind:
        return "esp32"

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def link_for(self, frame: CsiFrame, sender: str) -> str:
        """The link id of a frame from ``sender`` (see the module docstring for the order)."""
        node = frame.meta.get("node_id")
        mac = frame.meta.get("mac")
        for key in (node, sender, mac):
            if key is not None and (link := self._links.get(str(key).lower())) is not None:
                return link
        return f"{LINK_PREFIX}-{node}" if node is not None else f"{LINK_PREFIX}-{sender}"

    def _on_datagram(self, data: bytes, sender: str) -> None:
        self.stats.datagrams += 1
        try:
            frame = parse_datagram(data, link_prefix=LINK_PREFIX)
        except CsiFormatError as exc:
            self.stats.bad[datagram_kind(data)] += 1
            self.stats.last_error = f"{sender}: {exc}"
            log.debug("bad csi datagram from %s: %s", sender, exc)
            return
        except Exception as exc:
            # A bug in a parser: counted and logged like bad input, and the listener goes on.
            self.stats.bad[datagram_kind(data)] += 1
            self.stats.last_error = f"{sender}: parser failed: {type(exc).__name__}: {exc}"
            log.exception("csi datagram parser failed on a datagram from %s", sender)
            return
        self.stats.frames += 1
        self._queue.put(dataclasses.replace(frame, link=self.link_for(frame, sender), host_ts=time.time()))

    async def frames(self) -> AsyncIterator[CsiFrame]:
        loop = asyncio.get_running_loop()
        self._queue = BoundedFrameQueue(self._queue_frames)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self._on_datagram), local_addr=(self.host, self.port)
        )
        sockname = transport.get_extra_info("sockname")
        self.local_address = (str(sockname[0]), int(sockname[1]))
        log.info("listening for esp32 csi datagrams on udp %s:%d", *self.local_address)
        self.ready.set()
        try:
            while True:
                yield await self._queue.get()
        finally:
            self.ready.clear()
            transport.close()
