"""``AtherosTcpSource``: Atheros CSI Tool routers stream ``recv_csi`` output to the appliance over TCP.

The appliance listens (default port 5567); each router connects and sends the raw ``recv_csi`` log. Router
side, on OpenWrt with the Atheros CSI Tool installed::

    recv_csi /proc/self/fd/3 3>&1 >/dev/null | nc BOX 5567

``recv_csi`` takes exactly one argument, the file it ``fopen``\\s and ``fwrite``\\s records to, and prints a
"Recv Nth msg" text line per packet on its standard output. So the log must not go to stdout: the line
above hands it file descriptor 3 (a copy of the pipe to ``nc``) and sends the text to ``/dev/null``.
Where ``/proc`` is missing, a FIFO does the same: ``mkfifo /tmp/csi; nc BOX 5567 </tmp/csi &
recv_csi /tmp/csi >/dev/null``. ``recv_csi`` writes through stdio, so records leave the router in
buffer-sized (4 KiB) batches: a few ms late at hundreds of packets per second.

Each connection gets its own ``AtherosStreamParser``: records are length-framed, the byte order
(big-endian on MIPS routers) is found per stream, and a damaged record costs only itself. Should the
parser itself fail (a bug), the bytes it held are dropped, the failure is logged and counted, and the
stream goes on with a fresh parser: the router stays connected. The link id is
``links[<router ip>]`` or ``atheros-<router ip>``. An optional ``on_link_change(link, connected)`` is
awaited when a router connects and when it goes away; the pipeline's ``router.connected`` and
``router.disconnected`` events come from frames and silence, the same for every source.

At most ``max_connections`` streams are open at once: a connection beyond that is closed as soon as it
is accepted (counted in ``stats.refused`` and logged), so a misbehaving or hostile sender cannot make
the appliance hold a parser and buffers per connection without bound. Open streams are not affected, and
a slot frees when one of them ends.

Parsing runs on the event loop: records are decoded in vectorized batches per read, well under a
millisecond for the 64 KiB a read returns at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from appliance.contracts import SourceKind
from appliance.csi.formats.atheros import AtherosStreamParser
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.frame import CsiFrame
from appliance.csi.sources.queue import BoundedFrameQueue

log = logging.getLogger(__name__)

DEFAULT_TCP_HOST: Final = "0.0.0.0"
DEFAULT_TCP_PORT: Final = 5567
READ_BYTES: Final = 64 * 2**10
# Ten seconds of three routers at ~500 packets/s.
DEFAULT_QUEUE_FRAMES: Final = 16384
# A few routers per room; the cap only stops runaway or hostile senders.
DEFAULT_MAX_CONNECTIONS: Final = 16
LINK_PREFIX: Final = "atheros"

LinkChangeCallback = Callable[[str, bool], Awaitable[None]]


@dataclass(slots=True)
class TcpStats:
    connections: int = 0
    bytes: int = 0
    frames: int = 0
    bad_records: int = 0
    refused: int = 0  # connections closed at once because max_connections were already open
    last_error: str | None = None


class AtherosTcpSource:
    """TCP server for ``recv_csi`` streams, running while ``frames()`` is iterated.

    ``local_address`` is the bound address once ``ready`` is set (useful with port 0); ``connected_links``
    counts the open connections per link. A connection arriving while ``max_connections`` are open is
    closed at once and counted in ``stats.refused``.
    """

    def __init__(
        self,
        *,
        name: str = "atheros-tcp",
        host: str = DEFAULT_TCP_HOST,
        port: int = DEFAULT_TCP_PORT,
        links: Mapping[str, str] | None = None,
        on_link_change: LinkChangeCallback | None = None,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self._name = name
        self.host = host
        self.port = port
        self._links = dict(links or {})
        self.on_link_change = on_link_change
        self._queue_frames = queue_frames
        self._queue = BoundedFrameQueue(queue_frames)
        self.max_connections = max_connections
        self._connections: set[asyncio.Task[None]] = set()
        self.connected_links: dict[str, int] = {}
        self.stats = TcpStats()
        self.ready = asyncio.Event()
        self.local_address: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SourceKind:
        return "atheros"

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def open_connections(self) -> int:
        return sum(self.connected_links.values())

    def link_for(self, peer_ip: str) -> str:
        return self._links.get(peer_ip, f"{LINK_PREFIX}-{peer_ip}")

    async def frames(self) -> AsyncIterator[CsiFrame]:
        self._queue = BoundedFrameQueue(self._queue_frames)
        server = await asyncio.start_server(self._serve, self.host, self.port)
        sockname = server.sockets[0].getsockname()
        self.local_address = (str(sockname[0]), int(sockname[1]))
        log.info("listening for atheros recv_csi streams on tcp %s:%d", *self.local_address)
        self.ready.set()
        try:
            while True:
                yield await self._queue.get()
        finally:
            self.ready.clear()
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername")[0])
        if self.open_connections >= self.max_connections:
            await self._refuse(writer, peer)
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        link = self.link_for(peer)
        parser = AtherosStreamParser(link)
        self.stats.connections += 1
        self.connected_links[link] = self.connected_links.get(link, 0) + 1
        log.info("router %s connected as link %s", peer, link)
        try:
            await self._report(link, connected=True)
            while chunk := await reader.read(READ_BYTES):
                self.stats.bytes += len(chunk)
                try:
                    items = parser.feed_items(chunk)
                except Exception as exc:
                    # A bug in the parser must cost the bytes it held, not the router's stream.
                    self.stats.bad_records += 1
                    self.stats.last_error = f"{link}: parser failed: {type(exc).__name__}: {exc}"
                    log.exception("atheros parser failed on %s; dropping its buffer", link)
                    parser = AtherosStreamParser(link, endian=parser.endian)
                    continue
                self._take(items, parser)
            self._take(parser.close(), parser)
        except ConnectionError as exc:
            self.stats.last_error = f"{peer}: {exc}"
            log.warning("router %s (%s): connection lost: %s", peer, link, exc)
        finally:
            # First: an await below may be cancelled, and the connection's slot must free anyway.
            remaining = self.connected_links.pop(link, 1) - 1
            if remaining:
                self.connected_links[link] = remaining
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            log.info("router %s (%s) disconnected", peer, link)
            if task is not None:
                self._connections.discard(task)
            await self._report(link, connected=False)

    async def _refuse(self, writer: asyncio.StreamWriter, peer: str) -> None:
        self.stats.refused += 1
        log.warning(
            "%s: refused tcp connection from %s: %d connections already open (max_connections); "
            "raise sources[].max_connections or stop the extra sender",
            self._name,
            peer,
            self.open_connections,
        )
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def _take(self, items: list[CsiFrame | CsiFormatError], parser: AtherosStreamParser) -> None:
        # The parser also keeps every error in ``errors``; on a stream that runs for weeks that list
        # must not grow, and the counts here already say what it would.
        parser.errors.clear()
        now = time.time()  # every frame of one read arrived together
        for item in items:
            if isinstance(item, CsiFormatError):
                self.stats.bad_records += 1
                self.stats.last_error = f"{parser.link}: {item}"
                log.debug("bad atheros record on %s: %s", parser.link, item)
            else:
                self.stats.frames += 1
                self._queue.put(dataclasses.replace(item, host_ts=now))

    async def _report(self, link: str, *, connected: bool) -> None:
        if self.on_link_change is None:
            return
        try:
            await self.on_link_change(link, connected)
        except Exception:
            # A failing listener must not take the router's stream down with it.
            log.exception("on_link_change(%s, %s) failed", link, connected)
