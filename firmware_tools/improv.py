"""Improv Wi-Fi over serial (https://www.improv-wifi.com/serial/): hand Wi-Fi credentials to firmware that
speaks it, such as ESPHome-based ones (ESPectre enables ``improv_serial`` in its example configs).

A packet is ``IMPROV``, version 1, type, data length, data, and a checksum: the low byte of the sum of every
byte before it. Clients end each packet with a newline (as the reference JavaScript SDK does); devices
interleave packets with their log lines. Types: 0x01 current state, 0x02 error state, 0x03 RPC command,
0x04 RPC result. RPC data is command, length, payload; results are length-prefixed strings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import serial

from firmware_tools.serial_io import PortError, open_port

HEADER: Final = b"IMPROV"
VERSION: Final = 1
IMPROV_BAUD: Final = 115200
DEVICE_INFO_TIMEOUT_S: Final = 5.0
TYPE_CURRENT_STATE, TYPE_ERROR_STATE, TYPE_RPC, TYPE_RPC_RESULT = 0x01, 0x02, 0x03, 0x04
CMD_WIFI_SETTINGS, CMD_CURRENT_STATE, CMD_DEVICE_INFO = 0x01, 0x02, 0x03
STATE_READY, STATE_PROVISIONING, STATE_PROVISIONED = 0x02, 0x03, 0x04
STATE_NAMES: Final = {
    STATE_READY: "ready",
    STATE_PROVISIONING: "provisioning",
    STATE_PROVISIONED: "provisioned",
}
ERRORS: Final = {
    0x01: "the device found our packet invalid",
    0x02: "the device does not know the command",
    0x03: "the device could not join the network: check the SSID and password, and that it is a 2.4 GHz "
    "network the node can hear",
    0x05: "the device refused the hostname",
    0xFF: "the device reported an unknown error",
}


class ImprovError(RuntimeError):
    """The device did not complete the exchange; says what happened."""


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def packet(ptype: int, data: bytes) -> bytes:
    if len(data) > 255:
        raise ImprovError(f"an Improv packet carries at most 255 bytes of data, not {len(data)}")
    body = HEADER + bytes([VERSION, ptype, len(data)]) + data
    return body + bytes([checksum(body)]) + b"\n"


def rpc(command: int, payload: bytes = b"") -> bytes:
    return packet(TYPE_RPC, bytes([command, len(payload)]) + payload)


def wifi_settings(ssid: str, password: str) -> bytes:
    ssid_b, password_b = ssid.encode("utf-8"), password.encode("utf-8")
    return rpc(CMD_WIFI_SETTINGS, bytes([len(ssid_b)]) + ssid_b + bytes([len(password_b)]) + password_b)


def parse_strings(data: bytes) -> list[str]:
    """The strings of an RPC result's payload (after its command and length bytes)."""
    strings = []
    i = 0
    while i < len(data):
        size = data[i]
        strings.append(data[i + 1 : i + 1 + size].decode("utf-8", errors="replace"))
        i += 1 + size
    return strings


@dataclass(frozen=True, slots=True)
class Packet:
    type: int
    data: bytes


class PacketReader:
    """Finds Improv packets in a byte stream that also carries log text; drops those with a bad checksum."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_checksums = 0

    def feed(self, chunk: bytes) -> list[Packet]:
        self._buffer += chunk
        found: list[Packet] = []
        while True:
            start = self._buffer.find(HEADER)
            if start < 0:
                del self._buffer[: max(0, len(self._buffer) - len(HEADER) + 1)]
                return found
            del self._buffer[:start]
            if len(self._buffer) < 9:
                return found
            size = self._buffer[8]
            end = 9 + size + 1
            if len(self._buffer) < end:
                return found
            raw = bytes(self._buffer[:end])
            del self._buffer[:end]
            if raw[6] != VERSION or checksum(raw[:-1]) != raw[-1]:
                self.bad_checksums += 1
                continue
            found.append(Packet(raw[7], raw[9 : 9 + size]))


@dataclass(slots=True)
class ImprovResult:
    state: str
    device_info: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "device_info": self.device_info, "urls": self.urls}


class ImprovClient:
    """One Improv exchange after another over an open port."""

    def __init__(self, port: serial.Serial, *, timeout_s: float) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.reader = PacketReader()
        self.state: int | None = None

    def _send(self, raw: bytes) -> None:
        self.port.write(raw)
        self.port.flush()

    def _packets(self, deadline: float) -> Iterator[Packet]:
        while time.monotonic() < deadline:
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise PortError(f"{self.port.name}: the port went away ({exc})") from exc
            for p in self.reader.feed(chunk):
                if p.type == TYPE_CURRENT_STATE and p.data:
                    self.state = p.data[0]
                yield p

    def _result(self, command: int, timeout_s: float) -> list[str]:
        for p in self._packets(time.monotonic() + timeout_s):
            if p.type == TYPE_ERROR_STATE and p.data and p.data[0] != 0:
                raise ImprovError(ERRORS.get(p.data[0], f"the device reported error {p.data[0]:#04x}"))
            if p.type == TYPE_RPC_RESULT and len(p.data) >= 2 and p.data[0] == command:
                return parse_strings(p.data[2 : 2 + p.data[1]])
        raise ImprovError(f"no answer to Improv command {command:#04x} within {timeout_s:.0f} s")

    def current_state(self) -> int:
        """Ask for the state once a second (the device may still be booting) until it answers."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            self._send(rpc(CMD_CURRENT_STATE))
            for p in self._packets(min(deadline, time.monotonic() + 1.0)):
                if p.type == TYPE_CURRENT_STATE and self.state is not None:
                    return self.state
        raise ImprovError(
            f"no Improv answer within {self.timeout_s:.0f} s: the firmware does not speak Improv Serial on "
            f"this port (ESPHome needs 'improv_serial:' and its logger on this UART at {IMPROV_BAUD} baud)"
        )

    def device_info(self) -> list[str]:
        """Firmware name, version, chip and device name; empty if the device does not offer them."""
        self._send(rpc(CMD_DEVICE_INFO))
        try:
            return self._result(CMD_DEVICE_INFO, min(self.timeout_s, DEVICE_INFO_TIMEOUT_S))
        except ImprovError:
            return []

    def send_wifi(self, ssid: str, password: str) -> list[str]:
        """Send the credentials; the URLs the device gives once it has joined the network."""
        self._send(wifi_settings(ssid, password))
        return self._result(CMD_WIFI_SETTINGS, self.timeout_s)


def provision_wifi(port_url: str, ssid: str, password: str, *, timeout_s: float = 30.0) -> ImprovResult:
    """Send Wi-Fi credentials over Improv and wait until the device says it joined the network."""
    port = open_port(port_url, IMPROV_BAUD)
    with port:
        client = ImprovClient(port, timeout_s=timeout_s)
        client.current_state()
        info = client.device_info()
        urls = client.send_wifi(ssid, password)
        state = STATE_NAMES.get(client.state or STATE_PROVISIONED, f"{client.state:#04x}")
        return ImprovResult(state, info, urls)
