"""``invispose csi dump`` / ``stats`` through argparse, as the entry point wires them."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest

from appliance.cli import csi as cli
from tests.captures import capture
from tests.encoders import atheros_record


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config")
    common.add_argument("--data-dir")
    parser = argparse.ArgumentParser(prog="invispose")
    cli.register(parser.add_subparsers(dest="command"), common)
    return parser


def _run(*argv: str) -> tuple[int, str, str]:
    args = _parser().parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    code = args.handler(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_dump_limit() -> None:
    code, out, err = _run("csi", "dump", str(capture("atheros/ath_csi_1.dat")), "--limit", "3")
    lines = out.splitlines()
    assert code == 0
    assert not err
    assert len(lines) == 3
    assert json.loads(lines[0])["t_us"] == 1461024888


def test_stats() -> None:
    code, out, _ = _run("csi", "stats", str(capture("intel5300/sample_0x1_ap.dat")), "--format", "intel5300")
    stats = json.loads(out)
    assert code == 0
    assert stats["frames"] == 540
    assert stats["shapes"] == ["3x2x30"]
    assert 8 < stats["packets_per_s"] < 11
    assert stats["rssi"]["max"] < 0


def test_bad_record_reported_and_dump_goes_on(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    csi = rng.integers(-9, 9, (1, 1, 56)) + 0j
    path = tmp_path / "bad.dat"
    path.write_bytes(atheros_record(csi, timestamp=1) + b"\xde\xad" * 20 + atheros_record(csi, timestamp=2))
    code, out, err = _run("csi", "dump", str(path), "--format", "atheros")
    assert code == 1
    assert len(out.splitlines()) == 2
    assert "byte 167" in err


def test_missing_file() -> None:
    code, out, err = _run("csi", "dump", "/nonexistent/x.dat")
    assert code == 1
    assert not out
    assert "file not found" in err


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["csi", "dump", "x", "--format", "nope"])
    assert exc.value.code == 2


def test_stats_counts_each_link_on_its_own_clock() -> None:
    """Six simulated nodes boot at different times: their clocks share no origin, so each is timed alone."""
    from appliance.cli.csi import frame_stats
    from appliance.csi.simulator import RoomSimulator, Scenario, default_room

    room = default_room()
    frames = RoomSimulator(room, Scenario(room), seed=5).advance(3.0).frames
    stats = frame_stats(frames)
    assert stats["links"] == [f"ap-rx{i}" for i in range(1, 7)]
    assert isinstance(stats["duration_s"], float)
    assert 2.9 < stats["duration_s"] <= 3.0
    per_link = stats["per_link"]
    assert isinstance(per_link, dict)
    for link_stats in per_link.values():
        assert 95 < link_stats["packets_per_s"] < 105
    assert stats["lost_packets"] == sum(s["lost_packets"] for s in per_link.values())
