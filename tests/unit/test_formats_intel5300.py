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
