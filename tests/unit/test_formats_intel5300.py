"""Intel 5300 bfee logs: golden values from the real capture, permutation, round trip, fuzz."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.intel5300 import (
    GROUP_INDICES,
    iter_intel5300,
    iter_intel5300_file,
    parse_bfee,
    total_rss_dbm,
)
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


def test_frame_fields_of_the_golden_record(tmp_path: Path) -> None:
    (frame,) = list(iter_intel5300(GOLDEN_BFEE))
    assert isinstance(frame, CsiFrame)
    assert (frame.link, frame.host_ts, frame.channel_mhz, frame.wire_format) == (
        "intel5300",
        0.0,
        0,
        "intel5300",
    )
    assert frame.meta == {
        "rssi_a": 40, "rssi_b": 0, "rssi_c": 30, "noise_raw": -90, "agc": 30, "antenna_sel": 0, "rate": 0x101,
        "offset": 0,
    }  # fmt: skip
    direct = parse_bfee(GOLDEN_BFEE[3:])
    assert "offset" not in direct.meta
    path = tmp_path / "lab-laptop.dat"
    path.write_bytes(GOLDEN_BFEE)
    assert [f.link for f in iter_intel5300_file(path)] == ["lab-laptop"]  # type: ignore[union-attr]
    assert [f.link for f in iter_intel5300_file(path, link="nic0")] == ["nic0"]  # type: ignore[union-attr]
    assert [f.link for f in iter_intel5300(GOLDEN_BFEE, link="nic1")] == ["nic1"]  # type: ignore[union-attr]


def test_unknown_noise_is_not_a_number() -> None:
    record = bytearray(GOLDEN_BFEE)
    record[3 + 13] = 0x81  # noise -127: the tool's "not measured"
    (frame,) = list(iter_intel5300(bytes(record)))
    assert isinstance(frame, CsiFrame)
    assert math.isnan(frame.noise_dbm) and frame.meta["noise_raw"] == -127
    assert total_rss_dbm((0, 0, 0), 30) != total_rss_dbm((0, 0, 0), 30)  # NaN: no chain measured


def _errors(data: bytes) -> list[tuple[str, int | None]]:
    return [(str(e), e.offset) for e in iter_intel5300(data) if isinstance(e, CsiFormatError)]


def test_damaged_logs_give_precise_errors_at_their_offsets() -> None:
    n = len(GOLDEN_BFEE)
    assert _errors(GOLDEN_BFEE + b"\x00\x05") == [(f"byte {n}: truncated record header (2 bytes left)", n)]
    assert _errors(GOLDEN_BFEE + b"\x00\x00\xbb") == [
        (f"byte {n}: record of 0 bytes runs past the end of the log", n)
    ]
    assert _errors(GOLDEN_BFEE[:-1]) == [("byte 0: record of 93 bytes runs past the end of the log", 0)]
    # A complete record of another code is skipped without an error; exactly one code byte is a record.
    assert _errors(b"\x00\x01\xc1" + GOLDEN_BFEE) == []
    assert len(list(iter_intel5300(b"\x00\x01\xc1" + GOLDEN_BFEE))) == 1


def _bfee(body: bytes) -> bytes:
    return struct.pack(">H", len(body) + 1) + b"\xbb" + body


@pytest.mark.parametrize(
    ("nrx", "ntx", "message"),
    [
        (4, 1, "implausible antenna counts Nrx=4 Ntx=1"),
        (1, 4, "implausible antenna counts Nrx=1 Ntx=4"),
        (0, 1, "implausible antenna counts Nrx=0 Ntx=1"),
        (1, 0, "implausible antenna counts Nrx=1 Ntx=0"),
    ],
)
def test_implausible_antenna_counts_are_refused(nrx: int, ntx: int, message: str) -> None:
    body = bytearray(GOLDEN_BFEE[3:])
    body[8], body[9] = nrx, ntx
    assert _errors(b"\x00\x01\xc1" + _bfee(bytes(body))) == [(f"byte 3: {message}", 3)]


def test_short_and_mismatched_bodies_are_refused() -> None:
    assert _errors(_bfee(GOLDEN_BFEE[3:22])) == [
        ("byte 0: bfee record of 19 bytes is shorter than its header", 0)
    ]
    header_only = GOLDEN_BFEE[3:23]
    assert _errors(_bfee(header_only)) == [
        ("byte 0: bfee payload is 0 bytes (len field 72) but Nrx=1 Ntx=1 need 72", 0)
    ]
    wrong_len = bytearray(GOLDEN_BFEE[3:])
    wrong_len[16] = 71
    assert _errors(_bfee(bytes(wrong_len))) == [
        ("byte 0: bfee payload is 71 bytes (len field 71) but Nrx=1 Ntx=1 need 72", 0)
    ]
    with pytest.raises(CsiFormatError, match="shorter than its header") as caught:
        parse_bfee(b"\x00" * 19, offset=7)
    assert caught.value.offset == 7


def test_two_chains_are_put_back_in_physical_order_and_a_bad_selection_is_left_alone() -> None:
    rng = np.random.default_rng(2)
    csi = rng.integers(-128, 128, (2, 1, 30)) + 1j * rng.integers(-128, 128, (2, 1, 30))
    (swapped,) = list(iter_intel5300(intel_bfee_record(csi, antenna_sel=0b0001)))  # stored rows: rx 1, rx 0
    assert isinstance(swapped, CsiFrame)
    np.testing.assert_array_equal(swapped.csi, csi)
    stored = csi[[1, 0]]
    body = bytearray(intel_bfee_record(csi, antenna_sel=0b0001)[3:])
    body[15] = 0b0000  # both rows claim chain 0: not a permutation, so the stored order is kept
    (kept,) = list(iter_intel5300(_bfee(bytes(body))))
    assert isinstance(kept, CsiFrame)
    np.testing.assert_array_equal(kept.csi, stored)
