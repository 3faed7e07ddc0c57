"""The recording format: round trip, appends, crash damage, metadata and ground truth."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.cli import recording as sources_cli
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.registry import detect_format, iter_file
from appliance.csi.frame import CsiFrame
from appliance.csi.recording import (
    RECORD_OVERHEAD,
    RecordedTruth,
    RecordingHeader,
    RecordingItem,
    RecordingWriter,
    encode_frame,
    encode_header,
    encode_truth,
    iter_records,
    read_recording,
    write_recording,
)
from appliance.csi.simulator import PersonTruth, SceneTruth
from appliance.csi.sources import factory
from appliance.csi.sources.replay import ReplaySource
from appliance.csi.sources.tcp import AtherosTcpSource
from tests.captures import capture
from tests.conftest import DEFAULT_CONFIG

HEADER = RecordingHeader(
    created=1_700_000_000.25,
    sources=({"name": "node-a", "kind": "esp32"}, {"name": "sim", "kind": "simulated"}),
    room={"name": "Lab", "width_m": 5.0, "nodes": [{"id": "ap"}]},
    software="invispose test",
)


def esp_frame(seq: int = 1) -> CsiFrame:
    rng = np.random.default_rng(seq)
    values = rng.integers(-128, 128, size=(1, 1, 64)) + 1j * rng.integers(-128, 128, size=(1, 1, 64))
    return CsiFrame(
        link="esp32-aabbccddeeff",
        device_ts_us=1_000_000 + seq * 10_000,
        host_ts=1_700_000_001.0 + seq * 0.01,
        seq=seq,
        rssi_dbm=-42.0,
        noise_dbm=-95.0,
        channel_mhz=2437,
        bandwidth_mhz=20,
        csi=values.astype(np.complex64),
        subcarriers=np.arange(-32, 32, dtype=np.int16),
        wire_format="esp32-csv",
        meta={"mac": "aa:bb:cc:dd:ee:ff", "first_word_invalid": True, "rate": 11, "gain": 1.5},
    )


def atheros_frame(seq: int = 1) -> CsiFrame:
    rng = np.random.default_rng(100 + seq)
    values = rng.integers(-512, 512, size=(3, 2, 56)) + 1j * rng.integers(-512, 512, size=(3, 2, 56))
    return CsiFrame(
        link="atheros-10.0.0.2",
        device_ts_us=2**40 + seq,
        host_ts=1_700_000_002.0 + seq * 0.002,
        seq=seq,
        rssi_dbm=-50.0,
        noise_dbm=-95.0,
        channel_mhz=2437,
        bandwidth_mhz=20,
        csi=values.astype(np.complex64),
        subcarriers=np.concatenate([np.arange(-28, 0), np.arange(1, 29)]).astype(np.int16),
        wire_format="atheros",
        meta={},
    )


def simulated_frame(seq: int = 1) -> CsiFrame:
    rng = np.random.default_rng(200 + seq)
    values = rng.normal(size=(1, 1, 52)) + 1j * rng.normal(size=(1, 1, 52))
    return CsiFrame(
        link="ap-rx1",
        device_ts_us=seq * 10_000,
        host_ts=1_700_000_003.0 + seq * 0.01,
        seq=seq,
        rssi_dbm=float("nan"),
        noise_dbm=-95.0,
        channel_mhz=2437,
        bandwidth_mhz=20,
        csi=values.astype(np.complex64),
        subcarriers=np.concatenate([np.arange(-26, 0), np.arange(1, 27)]).astype(np.int16),
        wire_format="simulated",
        meta={"sim_t_s": seq * 0.01},
    )


def scene(t_s: float, people: int = 2) -> SceneTruth:
    rng = np.random.default_rng(int(t_s * 100))
    persons = tuple(
        PersonTruth(
            id=i + 1, keypoints=rng.uniform(0, 4, size=(17, 3)), activity=("walking", "sitting")[i % 2]
        )
        for i in range(people)
    )
    return SceneTruth(t_s=t_s, persons=persons)


def session_items() -> list[CsiFrame | RecordedTruth]:
    return [
        esp_frame(1),
        atheros_frame(1),
        simulated_frame(1),
        RecordedTruth(1_700_000_003.5, scene(0.05)),
        esp_frame(2),
        RecordedTruth(1_700_000_003.6, scene(0.10, people=0)),
        atheros_frame(2),
    ]


def assert_same_frame(got: CsiFrame, want: CsiFrame) -> None:
    assert got.link == want.link
    assert got.device_ts_us == want.device_ts_us
    assert got.host_ts == want.host_ts
    assert got.seq == want.seq
    np.testing.assert_equal(got.rssi_dbm, np.float32(want.rssi_dbm))
    assert got.noise_dbm == want.noise_dbm
    assert (got.channel_mhz, got.bandwidth_mhz) == (want.channel_mhz, want.bandwidth_mhz)
    assert got.wire_format == want.wire_format
    assert got.meta == want.meta
    assert got.csi.dtype == np.complex64
    np.testing.assert_array_equal(got.csi, want.csi)
    np.testing.assert_array_equal(got.subcarriers, want.subcarriers)


def assert_same_truth(got: RecordedTruth, want: RecordedTruth) -> None:
    assert got.host_ts == want.host_ts
    assert got.truth.t_s == want.truth.t_s
    assert len(got.truth.persons) == len(want.truth.persons)
    for a, b in zip(got.truth.persons, want.truth.persons, strict=True):
        assert (a.id, a.activity) == (b.id, b.activity)
        assert a.keypoints.shape == (17, 3)
        np.testing.assert_allclose(a.keypoints, b.keypoints, rtol=1e-6)  # stored as float32


def assert_same_items(got: Sequence[RecordingItem], want: Sequence[RecordingItem]) -> None:
    assert [type(g) for g in got] == [type(w) for w in want]
    for g, w in zip(got, want, strict=True):
        if isinstance(w, CsiFrame):
            assert isinstance(g, CsiFrame)
            assert_same_frame(g, w)
        elif isinstance(w, RecordedTruth):
            assert isinstance(g, RecordedTruth)
            assert_same_truth(g, w)
        else:
            assert g == w


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "a.iprec"
    items = session_items()
    write_recording(path, HEADER, items)
    assert_same_items(list(read_recording(path)), [HEADER, *items])


def test_metadata_header(tmp_path: Path) -> None:
    path = tmp_path / "a.iprec"
    write_recording(path, HEADER, [])
    (header,) = read_recording(path)
    assert isinstance(header, RecordingHeader)
    assert header.format_version == 1
    assert header.created == HEADER.created
    assert [dict(s) for s in header.sources] == [dict(s) for s in HEADER.sources]
    assert header.room == HEADER.room
    assert header.software == "invispose test"


def test_ground_truth_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "truth.iprec"
    truth = RecordedTruth(12.5, scene(3.25, people=3))
    write_recording(path, HEADER, [truth])
    _, got = read_recording(path)
    assert isinstance(got, RecordedTruth)
    assert_same_truth(got, truth)


def test_integral_csi_is_stored_narrow() -> None:
    """Hardware CSI is integral: int8 / int16 samples instead of float32 (8 bytes per value)."""
    esp, ath, sim = esp_frame(), atheros_frame(), simulated_frame()
    assert len(encode_frame(esp)) < 64 * 2 + 400
    assert len(encode_frame(ath)) < 3 * 2 * 56 * 4 + 300
    assert len(encode_frame(sim)) > 52 * 8


def test_append_adds_a_session(tmp_path: Path) -> None:
    path = tmp_path / "a.iprec"
    first, second = session_items()[:3], session_items()[3:]
    write_recording(path, HEADER, first)
    later = RecordingHeader(created=HEADER.created + 60, software="second")
    write_recording(path, later, second)
    assert_same_items(list(read_recording(path)), [HEADER, *first, later, *second])


async def test_async_writer_appends_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "live.iprec"
    items = session_items()
    async with RecordingWriter(path, HEADER, flush_interval_s=0.01, flush_bytes=512) as writer:
        for item in items:
            if isinstance(item, CsiFrame):
                writer.write_frame(item)
            else:
                writer.write_truth(item.truth, item.host_ts)
        await writer.flush()
        # Flushed records are on disk while the writer is still open (what survives a crash).
        assert_same_items(list(read_recording(path)), [HEADER, *items])
    assert writer.stats.frames == 5 and writer.stats.truths == 2
    assert writer.stats.bytes == path.stat().st_size
    async with RecordingWriter(path, HEADER) as writer:
        writer.write_frame(esp_frame(9))
    got = list(read_recording(path))
    assert sum(isinstance(i, RecordingHeader) for i in got) == 2
    assert_same_frame(got[-1], esp_frame(9))  # type: ignore[arg-type]


async def test_writer_refuses_to_append_to_another_format(tmp_path: Path) -> None:
    path = tmp_path / "capture.dat"
    path.write_bytes(b"not a recording at all")
    with pytest.raises(ValueError, match="not an InvisPose recording"):
        async with RecordingWriter(path, HEADER):
            pass
    assert path.read_bytes() == b"not a recording at all"


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "crash.iprec"
    items = session_items()
    write_recording(path, HEADER, items)
    data = path.read_bytes()
    for cut in (1, 5, RECORD_OVERHEAD, len(encode_item(items[-1])) - 1):
        path.write_bytes(data[:-cut])
        assert_same_items(list(read_recording(path)), [HEADER, *items[:-1]])


def test_zero_filled_tail_is_ignored(tmp_path: Path) -> None:
    """After a power loss a filesystem may leave the file's last blocks zero-filled."""
    path = tmp_path / "power.iprec"
    items = session_items()
    write_recording(path, HEADER, items)
    with path.open("ab") as f:
        f.write(bytes(4096))
    assert_same_items(list(read_recording(path)), [HEADER, *items])


