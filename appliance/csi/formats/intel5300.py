"""Linux 802.11n CSI Tool (Intel 5300) logs: the ``log_to_file`` records that ``read_bfee`` decodes.

A record is a u16 big-endian field length, a code byte and ``length - 1`` bytes; only code 0xBB
(beamforming feedback) carries CSI. Its body: u32 timestamp_low, u16 bfee_count, 2 reserved, u8 Nrx, Ntx,
rssi_a/b/c, i8 noise, u8 agc, antenna_sel, u16 len, u16 fake_rate_n_flags (all little-endian), then ``len``
bytes of 30 subcarrier groups, each 3 pad bits then Nrx x Ntx (real, imag) int8 pairs at a bit offset, tx
fastest. ``antenna_sel`` says which physical rx chain each stored row came from (two bits per row), and
rows are put back in physical order as ``read_bf_file`` does. Group indices are the 802.11n grouping:
20 MHz -28, -26, ..., -2, -1, 1, 3, ..., 27, 28; 40 MHz -58, -54, ..., -2, 2, 6, ..., 58.

``rssi_dbm`` is the tool's ``get_total_rss``: the chains' RSSIs summed in linear power, minus 44 dB and
the AGC gain. The record has no channel number, so ``channel_mhz`` is 0.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.frame import CsiFrame

FIELD_LENGTH = struct.Struct(">H")
CODE_BFEE = 0xBB
BFEE_HEADER = struct.Struct("<IHxxBBBBBbBBHH")
N_GROUPS = 30
PAD_BITS_PER_GROUP = 3
RATE_HT40_FLAG = 1 << 11
RSSI_OFFSET_DB = 44.0
NOISE_UNKNOWN = -127
GROUP_INDICES: dict[int, npt.NDArray[np.int16]] = {
    20: np.concatenate([np.arange(-28, -1, 2), [-1, 1], np.arange(3, 28, 2), [28]]).astype(np.int16),
    40: np.concatenate([np.arange(-58, -1, 4), np.arange(2, 59, 4)]).astype(np.int16),
}


def _payload_bytes(nrx: int, ntx: int) -> int:
    return (N_GROUPS * (nrx * ntx * 16 + PAD_BITS_PER_GROUP) + 7) // 8


def decode_bfee_payload(payload: bytes, nrx: int, ntx: int) -> npt.NDArray[np.complex64]:
    """Packed groups -> complex ``[stored rx row, tx, group]`` (before the antenna permutation).

    Every value starts at a known bit offset, so all of them are gathered at once: the two bytes under
    each 8-bit value, shifted by the offset's remainder.
    """
    n = nrx * ntx
    group = np.arange(N_GROUPS)[:, None]
    pair = np.arange(n)[None, :]
    start = group * (n * 16 + PAD_BITS_PER_GROUP) + PAD_BITS_PER_GROUP + pair * 16  # bit of each real part
    bits = np.stack([start, start + 8], axis=-1)  # real, imag
    data = np.frombuffer(payload + b"\x00", dtype=np.uint8).astype(np.uint16)
    byte, shift = bits // 8, bits % 8
    values = ((data[byte] >> shift) | (data[byte + 1] << (8 - shift))) & 0xFF
    signed = values.astype(np.uint8).view(np.int8).astype(np.float32)
    csi = (signed[..., 0] + 1j * signed[..., 1]).astype(np.complex64)  # [group, rx*ntx + tx]
    out: npt.NDArray[np.complex64] = csi.reshape(N_GROUPS, nrx, ntx).transpose(1, 2, 0)
    return out


def total_rss_dbm(rssi: tuple[int, int, int], agc: int) -> float:
    """``get_total_rss``: chains with a nonzero RSSI summed in linear power, less 44 dB and the AGC."""
    power = sum(10 ** (r / 10) for r in rssi if r)
    if power == 0:
        return float("nan")
    return float(10 * np.log10(power) - RSSI_OFFSET_DB - agc)


def parse_bfee(body: bytes, *, link: str = "intel5300", offset: int | None = None) -> CsiFrame:
    """One 0xBB record body (after the code byte) -> frame."""
    if len(body) < BFEE_HEADER.size:
        raise CsiFormatError(f"bfee record of {len(body)} bytes is shorter than its header", offset=offset)
    ts, count, nrx, ntx, ra, rb, rc, noise, agc, sel, length, rate = BFEE_HEADER.unpack_from(body)
    if not (1 <= nrx <= 3 and 1 <= ntx <= 3):
        raise CsiFormatError(f"implausible antenna counts Nrx={nrx} Ntx={ntx}", offset=offset)
    expected = _payload_bytes(nrx, ntx)
    payload = body[BFEE_HEADER.size : BFEE_HEADER.size + length]
    if length != expected or len(payload) != length:
        raise CsiFormatError(
            f"bfee payload is {len(payload)} bytes (len field {length})"
            f" but Nrx={nrx} Ntx={ntx} need {expected}",
            offset=offset,
        )
    csi = decode_bfee_payload(payload, nrx, ntx)
    perm = [(sel >> (2 * k)) & 0x3 for k in range(nrx)]
    if nrx > 1 and sorted(perm) == list(range(nrx)):
        placed = np.empty_like(csi)
        placed[perm] = csi
        csi = placed
    bandwidth = 40 if rate & RATE_HT40_FLAG else 20
    return CsiFrame(
        link=link,
        device_ts_us=ts,
        host_ts=0.0,
        seq=count,
        rssi_dbm=total_rss_dbm((ra, rb, rc), agc),
        noise_dbm=float("nan") if noise == NOISE_UNKNOWN else float(noise),
        channel_mhz=0,
        bandwidth_mhz=bandwidth,
        csi=csi,
        subcarriers=GROUP_INDICES[bandwidth],
        wire_format="intel5300",
        meta={
            "rssi_a": ra,
            "rssi_b": rb,
            "rssi_c": rc,
            "noise_raw": noise,
            "agc": agc,
            "antenna_sel": sel,
            "rate": rate,
            **({"offset": offset} if offset is not None else {}),
        },
    )


def iter_intel5300(data: bytes, *, link: str = "intel5300") -> Iterator[CsiFrame | CsiFormatError]:
    """Frames and errors of a log, in order; records with other codes are skipped."""
    pos = 0
    while pos < len(data):
        if pos + FIELD_LENGTH.size + 1 > len(data):
            yield CsiFormatError(f"truncated record header ({len(data) - pos} bytes left)", offset=pos)
            return
        (field_len,) = FIELD_LENGTH.unpack_from(data, pos)
        end = pos + FIELD_LENGTH.size + field_len
        if field_len == 0 or end > len(data):
            yield CsiFormatError(f"record of {field_len} bytes runs past the end of the log", offset=pos)
            return
        if data[pos + FIELD_LENGTH.size] == CODE_BFEE:
            try:
                yield parse_bfee(data[pos + FIELD_LENGTH.size + 1 : end], link=link, offset=pos)
            except CsiFormatError as exc:
                yield exc
        pos = end


def iter_intel5300_file(path: str | Path, *, link: str | None = None) -> Iterator[CsiFrame | CsiFormatError]:
    path = Path(path)
    yield from iter_intel5300(path.read_bytes(), link=link or path.stem)
