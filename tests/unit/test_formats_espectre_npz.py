"""Micro-ESPectre ``.npz`` recordings: every frame field, from a file made here with the recorder's keys
(micro-espectre/data, francescopace/espectre @dc52b94) and from the real capture's own bytes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.espectre_npz import read_espectre_npz
from tests.captures import capture

# Pair p of every packet: imaginary p - 64, real 63 - p; packet i adds i to the real part.
PAIRS = np.array([[p - 64, 63 - p] for p in range(64)], dtype=np.int8).reshape(-1)


def recording(path: Path, chip: str, packets: int = 4, duration_ms: float = 40.0, **extra: object) -> Path:
    csi = np.stack([PAIRS + np.tile([0, i], 64).astype(np.int8) for i in range(packets)])
    np.savez(path, csi_data=csi, num_subcarriers=64, chip=chip, duration_ms=duration_ms, **extra)  # type: ignore[arg-type]
    return path


def test_frames_of_an_s3_recording(tmp_path: Path) -> None:
    path = recording(tmp_path / "baseline_s3.npz", "s3", label="baseline", gain_locked=True)
    frames = read_espectre_npz(path)
    assert [(f.seq, f.device_ts_us) for f in frames] == [(0, 0), (1, 10_000), (2, 20_000), (3, 30_000)]
    first = frames[0]
    assert (first.link, first.host_ts, first.channel_mhz, first.bandwidth_mhz, first.wire_format) == (
        "baseline_s3", 0.0, 0, 20, "espectre-npz",
    )  # fmt: skip
    assert math.isnan(first.rssi_dbm) and math.isnan(first.noise_dbm)  # the file records neither
    assert first.meta == {"chip": "s3", "label": "baseline", "first_word_invalid": False}
    assert first.csi.shape == (1, 1, 64)
    assert first.subcarriers.tolist() == list(range(-32, 32))
    # FFT order: pair 0 is subcarrier 0, pair 32 is subcarrier -32.
    assert (first.csi[0, 0, 32], first.csi[0, 0, 0]) == (63 - 64j, 31 - 32j)
    assert frames[3].csi[0, 0, 32] == 66 - 64j
    assert [f.link for f in read_espectre_npz(path, link="lab")] == ["lab"] * 4


def test_a_classic_esp32_recording_drops_the_invalid_first_word(tmp_path: Path) -> None:
    frames = read_espectre_npz(recording(tmp_path / "esp32.npz", "esp32"))
    assert frames[0].meta == {"chip": "esp32", "label": "", "first_word_invalid": True}
    assert frames[0].subcarriers.tolist() == [*range(-32, 0), *range(2, 32)]
    assert frames[0].csi[0, 0, 32] == 61 - 62j  # subcarrier 2 is pair 2


def test_a_single_packet_spans_the_whole_duration(tmp_path: Path) -> None:
    (frame,) = read_espectre_npz(recording(tmp_path / "one.npz", "s3", packets=1, duration_ms=10.0))
    assert frame.device_ts_us == 0


def test_the_real_capture_reads_its_own_bytes() -> None:
    path = capture("esp32/baseline_s3_64sc_20260117_222606.npz")
    raw = np.load(path)["csi_data"]
    frames = read_espectre_npz(path)
    assert len(frames) == 1353
    assert frames[-1].device_ts_us == round(1352 * 10008.819818496704 * 1000 / 1353)
    for i in (0, 700, 1352):
        assert frames[i].csi[0, 0, 32] == complex(raw[i, 1], raw[i, 0])  # subcarrier 0: imaginary first
        assert frames[i].csi[0, 0, 0] == complex(raw[i, 65], raw[i, 64])  # subcarrier -32: pair 32


def test_wrong_shapes_are_refused_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, csi_data=np.zeros((3, 100), np.int8), num_subcarriers=64, chip="s3", duration_ms=1.0)
    with pytest.raises(
        CsiFormatError, match=r"bad\.npz: csi_data must be int8 \(N, 128\), got int8 \(3, 100\)"
    ):
        read_espectre_npz(path)
    np.savez(path, csi_data=np.zeros((3, 128), np.int16), num_subcarriers=64, chip="s3", duration_ms=1.0)
    with pytest.raises(CsiFormatError, match=r"got int16 \(3, 128\)"):
        read_espectre_npz(path)
    np.savez(path, csi_data=np.zeros(128, np.int8), num_subcarriers=64, chip="s3", duration_ms=1.0)
    with pytest.raises(CsiFormatError, match=r"got int8 \(128,\)"):
        read_espectre_npz(path)
    np.savez(path, csi_data=np.zeros((3, 64), np.int8), num_subcarriers=32, chip="s3", duration_ms=1.0)
    with pytest.raises(CsiFormatError, match="only 64-subcarrier LLTF recordings are known, got 32"):
        read_espectre_npz(path)
    np.savez(path, csi_data=np.zeros((3, 128), np.int8), num_subcarriers=64, duration_ms=1.0)
    with pytest.raises(CsiFormatError, match=r"bad\.npz: no 'chip' array; not an ESPectre recording"):
        read_espectre_npz(path)


def test_pickled_objects_are_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(
        path, csi_data=np.array([object()], dtype=object), num_subcarriers=64, chip="s3", duration_ms=1.0
    )
    with pytest.raises(
        CsiFormatError, match=r"pickled\.npz: csi_data holds Python objects, which are never read"
    ):
        read_espectre_npz(path)


def test_error_messages_say_where() -> None:
    assert str(CsiFormatError("bad", line=3)) == "line 3: bad"
    assert str(CsiFormatError("bad", offset=7)) == "byte 7: bad"
    assert str(CsiFormatError("bad", line=3, offset=7)) == "line 3: bad"
    assert str(CsiFormatError("bad")) == "bad"
