"""ESP32 UDP datagrams: ADR-018, Micro-ESPectre and text lines, autodetected; fuzz."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_udp import (
    ADR018_FLAG_40MHZ,
    ADR018_FLAG_FIRST_WORD_ZEROED,
    ADR018_FLAG_STBC,
    iter_datagram_file,
    parse_adr018,
    parse_datagram,
    parse_espectre,
)
from appliance.csi.frame import CsiFrame
from tests.encoders import adr018_datagram, classic_csv_line, espectre_datagram, length_prefixed

RNG = np.random.default_rng(7)
BUF128 = RNG.integers(-128, 128, 128).astype(np.int8)


# Golden datagrams, byte by byte from the senders' sources (see tests/encoders.py for the files and commits).
# The payload is an Espressif LLTF buffer: 64 (imaginary, real) int8 pairs in FFT order, subcarriers 0..31
# then -32..-1 (ESP-IDF Wi-Fi guide, "Wi-Fi Channel State Information"). Bytes 0x80..0xFF make every value
# negative: pair p holds imaginary -128 + 2p and real -127 + 2p.
LLTF_PAYLOAD = bytes(range(0x80, 0x100))
ADR018_GOLDEN = (
    bytes.fromhex(
        "010011c5"  # [0..3] magic 0xC5110001, little-endian
        "07"  # [4] node id 7
        "01"  # [5] one antenna
        "4000"  # [6..7] 64 subcarriers = len / (2 * n_antennas)
        "85090000"  # [8..11] 2437 MHz: channel 6 = 2412 + (6 - 1) * 5
        "04030201"  # [12..15] sequence 0x01020304
        "c5"  # [16] rssi -59 dBm
        "a1"  # [17] noise floor -95 dBm
        "0000"  # [18..19] reserved
    )
    + LLTF_PAYLOAD
)
ESPECTRE_GOLDEN = (
    bytes.fromhex(
        "5343"  # [0..1] MAGIC_STREAM 0x4353, little-endian ("SC")
        "03"  # [2] CHIP_S3
        "01"  # [3] flags: bit 0, gain locked
        "fe"  # [4] sequence 254
        "4000"  # [5..6] NUM_SUBCARRIERS 64, little-endian
    )
    + LLTF_PAYLOAD
)


def lltf_value(subcarrier: int) -> complex:
    pair = subcarrier % 64  # FFT order: 0..31, then -32..-1
    return complex(-127 + 2 * pair, -128 + 2 * pair)


def test_adr018_golden_datagram() -> None:
    frame = parse_datagram(ADR018_GOLDEN)
    assert (frame.link, frame.seq, frame.channel_mhz, frame.rssi_dbm, frame.noise_dbm) == (
        "esp32-7", 0x01020304, 2437, -59.0, -95.0,
    )  # fmt: skip
    assert (frame.bandwidth_mhz, frame.csi.shape, frame.meta["node_id"]) == (20, (1, 1, 64), 7)
    assert frame.subcarriers.tolist() == list(range(-32, 32))
    assert frame.csi[0, 0, 32] == -127 - 128j  # subcarrier 0 is the first pair
    assert frame.csi[0, 0, 0] == -63 - 64j  # subcarrier -32 is pair 32
    np.testing.assert_array_equal(frame.csi[0, 0], [lltf_value(k) for k in range(-32, 32)])


def test_adr018_frequency_is_a_32_bit_field() -> None:
    """The firmware writes freq_mhz as a u32: a reader of only its low half would report 2437 here."""
    datagram = bytearray(ADR018_GOLDEN)
    datagram[8:12] = bytes.fromhex("85090100")
    assert parse_datagram(bytes(datagram)).channel_mhz == 0x10985


def test_espectre_golden_datagram() -> None:
    frame = parse_datagram(ESPECTRE_GOLDEN)
    assert (frame.link, frame.seq, frame.meta["chip"], frame.meta["gain_locked"]) == (
        "esp32-esp32s3", 254, "esp32s3", True,
    )  # fmt: skip
    assert frame.meta["first_word_invalid"] is False
    assert frame.subcarriers.tolist() == list(range(-32, 32))
    np.testing.assert_array_equal(frame.csi[0, 0], [lltf_value(k) for k in range(-32, 32)])
    unlocked = bytearray(ESPECTRE_GOLDEN)
    unlocked[3] = 0
    assert parse_datagram(bytes(unlocked)).meta["gain_locked"] is False


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


def _error(data: bytes, parse: Callable[[bytes], object] = parse_datagram) -> tuple[str, int | None]:
    with pytest.raises(CsiFormatError) as caught:
        parse(data)
    return str(caught.value), caught.value.offset


def test_bad_adr018_frames_say_what_is_wrong_and_where() -> None:
    assert _error(ADR018_GOLDEN[:19], parse_adr018) == (
        "byte 0: ADR-018 frame of 19 bytes is shorter than its 20-byte header", 0,
    )  # fmt: skip
    assert _error(ADR018_GOLDEN[:20]) == (
        "byte 20: payload is 0 bytes but 1 antennas x 64 subcarriers need 128", 20,
    )  # fmt: skip
    assert _error(b"\x02" + ADR018_GOLDEN[1:], parse_adr018) == ("byte 0: bad ADR-018 magic 0xC5110002", 0)
    no_antenna = bytearray(ADR018_GOLDEN)
    no_antenna[5] = 0
    assert _error(bytes(no_antenna)) == (
        "byte 20: payload is 128 bytes but 0 antennas x 64 subcarriers need 0",
        20,
    )


def test_bad_espectre_packets_say_what_is_wrong_and_where() -> None:
    assert _error(ESPECTRE_GOLDEN[:6], parse_espectre) == (
        "byte 0: Micro-ESPectre packet of 6 bytes is shorter than its header", 0,
    )  # fmt: skip
    assert _error(ESPECTRE_GOLDEN[:7]) == ("byte 7: payload is 0 bytes but 64 subcarriers need 128", 7)
    assert _error(b"SD" + ESPECTRE_GOLDEN[2:], parse_espectre) == (
        "byte 0: bad Micro-ESPectre magic 0x4453",
        0,
    )
    odd = ESPECTRE_GOLDEN[:5] + b"\xc0\x00" + bytes(384)  # 384 bytes fit no layout of a classic chip or C5/C6
    assert _error(odd) == ("no known ESP32-C5/C6 buffer is 384 bytes long", None)


def test_espectre_frame_fields_and_an_unknown_chip() -> None:
    frame = parse_datagram(ESPECTRE_GOLDEN, link_prefix="lab")
    assert (frame.link, frame.device_ts_us, frame.host_ts, frame.channel_mhz, frame.bandwidth_mhz) == (
        "lab-esp32s3", 0, 0.0, 0, 20,
    )  # fmt: skip
    assert math.isnan(frame.rssi_dbm) and math.isnan(frame.noise_dbm)  # the packet carries neither
    assert frame.meta == {
        "protocol": "espectre", "chip": "esp32s3", "layout": "lltf", "gain_locked": True,
        "first_word_invalid": False,
    }  # fmt: skip
    unknown = bytearray(ESPECTRE_GOLDEN)
    unknown[2] = 9
    assert parse_datagram(bytes(unknown)).meta["chip"] == "code9"
    assert parse_datagram(bytes(unknown)).link == "esp32-code9"


def test_adr018_layouts_from_flags_and_length() -> None:
    stbc = parse_datagram(
        adr018_datagram(RNG.integers(-128, 128, 384).astype(np.int8), flags=ADR018_FLAG_STBC)
    )
    assert (stbc.meta["layout"], stbc.bandwidth_mhz) == ("ht-ltf", 20)  # LLTF + HT-LTF + STBC-HT-LTF
    c6_only = parse_datagram(adr018_datagram(RNG.integers(-128, 128, 106).astype(np.int8)))
    assert c6_only.subcarriers.tolist() == list(range(-26, 27))  # a length only the C5/C6 LLTF has
    assert (c6_only.meta["layout"], c6_only.device_ts_us, c6_only.host_ts) == ("lltf", 0, 0.0)


def test_datagram_files_name_their_links_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "kitchen.udp"
    path.write_bytes(length_prefixed([ADR018_GOLDEN, ESPECTRE_GOLDEN]))
    assert [f.link for f in iter_datagram_file(path)] == ["kitchen-7", "kitchen-esp32s3"]  # type: ignore[union-attr]
    assert [f.link for f in iter_datagram_file(path, link="lab")] == ["lab-7", "lab-esp32s3"]  # type: ignore[union-attr]
    good = length_prefixed([ADR018_GOLDEN])
    for tail, message in [
        (b"\x07", f"byte {len(good)}: truncated datagram length"),
        (
            b"\x00\x00",
            f"byte {len(good)}: datagram: byte 0: not an ADR-018, Micro-ESPectre or CSI_DATA datagram",
        ),
        (b"\x2c\x01" + bytes(10), f"byte {len(good)}: datagram of 300 bytes runs past the end of the file"),
    ]:
        path.write_bytes(good + tail)
        items = list(iter_datagram_file(path))
        assert isinstance(items[0], CsiFrame) and len(items) == 2
        assert (str(items[1]), items[1].offset) == (message, len(good))  # type: ignore[union-attr]


def test_adr018_he_tagging_bytes_reach_meta_and_a_zeroed_first_word_is_left_out() -> None:
    """Bytes 18-19 under CONFIG_CSI_FRAME_HE_TAGGING (csi_collector.c): PPDU type, then flags with bit 4 the
    mesh sync and bit 5 the first word the firmware zeroed, which in an LLTF holds subcarriers 0 and 1."""
    tagged = bytearray(ADR018_GOLDEN)
    tagged[18:20] = b"\x02\x30"  # PPDU type 2; flags: sync valid, first word zeroed
    frame = parse_adr018(bytes(tagged))
    assert (frame.meta["ppdu_type"], frame.meta["flags"]) == (2, 0x30)
    assert (frame.meta["sync_valid"], frame.meta["first_word_invalid"]) == (True, True)
    assert frame.subcarriers.tolist() == [k for k in range(-32, 32) if k not in (0, 1)]
    np.testing.assert_array_equal(frame.csi[0, 0], [lltf_value(k) for k in range(-32, 32) if k not in (0, 1)])
    plain = parse_adr018(ADR018_GOLDEN)
    assert (plain.meta["ppdu_type"], plain.meta["flags"], plain.meta["sync_valid"]) == (0, 0, False)


def test_frames_parsed_without_a_link_prefix_are_named_esp32_and_say_their_wire_format() -> None:
    adr018, espectre = parse_adr018(ADR018_GOLDEN), parse_espectre(ESPECTRE_GOLDEN)
    assert (adr018.link, espectre.link) == ("esp32-7", "esp32-esp32s3")
    assert {adr018.wire_format, espectre.wire_format} == {"esp32-udp"}


def test_a_datagram_holding_only_a_magic_is_told_its_header_is_short() -> None:
    """The magic alone says which protocol the sender speaks: the error names it, not 'unknown datagram'."""
    assert _error(ADR018_GOLDEN[:4]) == (
        "byte 0: ADR-018 frame of 4 bytes is shorter than its 20-byte header",
        0,
    )
    assert _error(b"SC") == ("byte 0: Micro-ESPectre packet of 2 bytes is shorter than its header", 0)


def test_a_text_datagram_is_named_by_the_link_prefix() -> None:
    frame = parse_datagram(classic_csv_line(BUF128).encode(), link_prefix="kitchen")
    assert frame.link == "kitchen"
