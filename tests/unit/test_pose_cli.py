"""``invispose model info``, ``detect motion`` and ``bench model`` through the pose command group."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from appliance.cli import pose as cli
from tests.captures import capture


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None)
    common.add_argument("--data-dir", default=None)
    parser = argparse.ArgumentParser(prog="invispose")
    cli.register(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(argv)
    code = args.handler(args)
    return code, capsys.readouterr().out


def test_model_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["model", "info", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert {"path", "sha256", "bytes", "runtime", "inputs", "outputs", "trained_on", "provenance"} <= set(
        info
    )
    assert info["runtime"]["name"] == "ai_edge_litert" and info["runtime"]["version"]
    assert len(info["sha256"]) == 64
    assert "SIMULATED" in info["trained_on"]
    for tensor in info["inputs"] + info["outputs"]:
        assert {"role", "shape", "dtype", "quantization"} <= set(tensor)


def test_model_info_text_says_simulated(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["model", "info"], capsys)
    assert code == 0 and "SIMULATED" in out


def empty_room_then_movement(folder: Path) -> Path:
    """The ESP32 recordings of the empty room (10.0 s) and of a person moving (15.1 s) as one recording, so
    that the detector calibrates on the empty room and then sees the movement (about 11.6 s in: the file
    spaces its packets evenly over the whole 25.1 s)."""
    baseline = np.load(capture("esp32/baseline_esp32_64sc_20260214_183059.npz"))
    movement = np.load(capture("esp32/movement_esp32_64sc_20260214_183141.npz"))
    path = folder / "room.npz"
    np.savez(
        path,
        csi_data=np.vstack([baseline["csi_data"], movement["csi_data"]]),
        num_subcarriers=64,
        chip="esp32",
        duration_ms=float(baseline["duration_ms"] + movement["duration_ms"]),
    )
    return path


def test_detect_motion_finds_the_movement_in_a_real_esp32_capture(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = _run(["detect", "motion", str(empty_room_then_movement(tmp_path)), "--jsonl"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert set(rows[0]) == {"t_s", "node", "motion", "presence", "score", "calibrated"}
    assert {r["node"] for r in rows} == {"room"}
    times = [r["t_s"] for r in rows]
    assert all(b - a >= 0.1 - 1e-6 for a, b in itertools.pairwise(times))
    # The detector calibrates on the first 10 s (plus its 1 s window): nothing before, then scores.
    assert not any(r["calibrated"] or r["motion"] for r in rows if r["t_s"] < 11.0)
    quiet = [r for r in rows if r["calibrated"] and r["t_s"] < 11.6]
    moving = [r for r in rows if r["t_s"] >= 12.5]
    assert quiet and not any(r["motion"] for r in quiet)
    assert len(moving) > 100
    assert sum(r["motion"] for r in moving) >= 0.9 * len(moving)
    assert all(r["presence"] for r in moving)


def test_detect_motion_csv_header(capsys: pytest.CaptureFixture[str]) -> None:
    path = capture("esp32/baseline_esp32_64sc_20260214_183059.npz")
    code, out = _run(["detect", "motion", str(path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "t_s,node,motion,presence,score"
    assert len(lines[1].split(",")) == 5


def test_detect_motion_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run(["detect", "motion", "/nonexistent/capture.npz"], capsys)
    assert code == 1


def test_bench_model_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["bench", "model", "--json", "--iterations", "30", "--warmup", "5"], capsys)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"threads_1", "threads_2"}
    for figures in result.values():
        assert {"median_us", "p99_us"} <= set(figures)
        assert 0 < figures["median_us"] <= figures["p99_us"]


def test_eval_sensing_table_shows_every_metric_beside_its_baseline() -> None:
    """``invispose eval sensing`` without --json: the numbers of each setup's result, each in its column."""
    from appliance.cli.pose import format_eval
    from appliance.pose.sensing.evaluation import QUICK, Tally, summary

    tally = Tally(
        moving_errors=[0.5, 0.7, 0.9],
        still_errors=[0.8],
        centre_errors=[1.0, 1.5, 2.0, 2.5],
        moving_centre_errors=[1.0, 1.5, 2.5],
        still_centre_errors=[2.0],
        zone_right=3,
        zone_total=4,
        count_right={0: 5, 1: 3},
        count_near={0: 5, 1: 4},
        count_total={0: 5, 1: 4},
        tp=4,
        fn=0,
        fp=1,
        activity_right=2,
        activity_total=4,
        seconds=1800.0,
        joint_errors=[0.3, 0.5],
        mean_pose_errors=[1.2, 1.4],
        readings=9,
        rooms=1,
    )
    result = summary("esp32-1x6", tally, QUICK, 12.0)
    lines = format_eval([result]).splitlines()
    assert lines[0] == f"*** {result['split']['data']} ***"
    assert lines[1].startswith("esp32-1x6: 1 rooms") and "9 readings" in lines[1]
    rows = {
        line[2:42].strip(): line[42:].split()
        for line in lines[3:]
        if line.startswith("  ") and "count by" not in line
    }
    # Each beside the centre guess's error for the same people: moving ones, still ones.
    assert rows["position error, moving, median (m)"] == ["0.700", "1.500"]
    assert rows["position error, still, median (m)"] == ["0.800", "2.000"]
    assert rows["zone accuracy (4 quadrants)"] == ["0.750", "0.250"]
    assert rows["count exact"] == ["0.889"]
    assert rows["presence F1"] == [f"{2 * 0.8 * 1.0 / 1.8:.3f}"]
    assert rows["fall recall"] == ["-"]  # no falls to find: not zero, unknown
    assert rows["MPJPE of the rendered skeleton (mm)"] == ["400", "1300"]  # whole millimetres
    assert "1: 0.750 exact, 1.000 within one (4)" in next(line for line in lines if "count by" in line)
    assert lines[-1].startswith("Baselines: every person at the centre of the floor")