def test_corrupt_record_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "bitrot.iprec"
    items = session_items()
    write_recording(path, HEADER, items)
    data = bytearray(path.read_bytes())
    start = len(encode_header(HEADER)) + len(encode_item(items[0]))  # the second record, atheros_frame(1)
    data[start + 60] ^= 0x40
    path.write_bytes(bytes(data))
    got = list(read_recording(path))
    errors = [g for g in got if isinstance(g, CsiFormatError)]
    assert len(errors) == 1
    assert errors[0].offset == start
    assert_same_items([g for g in got if not isinstance(g, CsiFormatError)], [HEADER, items[0], *items[2:]])


def test_session_appended_after_a_crash_is_read(tmp_path: Path) -> None:
    path = tmp_path / "resumed.iprec"
    items = session_items()
    write_recording(path, HEADER, items)
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the crash tore the last record
    write_recording(path, HEADER, [esp_frame(5)])
    got = list(read_recording(path))
    assert sum(isinstance(g, CsiFormatError) for g in got) == 1  # the torn record, now mid-file
    assert_same_items(
        [g for g in got if not isinstance(g, CsiFormatError)], [HEADER, *items[:-1], HEADER, esp_frame(5)]
    )


def test_empty_file_reads_as_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.iprec"
    path.write_bytes(b"")
    assert list(read_recording(path)) == []


