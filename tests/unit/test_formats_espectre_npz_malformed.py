"""ESPectre ``.npz`` files that are not what they claim: only ``CsiFormatError``, naming the file and the
problem, and never an allocation of what a damaged header declares."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.espectre_npz import MAX_ARRAY_BYTES, read_espectre_npz
from appliance.csi.frame import CsiFrame
from tests.captures import capture

FIELDS = {
    "csi_data": np.arange(3 * 128).astype(np.int8).reshape(3, 128),
    "num_subcarriers": np.int64(64),
    "chip": np.str_("s3"),
    "duration_ms": np.float64(30.0),
    "label": np.str_("movement"),
}


def npz(compressed: bool = False, **changes: object) -> bytes:
    """An ESPectre-shaped archive, as ``np.savez`` writes one, with some fields changed or removed."""
    fields = {k: v for k, v in {**FIELDS, **changes}.items() if v is not None}
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **fields)  # type: ignore[operator]
    return buffer.getvalue()


def npy_member(header: str, data: bytes) -> bytes:
    """A ``.npy`` file with a hand-written (version 1.0) header, as a damaged or hostile writer makes it."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def with_member(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, zipfile.ZipFile(io.BytesIO(npz())) as good:
        for member in good.namelist():
            archive.writestr(member, content if member == name else good.read(member))
    return buffer.getvalue()


def with_zip_fields(data: bytes, *, flags: int | None = None, method: int | None = None) -> bytes:
    """Every entry's general-purpose flags and compression method set, in local and central headers."""
    raw = bytearray(data)
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = raw.find(signature)
        while at >= 0:
            if flags is not None:
                struct.pack_into("<H", raw, at + flag_at, flags)
            if method is not None:
                struct.pack_into("<H", raw, at + method_at, method)
            at = raw.find(signature, at + 4)
    return bytes(raw)


@pytest.fixture
def read_npz(tmp_path: Path) -> Callable[[bytes], list[CsiFrame]]:
    """Write bytes as ``recording.npz`` in the test's folder and read them."""
    path = tmp_path / "recording.npz"

    def read(data: bytes) -> list[CsiFrame]:
        path.write_bytes(data)
        return read_espectre_npz(path)

    return read


def test_a_well_formed_file_reads(read_npz: Callable[[bytes], list[CsiFrame]]) -> None:
    frames = read_npz(npz())
    assert len(frames) == 3
    assert [f.device_ts_us for f in frames] == [0, 10_000, 20_000]
    assert frames[0].meta == {"chip": "s3", "label": "movement", "first_word_invalid": False}


@pytest.mark.parametrize(("version", "fortran"), [((2, 0), False), ((3, 0), False), ((1, 0), True)])
def test_every_npy_version_and_fortran_order_numpy_writes_reads_alike(
    read_npz: Callable[[bytes], list[CsiFrame]], version: tuple[int, int], fortran: bool
) -> None:
    """numpy writes version 2.0 for headers over 64 KiB and 3.0 for non-Latin-1 field names."""
    member = io.BytesIO()
    csi = FIELDS["csi_data"]
    np.lib.format.write_array(member, np.asfortranarray(csi) if fortran else csi, version=version)
    expected, frames = read_npz(npz()), read_npz(with_member("csi_data.npy", member.getvalue()))
    assert len(frames) == len(expected) == 3
    assert all(np.array_equal(f.csi, e.csi) for f, e in zip(frames, expected, strict=True))


def test_the_real_capture_reads_as_before() -> None:
    path = capture("esp32/baseline_s3_64sc_20260117_222606.npz")
    frames = read_espectre_npz(path)
    assert len(frames) == np.load(path)["csi_data"].shape[0] == 1353
    assert frames[-1].meta["chip"] == "s3"


MALFORMED = {
    "not-a-zip": (b"PK\x03\x04 and then nothing a zip would hold", "not a readable ESPectre recording"),
    "non-scalar-subcarriers": (npz(num_subcarriers=np.array([64, 64])), "num_subcarriers must be a single"),
    "text-subcarriers": (npz(num_subcarriers=np.str_("64")), "num_subcarriers must be a single integer"),
    "non-scalar-chip": (npz(chip=np.array(["s3", "s3"])), "chip must be a single text"),
    "nan-duration": (npz(duration_ms=np.float64("nan")), "duration_ms must be a finite"),
    "negative-duration": (npz(duration_ms=np.float64(-5.0)), "duration_ms must be a finite"),
    "missing-csi": (npz(csi_data=None), "no 'csi_data' array"),
    "encrypted-flag": (with_zip_fields(npz(), flags=0x1), "encrypted"),
    "patched-data-flag": (with_zip_fields(npz(), flags=0x20), "not a readable ESPectre recording"),
    "unknown-compression": (with_zip_fields(npz(), method=99), "not a readable ESPectre recording"),
    "deflate-read-as-bzip2": (
        with_zip_fields(npz(compressed=True), method=zipfile.ZIP_BZIP2),
        "not a readable ESPectre recording",
    ),
    "object-array": (
        with_member(
            "csi_data.npy", npy_member("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", b"")
        ),
        "holds Python objects",
    ),
    "huge-declared-shape": (
        with_member(
            "csi_data.npy",
            npy_member(
                "{'descr': '|i1', 'fortran_order': False, 'shape': (100000000000, 128), }", b"\0" * 256
            ),
        ),
        "declares (100000000000, 128)",
    ),
    "cut-short": (
        with_member(
            "csi_data.npy",
            npy_member("{'descr': '|i1', 'fortran_order': False, 'shape': (3, 128), }", b"\0" * 100),
        ),
        "more than the",
    ),
    "cut-short-within-the-member": (
        with_member(
            "csi_data.npy",
            npy_member("{'descr': '|i1', 'fortran_order': False, 'shape': (3, 128), }", b"\0" * 300),
        ),
        "csi_data is cut short (300 of 384 bytes)",
    ),
    "npy-version-4": (
        with_member("csi_data.npy", b"\x93NUMPY\x04\x00" + bytes(120)),
        "unknown .npy format version 4",
    ),
    "nested-header": (
        with_member(
            "csi_data.npy",
            npy_member(
                "{'descr': '|i1', 'fortran_order': False, 'shape': " + "(" * 2000 + ")" * 2000 + "}", b""
            ),
        ),
        "not a readable ESPectre recording",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_raise_only_csi_format_error_naming_the_file(
    read_npz: Callable[[bytes], list[CsiFrame]], tmp_path: Path, case: str
) -> None:
    data, problem = MALFORMED[case]
    tracemalloc.start()
    try:
        with pytest.raises(CsiFormatError) as error:
            read_npz(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(tmp_path / "recording.npz") in str(error.value)
    assert problem in str(error.value)
    assert peak < 16 * 2**20  # nothing near what a header declares was allocated


def test_the_size_cap_is_far_above_any_recording() -> None:
    hour_at_500_per_s = 3600 * 500 * 128
    assert hour_at_500_per_s < MAX_ARRAY_BYTES < 2**30


SEEDS = [npz(), npz(compressed=True)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_archives_raise_only_csi_format_error(
    read_npz: Callable[[bytes], list[CsiFrame]], data: st.DataObject
) -> None:
    raw = bytearray(data.draw(st.sampled_from(SEEDS)))
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    try:
        frames = read_npz(bytes(raw[:cut]))
    except CsiFormatError:
        return
    assert all(f.csi.shape == frames[0].csi.shape for f in frames)
