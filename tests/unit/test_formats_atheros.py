"""Atheros CSI Tool logs: golden values from the real capture, antenna order, round trips, resync, fuzz."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.csi.formats.atheros import (
    AtherosStreamParser,
    iter_atheros_file,
    plausible_header,
    read_atheros_batches,
    read_atheros_file,
)
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.frame import CsiFrame
from tests import golden_atheros as golden
from tests.captures import capture
from tests.conftest import REPO
from tests.encoders import atheros_record

RECORD_BYTES = 1907  # 2 + 25 + 840 + 1040 in ath_csi_1.dat


def slow_10bit(raw: bytes, index: int) -> int:
    """Value ``index`` of a little-endian 10-bit two's-complement stream, one bit at a time."""
    value = 0
    for bit in range(10):
        pos = index * 10 + bit
        value |= ((raw[pos // 8] >> (pos % 8)) & 1) << bit
    return value - 1024 if value & 512 else value


@pytest.fixture(scope="module")
def ath_path() -> object:
    return capture("atheros/ath_csi_1.dat")


@pytest.fixture(scope="module")
def ath_frames(ath_path: object) -> list[CsiFrame]:
    return read_atheros_file(ath_path)  # type: ignore[arg-type]


def test_golden_count_shape_and_first_header(ath_frames: list[CsiFrame]) -> None:
    assert len(ath_frames) == 401
    assert {f.csi.shape for f in ath_frames} == {(3, 2, 56)}
    first = ath_frames[0]
    assert first.device_ts_us == 1461024888
    assert first.channel_mhz == 2437
    assert first.bandwidth_mhz == 20
    assert first.meta["payload_len"] == 1040
    assert (first.meta["rssi_raw"], first.meta["rssi_0"], first.meta["rssi_1"], first.meta["rssi_2"]) == (
        52, 38, 52, 36,
    )  # fmt: skip
    assert first.meta["noise_raw"] == 0
    assert first.meta["rate"] == 0x8F
    assert first.noise_dbm == -95.0
    assert first.rssi_dbm == 52 - 95
    assert first.seq == 2544
    assert first.meta["mac"] == "04:f0:21:2c:79:37"
    assert first.subcarriers.tolist() == [*range(-28, 0), *range(1, 29)]


@pytest.mark.parametrize("record", [0, 200, 400])
def test_golden_values_match_a_slow_bit_reader(
    ath_path: object, ath_frames: list[CsiFrame], record: int
) -> None:
    data = ath_path.read_bytes()  # type: ignore[attr-defined]
    start = record * RECORD_BYTES
    assert struct.unpack_from("<H", data, start)[0] == RECORD_BYTES - 2
    csi_len = struct.unpack_from("<H", data, start + 2 + 8)[0]
    assert csi_len == 840
    raw = data[start + 27 : start + 27 + csi_len]
    frame = ath_frames[record]
    k = 0
    for tone in range(56):
        for tx in range(2):
            for rx in range(3):
                imag, real = slow_10bit(raw, k), slow_10bit(raw, k + 1)
                k += 2
                assert frame.csi[rx, tx, tone] == complex(real, imag)


def test_antenna_order_proven_by_shared_receive_chain_gain(ath_frames: list[CsiFrame]) -> None:
    """Both tx streams heard by one rx chain share its gain; csiread's grouping mixes chains."""
    csi = np.stack([f.csi for f in ath_frames])
    power = 10 * np.log10((np.abs(csi) ** 2).mean(axis=3))  # [packet, rx, tx]
    for rx in range(3):
        assert np.corrcoef(power[:, rx, 0], power[:, rx, 1])[0, 1] > 0.99
    csiread_order = csi.transpose(0, 3, 2, 1).reshape(len(csi), 56, 3, 2).transpose(0, 2, 3, 1)
    wrong = 10 * np.log10((np.abs(csiread_order) ** 2).mean(axis=3))
    assert all(np.corrcoef(wrong[:, r, 0], wrong[:, r, 1])[0, 1] < 0.5 for r in range(3))
    rssi = np.array([[f.meta["rssi_0"], f.meta["rssi_1"], f.meta["rssi_2"]] for f in ath_frames])
    assert int(np.argmax(power.mean(axis=(0, 2)))) == int(np.argmax(rssi.mean(axis=0))) == 1


def test_batches_agree_with_frames(ath_path: object, ath_frames: list[CsiFrame]) -> None:
    (batch,) = read_atheros_batches(ath_path.read_bytes())  # type: ignore[attr-defined]
    assert np.array_equal(batch.csi, np.stack([f.csi for f in ath_frames]))


@pytest.mark.parametrize(
    ("record", "big_endian"),
    [(golden.NOISE_A1_LITTLE_ENDIAN, False), (golden.NOISE_9C_BIG_ENDIAN, True)],
    ids=["noise-0xA1-little-endian", "noise-0x9C-big-endian"],
)
def test_golden_literal_record_with_a_signed_noise_floor(record: bytes, big_endian: bool) -> None:
    """Records written byte by byte from the tool's definition (tests/golden_atheros.py), noise >= 0x80."""
    parser = AtherosStreamParser("router")
    (frame,) = parser.feed(record)
    assert not parser.errors
    assert frame.noise_dbm == golden.NOISE_DBM[record]
    assert frame.rssi_dbm == golden.RSSI_ABOVE_FLOOR_DB + golden.NOISE_DBM[record]
    assert (frame.device_ts_us, frame.channel_mhz, frame.bandwidth_mhz) == (
        golden.TIMESTAMP_US, golden.CHANNEL_MHZ, 20,
    )  # fmt: skip
    assert (frame.seq, frame.meta["mac"], frame.meta["big_endian"]) == (
        golden.SEQUENCE, golden.TRANSMITTER_MAC, big_endian,
    )  # fmt: skip
    assert frame.meta["noise_raw"] == record[2 + 13]
    assert frame.csi.shape == (1, 1, 56)
    assert frame.csi[0, 0, 0] == golden.TONE_0
    assert frame.csi[0, 0, 1] == golden.TONE_1
    assert not frame.csi[0, 0, 2:].any()
    assert frame.subcarriers[:2].tolist() == [-28, -27]


@pytest.mark.parametrize(("byte", "dbm"), [(0x01, 1.0), (0x7F, 127.0), (0x80, -128.0)])
def test_the_noise_byte_is_an_int8_over_its_whole_range(byte: int, dbm: float) -> None:
    record = bytearray(golden.NOISE_A1_LITTLE_ENDIAN)
    record[2 + 13] = byte
    (frame,) = AtherosStreamParser("router").feed(bytes(record))
    assert (frame.noise_dbm, frame.rssi_dbm) == (dbm, golden.RSSI_ABOVE_FLOOR_DB + dbm)


# A record the driver writes without CSI or payload (csi_len 0): its 25-byte header alone.
HEADER_ONLY = bytes.fromhex("190040420F00000000000000850900000000380101000000000000")
# The golden record with phyerr 5 and no payload: no 802.11 header, so no sequence number or transmitter.
NO_PAYLOAD = (
    bytes.fromhex("A500")  # buf_len: 25 + 140
    + golden.NOISE_A1_LITTLE_ENDIAN[2:14]
    + b"\x05"  # phyerr at header byte 12
    + golden.NOISE_A1_LITTLE_ENDIAN[15:25]
    + bytes.fromhex("0000")  # payload_len: 0
    + golden.CSI_BYTES
)


def test_records_say_where_they_are_and_a_payload_without_a_sequence_takes_its_record_count() -> None:
    """``meta['offset']`` is the record's byte offset in the whole stream, however it was fed; a record
    whose payload has no 802.11 header is numbered by the records before it (header-only ones count)."""
    stream = golden.NOISE_A1_LITTLE_ENDIAN + HEADER_ONLY + NO_PAYLOAD + HEADER_ONLY
    parser = AtherosStreamParser("router")
    cuts = [0, 191 + 10, 191 + 27 + 10, len(stream)]  # three reads, each ending inside a record
    frames = [f for a, b in itertools.pairwise(cuts) for f in parser.feed(stream[a:b])]
    assert not parser.close() and not parser.errors  # a header-only record may end the stream
    assert [f.meta["offset"] for f in frames] == [0, 191 + 27]
    assert [f.seq for f in frames] == [golden.SEQUENCE, 2]
    assert [(f.link, f.host_ts) for f in frames] == [("router", 0.0)] * 2
    assert (frames[1].meta["mac"], frames[1].meta["phyerr"], frames[1].meta["payload_len"]) == ("", 5, 0)
    assert frames[1].csi[0, 0, 1] == golden.TONE_1


def test_a_plausible_header_is_found_at_its_offset_up_to_the_last_byte() -> None:
    data = b"\x00\x00\x00" + HEADER_ONLY
    assert plausible_header(data, 3)
    assert not plausible_header(data, 0)
    assert not plausible_header(HEADER_ONLY[:-1])


def test_the_atheris_fuzzer_starts_from_the_golden_records() -> None:
    seeds = REPO / "bench" / "fuzz_seeds"
    assert (seeds / "atheros-noise-0xA1-little-endian.bin").read_bytes() == golden.NOISE_A1_LITTLE_ENDIAN
    assert (seeds / "atheros-noise-0x9C-big-endian.bin").read_bytes() == golden.NOISE_9C_BIG_ENDIAN


def test_a_record_between_good_ones_costs_only_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A record whose values make no frame (here: a noise reader that refuses the byte, as numpy 2's
    ``np.int8(0xA1)`` did) is reported at its offset; the records around it still come out."""
    good = atheros_record(np.ones((1, 1, 56)) * (3 - 2j), timestamp=7)

    def refuse(value: int) -> int:
        raise OverflowError(f"Python integer {value} out of bounds for int8")

    monkeypatch.setattr("appliance.csi.formats.atheros._signed_byte", refuse)
    parser = AtherosStreamParser()
    items = parser.feed_items(good + golden.NOISE_A1_LITTLE_ENDIAN + good)
    assert [type(x) for x in items] == [CsiFrame, CsiFormatError, CsiFrame]
    assert items[1].offset == len(good)  # type: ignore[union-attr]
    assert "out of bounds" in str(items[1])
    assert parser.errors == [items[1]]


def _random_csi(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    return rng.integers(-512, 512, shape) + 1j * rng.integers(-512, 512, shape)


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(("shape", "bw"), [((3, 2, 56), 0), ((1, 1, 56), 0), ((2, 3, 114), 1)])
def test_round_trip(endian: str, shape: tuple[int, int, int], bw: int) -> None:
    rng = np.random.default_rng(1)
    csi = [_random_csi(rng, shape) for _ in range(3)]
    data = b"".join(
        atheros_record(c, timestamp=10 + i, endian=endian, bandwidth=bw, payload=b"\x00" * 30)
        for i, c in enumerate(csi)
    )
    parser = AtherosStreamParser()
    frames = parser.feed(data) + [x for x in parser.close() if isinstance(x, CsiFrame)]
    assert not parser.errors
    assert [f.device_ts_us for f in frames] == [10, 11, 12]
    assert all(np.array_equal(f.csi, c) for f, c in zip(frames, csi, strict=True))
    assert frames[0].meta["big_endian"] is (endian == ">")
    assert frames[0].bandwidth_mhz == (40 if bw else 20)


def test_partial_records_wait_for_more_bytes() -> None:
    rng = np.random.default_rng(2)
    data = b"".join(atheros_record(_random_csi(rng, (3, 2, 56)), timestamp=i) for i in range(5))
    parser = AtherosStreamParser()
    frames: list[CsiFrame] = []
    for i in range(0, len(data), 97):
        frames += parser.feed(data[i : i + 97])
    assert [f.device_ts_us for f in frames] == list(range(5))
    assert not parser.errors
    assert not parser.close()


def test_resynchronizes_after_garbage_and_truncation() -> None:
    rng = np.random.default_rng(3)
    records = [
        atheros_record(_random_csi(rng, (3, 2, 56)), timestamp=i, payload=b"\x01" * 40) for i in range(6)
    ]
    damaged = (
        b"\xff" * 37 + records[0] + records[1][:500] + records[2] + b"junk" * 9 + records[3] + records[4]
    )
    damaged += records[5][:100]
    parser = AtherosStreamParser()
    frames = parser.feed(damaged)
    tail = parser.close()
    assert [f.device_ts_us for f in frames] == [0, 2, 3, 4]
    # Records of 907 bytes (2 + 25 + 840 CSI + 40 payload): record 1 is cut after 500, record 2 starts at
    # 37 + 907 + 500 = 1444 and the junk after it at 2351; the last 100 bytes are record 5's start.
    assert [str(e) for e in parser.errors] == [
        "byte 0: implausible Atheros record header; skipped 37 bytes to the next plausible record",
        "byte 944: record cut short: the next record starts 500 bytes in, not 907; skipped",
        "byte 2351: implausible Atheros record header; skipped 36 bytes to the next plausible record",
        "byte 4201: truncated record: 100 bytes left",
    ]
    assert [e.offset for e in parser.errors] == [0, 944, 2351, 4201]
    assert tail == parser.errors[-1:]


def test_a_record_whose_payload_holds_a_record_is_one_record() -> None:
    """A router forwarding another router's log over Wi-Fi captures packets whose payload is a CSI record:
    the header inside is not where the next record starts, whether or not that one has arrived yet."""
    carrier = atheros_record(
        np.ones((1, 1, 56)) * (5 + 5j), timestamp=1, payload=golden.NOISE_A1_LITTLE_ENDIAN
    )
    following = atheros_record(np.ones((1, 1, 56)), timestamp=2)
    for reads in ([carrier + following], [carrier, following]):
        parser = AtherosStreamParser()
        frames = [f for data in reads for f in parser.feed(data)]
        assert [f.device_ts_us for f in frames] == [1, 2]
        assert not parser.close() and not parser.errors


@pytest.mark.parametrize(
    ("record", "junk"), [(golden.NOISE_A1_LITTLE_ENDIAN, 1), (golden.NOISE_9C_BIG_ENDIAN, 5)]
)
def test_stray_bytes_between_records_cost_only_themselves_in_either_byte_order(
    record: bytes, junk: int
) -> None:
    parser = AtherosStreamParser()
    frames = parser.feed(record + b"\x00" * junk + record + record)
    assert len(frames) == 3
    assert [(str(e), e.offset) for e in parser.errors] == [
        (
            f"byte 191: implausible Atheros record header; skipped {junk} bytes to the next plausible record",
            191,
        )
    ]


def test_a_length_past_the_end_of_the_stream_does_not_hide_the_records_behind_it() -> None:
    """A damaged header whose length and payload_len both grew (still plausible) claims more bytes than
    the stream has left; at the end of the stream the whole records inside it still come out."""
    rng = np.random.default_rng(8)
    records = [atheros_record(_random_csi(rng, (3, 2, 56)), timestamp=i) for i in range(3)]
    damaged = bytearray(records[0])
    grown = 4000
    struct.pack_into("<H", damaged, 0, struct.unpack_from("<H", damaged)[0] + grown)
    struct.pack_into("<H", damaged, 2 + 23, struct.unpack_from("<H", damaged, 2 + 23)[0] + grown)
    parser = AtherosStreamParser()
    # ... and the last of which was cut short after 50 bytes.
    assert parser.feed(bytes(damaged) + records[1] + records[2] + records[0][:50]) == []  # waiting
    tail = parser.close()
    assert [f.device_ts_us for f in tail if isinstance(f, CsiFrame)] == [1, 2]
    assert (str(tail[-1]), tail[-1].offset) == ("byte 2601: truncated record: 50 bytes left", 2601)  # type: ignore[union-attr]
    # Three records of 867 bytes (and 50); the first claims 2 + 865 + 4000 bytes.
    assert (
        str(tail[0])
        == f"byte 0: record runs {2 + 865 + grown - 3 * 867 - 50} bytes past the end of the stream; skipped"
    )


def test_a_parser_told_the_byte_order_reads_only_that_one() -> None:
    assert AtherosStreamParser().feed(golden.NOISE_A1_LITTLE_ENDIAN)[0].link == "atheros"
    assert len(AtherosStreamParser(endian="<").feed(golden.NOISE_A1_LITTLE_ENDIAN)) == 1
    assert len(AtherosStreamParser(endian=">").feed(golden.NOISE_9C_BIG_ENDIAN)) == 1
    big_only = AtherosStreamParser(endian=">")
    assert big_only.feed(golden.NOISE_A1_LITTLE_ENDIAN) == [] and big_only.close()
    with pytest.raises(ValueError, match=r"^endian must be '<', '>' or None, got 'big'$"):
        AtherosStreamParser(endian="big")


def test_log_files_name_their_link_after_the_file_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "livingroom.dat"
    path.write_bytes(golden.NOISE_A1_LITTLE_ENDIAN)
    assert [f.link for f in read_atheros_file(path)] == ["livingroom"]
    assert [f.link for f in read_atheros_file(path, link="lab")] == ["lab"]


def test_file_reader_reports_errors_in_order(tmp_path: object) -> None:
    rng = np.random.default_rng(4)
    path = tmp_path / "log.dat"  # type: ignore[operator]
    path.write_bytes(atheros_record(_random_csi(rng, (3, 2, 56))) + b"\x00\x01\x02")
    items = list(iter_atheros_file(path))
    assert isinstance(items[0], CsiFrame)
    assert isinstance(items[-1], CsiFormatError)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=500))
@example(golden.NOISE_A1_LITTLE_ENDIAN, 1)
@example(golden.NOISE_9C_BIG_ENDIAN + golden.NOISE_A1_LITTLE_ENDIAN, 97)
def test_fuzz_random_bytes_never_crash(data: bytes, chunk: int) -> None:
    parser = AtherosStreamParser()
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])
    parser.close()


_MUTATION_SEEDS = {
    "encoder-2x2": (
        b"".join(
            atheros_record(_random_csi(np.random.default_rng(5), (2, 2, 56)), timestamp=i) for i in range(3)
        ),
        (2, 2, 56),
    ),
    "golden-noise-0xA1-little-endian": (golden.NOISE_A1_LITTLE_ENDIAN * 3, (1, 1, 56)),
    "golden-noise-0x9C-big-endian": (golden.NOISE_9C_BIG_ENDIAN * 3, (1, 1, 56)),
}


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(sorted(_MUTATION_SEEDS)))
def test_fuzz_mutated_records_never_crash(data: st.DataObject, seed: str) -> None:
    """Mutations of streams of records: the encoder's and the golden ones (both byte orders, signed noise)."""
    stream, shape = _MUTATION_SEEDS[seed]
    raw = bytearray(stream)
    for _ in range(data.draw(st.integers(0, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    parser = AtherosStreamParser()
    frames = parser.feed(bytes(raw[:cut])) + [x for x in parser.close() if isinstance(x, CsiFrame)]
    assert all(f.csi.shape == shape for f in frames)
    assert all(-128.0 <= f.noise_dbm <= 127.0 for f in frames)


def _mixed_log(endian: str) -> tuple[bytes, dict[int, tuple[int, np.ndarray]]]:
    """Runs of equal records, long enough for the bulk reader's guessing walk, and irregular ones.

    Returns the log and, per record with CSI, its offset -> (timestamp, csi).
    """
    rng = np.random.default_rng(6)
    shapes = [(3, 2, 56)] * 150 + [(1, 1, 56), (2, 3, 114), (3, 3, 114), (1, 3, 56)] * 10 + [(3, 2, 56)] * 40
    log, expected = b"", {}
    for i, shape in enumerate(shapes):
        if i == 170:  # a record without CSI: no batch row
            log += atheros_record(np.zeros((0, 0, 0), dtype=complex), timestamp=999, endian=endian)
        csi = _random_csi(rng, shape)
        payload = b"\x02" * (int(rng.integers(0, 60)) if 150 <= i < 190 else 30)
        expected[len(log)] = (i, csi)
        log += atheros_record(csi, timestamp=i, endian=endian, payload=payload)
    return log, expected


@pytest.mark.parametrize("endian", ["<", ">"])
def test_bulk_reader_matches_the_encoder_on_mixed_shapes_and_lengths(
    endian: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("appliance.csi.formats.atheros._DECODE_CHUNK_BYTES", 2000)  # chunk edges everywhere
    data, expected = _mixed_log(endian)
    batches = read_atheros_batches(data)
    assert [b.csi.shape[1:] for b in batches] == [
        (3, 2, 56),
        (1, 1, 56),
        (2, 3, 114),
        (3, 3, 114),
        (1, 3, 56),
    ]
    got = {int(offset): (b, i) for b in batches for i, offset in enumerate(b.offsets)}
    assert sorted(got) == sorted(expected)
    for offset, (timestamp, csi) in expected.items():
        batch, i = got[offset]
        assert batch.header[i, 0] == timestamp
        assert np.array_equal(batch.csi[i], csi)


def test_bulk_reader_raises_at_the_first_damaged_record() -> None:
    rng = np.random.default_rng(7)
    record = atheros_record(_random_csi(rng, (3, 2, 56)), payload=b"\x03" * 30)
    clean = record * 300
    damaged = bytearray(clean)
    damaged[200 * len(record) + 2 + 17] = 7  # record 200 (inside a guessed run): bandwidth 7
    with pytest.raises(CsiFormatError) as bad:
        read_atheros_batches(bytes(damaged))
    assert str(bad.value) == f"byte {200 * len(record)}: implausible or truncated record"
    with pytest.raises(CsiFormatError) as cut:
        read_atheros_batches(clean[:-1])
    assert cut.value.offset == 299 * len(record)
    assert len(read_atheros_batches(np.frombuffer(clean, dtype=np.uint8))[0].offsets) == 300
    with pytest.raises(CsiFormatError) as not_a_log:
        read_atheros_batches(b"\xff" * 100)
    assert (
        str(not_a_log.value) == "byte 0: not an Atheros CSI Tool log: the first record header is implausible"
    )