def test_registry_detects_and_reads_recordings(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    items = session_items()
    write_recording(path, HEADER, items)
    assert detect_format(path) == "recording"
    frames = [f for f in iter_file(path) if isinstance(f, CsiFrame)]
    assert len(frames) == 5
    assert_same_frame(frames[0], esp_frame(1))


def encode_item(item: CsiFrame | RecordedTruth) -> bytes:
    return encode_frame(item) if isinstance(item, CsiFrame) else encode_truth(item.truth, item.host_ts)


SESSION_BYTES = encode_header(HEADER) + b"".join(encode_item(i) for i in session_items())
RECORD_ENDS = np.cumsum(
    [len(encode_header(HEADER))] + [len(encode_item(i)) for i in session_items()]
).tolist()


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(min_value=0, max_value=len(SESSION_BYTES)))
def test_truncation_anywhere_keeps_every_complete_record(cut: int) -> None:
    complete = sum(end <= cut for end in RECORD_ENDS)
    got = list(iter_records(SESSION_BYTES[:cut]))
    assert not any(isinstance(g, CsiFormatError) for g in got)
    assert_same_items(got, [HEADER, *session_items()][:complete])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=len(SESSION_BYTES) - 1),
    flip=st.integers(min_value=1, max_value=255),
)
def test_a_flipped_byte_costs_at_most_its_record(position: int, flip: int) -> None:
    data = bytearray(SESSION_BYTES)
    data[position] ^= flip
    got = list(iter_records(bytes(data)))
    hit = next(i for i, end in enumerate(RECORD_ENDS) if position < end)
    want = [HEADER, *session_items()]
    assert_same_items([g for g in got if not isinstance(g, CsiFormatError)], want[:hit] + want[hit + 1 :])
    # Damage before the end is reported once; damage in the last record looks like a torn tail.
    errors = [g for g in got if isinstance(g, CsiFormatError)]
    assert len(errors) == (0 if hit == len(want) - 1 else 1)


