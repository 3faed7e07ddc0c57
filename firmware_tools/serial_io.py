"""Serial ports as the node tools use them: opened by URL, read as lines with deadlines.

``serial_for_url`` takes a device (``/dev/ttyUSB0``, better its ``/dev/serial/by-id/...`` name), a
serial-over-TCP bridge (``socket://host:port``, ``rfc2217://...``) or a pseudo-terminal alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Final

import serial

ESP_CSI_BAUD: Final = 921600  # esp-csi's console speed
READ_TIMEOUT_S: Final = 0.05
# Longest CSI_DATA line is under 3 KiB; more without a newline is noise (usually a wrong baud rate).
MAX_LINE_BYTES: Final = 64 * 2**10


class PortError(RuntimeError):
    """A serial port that cannot be opened or used; says what to check."""


def open_port(url: str, baud: int) -> serial.Serial:
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=READ_TIMEOUT_S)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortError(
            f"cannot open {url}: {exc}. Check the port ('invispose-node ports' lists them), that no other "
            "program (a serial monitor, the appliance's serial source) holds it, and on Linux that your "
            "user is in the 'dialout' group."
        ) from exc


class LineReader:
    """Reads a port into complete lines; also counts raw bytes and remembers when each chunk arrived."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self.bytes = 0
        self.overlong = 0
        self._pending = bytearray()

    def lines_until(self, deadline: float) -> Iterator[tuple[float, bytes | None]]:
        """``(arrival monotonic time, line without its newline)`` until ``deadline`` (monotonic); a line of
        None is a quiet read, so that callers can update progress while the port says nothing."""
        while time.monotonic() < deadline:
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise PortError(
                    f"{self.port.name}: the port went away ({exc}); is the board still plugged in?"
                ) from exc
            if not chunk:
                yield time.monotonic(), None
                continue
            now = time.monotonic()
            self.bytes += len(chunk)
            self._pending += chunk
            *lines, rest = self._pending.split(b"\n")
            self._pending = bytearray(rest)
            if len(self._pending) > MAX_LINE_BYTES:
                self.overlong += 1
                self._pending.clear()
            for line in lines:
                yield now, bytes(line.rstrip(b"\r"))

    @property
    def pending(self) -> bytes:
        return bytes(self._pending)
