"""esp-csi ``CSI_DATA`` lines: the README's real lines, the three layouts, errors with line numbers, fuzz."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_csv import iter_esp_csv, iter_esp_csv_file, parse_csi_line
from appliance.csi.formats.espressif import classic_layout, lltf64_to_sorted
from appliance.csi.frame import CsiFrame
from tests.captures import capture
from tests.encoders import classic_csv_line, espressif_buffer


def _readme_rows() -> list[list[str]]:
    with capture("esp32/esp-csi-readme-lines.csv").open(newline="") as f:
        return list(csv.reader(f))


def test_golden_classic_line() -> None:
    row = _readme_rows()[0]
    frame = parse_csi_line(",".join(row[:-1]) + ',"' + row[-1] + '"', line_no=1)
    data = [int(v) for v in row[-1].strip("[]").split(",")]
    assert (frame.seq, frame.device_ts_us, frame.rssi_dbm, frame.noise_dbm) == (0, 2751923, -30.0, -93.0)
    assert frame.channel_mhz == 2472  # channel 13
    assert (frame.link, frame.host_ts, frame.wire_format) == ("esp32", 0.0, "esp32-csv")
    # What a serial console printed before the line on the same row (a log line whose newline was lost).
    prefixed = parse_csi_line(
        "I (2751) wifi: bcn_timeout " + ",".join(row[:-1]) + ',"' + row[-1] + '"', line_no=1
    )
    assert prefixed.meta == frame.meta and np.array_equal(prefixed.csi, frame.csi)
    assert frame.meta == {
        "chip": "classic", "layout": "lltf", "first_word_invalid": True, "mac": "94:d9:b3:80:8c:81",
        "rate": 11, "sig_mode": 1, "mcs": 6, "bandwidth": 1, "stbc": 1, "secondary_channel": 2, "ant": 0,
        "sig_len": 67, "rx_state": 0, "line": 1,
    }  # fmt: skip
    # len 128 with only the LLTF enabled; secondary below: pair k is subcarrier k - 32 of the primary
    # channel, and the garbage first word (pairs 0, 1 = subcarriers -32, -31) is left out.
    assert frame.subcarriers.tolist() == list(range(-30, 32))
    for sc in (-26, -1, 0, 1, 26):
        k = sc + 32
        assert frame.csi[0, 0, sc + 30] == complex(data[2 * k + 1], data[2 * k])
    assert frame.csi[0, 0, 0] == 0  # guard band


def test_golden_c6_line() -> None:
    row = _readme_rows()[1]
    frame = parse_csi_line(",".join(row[:-1]) + ',"' + row[-1] + '"')
    data = [int(v) for v in row[-1].strip("[]").split(",")]
    assert (frame.seq, frame.device_ts_us, frame.rssi_dbm, frame.noise_dbm) == (7, 372852, -23.0, -96.0)
    assert frame.channel_mhz == 2462
    assert frame.bandwidth_mhz == 40
    assert frame.meta["fft_gain"] == 32
    assert frame.meta["agc_gain"] == 4
    assert frame.meta["sig_len"] == 47
    assert frame.meta["chip"] == "c5c6"
    assert frame.meta["mac"] == "1a:00:00:00:00:00"
    assert frame.subcarriers.tolist() == list(range(-64, 64))
    values = frame.csi[0, 0]
    for sc in (-58, -2, 2, 58):
        k = sc + 64
        assert values[k] == complex(data[2 * k + 1], data[2 * k])
    # HT40's guard and DC tones are the zeros: ascending order, not 0..63, -64..-1.
    nulls = [*range(-64, -58), -1, 0, 1, *range(59, 64)]
    assert all(values[sc + 64] == 0 for sc in nulls)
    assert np.count_nonzero(values) == 128 - len(nulls)


def test_capture_file_reader_yields_both_lines() -> None:
    items = list(iter_esp_csv_file(capture("esp32/esp-csi-readme-lines.csv")))
    assert [type(x) for x in items] == [CsiFrame, CsiFrame]


LAYOUT_CASES = [
    # secondary, sig_mode, cwb, stbc, length, chosen block, first/last index
    (0, 0, 0, 0, 128, "lltf", -32, 31),
    (0, 1, 0, 0, 256, "ht-ltf", -32, 31),
    (0, 1, 0, 1, 384, "ht-ltf", -32, 31),
    (2, 1, 0, 0, 256, "ht-ltf", -32, 31),
    (2, 1, 0, 1, 380, "ht-ltf", -32, 30),
    (1, 1, 0, 1, 376, "ht-ltf", -30, 31),
    (2, 1, 1, 0, 384, "ht-ltf", -64, 63),
    (1, 1, 1, 1, 612, "ht-ltf", -60, 60),
    (1, 1, 1, 1, 128, "lltf", -32, 31),
]


@pytest.mark.parametrize(("sec", "sig", "cwb", "stbc", "length", "block", "lo", "hi"), LAYOUT_CASES)
def test_classic_layouts(
    sec: int, sig: int, cwb: int, stbc: int, length: int, block: str, lo: int, hi: int
) -> None:
    layout = classic_layout(secondary=sec, sig_mode=sig, cwb=cwb, stbc=stbc, length=length)
    assert layout.name == block
    assert layout.n_bytes == length
    rng = np.random.default_rng(0)
    buf = rng.integers(-128, 128, length).astype(np.int8)
    frame = parse_csi_line(classic_csv_line(buf, secondary=sec, sig_mode=sig, cwb=cwb, stbc=stbc))
    assert frame.subcarriers[0] == lo
    assert frame.subcarriers[-1] == hi
    assert len(set(frame.subcarriers.tolist())) == frame.n_subcarriers  # one block, no repeated index
    offset, chosen = layout.chosen
    expected = {
        int(i): complex(buf[offset + 2 * k + 1], buf[offset + 2 * k]) for k, i in enumerate(chosen.indices)
    }
    assert {int(i): complex(v) for i, v in zip(frame.subcarriers, frame.csi[0, 0], strict=True)} == expected


def test_round_trip_lltf_fft_order() -> None:
    values = np.arange(64) - 32 + 1j * (np.arange(64) % 7)
    fft_order = np.concatenate([values[32:], values[:32]])  # 0..31 then -32..-1
    frame = parse_csi_line(classic_csv_line(espressif_buffer(fft_order), first_word=1))
    assert frame.subcarriers.tolist() == [*range(-32, 0), *range(2, 32)]
    assert np.array_equal(frame.csi[0, 0], np.delete(values, [32, 33]))


def _radar_line(data: str, length: int, cwb: int = 0) -> str:
    head = ["CSI_DATA", 5, 1000, 0, "unknown", "aa:bb:cc:dd:ee:ff", -40, 11, 1, 0, cwb, 0, 0, 0, 0, 0, 0,
            -95, 0,
            11, 0, 77, 0, 50, 0, 20, 10, length, 0]  # fmt: skip
    return ",".join(map(str, head)) + "," + data


def test_esp_radar_decimal_and_base64() -> None:
    buf = np.arange(216, dtype=np.int16).astype(np.int8) - 100
    dec = parse_csi_line(_radar_line('"[' + ",".join(map(str, buf.tolist())) + ']"', 216))
    b64 = parse_csi_line(_radar_line(base64.b64encode(buf.tobytes()).decode(), 216))
    assert (dec.meta["layout"], dec.meta["chip"]) == ("ht-ltf", "esp-radar")
    assert dec.subcarriers.tolist() == [*range(-28, 0), *range(1, 29)]
    assert np.array_equal(dec.csi, b64.csi)
    assert dec.seq == 5
    assert dec.meta["agc_gain"] == 20


def test_log_lines_skipped_and_bad_lines_reported_with_line_numbers() -> None:
    good = classic_csv_line(np.zeros(128, np.int8))
    lines = ["I (123) wifi: boot", good, good.replace('"[', '"[x,'), "garbage", good[:60], good]
    items = list(iter_esp_csv(lines))
    assert [type(x).__name__ for x in items] == ["CsiFrame", "CsiFormatError", "CsiFormatError", "CsiFrame"]
    assert [x.line for x in items if isinstance(x, CsiFormatError)] == [3, 5]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.replace(",128,", ",126,"),
        lambda s: s.replace('"[0,', '"[300,'),
        lambda s: s[:-2],
        lambda s: s.replace(",6,0,", ",x,0,", 1),
    ],
)
def test_malformed_lines_raise_format_errors(mutate: object) -> None:
    line = classic_csv_line(np.zeros(128, np.int8), channel=6)
    with pytest.raises(CsiFormatError):
        parse_csi_line(mutate(line), line_no=9)  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_text_never_raises_other_errors(text: str) -> None:
    for line in ("CSI_DATA," + text, text):
        for _ in iter_esp_csv([line]):
            pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_lines(data: st.DataObject) -> None:
    line = list(classic_csv_line(np.arange(128).astype(np.int8), secondary=2, sig_mode=1))
    for _ in range(data.draw(st.integers(1, 5))):
        line[data.draw(st.integers(0, len(line) - 1))] = data.draw(
            st.sampled_from(list(',"[]-0123456789ab '))
        )
    for _ in iter_esp_csv(["".join(line)]):
        pass


def test_a_serial_log_with_undecodable_bytes_is_read(tmp_path: Path) -> None:
    """A boot log's garbage bytes (not UTF-8) become replacement characters; the CSI lines around them
    are read, and the file's name is the link unless one is given."""
    buffer = espressif_buffer(np.arange(64) + 1j * np.arange(64))
    path = tmp_path / "bedroom.log"
    path.write_bytes(
        b"\xff\xfe\x80 rst:0x1 (POWERON_RESET)\r\n"
        + classic_csv_line(buffer, seq=1).encode()
        + b"\r\n\xc3\x28 garbled\r\n"
        + classic_csv_line(buffer, seq=2).encode()
        + b"\n"
    )
    frames = list(iter_esp_csv_file(path))
    assert [(f.seq, f.link) for f in frames] == [(1, "bedroom"), (2, "bedroom")]  # type: ignore[union-attr]
    assert [f.link for f in iter_esp_csv_file(path, link="node-4")] == ["node-4", "node-4"]  # type: ignore[union-attr]


