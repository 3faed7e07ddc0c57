"""Write a node's settings into its NVS partition: read the partition table and NVS from the node, put our
keys in, keep everything else, write the partition back (or save the image for the user's own tools).

Every check that can fail runs before anything is written, so a refused provisioning leaves the node (and
``--output``) untouched.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from firmware_tools.device import PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE, Device
from firmware_tools.keysets import KeySet, SettingsError
from firmware_tools.nvs import VERSION_2, NvsEntry, build_nvs, merge, read_nvs
from firmware_tools.partitions import Partition, find_nvs, parse_partition_table

# ESP-IDF's default partition table gives NVS 24 KiB at 0x9000; used for --output without a node.
DEFAULT_NVS_OFFSET: Final = 0x9000
DEFAULT_NVS_SIZE: Final = 0x6000


@dataclass(slots=True)
class ProvisionResult:
    key_set: str
    written: list[NvsEntry]
    kept: int
    nvs_offset: int
    nvs_size: int
    destination: str
    skipped: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "firmware_keys": self.key_set,
            "written": [
                {
                    "namespace": e.namespace,
                    "key": e.key,
                    "type": e.type,
                    "value": "***" if e.key in ("password",) else _jsonable(e.value),
                }
                for e in self.written
            ],
            "kept_entries": self.kept,
            "nvs_offset": self.nvs_offset,
            "nvs_size": self.nvs_size,
            "destination": self.destination,
            "skipped_damaged": self.skipped,
        }


def _jsonable(value: int | str | bytes) -> int | str:
    return value.hex() if isinstance(value, bytes) else value


def write_file_atomically(path: Path, data: bytes) -> None:
    """``path`` holds all of ``data`` or is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_keep_wifi(keys: KeySet, existing: list[NvsEntry]) -> None:
    present = {e.key for e in existing if e.namespace == keys.namespace}
    missing = [k for k in keys.wifi_keys if k not in present]
    if missing:
        raise SettingsError(
            f"--keep-wifi: the node has no {', '.join(missing)} in NVS namespace {keys.namespace!r}; "
            "give --ssid and --password"
        )


def provision_node(
    device: Device,
    keys: KeySet,
    entries: list[NvsEntry],
    *,
    keep_wifi: bool,
    table_offset: int = PARTITION_TABLE_OFFSET,
    output: Path | None = None,
) -> ProvisionResult:
    """Merge ``entries`` into the node's NVS; write it back and reset the node, or save it to ``output``."""
    table = parse_partition_table(device.read(table_offset, PARTITION_TABLE_SIZE), offset=table_offset)
    partition: Partition = find_nvs(table)
    current = read_nvs(device.read(partition.offset, partition.size))
    if keep_wifi:
        _check_keep_wifi(keys, current.entries)
    image = build_nvs(merge(current.entries, entries), partition.size, version=current.version)
    ours = {e.ref for e in entries}
    kept = sum(1 for e in current.entries if e.ref not in ours)
    if output is not None:
        write_file_atomically(output, image)
        destination = str(output)
    else:
        device.write([(partition.offset, image)])
        device.reset()
        destination = f"{device.port} ({device.chip}), partition {partition.describe()}"
    return ProvisionResult(
        keys.name, entries, kept, partition.offset, partition.size, destination, current.skipped
    )


def provision_file(
    keys: KeySet, entries: list[NvsEntry], output: Path, *, size: int = DEFAULT_NVS_SIZE
) -> ProvisionResult:
    """A fresh NVS image holding only ``entries``, for flashing with other tools at the NVS offset."""
    image = build_nvs(entries, size, version=VERSION_2)
    write_file_atomically(output, image)
    return ProvisionResult(keys.name, entries, 0, DEFAULT_NVS_OFFSET, size, str(output))
