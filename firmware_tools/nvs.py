"""NVS partitions: read the key/value pairs a node holds, merge settings into them, build the new image.

Images are built by Espressif's ``esp-idf-nvs-partition-gen`` (its ``NVS`` writer, driven entry by entry
rather than through its CSV front end, which adds hard-coded Wi-Fi entries whenever it sees ``sta.ssid``).
Reading is not something that package offers, so ``read_nvs`` follows the page format of ESP-IDF's NVS
documentation: 4096-byte pages, each a 32-byte header (u32 state, u32 sequence number, u8 format version,
CRC32 of bytes 4..27), a 32-byte bitmap with two bits per entry (11 empty, 10 written, 00 erased) and 126
entries of 32 bytes (u8 namespace index, u8 type, u8 span, u8 chunk index, CRC32 of the other 28 bytes,
16-byte key, 8 bytes of data). Strings and blob chunks keep their size and data CRC in those 8 bytes and
their bytes in the ``span - 1`` entries that follow; a version-2 blob is indexed by a ``BLOB_IDX`` entry.
Namespace names are u8 entries in namespace 0 whose value is the namespace's index. The newest page
(highest sequence number) wins where a key appears twice, as it does while NVS moves a page.

``merge`` replaces the keys it is given and keeps every other key and namespace as it was: settings we do
not own (the Wi-Fi driver's calibration, another firmware's keys) survive a provisioning.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from esp_idf_nvs_partition_gen import nvs_partition_gen as gen

PAGE_BYTES: Final = 4096
ENTRY_BYTES: Final = 32
ENTRIES_PER_PAGE: Final = 126
FIRST_ENTRY: Final = 64
MAX_KEY_CHARS: Final = 15  # 16 bytes with the terminating NUL
MIN_PARTITION_BYTES: Final = 3 * PAGE_BYTES
VERSION_1, VERSION_2 = 0xFF, 0xFE

STATE_UNINITIALIZED: Final = 0xFFFFFFFF
_LIVE_STATES = {0xFFFFFFFE: "active", 0xFFFFFFFC: "full", 0xFFFFFFF8: "freeing"}
_ENTRY_WRITTEN: Final = 0b10

_PRIMITIVES: Final = {
    0x01: ("u8", "<B"), 0x11: ("i8", "<b"), 0x02: ("u16", "<H"), 0x12: ("i16", "<h"),
    0x04: ("u32", "<I"), 0x14: ("i32", "<i"), 0x08: ("u64", "<Q"), 0x18: ("i64", "<q"),
}  # fmt: skip
TYPE_SZ, TYPE_BLOB, TYPE_BLOB_DATA, TYPE_BLOB_IDX = 0x21, 0x41, 0x42, 0x48
INTEGER_TYPES: Final = {name: fmt for name, fmt in _PRIMITIVES.values()}
VALUE_TYPES: Final = (*INTEGER_TYPES, "string", "blob")

NvsValue = int | str | bytes


class NvsError(ValueError):
    """An NVS image cannot be read, or the requested settings cannot be stored; says why."""


@dataclass(frozen=True, slots=True)
class NvsEntry:
    namespace: str
    key: str
    type: str  # one of VALUE_TYPES
    value: NvsValue

    def __post_init__(self) -> None:
        check_name("namespace", self.namespace)
        check_name("key", self.key)
        if self.type in INTEGER_TYPES:
            if not isinstance(self.value, int) or isinstance(self.value, bool):
                raise NvsError(f"{self.key}: a {self.type} needs an integer, not {self.value!r}")
            low, high = integer_range(self.type)
            if not low <= self.value <= high:
                raise NvsError(f"{self.key}: {self.value} is outside {self.type}'s range {low}..{high}")
        elif self.type == "string":
            if not isinstance(self.value, str):
                raise NvsError(f"{self.key}: a string value must be text")
            if "\x00" in self.value:
                raise NvsError(f"{self.key}: a string cannot hold a NUL character")
        elif self.type == "blob":
            if not isinstance(self.value, bytes):
                raise NvsError(f"{self.key}: a blob value must be bytes")
        else:
            raise NvsError(f"{self.key}: unknown type {self.type!r}; known: {', '.join(VALUE_TYPES)}")

    @property
    def ref(self) -> tuple[str, str]:
        return self.namespace, self.key


def check_name(what: str, name: str) -> None:
    size = len(name.encode("utf-8"))
    if not 1 <= size <= MAX_KEY_CHARS:
        raise NvsError(
            f"NVS {what} {name!r} is {size} bytes long; NVS allows 1 to {MAX_KEY_CHARS} "
            "(16 with the terminating NUL)"
        )


def integer_range(type_name: str) -> tuple[int, int]:
    bits = int(type_name[1:])
    if type_name.startswith("u"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


@dataclass(slots=True)
class NvsContents:
    """What ``read_nvs`` found: entries in storage order, the page format version, and what it skipped."""

    entries: list[NvsEntry] = field(default_factory=list)
    version: int = VERSION_2
    skipped: list[str] = field(default_factory=list)

    def get(self, namespace: str, key: str) -> NvsEntry | None:
        return next((e for e in self.entries if e.ref == (namespace, key)), None)


def _crc(data: bytes) -> int:
    # ESP-IDF's crc32_le with an initial value of 0xFFFFFFFF, which zlib reproduces.
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def _entry_crc_ok(entry: bytes) -> bool:
    (stored,) = struct.unpack_from("<I", entry, 4)
    return _crc(entry[0:4] + entry[8:32]) == int(stored)


def _key(entry: bytes) -> str:
    return entry[8:24].split(b"\x00", 1)[0].decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Raw:
    """Every written item, newest last, keyed the way NVS finds them."""

    namespaces: dict[int, str] = field(default_factory=dict)
    items: dict[tuple[int, str], tuple[str, NvsValue]] = field(default_factory=dict)
    chunks: dict[tuple[int, str, int], bytes] = field(default_factory=dict)
    indexes: dict[tuple[int, str], tuple[int, int, int]] = field(default_factory=dict)


def _read_page(page: bytes, page_no: int, raw: _Raw, skipped: list[str]) -> None:
    bitmap = page[32:64]
    index = 0
    while index < ENTRIES_PER_PAGE:
        state = (bitmap[index // 4] >> ((index % 4) * 2)) & 0b11
        start = FIRST_ENTRY + index * ENTRY_BYTES
        entry = page[start : start + ENTRY_BYTES]
        if state != _ENTRY_WRITTEN:
            index += 1
            continue
        ns, etype, span = entry[0], entry[1], max(entry[2], 1)
        key = _key(entry)
        if not _entry_crc_ok(entry):
            skipped.append(f"page {page_no} entry {index} ({key!r}): bad entry CRC")
            index += 1
            continue
        data = entry[24:32]
        if etype in _PRIMITIVES:
            (value,) = struct.unpack_from(_PRIMITIVES[etype][1], data)
            if ns == 0:
                raw.namespaces[int(value)] = key
            else:
                raw.items[(ns, key)] = (_PRIMITIVES[etype][0], int(value))
        elif etype in (TYPE_SZ, TYPE_BLOB, TYPE_BLOB_DATA):
            size, _, data_crc = struct.unpack_from("<HHI", data)
            body = page[start + ENTRY_BYTES : start + ENTRY_BYTES + size]
            if len(body) != size or _crc(body) != data_crc:
                skipped.append(f"page {page_no} entry {index} ({key!r}): bad data CRC")
            elif etype == TYPE_SZ:
                text = body.split(b"\x00", 1)[0]
                try:
                    raw.items[(ns, key)] = ("string", text.decode("utf-8"))
                except UnicodeDecodeError:
                    skipped.append(f"page {page_no} entry {index} ({key!r}): string is not UTF-8")
            elif etype == TYPE_BLOB:
                raw.items[(ns, key)] = ("blob", body)
            else:
                raw.chunks[(ns, key, entry[3])] = body
        elif etype == TYPE_BLOB_IDX:
            size, count, first = struct.unpack_from("<IBB", data)
            raw.indexes[(ns, key)] = (size, count, first)
            raw.items[(ns, key)] = ("blob", b"")  # placeholder keeps storage order; filled below
        else:
            skipped.append(f"page {page_no} entry {index} ({key!r}): unknown type {etype:#04x}")
        index += span


def read_nvs(image: bytes) -> NvsContents:
    """The entries of an NVS partition image. Raises ``NvsError`` for a page header that fails its CRC."""
    if len(image) % PAGE_BYTES:
        raise NvsError(f"an NVS partition is whole 4096-byte pages; this one is {len(image)} bytes")
    pages: list[tuple[int, int, bytes]] = []
    contents = NvsContents()
    versions: set[int] = set()
    for page_no in range(len(image) // PAGE_BYTES):
        page = image[page_no * PAGE_BYTES : (page_no + 1) * PAGE_BYTES]
        state, seq = struct.unpack_from("<II", page)
        if state == STATE_UNINITIALIZED:
            continue
        if state not in _LIVE_STATES:
            contents.skipped.append(f"page {page_no}: state {state:#010x} (corrupt or being erased)")
            continue
        if _crc(page[4:28]) != struct.unpack_from("<I", page, 28)[0]:
            raise NvsError(
                f"NVS page {page_no} fails its header CRC: the partition is damaged or encrypted. Nothing "
                "was written; to start from empty settings write a fresh image with --output and flash it."
            )
        versions.add(page[8])
        pages.append((seq, page_no, page))
    if len(versions) > 1:
        raise NvsError(f"NVS pages mix format versions {sorted(versions)}; refusing to rewrite them")
    contents.version = versions.pop() if versions else VERSION_2
    raw = _Raw()
    for _, page_no, page in sorted(pages):
        _read_page(page, page_no, raw, contents.skipped)
    for (ns, key), (size, count, first) in raw.indexes.items():
        parts = [raw.chunks.get((ns, key, first + i)) for i in range(count)]
        blob = b"".join(p for p in parts if p is not None)
        if None in parts or len(blob) != size:
            contents.skipped.append(f"blob {key!r}: chunks missing or size mismatch")
            del raw.items[(ns, key)]
        else:
            raw.items[(ns, key)] = ("blob", blob)
    for (ns, key), (vtype, value) in raw.items.items():
        namespace = raw.namespaces.get(ns)
        if namespace is None:
            contents.skipped.append(f"key {key!r}: namespace index {ns} has no name")
            continue
        contents.entries.append(NvsEntry(namespace, key, vtype, value))
    return contents


def merge(existing: Iterable[NvsEntry], updates: Iterable[NvsEntry]) -> list[NvsEntry]:
    """``existing`` with each update in place of the entry with its namespace and key (new keys last)."""
    merged = {entry.ref: entry for entry in existing}
    for entry in updates:
        merged[entry.ref] = entry
    return list(merged.values())


def build_nvs(entries: Iterable[NvsEntry], size: int, *, version: int = VERSION_2) -> bytes:
    """A complete NVS partition image of ``size`` bytes holding ``entries`` (grouped by namespace)."""
    if size % PAGE_BYTES or size < MIN_PARTITION_BYTES:
        raise NvsError(
            f"an NVS partition must be a multiple of 4096 bytes and at least {MIN_PARTITION_BYTES:#x}, "
            f"not {size:#x}"
        )
    if version not in (VERSION_1, VERSION_2):
        raise NvsError(f"unknown NVS format version {version:#04x}")
    by_namespace: dict[str, list[NvsEntry]] = {}
    for entry in entries:
        by_namespace.setdefault(entry.namespace, []).append(entry)
    out = io.BytesIO()
    page_version = gen.Page.VERSION2 if version == VERSION_2 else gen.Page.VERSION1
    # One page is kept free for NVS's own page moves, as the generator's CLI does.
    writer = gen.NVS(out, size - PAGE_BYTES, page_version)
    try:
        for namespace, items in by_namespace.items():
            writer.write_namespace(namespace)
            index = writer.get_namespace_idx()
            for entry in items:
                if entry.type == "blob":
                    writer.write_entry(entry.key, entry.value, "binary", index)
                else:
                    writer.write_entry(entry.key, entry.value, entry.type, index)
        writer.__exit__(None, None, None)
    except (gen.InputError, gen.InsufficientSizeError, gen.PageFullError) as exc:
        raise NvsError(f"the settings do not fit in a {size:#x}-byte NVS partition: {exc}") from exc
    except struct.error as exc:
        raise NvsError(f"cannot encode an NVS value: {exc}") from exc
    image = out.getvalue()
    if len(image) != size:
        raise NvsError(f"the NVS generator made {len(image)} bytes for a {size}-byte partition")
    return image
