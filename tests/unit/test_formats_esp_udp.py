"""ESP32 UDP datagrams: ADR-018, Micro-ESPectre and text lines, autodetected; fuzz."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_udp import ADR018_FLAG_40MHZ, ADR018_FLAG_FIRST_WORD_ZEROED, parse_datagram
from tests.encoders import adr018_datagram, classic_csv_line, espectre_datagram

RNG = np.random.default_rng(7)
BUF128 = RNG.integers(-128, 128, 128).astype(np.int8)


def test_adr018_header_and_lltf() -> None:
    frame = parse_datagram(adr018_datagram(BUF128, node=4, seq=99, freq=2412, rssi=-61, noise=-92))
    assert (frame.link, frame.seq, frame.channel_mhz, frame.rssi_dbm, frame.noise_dbm) == (
        "esp32-4", 99, 2412, -61.0, -92.0,
    )  # fmt: skip
    assert frame.wire_format == "esp32-udp"
    assert frame.meta["protocol"] == "adr018"
    assert frame.meta["layout"] == "lltf"
    assert frame.subcarriers.tolist() == list(range(-32, 32))
    assert frame.csi[0, 0, 32] == complex(BUF128[1], BUF128[0])  # subcarrier 0 is pair 0, imaginary first


def test_adr018_flags_select_ht40_and_drop_zeroed_first_word() -> None:
    buf = RNG.integers(-128, 128, 384).astype(np.int8)
    frame = parse_datagram(adr018_datagram(buf, flags=ADR018_FLAG_40MHZ | ADR018_FLAG_FIRST_WORD_ZEROED))
    assert frame.bandwidth_mhz == 40
    assert frame.meta["layout"] == "ht-ltf"
    assert frame.subcarriers.tolist() == list(range(-64, 64))  # the zeroed word is in the LLTF, not HT-LTF
    assert frame.meta["first_word_invalid"] is True


def test_adr018_two_antennas() -> None:
    buf = RNG.integers(-128, 128, 256).astype(np.int8)
    frame = parse_datagram(adr018_datagram(buf, n_antennas=2))
    assert frame.csi.shape == (2, 1, 64)
    assert frame.csi[1, 0, 32] == complex(buf[129], buf[128])


def test_espectre_packet() -> None:
    frame = parse_datagram(espectre_datagram(BUF128, chip=3, flags=1, seq=200))
    assert frame.seq == 200
    assert frame.meta["chip"] == "esp32s3"
    assert frame.meta["gain_locked"] is True
    assert frame.subcarriers.tolist() == list(range(-32, 32))
    assert frame.csi[0, 0, 32] == complex(BUF128[1], BUF128[0])  # classic FFT order: pair 0 is subcarrier 0
    c6 = parse_datagram(espectre_datagram(BUF128, chip=6))
    assert c6.csi[0, 0, 0] == complex(BUF128[1], BUF128[0])  # C6 ascending: pair 0 is subcarrier -32
    esp32 = parse_datagram(espectre_datagram(BUF128, chip=1))
    assert esp32.n_subcarriers == 62
    assert esp32.meta["first_word_invalid"] is True


def test_text_datagram() -> None:
    frame = parse_datagram(classic_csv_line(BUF128).encode() + b"\r\n")
    assert frame.wire_format == "esp32-udp"
    assert frame.meta["chip"] == "classic"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        adr018_datagram(BUF128)[:30],
        espectre_datagram(BUF128)[:-1],
        b"\x01\x00\x11\xc5" + b"\0" * 16,
    ],
)
def test_bad_datagrams(data: bytes) -> None:
    with pytest.raises(CsiFormatError):
        parse_datagram(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700), st.sampled_from([b"", b"\x01\x00\x11\xc5", b"SC", b"CSI_DATA,"]))
def test_fuzz_datagrams(data: bytes, prefix: bytes) -> None:
    with contextlib.suppress(CsiFormatError):
        parse_datagram(prefix + data)