RADAR_LLTF = [*range(-26, 0), *range(1, 27)]
RADAR_HT20 = [*range(-28, 0), *range(1, 29)]
RADAR_HT40_CLASSIC = [*range(-58, -30), *range(-29, -1), *range(2, 30), *range(31, 59)]
RADAR_HT40 = [*range(-58, -1), *range(2, 59)]
RADAR_HE20 = [*range(-122, -1), *range(2, 123)]


@pytest.mark.parametrize(
    ("cwb", "length", "name", "bandwidth", "indices", "first_byte"),
    [
        (0, 104, "lltf", 20, RADAR_LLTF, 0),
        (0, 216, "ht-ltf", 20, RADAR_HT20, 104),  # LLTF, HT-LTF
        (0, 328, "ht-ltf", 20, RADAR_HT20, 104),  # LLTF, HT-LTF, STBC-HT-LTF
        (0, 112, "ht-ltf", 20, RADAR_HT20, 0),
        (0, 224, "ht-ltf", 20, RADAR_HT20, 0),  # HT-LTF, STBC-HT-LTF
        (0, 484, "he-ltf", 20, RADAR_HE20, 0),
        (1, 104, "lltf", 20, RADAR_LLTF, 0),
        (1, 328, "ht-ltf", 40, RADAR_HT40_CLASSIC, 104),
        (1, 552, "ht-ltf", 40, RADAR_HT40_CLASSIC, 104),
        (1, 228, "ht-ltf", 40, RADAR_HT40, 0),
        (1, 456, "ht-ltf", 40, RADAR_HT40, 0),
    ],
)
def test_esp_radar_filtered_layouts(
    cwb: int, length: int, name: str, bandwidth: int, indices: list[int], first_byte: int
) -> None:
    """esp-radar's valid subcarriers only, block after block, each ascending (its sub_carrier_table)."""
    buf = (np.arange(length) % 251 - 125).astype(np.int8)
    frame = parse_csi_line(_radar_line(base64.b64encode(buf.tobytes()).decode(), length, cwb))
    assert (frame.meta["layout"], frame.bandwidth_mhz) == (name, bandwidth)
    assert frame.subcarriers.tolist() == indices
    assert frame.csi[0, 0, 0] == complex(buf[first_byte + 1], buf[first_byte])  # imaginary byte first
    assert frame.csi[0, 0, -1] == complex(
        buf[first_byte + 2 * len(indices) - 1], buf[first_byte + 2 * len(indices) - 2]
    )


