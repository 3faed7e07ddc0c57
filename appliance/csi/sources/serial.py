"""``SerialSource``: an ESP32 running Espressif's esp-csi (or a compatible firmware) on a serial port.

The node prints one ``CSI_DATA`` line per packet among its ordinary log lines. The port is opened with
pyserial's ``serial_for_url``, so a USB device (``/dev/ttyUSB0``, better its stable
``/dev/serial/by-id/...`` name), a serial-over-TCP bridge (``socket://host:port``, ``rfc2217://...``)
and a pseudo-terminal all work. 921600 baud is esp-csi's console speed; slower links cannot carry a
hundred 128-subcarrier lines per second.

Serial I/O blocks, so the port is read and its lines parsed in a dedicated thread; frames reach the event
loop through ``call_soon_threadsafe`` into a queue that drops its oldest frame when full. When the device
disappears (USB unplugged, node reset) the thread closes the port and tries again with exponential backoff
until it is back, for as long as ``frames()`` is iterated.

A line that does not parse is counted and skipped; so is one on which the parser itself fails (logged
with its traceback), so that a parser bug costs a line and not the port.

Link ids: ``link`` names every frame of this port (the port is one receiving node); without it,
``mac_links`` maps the line's ``mac`` (the transmitter the node measured) to a link id, and otherwise the
link is ``esp32-<mac without colons>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import serial

from appliance.contracts import SourceKind
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import LINE_TAG, parse_csi_line
from appliance.csi.frame import CsiFrame
from appliance.csi.sources.queue import BoundedFrameQueue

log = logging.getLogger(__name__)

DEFAULT_BAUDRATE: Final = 921600
# The reader thread checks for shutdown at least this often (it is the port's read timeout).
READ_TIMEOUT_S: Final = 0.2
RECONNECT_MIN_S: Final = 0.5
RECONNECT_MAX_S: Final = 10.0
# The longest CSI_DATA line (esp-radar, 30 columns, 384 values) is under 3 KiB; more without a newline is
# line noise (wrong baud rate) and is dropped rather than buffered forever.
MAX_LINE_BYTES: Final = 64 * 2**10
DEFAULT_QUEUE_FRAMES: Final = 4096
LINK_PREFIX: Final = "esp32"
_LINE_TAG_BYTES: Final = LINE_TAG.encode()


@dataclass(slots=True)
class SerialStats:
    lines: int = 0
    log_lines: int = 0
    frames: int = 0
    bad_lines: int = 0
    connects: int = 0
    disconnects: int = 0
    open_failures: int = 0
    connected: bool = False
    last_error: str | None = None


class SerialSource:
    """Reads ``CSI_DATA`` lines from one serial port while ``frames()`` is iterated."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        baudrate: int = DEFAULT_BAUDRATE,
        link: str | None = None,
        mac_links: Mapping[str, str] | None = None,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
    ) -> None:
        self.url = url
        self._name = name or f"esp32-serial:{url}"
        self.baudrate = baudrate
        self.link = link
        self._mac_links = {k.lower(): v for k, v in (mac_links or {}).items()}
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._queue_frames = queue_frames
        self._queue = BoundedFrameQueue(queue_frames)
        self.stats = SerialStats()
        self._line_no = 0  # lines since the port was opened, for error messages

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SourceKind:
        return "esp32"

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def link_for(self, mac: str) -> str:
        if self.link is not None:
            return self.link
        mac = mac.lower()
        return self._mac_links.get(mac) or f"{LINK_PREFIX}-{mac.replace(':', '')}"

    async def frames(self) -> AsyncIterator[CsiFrame]:
        loop = asyncio.get_running_loop()
        queue = self._queue = BoundedFrameQueue(self._queue_frames)
        stop = threading.Event()

        def deliver(frame: CsiFrame) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put, frame)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                return False
            return True

        failed: asyncio.Future[None] = loop.create_future()

        def read() -> None:
            try:
                self._run(deliver, stop)
            except Exception as exc:  # an unexpected bug must surface as the source's error, not hang it
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(failed.set_exception, exc)

        thread = threading.Thread(target=read, name=f"serial-csi:{self.url}", daemon=True)
        thread.start()
        try:
            while True:
                getting: asyncio.Future[CsiFrame] = asyncio.ensure_future(queue.get())
                waiting: set[asyncio.Future[Any]] = {getting, failed}
                try:
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    getting.cancel()  # or it is left pending when the loop closes
                    raise
                if not getting.done():
                    getting.cancel()
                    failed.result()
                yield getting.result()
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)

    # --- reader thread -------------------------------------------------------------------------------

    def _run(self, deliver: Callable[[CsiFrame], bool], stop: threading.Event) -> None:
        """Open, read until the device goes away, wait, open again; until ``stop`` is set."""
        backoff = self.reconnect_min_s
        while not stop.is_set():
            try:
                port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=READ_TIMEOUT_S)
            except (serial.SerialException, OSError, ValueError) as exc:
                self.stats.open_failures += 1
                self.stats.last_error = str(exc)
                log.debug("cannot open %s (retry in %.1f s): %s", self.url, backoff, exc)
            else:
                backoff = self.reconnect_min_s
                self.stats.connects += 1
                self.stats.connected = True
                log.info("serial csi port %s open at %d baud", self.url, self.baudrate)
                try:
                    with port:
                        if not self._read(port, deliver, stop):
                            return
                except (serial.SerialException, OSError) as exc:
                    self.stats.disconnects += 1
                    self.stats.last_error = str(exc)
                    log.warning("serial csi port %s lost: %s", self.url, exc)
                finally:
                    self.stats.connected = False
            stop.wait(backoff)
            backoff = min(backoff * 2, self.reconnect_max_s)

    def _read(self, port: serial.Serial, deliver: Callable[[CsiFrame], bool], stop: threading.Event) -> bool:
        """Read lines until ``stop``; False when frames can no longer be delivered."""
        pending = bytearray()
        self._line_no = 0
        while not stop.is_set():
            chunk = port.read(max(1, port.in_waiting))
            if not chunk:
                continue
            pending += chunk
            *lines, rest = pending.split(b"\n")
            pending = bytearray(rest)
            if len(pending) > MAX_LINE_BYTES:
                self.stats.bad_lines += 1
                pending.clear()
            for line in lines:
                frame = self._parse(line)
                if frame is not None and not deliver(frame):
                    return False
        return True

    def _parse(self, raw: bytes | bytearray) -> CsiFrame | None:
        self.stats.lines += 1
        self._line_no += 1
        if _LINE_TAG_BYTES not in raw:
            self.stats.log_lines += 1
            return None
        text = raw.decode("utf-8", errors="replace").strip()
        try:
            frame = parse_csi_line(text, link=self.link or LINK_PREFIX, line_no=self._line_no)
        except CsiFormatError as exc:
            self.stats.bad_lines += 1
            self.stats.last_error = str(exc)
            log.debug("bad CSI_DATA line on %s: %s", self.url, exc)
            return None
        except Exception as exc:
            # A bug in the parser must cost this line, not the reader thread and with it the port.
            self.stats.bad_lines += 1
            self.stats.last_error = f"line {self._line_no}: parser failed: {type(exc).__name__}: {exc}"
            log.exception("CSI_DATA parser failed on %s, line %d", self.url, self._line_no)
            return None
        self.stats.frames += 1
        return dataclasses.replace(frame, link=self.link_for(str(frame.meta["mac"])), host_ts=time.time())
