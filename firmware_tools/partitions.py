"""ESP-IDF binary partition tables: the 32-byte entries at 0x8000 that say where NVS and the app live.

Entry layout (ESP-IDF ``gen_esp32part.py``): u16 magic 0x50AA, u8 type, u8 subtype, u32 offset, u32 size,
16-byte NUL-padded label, u32 flags (bit 0: encrypted), all little-endian. An entry starting 0xEBEB holds
the MD5 of every entry before it; the table ends at the first all-0xFF entry.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Final

ENTRY = struct.Struct("<HBBII16sI")
ENTRY_MAGIC: Final = 0x50AA
MD5_MAGIC: Final = b"\xeb\xeb"
TYPE_APP, TYPE_DATA = 0x00, 0x01
SUBTYPE_FACTORY, SUBTYPE_OTA_0 = 0x00, 0x10
SUBTYPE_NVS: Final = 0x02
FLAG_ENCRYPTED: Final = 1


class PartitionTableError(ValueError):
    """The bytes are not a usable partition table, or the table lacks what is needed."""


@dataclass(frozen=True, slots=True)
class Partition:
    label: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & FLAG_ENCRYPTED)

    def describe(self) -> str:
        return f"{self.label!r} at {self.offset:#x}, {self.size:#x} bytes"


def parse_partition_table(data: bytes, *, offset: int = 0x8000) -> list[Partition]:
    """The partitions in ``data`` (read from flash at ``offset``, which only appears in messages)."""
    partitions: list[Partition] = []
    for start in range(0, len(data) - ENTRY.size + 1, ENTRY.size):
        raw = data[start : start + ENTRY.size]
        if raw == b"\xff" * ENTRY.size:
            break
        if raw[:2] == MD5_MAGIC:
            if hashlib.md5(data[:start]).digest() != raw[16:32]:
                raise PartitionTableError(
                    f"the partition table at {offset:#x} fails its MD5 check: it is damaged; flash the "
                    "firmware again (invispose-node flash) to restore it"
                )
            continue
        magic, ptype, subtype, p_offset, size, label, flags = ENTRY.unpack(raw)
        if magic != ENTRY_MAGIC:
            what = "no partition table" if not partitions else "a damaged partition table"
            raise PartitionTableError(
                f"flash at {offset + start:#x} holds {what} (entry magic {magic:#06x}, expected "
                f"{ENTRY_MAGIC:#06x}); is the firmware flashed, and is the table at {offset:#x} "
                "(--partition-table-offset)?"
            )
        name = label.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
        partitions.append(Partition(name, ptype, subtype, p_offset, size, flags))
    if not partitions:
        raise PartitionTableError(f"the partition table at {offset:#x} is empty: flash the firmware first")
    return partitions


def find_nvs(partitions: list[Partition]) -> Partition:
    """The NVS partition ``nvs_flash_init()`` uses: the one labelled ``nvs``, else the first."""
    candidates = [p for p in partitions if p.type == TYPE_DATA and p.subtype == SUBTYPE_NVS]
    if not candidates:
        listed = ", ".join(p.label for p in partitions)
        raise PartitionTableError(
            f"the partition table has no NVS partition (type data, subtype nvs); it lists: {listed}. "
            "This firmware keeps no settings in NVS: provision it another way (--improv, or its own tool)."
        )
    chosen = next((p for p in candidates if p.label == "nvs"), candidates[0])
    if chosen.encrypted:
        raise PartitionTableError(
            f"NVS partition {chosen.describe()} is flagged encrypted; encrypted NVS is not supported"
        )
    return chosen


def find_app(partitions: list[Partition]) -> Partition | None:
    """Where the bootloader starts an app from: the factory partition, else ota_0."""
    apps = [p for p in partitions if p.type == TYPE_APP]
    for subtype in (SUBTYPE_FACTORY, SUBTYPE_OTA_0):
        for p in apps:
            if p.subtype == subtype:
                return p
    return None