def test_esp_radar_length_that_fits_no_layout() -> None:
    with pytest.raises(
        CsiFormatError, match=r"no esp-radar filtered layout is 100 bytes long \(bandwidth flag 1\)"
    ):
        parse_csi_line(_radar_line(base64.b64encode(bytes(100)).decode(), 100, 1))


def test_lltf_blocks_sorted_with_and_without_their_first_word() -> None:
    fft = [*range(32), *range(-32, 0)]  # the buffer's order
    values = np.array([[complex(k, -k) for k in fft]], dtype=np.complex64)
    sorted_values, indices = lltf64_to_sorted(values, first_word_invalid=False)
    assert indices.tolist() == list(range(-32, 32))
    assert sorted_values[0].tolist() == [complex(k, -k) for k in range(-32, 32)]
    kept, without = lltf64_to_sorted(values, first_word_invalid=True)
    assert without.tolist() == [*range(-32, 0), *range(2, 32)]  # subcarriers 0 and 1 held the garbage word
    assert kept[0].tolist() == [complex(k, -k) for k in without.tolist()]
    with pytest.raises(CsiFormatError, match=r"^an LLTF block has 64 subcarriers, got 62$"):
        lltf64_to_sorted(values[:, :62], first_word_invalid=False)


GOOD = classic_csv_line(np.zeros(128, np.int8))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("I (312) wifi: connected", "not a CSI_DATA line"),
        (GOOD.replace(',"[', '"['), "the data column must follow a comma"),
        (GOOD[:-2], "data list is not closed with ']' (line cut short?)"),
        (
            GOOD.replace('"[0,', '"[0x1,', 1),
            "data list holds a non-integer (invalid literal for int() with base 10: '0x1')",
        ),
        (GOOD.replace('"[0,', '"[128,', 1), "data values must be int8 (-128..127)"),
        (GOOD.replace('"[0,', '"[-129,', 1), "data values must be int8 (-128..127)"),
        (GOOD.replace(",128,0,", ",126,0,", 1), "len says 126 bytes but the data holds 128"),
        (GOOD.replace(",-40,", ",strong,", 1), "column 'rssi' is not an integer: 'strong'"),
        (
            'CSI_DATA,1,2,3,"[1,2]"',
            "5 columns; known layouts have 25 (classic), 15 (C5/C6) or 30 (esp-radar)",
        ),
        (
            _radar_line("!!notbase64", 4),
            "data is neither a [..] list nor base64 (Only base64 data is allowed)",
        ),
        (
            GOOD.replace(",128,0,", ",0,0,", 1).replace('"[' + ",".join(["0"] * 128) + ']"', '"[]"'),
            "a 0-byte buffer fits no subset of this packet's blocks (lltf:128)",
        ),
    ],
)
def test_bad_lines_say_what_is_wrong_on_which_line(line: str, message: str) -> None:
    with pytest.raises(CsiFormatError) as caught:
        parse_csi_line(line, line_no=7)
    assert (str(caught.value), caught.value.line) == (f"line 7: {message}", 7)


