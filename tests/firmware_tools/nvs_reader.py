"""An NVS partition reader for tests, written from ESP-IDF's NVS documentation ("NVS Partition" format
section), independent of ``firmware_tools.nvs``: it checks every CRC and fails loudly on anything off.

Page: 32-byte header (u32 state, u32 seq, u8 version, 19 unused, u32 CRC32 of bytes 4..27), 32-byte entry
state bitmap (2 bits per entry, 0b10 = written), 126 entries of 32 bytes from offset 64. Entry: u8 ns,
u8 type, u8 span, u8 chunk index, u32 CRC32 of bytes 0..3 and 8..31, 16-byte key, 8-byte data. CRC32 is
ESP-IDF's crc32_le seeded with 0xFFFFFFFF (zlib.crc32(data, 0xFFFFFFFF)).
"""

from __future__ import annotations

import struct
import zlib

INT_TYPES = {
    0x01: ("u8", "B"), 0x11: ("i8", "b"), 0x02: ("u16", "H"), 0x12: ("i16", "h"),
    0x04: ("u32", "I"), 0x14: ("i32", "i"), 0x08: ("u64", "Q"), 0x18: ("i64", "q"),
}  # fmt: skip


def crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF


def read(image: bytes) -> dict[str, dict[str, tuple[str, object]]]:
    """{namespace: {key: (type, value)}}; strings without their NUL, v2 blobs reassembled."""
    assert len(image) % 4096 == 0
    names: dict[int, str] = {}
    values: dict[tuple[int, str], tuple[str, object]] = {}
    chunks: dict[tuple[int, str, int], bytes] = {}
    index: dict[tuple[int, str], tuple[int, int, int]] = {}
    pages = []
    for p in range(len(image) // 4096):
        page = image[p * 4096 : (p + 1) * 4096]
        state, seq = struct.unpack("<II", page[:8])
        if state == 0xFFFFFFFF:
            assert page == b"\xff" * 4096, f"page {p} is marked empty but holds data"
            continue
        assert struct.unpack("<I", page[28:32])[0] == crc(page[4:28]), f"page {p}: header CRC"
        pages.append((seq, page))
    for _, page in sorted(pages):
        i = 0
        while i < 126:
            bits = (page[32 + i // 4] >> (2 * (i % 4))) & 3
            if bits != 0b10:
                i += 1
                continue
            e = page[64 + 32 * i : 96 + 32 * i]
            assert struct.unpack("<I", e[4:8])[0] == crc(e[:4] + e[8:]), f"entry {i}: CRC"
            ns, etype, span, chunk = e[0], e[1], e[2], e[3]
            key = e[8:24].rstrip(b"\x00").decode()
            if etype in INT_TYPES:
                name, fmt = INT_TYPES[etype]
                (v,) = struct.unpack("<" + fmt, e[24 : 24 + struct.calcsize(fmt)])
                if ns == 0:
                    names[v] = key
                else:
                    values[(ns, key)] = (name, v)
            elif etype in (0x21, 0x42):
                size, _, data_crc = struct.unpack("<HHI", e[24:32])
                body = page[96 + 32 * i : 96 + 32 * i + size]
                assert crc(body) == data_crc, f"{key}: data CRC"
                assert span == 1 + (size + 31) // 32, f"{key}: span"
                if etype == 0x21:
                    assert body.endswith(b"\x00")
                    values[(ns, key)] = ("string", body[:-1].decode())
                else:
                    chunks[(ns, key, chunk)] = body
            elif etype == 0x48:
                size, count, start = struct.unpack("<IBB", e[24:30])
                index[(ns, key)] = (size, count, start)
            else:
                raise AssertionError(f"unexpected entry type {etype:#x}")
            i += span
    for (ns, key), (size, count, start) in index.items():
        blob = b"".join(chunks[(ns, key, start + k)] for k in range(count))
        assert len(blob) == size
        values[(ns, key)] = ("blob", blob)
    out: dict[str, dict[str, tuple[str, object]]] = {}
    for (ns, key), value in values.items():
        out.setdefault(names[ns], {})[key] = value
    return out
