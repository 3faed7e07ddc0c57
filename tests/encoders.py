"""Test-only encoders: values -> the bytes each wire format puts on the wire or in a file.

They let tests round-trip through the real parsers and let the simulator's frames take the same path. The
layouts are written here from the senders' own sources, never imported from the code under test, so that a
round trip checks the parser against the firmware and not against itself:

- ADR-018: RuView ``firmware/esp32-csi-node/main/csi_collector.c`` (``csi_serialize_frame``) and
  ``csi_collector.h`` (``CSI_MAGIC``, ``CSI_HEADER_SIZE``), ruvnet/RuView @cfda8db.
- Micro-ESPectre: ``micro-espectre/src/csi_streamer.py`` (``stream_csi``), francescopace/espectre @dc52b94.
- Intel 5300: ``matlab/read_bfee.c``, dhalperi/linux-80211n-csitool-supplementary @92594f6.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from appliance.csi.formats.atheros import HEADER_BYTES

# csi_serialize_frame: [0..3] magic LE, [4] node id, [5] n_antennas, [6..7] n_subcarriers LE u16,
# [8..11] freq MHz LE u32, [12..15] sequence LE u32, [16] rssi i8, [17] noise floor i8, [18..19] reserved
# (zero upstream; builds with ADR-110 HE tagging put the PPDU type in [18] and flags in [19]).
ADR018_MAGIC = 0xC5110001
_ADR018_HEADER = struct.Struct("<IBBHIIbbBB")
# stream_csi: [0..1] MAGIC_STREAM 0x4353 LE, [2] chip code, [3] flags, [4] sequence, [5..6] num_sc LE u16.
ESPECTRE_MAGIC = 0x4353
_ESPECTRE_HEADER = struct.Struct("<HBBBH")
# read_bfee.c: u32 timestamp_low, u16 bfee_count, 2 unread bytes, Nrx, Ntx, rssi_a, rssi_b, rssi_c,
# noise (signed char), agc, antenna_sel, u16 len, u16 fake_rate_n_flags; 3 pad bits before each group.
_BFEE_CODE = 0xBB
_BFEE_HEADER = struct.Struct("<IHxxBBBBBbBBHH")
_BFEE_GROUPS = 30
_BFEE_PAD_BITS = 3


def encode_10bit(values: npt.NDArray[np.int64]) -> bytes:
    """Signed 10-bit values -> little-endian bit stream (the slow, obvious way)."""
    acc, nbits, out = 0, 0, bytearray()
    for v in values.tolist():
        acc |= (v & 0x3FF) << nbits
        nbits += 10
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def atheros_record(
    csi: npt.NDArray[np.complex128],
    *,
    timestamp: int = 1000,
    channel: int = 2437,
    rate: int = 0x8F,
    rssi: tuple[int, int, int, int] = (50, 40, 50, 35),
    payload: bytes = b"",
    endian: str = "<",
    bandwidth: int = 0,
) -> bytes:
    """``csi[nr, nc, tones]`` with integer parts in -512..511 -> one ``recv_csi`` record."""
    nr, nc, tones = csi.shape
    order = csi.transpose(2, 1, 0).reshape(-1)  # tone, tx, rx fastest
    stream = np.empty(order.size * 2, dtype=np.int64)
    stream[0::2], stream[1::2] = order.imag.astype(np.int64), order.real.astype(np.int64)
    bits = encode_10bit(stream)
    header = struct.pack(
        endian + "QHHBBBBBBBBBBBH", timestamp, len(bits), channel, 0, 0, rate, bandwidth, tones, nr, nc,
        *rssi, len(payload),
    )  # fmt: skip
    return struct.pack(endian + "H", HEADER_BYTES + len(bits) + len(payload)) + header + bits + payload


def espressif_buffer(values: npt.NDArray[np.complex128]) -> npt.NDArray[np.int8]:
    """Complex values in buffer order -> (imaginary, real) int8 pairs."""
    out = np.empty(values.size * 2, dtype=np.int8)
    out[0::2], out[1::2] = values.imag, values.real
    return out


def classic_csv_line(
    buffer: npt.NDArray[np.int8],
    *,
    seq: int = 1,
    secondary: int = 0,
    sig_mode: int = 0,
    cwb: int = 0,
    stbc: int = 0,
    first_word: int = 0,
    timestamp: int = 123456,
    rssi: int = -40,
    noise: int = -95,
    channel: int = 6,
) -> str:
    """A 25-column ``CSI_DATA`` line of a classic chip."""
    head = [
        "CSI_DATA", seq, "aa:bb:cc:dd:ee:ff", rssi, 11, sig_mode, 0, cwb, 0, 1, 0, stbc, 0, 0, noise, 0,
        channel, secondary, timestamp, 0, 50, 0, buffer.size, first_word,
    ]  # fmt: skip
    return ",".join(map(str, head)) + ',"[' + ",".join(map(str, buffer.tolist())) + ']"'


def adr018_datagram(
    buffer: npt.NDArray[np.int8], *, node: int = 3, seq: int = 7, freq: int = 2437, rssi: int = -50,
    noise: int = -95, flags: int = 0, n_antennas: int = 1,
) -> bytes:  # fmt: skip
    n_sub = buffer.size // (2 * n_antennas)
    header = _ADR018_HEADER.pack(ADR018_MAGIC, node, n_antennas, n_sub, freq, seq, rssi, noise, 0, flags)
    return header + buffer.tobytes()


def espectre_datagram(buffer: npt.NDArray[np.int8], *, chip: int = 3, flags: int = 1, seq: int = 9) -> bytes:
    return _ESPECTRE_HEADER.pack(ESPECTRE_MAGIC, chip, flags, seq, buffer.size // 2) + buffer.tobytes()


def length_prefixed(datagrams: list[bytes]) -> bytes:
    return b"".join(struct.pack("<H", len(d)) + d for d in datagrams)


def intel_bfee_record(
    csi: npt.NDArray[np.complex128], *, antenna_sel: int = 0b100100, timestamp: int = 5, count: int = 1,
    rssi: tuple[int, int, int] = (30, 40, 35), noise: int = -90, agc: int = 30, rate: int = 0x101,
) -> bytes:  # fmt: skip
    """Physical-order ``csi[nrx, ntx, 30]`` -> one 0xBB record (rows stored in ``antenna_sel`` order)."""
    nrx, ntx, _ = csi.shape
    perm = [(antenna_sel >> (2 * k)) & 3 for k in range(nrx)]
    stored = csi[perm] if nrx > 1 else csi
    bits: list[int] = []
    for g in range(_BFEE_GROUPS):
        bits += [0] * _BFEE_PAD_BITS
        for r in range(nrx):
            for t in range(ntx):
                for part in (stored[r, t, g].real, stored[r, t, g].imag):
                    v = int(part) & 0xFF
                    bits += [(v >> b) & 1 for b in range(8)]
    bits += [0] * (-len(bits) % 8)
    payload = bytes(sum(bits[i + b] << b for b in range(8)) for i in range(0, len(bits), 8))
    body = _BFEE_HEADER.pack(timestamp, count, nrx, ntx, *rssi, noise, agc, antenna_sel, len(payload), rate)
    body += payload
    return struct.pack(">H", len(body) + 1) + bytes([_BFEE_CODE]) + body
