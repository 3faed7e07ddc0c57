"""Fixtures for ``invispose-node`` tests: a fake node behind esptool (no ESP32 can run here), partition
tables built from ESP-IDF's documented format, and pseudo-terminals standing in for serial ports."""

from __future__ import annotations

import hashlib
import io
import os
import pty
import struct
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from firmware_tools import cli, device
from tests.firmware_tools.fake_loader import Recorder, blank_flash, fake_loader_class


def partition_table(*entries: tuple[str, int, int, int, int]) -> bytes:
    """ESP-IDF's binary partition table (label, type, subtype, offset, size), with its MD5 entry."""
    table = b"".join(
        struct.pack("<HBBII16sI", 0x50AA, ptype, subtype, offset, size, label.encode(), 0)
        for label, ptype, subtype, offset, size in entries
    )
    table += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(table).digest()
    return table + b"\xff" * (0xC00 - len(table))


# ESP-IDF's "Single factory app, no OTA" default layout.
DEFAULT_TABLE = partition_table(
    ("nvs", 1, 2, 0x9000, 0x6000), ("phy_init", 1, 1, 0xF000, 0x1000), ("factory", 0, 0, 0x10000, 0x100000)
)


@dataclass
class FakeNode:
    flash: bytearray
    recorder: Recorder
    chip: str
    fail_at_block: int | None = None

    def put(self, offset: int, data: bytes) -> None:
        self.flash[offset : offset + len(data)] = data


@pytest.fixture
def fake_node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    """An esp32s3 with ESP-IDF's default partition table and empty NVS, reached through esptool."""
    node = FakeNode(blank_flash(), Recorder(), "esp32s3")
    node.put(0x8000, DEFAULT_TABLE)

    def connect(port: str, chip: str, baud: int) -> object:
        node.recorder.calls.append(("connect", (port, chip, baud)))
        return fake_loader_class(node.chip)(node.flash, node.recorder, node.fail_at_block)

    monkeypatch.setattr(device, "connect_loader", connect)
    return node


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@dataclass
class Pty:
    """The device side of a pseudo-terminal; ``path`` is what the tool opens as its serial port."""

    fd: int
    path: str

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read(self, n: int = 4096) -> bytes:
        return os.read(self.fd, n)


@pytest.fixture
def serial_pty() -> Iterator[Pty]:
    device_fd, tool_fd = pty.openpty()
    tty.setraw(device_fd)
    tty.setraw(tool_fd)
    attrs = termios.tcgetattr(device_fd)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(device_fd, termios.TCSANOW, attrs)
    path = os.ttyname(tool_fd)
    try:
        yield Pty(device_fd, path)
    finally:
        os.close(device_fd)
        os.close(tool_fd)