# --------------------------------------------------------------------------------------------------------
# Playing recordings and capture files back


async def replayed(source: ReplaySource, limit: int | None = None) -> list[CsiFrame]:
    frames: list[CsiFrame] = []
    async for frame in source.frames():
        frames.append(frame)
        if limit is not None and len(frames) == limit:
            break
    return frames


async def test_replay_of_a_recording_restamps_frames_and_follows_truth(tmp_path: Path) -> None:
    path = tmp_path / "session.iprec"
    items = session_items()
    write_recording(path, HEADER, items)
    source = ReplaySource(path, speed=None)
    assert source.kind == "replay"
    before = time.time()
    frames = await replayed(source)
    want = [i for i in items if isinstance(i, CsiFrame)]
    assert [(f.link, f.seq) for f in frames] == [(w.link, w.seq) for w in want]
    for got, original in zip(frames, want, strict=True):
        assert got.host_ts >= before  # stamped on emission, like a live source
        np.testing.assert_array_equal(got.csi, original.csi)
    assert source.header == HEADER
    assert source.latest_truth is not None and source.latest_truth.t_s == 0.10
    assert source.stats.frames == 5 and source.stats.errors == 0


async def test_replay_paces_by_recorded_time_and_speed(tmp_path: Path) -> None:
    path = tmp_path / "paced.iprec"
    frames = [dataclasses.replace(esp_frame(i), host_ts=1000.0 + 0.05 * i) for i in range(11)]  # 0.5 s
    write_recording(path, HEADER, frames)
    start, started_at = time.monotonic(), time.time()
    got = await replayed(ReplaySource(path, speed=5.0))
    elapsed = time.monotonic() - start
    assert len(got) == 11
    assert elapsed >= 0.09  # 0.5 s recorded at speed 5; no upper bound, that is the machine's load
    # Each frame no earlier than its place on the recorded clock (0.05 s apart / 5 = 0.01 s) from the start: a
    # late frame may be followed by a quick one on a loaded machine, but none comes ahead of its schedule.
    offsets = np.array([f.host_ts for f in got]) - started_at
    assert np.all(offsets >= 0.01 * np.arange(11) - 0.002), offsets


async def test_replay_loops(tmp_path: Path) -> None:
    path = tmp_path / "loop.iprec"
    write_recording(path, HEADER, [esp_frame(1), esp_frame(2), esp_frame(3)])
    source = ReplaySource(path, speed=None, loop=True)
    frames = await replayed(source, limit=7)
    assert [f.seq for f in frames] == [1, 2, 3, 1, 2, 3, 1]
    assert source.stats.loops == 2


async def test_replay_loop_of_a_file_without_frames_fails_instead_of_spinning(tmp_path: Path) -> None:
    path = tmp_path / "empty.iprec"
    write_recording(path, HEADER, [])
    source = ReplaySource(path, speed=None, loop=True)
    with pytest.raises(ValueError, match="no CSI frames"):
        await asyncio.wait_for(replayed(source), timeout=5.0)
    assert source.stats.loops == 0


async def test_replay_reads_any_registry_format() -> None:
    path = capture("atheros/ath_csi_1.dat")
    source = ReplaySource(path, speed=None)
    frames = await replayed(source)
    assert len(frames) == 401
    assert {f.wire_format for f in frames} == {"atheros"}
    assert source.position_s == pytest.approx((frames[-1].device_ts_us - frames[0].device_ts_us) * 1e-6)


