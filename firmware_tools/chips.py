"""Espressif chips: names, where their bootloader goes, which ones give CSI, and USB ids that hint at them.

Chip facts (bootloader offset, image chip id) come from esptool's own chip definitions, so a new esptool
knows new chips without a change here. The USB table only guesses: a USB-UART bridge (CP210x, CH340,
FTDI) can sit in front of any chip, so those ports say "bridge" and ``ports --detect`` asks the chip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from esptool.targets import CHIP_DEFS

AUTO: Final = "auto"
# Chips whose Wi-Fi radio reports CSI (esp-csi's list); the others flash fine but sense nothing.
CSI_CHIPS: Final = frozenset({"esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c5", "esp32c6", "esp32c61"})
# Where an application goes when the device has no partition table to say so (ESP-IDF's default layout).
DEFAULT_APP_OFFSET: Final = 0x10000


class UnknownChipError(ValueError):
    """A chip name esptool does not know."""


def chip_names() -> list[str]:
    return sorted(CHIP_DEFS)


def check_chip(name: str) -> str:
    """``name`` in esptool's spelling (``esp32s3``), or ``auto``; ``UnknownChipError`` otherwise."""
    spelled = name.lower().replace("-", "")
    if spelled == AUTO or spelled in CHIP_DEFS:
        return spelled
    raise UnknownChipError(
        f"unknown chip {name!r}; known: {AUTO}, {', '.join(chip_names())} (esptool's names, e.g. esp32s3)"
    )


def bootloader_offset(chip: str) -> int:
    offset: int = CHIP_DEFS[check_chip(chip)].BOOTLOADER_FLASH_OFFSET
    return offset


def chip_for_image_id(image_chip_id: int) -> str | None:
    """The chip an application image was built for, from the chip id in its extended header."""
    for name, rom in CHIP_DEFS.items():
        if getattr(rom, "IMAGE_CHIP_ID", None) == image_chip_id:
            return str(name)
    return None


def esptool_name(chip_display_name: str) -> str:
    """``ESP32-S3`` (esptool's ``CHIP_NAME``) -> ``esp32s3``."""
    return chip_display_name.lower().replace("-", "")


@dataclass(frozen=True, slots=True)
class UsbHint:
    what: str
    chips: str


# (vendor id, product id) -> what the USB device is. Espressif's own ids name the chip family.
USB_HINTS: Final[dict[tuple[int, int], UsbHint]] = {
    (0x303A, 0x1001): UsbHint("Espressif USB Serial/JTAG (in the chip)", "esp32s3, c3, c5, c6"),
    (0x303A, 0x0002): UsbHint("Espressif USB OTG (TinyUSB CDC)", "esp32s2, esp32s3"),
    (0x10C4, 0xEA60): UsbHint("Silicon Labs CP210x USB-UART bridge", "any; classic esp32 DevKitC boards"),
    (0x1A86, 0x7523): UsbHint("WCH CH340 USB-UART bridge", "any; many esp32 boards"),
    (0x1A86, 0x55D4): UsbHint("WCH CH9102 USB-UART bridge", "any; newer esp32 DevKits"),
    (0x1A86, 0x55D3): UsbHint("WCH CH343 USB-UART bridge", "any"),
    (0x0403, 0x6001): UsbHint("FTDI FT232 USB-UART bridge", "any"),
    (0x0403, 0x6010): UsbHint("FTDI FT2232 (ESP-Prog, ESP-WROVER-KIT)", "esp32 with JTAG"),
    (0x0403, 0x6014): UsbHint("FTDI FT232H USB-UART bridge", "any"),
}  # fmt: skip


def usb_hint(vid: int | None, pid: int | None) -> UsbHint | None:
    if vid is None or pid is None:
        return None
    return USB_HINTS.get((vid, pid))