def test_extremes_and_an_empty_list_are_data() -> None:
    extremes = classic_csv_line(np.array([-128, 127] * 64, np.int8))
    frame = parse_csi_line(extremes)
    assert frame.csi[0, 0, 32] == 127 - 128j
    assert frame.meta["chip"] == "classic" and "line" not in frame.meta
    c6_head = [
        "CSI_DATA",
        "1",
        "aa:bb:cc:dd:ee:ff",
        "-40",
        "11",
        "0",
        "-95",
        "6",
        "1000",
        "0",
        "0",
        "0",
        "128",
        "0",
    ]
    c6_line = ",".join(c6_head) + ',"[' + ",".join(["1"] * 128) + ']"'
    assert parse_csi_line(c6_line).meta["chip"] == "c5c6"


def test_a_log_names_its_link_and_the_line_of_each_error() -> None:
    items = list(iter_esp_csv(["boot", GOOD, GOOD[:-2]], link="desk"))
    assert isinstance(items[0], CsiFrame) and items[0].link == "desk" and items[0].meta["line"] == 2
    assert isinstance(items[1], CsiFormatError) and str(items[1]).startswith(
        "line 3: data list is not closed"
    )
    assert [f.link for f in iter_esp_csv([GOOD])] == ["esp32"]  # type: ignore[union-attr]
