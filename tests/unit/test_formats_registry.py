"""Format detection, file iteration and the dump shape, on every real capture."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from appliance.csi.formats import registry
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.esp_udp import parse_datagram
from appliance.csi.formats.registry import (
    detect_format,
    format_names,
    frame_to_dump,
    iter_file,
    register_reader,
)
from appliance.csi.frame import CsiFrame
from tests.captures import capture
from tests.encoders import adr018_datagram, espectre_datagram, length_prefixed

GOLDEN = [
    ("atheros/ath_csi_1.dat", "atheros", 401),
    ("intel5300/sample_0x1_ap.dat", "intel5300", 540),
    ("esp32/esp-csi-readme-lines.csv", "esp32-csv", 2),
    ("esp32/baseline_esp32_64sc_20260214_183059.npz", "espectre-npz", 961),
    ("esp32/movement_esp32_64sc_20260214_183141.npz", "espectre-npz", 1103),
    ("esp32/baseline_s3_64sc_20260117_222606.npz", "espectre-npz", 1353),
    ("esp32/movement_s3_64sc_20260117_222626.npz", "espectre-npz", 1366),
]
DUMP_KEYS = {"format", "node", "seq", "t_us", "rssi", "noise", "channel_mhz", "bandwidth_mhz", "n_rx", "n_tx",
             "subcarriers", "re", "im"}  # fmt: skip


@pytest.mark.parametrize(("relative", "fmt", "count"), GOLDEN)
def test_detect_and_count(relative: str, fmt: str, count: int) -> None:
    path = capture(relative)
    assert detect_format(path) == fmt
    items = list(iter_file(path))
    assert all(isinstance(x, CsiFrame) for x in items)
    assert len(items) == count


def test_dump_shape() -> None:
    frame = next(iter(iter_file(capture("atheros/ath_csi_1.dat"))))
    assert isinstance(frame, CsiFrame)
    dump = frame_to_dump(frame)
    assert set(dump) == DUMP_KEYS
    assert len(dump["re"]) == len(dump["im"]) == 3 * 2 * 56  # type: ignore[arg-type]
    assert dump["re"][56 + 1] == int(frame.csi[0, 1, 1].real)  # type: ignore[index]
    assert dump["im"][2 * 56 * 2 + 5] == int(frame.csi[2, 0, 5].imag)  # type: ignore[index]


def test_udp_datagram_file(tmp_path: Path) -> None:
    buf = np.arange(128).astype(np.int8)
    path = tmp_path / "udp.bin"
    path.write_bytes(length_prefixed([adr018_datagram(buf), b"nonsense", espectre_datagram(buf)]) + b"\x05")
    assert detect_format(path) == "esp32-udp"
    kinds = [type(x).__name__ for x in iter_file(path)]
    assert kinds == ["CsiFrame", "CsiFormatError", "CsiFrame", "CsiFormatError"]


def test_unknown_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("hello")
    with pytest.raises(CsiFormatError):
        detect_format(path)
    with pytest.raises(FileNotFoundError):
        iter_file(tmp_path / "missing.dat")


def test_extension_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry is process-wide: the test's reader goes into a copy that is put back afterwards, so it
    # cannot claim files in other tests.
    monkeypatch.setattr(registry, "_FORMATS", dict(registry._FORMATS))
    path = tmp_path / "a.rec"
    path.write_bytes(b"REC1")
    register_reader("test-recording", lambda p: iter(()), lambda p, head: head.startswith(b"REC1"))
    assert detect_format(path) == "test-recording"
    assert list(iter_file(path, "test-recording")) == []
    assert "test-recording" in format_names()


def test_the_test_reader_is_gone() -> None:
    assert "test-recording" not in format_names()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_detection_by_content_at_the_edges(tmp_path: Path) -> None:
    espectre = espectre_datagram(np.arange(128).astype(np.int8))
    cases = {
        # A recording renamed: the zip signature says what it is.
        "renamed.bin": (_zip_with_npz_members(tmp_path), "espectre-npz"),
        # Six bytes are enough to see Micro-ESPectre's magic after a datagram length.
        "six.udp": (struct.pack("<H", len(espectre)) + espectre[:4], "esp32-udp"),
        "espectre.udp": (length_prefixed([espectre]), "esp32-udp"),
        # A bfee record of one code byte and nothing else, and one with a byte of body.
        "tiny.dat": (b"\x00\x02\xbb\x00", "intel5300"),
        "three.dat": (b"\x00\x05\xbb", "intel5300"),
    }
    for name, (data, fmt) in cases.items():
        assert detect_format(_write(tmp_path / name, data)) == fmt, name


def _zip_with_npz_members(tmp_path: Path) -> bytes:
    np.savez(tmp_path / "made.npz", csi_data=np.zeros((2, 128), np.int8), num_subcarriers=64, chip="esp32s3",
             duration_ms=20.0)  # fmt: skip
    return (tmp_path / "made.npz").read_bytes()


def test_what_is_not_detected(tmp_path: Path) -> None:
    known = ", ".join(format_names()[1:])
    for name, data in {
        "empty-bfee.dat": b"\x00\x01\xbb",  # a record of its code byte alone is no CSI log
        "late-tag.txt": b"\x01" * 5000 + b"CSI_DATA,",  # detection reads the first 4096 bytes only
    }.items():
        path = _write(tmp_path / name, data)
        with pytest.raises(CsiFormatError) as caught:
            detect_format(path)
        assert (str(caught.value), caught.value.offset) == (
            f"byte 0: {path}: not a known CSI format (tried {known})", 0,
        )  # fmt: skip
    broken = _write(tmp_path / "broken.npz", b"not a zip")  # the name says npz: read as one, and it fails
    assert detect_format(broken) == "espectre-npz"
    [error] = list(iter_file(broken))
    assert isinstance(error, CsiFormatError) and str(error).startswith(f"{broken}: not a readable ESPectre")


def test_iter_file_errors_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.dat"
    with pytest.raises(FileNotFoundError, match=f"^no such file: {missing}$"):
        iter_file(missing)
    path = _write(tmp_path / "x.dat", b"\x00\x05\xbb")
    with pytest.raises(ValueError, match=r"^unknown format 'pcap'; known: auto, espectre-npz, esp32-csv, "):
        iter_file(path, "pcap")


def test_dump_of_a_frame_without_rssi() -> None:
    frame = parse_datagram(espectre_datagram(np.arange(128).astype(np.int8)))
    dump = frame_to_dump(frame)
    assert (dump["rssi"], dump["noise"], dump["n_rx"], dump["n_tx"]) == (None, None, 1, 1)
    adr = frame_to_dump(parse_datagram(adr018_datagram(np.arange(128).astype(np.int8), rssi=-61)))
    assert (adr["rssi"], adr["noise"]) == (-61.0, -95.0)
    assert len(dump["re"]) == len(dump["subcarriers"]) == 64  # type: ignore[arg-type]
