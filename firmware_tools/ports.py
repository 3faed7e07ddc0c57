"""``ports``: the serial ports on this computer, with what their USB ids say about the chip behind them.

``--detect`` also asks each port's chip through esptool (which resets the board into its bootloader and
back), so it is only done when asked.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from serial.tools import list_ports

from firmware_tools.chips import usb_hint
from firmware_tools.device import Device, DeviceError


@dataclass(slots=True)
class PortInfo:
    device: str
    description: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    usb: str | None
    chips: str | None
    detected: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "device": self.device,
            "description": self.description,
            "usb_id": f"{self.vid:04x}:{self.pid:04x}"
            if self.vid is not None and self.pid is not None
            else None,
            "serial_number": self.serial_number,
            "usb": self.usb,
            "chip_guess": self.chips,
            "detected_chip": self.detected,
        }


def describe(port: Any) -> PortInfo:
    """A ``serial.tools.list_ports`` entry, with its USB hint."""
    hint = usb_hint(port.vid, port.pid)
    return PortInfo(
        device=port.device,
        description=port.description or "",
        vid=port.vid,
        pid=port.pid,
        serial_number=port.serial_number,
        usb=hint.what if hint else None,
        chips=hint.chips if hint else None,
    )


def list_serial_ports(*, detect: bool = False) -> list[PortInfo]:
    ports = [describe(p) for p in sorted(list_ports.comports(), key=lambda p: p.device)]
    if detect:
        for info in (p for p in ports if p.vid is not None):  # USB only: each probe takes seconds
            with contextlib.suppress(DeviceError), Device.open(info.device) as device:
                info.detected = device.chip
    return ports
