"""ESP32 CSI over UDP: RuView's ADR-018 frames, Micro-ESPectre stream packets, and ``CSI_DATA`` text lines.

ADR-018 (RuView ``firmware/esp32-csi-node/main/csi_collector.c``, ``csi_serialize_frame``), 20-byte
little-endian header: u32 magic 0xC5110001, u8 node_id, u8 n_antennas, u16 n_subcarriers, u32 freq_MHz,
u32 sequence, i8 rssi, i8 noise_floor, u8 ppdu_type, u8 flags, then ``info->buf`` verbatim. Checked against
the firmware source, three things differ from RuView's own ADR document: the payload is the raw Espressif
buffer, imaginary byte first (the ADR says I then Q); bytes 18-19 are not always reserved zeros (with
``CONFIG_CSI_FRAME_HE_TAGGING``: byte 18 PPDU type, byte 19 flags: bit 0 40 MHz, bit 2 STBC, bit 4 mesh sync
valid); and bit 5 of the flags marks a first word that the firmware zeroed because ``first_word_invalid``
was set. ``freq_MHz`` is the primary channel's frequency. The frame says nothing of the chip, secondary
channel or signal mode, so the buffer is read as a classic chip's with no secondary channel (HT-LTF
layout when the 40 MHz flag is set), falling back to the C5/C6 layouts for lengths only those emit;
``meta['layout']`` says what was assumed.

Micro-ESPectre (``micro-espectre/src/csi_streamer.py``), 7-byte header: u16 magic 0x4353 (little-endian,
so the datagram starts with ``b"SC"``), u8 chip (0 unknown, 1 ESP32, 2 S2, 3 S3, 4 C3, 5 C5, 6 C6), u8 flags
(bit 0: gain locked), u8 sequence (wraps at 256), u16 n_subcarriers (little-endian), then the chip's HT20
buffer normalized to 64 subcarriers (a C5's 57 tones padded to 64 in ascending order).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import LINE_TAG, parse_csi_line
from appliance.csi.formats.espressif import (
    SECONDARY_BELOW,
    SECONDARY_NONE,
    BufferLayout,
    c5c6_layout,
    classic_layout,
    decode_buffer,
)
from appliance.csi.frame import CsiFrame

ADR018_MAGIC = 0xC5110001
ADR018_HEADER = struct.Struct("<IBBHIIbbBB")
ADR018_FLAG_40MHZ = 1 << 0
ADR018_FLAG_STBC = 1 << 2
ADR018_FLAG_SYNC_VALID = 1 << 4
ADR018_FLAG_FIRST_WORD_ZEROED = 1 << 5

ESPECTRE_MAGIC = 0x4353
ESPECTRE_HEADER = struct.Struct("<HBBBH")
ESPECTRE_FLAG_GAIN_LOCKED = 1 << 0
ESPECTRE_CHIPS = {
    0: "unknown",
    1: "esp32",
    2: "esp32s2",
    3: "esp32s3",
    4: "esp32c3",
    5: "esp32c5",
    6: "esp32c6",
}
_ESPECTRE_ASCENDING_CHIPS = frozenset({5, 6})
# Classic ESP32 flags first_word_invalid on every LLTF packet, and Micro-ESPectre does not forward it.
_ESPECTRE_INVALID_FIRST_WORD_CHIPS = frozenset({1})

_SIG_MODE_HT = 1
# Each datagram in an ``esp32-udp`` file is preceded by its length, u16 little-endian.
DATAGRAM_LENGTH = struct.Struct("<H")


def _classic_or_c5c6(length: int, *, cwb: int, stbc: int) -> BufferLayout:
    secondary = SECONDARY_BELOW if cwb else SECONDARY_NONE
    try:
        return classic_layout(secondary=secondary, sig_mode=_SIG_MODE_HT, cwb=cwb, stbc=stbc, length=length)
    except CsiFormatError:
        return c5c6_layout(length)


def parse_adr018(data: bytes, *, link_prefix: str = "esp32") -> CsiFrame:
    """One ADR-018 datagram -> frame (one antenna row per ``n_antennas``)."""
    if len(data) < ADR018_HEADER.size:
        raise CsiFormatError(
            f"ADR-018 frame of {len(data)} bytes is shorter than its 20-byte header", offset=0
        )
    magic, node, n_ant, n_sub, freq, seq, rssi, noise, ppdu, flags = ADR018_HEADER.unpack_from(data)
    if magic != ADR018_MAGIC:
        raise CsiFormatError(f"bad ADR-018 magic 0x{magic:08X}", offset=0)
    payload = np.frombuffer(data, dtype=np.int8, offset=ADR018_HEADER.size)
    if n_ant == 0 or payload.size != n_ant * n_sub * 2:
        raise CsiFormatError(
            f"payload is {payload.size} bytes but {n_ant} antennas x {n_sub} subcarriers"
            f" need {n_ant * n_sub * 2}",
            offset=ADR018_HEADER.size,
        )
    layout = _classic_or_c5c6(
        2 * n_sub, cwb=flags & ADR018_FLAG_40MHZ, stbc=int(bool(flags & ADR018_FLAG_STBC))
    )
    zeroed = bool(flags & ADR018_FLAG_FIRST_WORD_ZEROED)
    values, indices = decode_buffer(payload.reshape(n_ant, 2 * n_sub), layout, first_word_invalid=zeroed)
    return CsiFrame(
        link=f"{link_prefix}-{node}",
        device_ts_us=0,
        host_ts=0.0,
        seq=seq,
        rssi_dbm=float(rssi),
        noise_dbm=float(noise),
        channel_mhz=freq,
        bandwidth_mhz=layout.chosen[1].bandwidth_mhz,
        csi=values[:, np.newaxis, :],
        subcarriers=indices,
        wire_format="esp32-udp",
        meta={
            "protocol": "adr018",
            "node_id": node,
            "layout": layout.name,
            "ppdu_type": ppdu,
            "flags": flags,
            "first_word_invalid": zeroed,
            "sync_valid": bool(flags & ADR018_FLAG_SYNC_VALID),
        },
    )


def parse_espectre(data: bytes, *, link_prefix: str = "esp32") -> CsiFrame:
    """One Micro-ESPectre stream datagram -> frame."""
    if len(data) < ESPECTRE_HEADER.size:
        raise CsiFormatError(
            f"Micro-ESPectre packet of {len(data)} bytes is shorter than its header", offset=0
        )
    magic, chip, flags, seq, n_sub = ESPECTRE_HEADER.unpack_from(data)
    if magic != ESPECTRE_MAGIC:
        raise CsiFormatError(f"bad Micro-ESPectre magic 0x{magic:04X}", offset=0)
    payload = np.frombuffer(data, dtype=np.int8, offset=ESPECTRE_HEADER.size)
    if payload.size != 2 * n_sub:
        raise CsiFormatError(
            f"payload is {payload.size} bytes but {n_sub} subcarriers need {2 * n_sub}",
            offset=ESPECTRE_HEADER.size,
        )
    if chip in _ESPECTRE_ASCENDING_CHIPS:
        layout = c5c6_layout(payload.size)
    else:
        layout = _classic_or_c5c6(payload.size, cwb=0, stbc=0)
    first_word_invalid = chip in _ESPECTRE_INVALID_FIRST_WORD_CHIPS
    values, indices = decode_buffer(payload, layout, first_word_invalid=first_word_invalid)
    chip_name = ESPECTRE_CHIPS.get(chip, f"code{chip}")
    return CsiFrame(
        link=f"{link_prefix}-{chip_name}",
        device_ts_us=0,
        host_ts=0.0,
        seq=seq,
        rssi_dbm=float("nan"),
        noise_dbm=float("nan"),
        channel_mhz=0,
        bandwidth_mhz=layout.chosen[1].bandwidth_mhz,
        csi=values[np.newaxis, np.newaxis, :],
        subcarriers=indices,
        wire_format="esp32-udp",
        meta={
            "protocol": "espectre",
            "chip": chip_name,
            "layout": layout.name,
            "gain_locked": bool(flags & ESPECTRE_FLAG_GAIN_LOCKED),
            "first_word_invalid": first_word_invalid,
        },
    )


def parse_datagram(data: bytes, *, link_prefix: str = "esp32") -> CsiFrame:
    """Any ESP32 CSI datagram -> frame, told apart by its first bytes (ADR-018, Micro-ESPectre, text)."""
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == ADR018_MAGIC:
        return parse_adr018(data, link_prefix=link_prefix)
    if len(data) >= 2 and struct.unpack_from("<H", data)[0] == ESPECTRE_MAGIC:
        return parse_espectre(data, link_prefix=link_prefix)
    text = data.decode("utf-8", errors="replace")
    if LINE_TAG in text:
        frame = parse_csi_line(text.strip(), link=link_prefix)
        return dataclasses.replace(frame, wire_format="esp32-udp")
    raise CsiFormatError("not an ADR-018, Micro-ESPectre or CSI_DATA datagram", offset=0)


def iter_datagram_file(path: str | Path, *, link: str | None = None) -> Iterator[CsiFrame | CsiFormatError]:
    """Frames of an ``esp32-udp`` file: datagrams one after another, each after a u16 LE length."""
    path = Path(path)
    data = path.read_bytes()
    prefix = link or path.stem
    pos = 0
    while pos < len(data):
        if pos + DATAGRAM_LENGTH.size > len(data):
            yield CsiFormatError("truncated datagram length", offset=pos)
            return
        (size,) = DATAGRAM_LENGTH.unpack_from(data, pos)
        start = pos + DATAGRAM_LENGTH.size
        if start + size > len(data):
            yield CsiFormatError(f"datagram of {size} bytes runs past the end of the file", offset=pos)
            return
        try:
            yield parse_datagram(data[start : start + size], link_prefix=prefix)
        except CsiFormatError as exc:
            yield CsiFormatError(f"datagram: {exc}", offset=pos)
        pos = start + size
