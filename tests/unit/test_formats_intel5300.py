"""Intel 5300 bfee logs: golden values from the real capture, permutation, round trip, fuzz."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.csi.formats.intel5300 import GROUP_INDICES, iter_intel5300, iter_intel5300_file
from appliance.csi.frame import CsiFrame
from tests.captures import capture
from tests.encoders import intel_bfee_record


def slow_int8(payload: bytes, bit: int) -> int:
    value = sum(((payload[(bit + b) // 8] >> ((bit + b) % 8)) & 1) << b for b in range(8))
    return value - 256 if value & 128 else value


# One bfee record byte by byte from read_bfee.c (dhalperi/linux-80211n-csitool-supplementary @92594f6):
# Nrx = Ntx = 1, so each of the 30 groups is 3 pad bits then an 8-bit real and an 8-bit imaginary part,
# read LSB first. Group 0 holds 5 - 3j: bits 3..10 = 5 and bits 11..18 = 0xFD give bytes 28 e8 07.
GOLDEN_BFEE = bytes.fromhex(
    "005d"  # field length, big-endian: code byte + 20-byte header + 72-byte payload
    "bb"  # code: beamforming feedback
    "78563412"  # timestamp_low 0x12345678
    "0700"  # bfee_count 7
    "0000"  # (not read)
    "01"  # Nrx
    "01"  # Ntx
    "28"  # rssi_a 40
    "00"  # rssi_b 0: chain absent
    "1e"  # rssi_c 30
    "a6"  # noise -90 (signed char)
    "1e"  # agc 30
    "00"  # antenna_sel
    "4800"  # len 72 = (30 * (1 * 1 * 16 + 3) + 7) / 8
    "0101"  # fake_rate_n_flags: bit 11 clear, 20 MHz
    "28e807"
) + bytes(69)


def test_golden_record_without_the_captures() -> None:
    (frame,) = list(iter_intel5300(GOLDEN_BFEE))
    assert isinstance(frame, CsiFrame)
    assert (frame.device_ts_us, frame.seq, frame.noise_dbm, frame.bandwidth_mhz) == (0x12345678, 7, -90.0, 20)
    # get_scaled_csi.m: nonzero chains summed in linear power; the noise is referred by + 44 + AGC, so the
    # total RSS in dBm is 10 log10(10^4 + 10^3) - 44 - 30.
    assert frame.rssi_dbm == pytest.approx(-33.586, abs=1e-3)
    assert frame.csi.shape == (1, 1, 30)
    assert frame.csi[0, 0, 0] == 5 - 3j
    assert not frame.csi[0, 0, 1:].any()
    assert frame.subcarriers.tolist() == [*range(-28, -1, 2), -1, 1, *range(3, 28, 2), 28]


@pytest.fixture(scope="module")
def intel_frames() -> list[CsiFrame]:
    items = list(iter_intel5300_file(capture("intel5300/sample_0x1_ap.dat")))
    assert all(isinstance(x, CsiFrame) for x in items)
    return items  # type: ignore[return-value]


def test_golden_count_shape_header(intel_frames: list[CsiFrame]) -> None:
    assert len(intel_frames) == 540
    assert {f.csi.shape for f in intel_frames} == {(3, 2, 30)}
    first = intel_frames[0]
    assert (first.device_ts_us, first.seq, first.noise_dbm, first.bandwidth_mhz) == (
        961579729,
        6224,
        -85.0,
        20,
    )
    assert {k: first.meta[k] for k in ("rssi_a", "rssi_b", "rssi_c", "agc", "antenna_sel", "rate")} == {
        "rssi_a": 31, "rssi_b": 40, "rssi_c": 35, "agc": 35, "antenna_sel": 9, "rate": 271,
    }  # fmt: skip
    expected_rss = 10 * np.log10(sum(10 ** (r / 10) for r in (31, 40, 35))) - 44 - 35
    assert first.rssi_dbm == pytest.approx(expected_rss)
    assert first.subcarriers.tolist() == [*range(-28, -1, 2), -1, 1, *range(3, 28, 2), 28]


def test_golden_values_match_a_slow_bit_reader(intel_frames: list[CsiFrame]) -> None:
    data = capture("intel5300/sample_0x1_ap.dat").read_bytes()
    field_len = struct.unpack_from(">H", data)[0]
    assert data[2] == 0xBB
    payload = data[3 + 20 : 2 + field_len]
    perm = [(9 >> (2 * k)) & 3 for k in range(3)]  # antenna_sel 9: stored rows go to rx 1, 2, 0
    assert perm == [1, 2, 0]
    frame = intel_frames[0]
    for group in (0, 14, 15, 29):
        for stored_rx in range(3):
            for tx in range(2):
                bit = group * (6 * 16 + 3) + 3 + (stored_rx * 2 + tx) * 16
                expected = complex(slow_int8(payload, bit), slow_int8(payload, bit + 8))
                assert frame.csi[perm[stored_rx], tx, group] == expected


@pytest.mark.parametrize(
    ("nrx", "ntx", "sel"), [(3, 2, 0b100100), (3, 3, 0b011000), (1, 1, 0), (2, 1, 0b0100)]
)
def test_round_trip(nrx: int, ntx: int, sel: int) -> None:
    rng = np.random.default_rng(nrx * 10 + ntx)
    csi = rng.integers(-128, 128, (nrx, ntx, 30)) + 1j * rng.integers(-128, 128, (nrx, ntx, 30))
    record = intel_bfee_record(csi, antenna_sel=sel, rate=0x101 | 0x800)
    (frame,) = list(iter_intel5300(record + b"\x00\x02\xc1\x00"))
    assert isinstance(frame, CsiFrame)
    assert np.array_equal(frame.csi, csi)
    assert frame.bandwidth_mhz == 40
    assert np.array_equal(frame.subcarriers, GROUP_INDICES[40])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=800))
def test_fuzz_random_bytes(data: bytes) -> None:
    for _ in iter_intel5300(b"\x00\xd4\xbb" + data):
        pass
    for _ in iter_intel5300(data):
        pass
