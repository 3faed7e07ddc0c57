"""What to write where: an application binary, a merged image, or an ESP-IDF build folder; then write it.

- An ESP-IDF build folder has ``flasher_args.json`` (``flash_files``: offset -> file, and the target chip
  in ``extra_esptool_args.chip``); each file goes to its offset.
- A merged image (``esptool merge-bin``, or ``idf.py merge-bin``) starts at flash offset 0 and holds the
  bootloader at the chip's bootloader offset and a partition table at 0x8000; it goes to 0.
- An application binary (an ESP image whose first byte is 0xE9, with no partition table at 0x8000) goes
  where the node's partition table puts the factory (else ota_0) app, or at 0x10000 if the node has none.

ESP images name the chip they were built for (the chip id in the extended header), so a firmware for one
chip is refused on another before anything is written.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from firmware_tools.chips import DEFAULT_APP_OFFSET, bootloader_offset, check_chip, chip_for_image_id
from firmware_tools.device import PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE, Device
from firmware_tools.partitions import ENTRY_MAGIC, PartitionTableError, find_app, parse_partition_table

IMAGE_MAGIC: Final = 0xE9
_CHIP_ID_OFFSET: Final = 12  # u16 in the extended header that follows the 8-byte image header
_BOOTLOADER_OFFSETS: Final = (0x0, 0x1000, 0x2000)
FLASHER_ARGS: Final = "flasher_args.json"


class FirmwareError(ValueError):
    """The firmware cannot be flashed as given; says why and what to give instead."""


@dataclass(frozen=True, slots=True)
class Region:
    offset: int | None  # None: the node's app partition, found when flashing
    data: bytes
    name: str


@dataclass(frozen=True, slots=True)
class Firmware:
    kind: str  # "idf-build", "merged" or "app"
    chip: str | None  # the chip it was built for, when it says
    regions: tuple[Region, ...]


def _image_chip(data: bytes, where: str) -> str | None:
    if len(data) < _CHIP_ID_OFFSET + 2 or data[0] != IMAGE_MAGIC:
        return None
    (chip_id,) = struct.unpack_from("<H", data, _CHIP_ID_OFFSET)
    chip = chip_for_image_id(chip_id)
    if chip is None:
        raise FirmwareError(f"{where}: image chip id {chip_id} is unknown to this esptool")
    return chip


def _has_partition_table(data: bytes) -> bool:
    return len(data) >= PARTITION_TABLE_OFFSET + 2 and (
        struct.unpack_from("<H", data, PARTITION_TABLE_OFFSET)[0] == ENTRY_MAGIC
    )


def _load_build_folder(folder: Path) -> Firmware:
    args_path = folder / FLASHER_ARGS
    if not args_path.is_file():
        raise FirmwareError(
            f"{folder} is a folder without {FLASHER_ARGS}: give an ESP-IDF build folder (after 'idf.py "
            "build'), a merged image, or an app .bin"
        )
    try:
        args = json.loads(args_path.read_text())
        files: dict[str, str] = args["flash_files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FirmwareError(f"{args_path}: not ESP-IDF's flasher_args.json ({exc})") from exc
    chip_name = args.get("extra_esptool_args", {}).get("chip")
    chip = check_chip(chip_name) if isinstance(chip_name, str) else None
    regions = []
    missing = []
    for offset_text, name in sorted(files.items(), key=lambda item: int(item[0], 0)):
        path = folder / name
        if not path.is_file():
            missing.append(name)
            continue
        regions.append(Region(int(offset_text, 0), path.read_bytes(), name))
    if missing:
        raise FirmwareError(f"{args_path} names files that are not there: {', '.join(missing)}; build again")
    return Firmware("idf-build", chip, tuple(regions))


def load_firmware(path: Path) -> Firmware:
    """Read ``path`` (file or build folder) and say what goes where."""
    if path.is_dir():
        return _load_build_folder(path)
    if not path.is_file():
        raise FirmwareError(f"no such firmware file or folder: {path}")
    data = path.read_bytes()
    if data[:4] == b"\x7fELF":
        raise FirmwareError(
            f"{path} is an ELF file: flash the .bin next to it, or give the whole build folder"
        )
    if _has_partition_table(data):
        for offset in _BOOTLOADER_OFFSETS:
            chip = _image_chip(data[offset:], f"{path} at {offset:#x}")
            if chip is not None and bootloader_offset(chip) == offset:
                return Firmware("merged", chip, (Region(0, data, path.name),))
        raise FirmwareError(
            f"{path} has a partition table at 0x8000 but no bootloader where its chip needs one"
        )
    chip = _image_chip(data, str(path))
    if chip is None:
        raise FirmwareError(
            f"{path} is not an ESP image (first byte {data[:1].hex() or 'none'}, expected e9): give an app "
            ".bin, a merged image or an ESP-IDF build folder"
        )
    return Firmware("app", chip, (Region(None, data, path.name),))


@dataclass(frozen=True, slots=True)
class FlashReport:
    port: str
    chip: str
    kind: str
    regions: list[tuple[int, int, str]]  # offset, size, name

    def as_json(self) -> dict[str, object]:
        return {
            "port": self.port,
            "chip": self.chip,
            "firmware": self.kind,
            "regions": [{"offset": o, "size": s, "name": n} for o, s, n in self.regions],
            "verified": True,
            "reset": True,
        }


def _app_offset(device: Device) -> int:
    try:
        table = parse_partition_table(device.read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE))
    except PartitionTableError:
        return DEFAULT_APP_OFFSET
    app = find_app(table)
    return app.offset if app is not None else DEFAULT_APP_OFFSET


def flash_firmware(device: Device, firmware: Firmware, *, app_offset: int | None = None) -> FlashReport:
    """Write ``firmware`` (esptool checks each region's MD5 afterwards), then reset the node into it."""
    if firmware.chip is not None and firmware.chip != device.chip:
        raise FirmwareError(
            f"this firmware is built for {firmware.chip} but the board on {device.port} is a {device.chip}: "
            "build or download the firmware for this chip"
        )
    regions = []
    for region in firmware.regions:
        offset = region.offset
        if offset is None:
            offset = app_offset if app_offset is not None else _app_offset(device)
        regions.append((offset, region.data, region.name))
    device.write([(offset, data) for offset, data, _ in regions])
    device.reset()
    return FlashReport(
        device.port, device.chip, firmware.kind, [(offset, len(data), name) for offset, data, name in regions]
    )