async def test_replay_of_a_missing_file_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await replayed(ReplaySource(tmp_path / "nope.dat", speed=None))


def test_replay_rejects_a_non_positive_speed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="speed"):
        ReplaySource(tmp_path / "x", speed=0.0)


# --------------------------------------------------------------------------------------------------------
# invispose record / replay


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    common.add_argument("--data-dir", type=Path, default=None)
    sources_cli.register(parser.add_subparsers(dest="command", required=True), common)
    return parser.parse_args(argv)


def test_record_the_simulator_then_replay_it(tmp_path: Path) -> None:
    out = tmp_path / "sim.iprec"
    err = io.StringIO()
    args = cli(["record", "--seconds", "1.5", "--out", str(out), "--data-dir", str(tmp_path)])
    assert args.handler(args, err=err) == sources_cli.EXIT_OK
    items = list(read_recording(out))
    header = items[0]
    assert isinstance(header, RecordingHeader)
    assert header.room is not None and header.room["name"]
    assert [s["kind"] for s in header.sources] == ["simulated"]
    frames = [i for i in items if isinstance(i, CsiFrame)]
    truths = [i for i in items if isinstance(i, RecordedTruth)]
    assert len(frames) > 100 and len(truths) > 5
    assert {f.wire_format for f in frames} == {"simulated"}
    assert not any(isinstance(i, CsiFormatError) for i in items)
    assert f"{len(frames)} frames" in err.getvalue()

    printed, err = io.StringIO(), io.StringIO()
    args = cli(["replay", str(out), "--fast"])
    assert args.handler(args, out=printed, err=err) == sources_cli.EXIT_OK
    lines = printed.getvalue().splitlines()
    assert len(lines) >= 2
    assert "motion" in lines[0] and "presence" in lines[0] and "truth:" in lines[-1]


def test_replay_cli_reports_a_missing_file(tmp_path: Path) -> None:
    err = io.StringIO()
    args = cli(["replay", str(tmp_path / "missing.iprec"), "--speed", "2"])
    assert args.handler(args, out=io.StringIO(), err=err) == sources_cli.EXIT_ERROR
    assert "not found" in err.getvalue()


def test_record_cli_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        cli(["record", "--seconds", "-1", "--out", "x"])
    with pytest.raises(SystemExit):
        cli(["replay", "x", "--speed", "2", "--fast"])


def test_factory_builds_each_source_type(tmp_path: Path) -> None:
    options = {"path": "r.dat", "speed": None, "format": "atheros", "loop": True}
    replay = factory.build_source(factory.REPLAY, options, base_dir=tmp_path)
    assert isinstance(replay, ReplaySource)
    assert (replay.path, replay.fmt, replay.speed, replay.loop) == (tmp_path / "r.dat", "atheros", None, True)
    assert factory.build_source(factory.ESP32_UDP, {"port": 0, "links": {"3": "ap-rx1"}}).kind == "esp32"
    assert factory.build_source(factory.ESP32_SERIAL, {"url": "/dev/ttyUSB0"}).kind == "esp32"
    assert isinstance(factory.build_source(factory.ATHEROS_TCP, {"port": 0}), AtherosTcpSource)
    with pytest.raises(ValueError, match="unknown source type"):
        factory.build_source("zigbee", {})


async def test_a_full_disk_is_reported_with_the_file_and_the_writer_still_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """/dev/full fails every write with ENOSPC, as a full SD card does: the error names the file, later
    writes refuse with it, and leaving the writer does not raise a second, nameless error."""
    full = Path("/dev/full")
    writer = RecordingWriter(full, HEADER, flush_interval_s=0.01)
    async with writer:
        writer.write_frame(esp_frame(1))
        deadline = time.monotonic() + 10
        with pytest.raises(OSError, match=r"recording /dev/full failed: .*No space left on device"):  # noqa: PT012
            while time.monotonic() < deadline:
                await asyncio.sleep(0.01)
                writer.write_frame(esp_frame(2))
    assert "recording to /dev/full failed" in caplog.text
    assert writer.stats.bytes == 0
