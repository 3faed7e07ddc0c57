"""``invispose model info``, ``detect motion`` and ``bench model`` through the pose command group."""

from __future__ import annotations

import argparse
import itertools
import json

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


def test_detect_motion_on_a_real_esp32_capture(capsys: pytest.CaptureFixture[str]) -> None:
    path = capture("esp32/movement_esp32_64sc_20260214_183141.npz")
    code, out = _run(["detect", "motion", str(path), "--jsonl"], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) > 10
    assert set(rows[0]) >= {"t_s", "node", "motion", "presence", "score"}
    times = [r["t_s"] for r in rows if r["node"] == rows[0]["node"]]
    assert all(b - a >= 0.1 - 1e-6 for a, b in itertools.pairwise(times))
    # The detector calibrates on the first 10 s of the file, then scores every window.
    assert not rows[0]["calibrated"] and rows[-1]["calibrated"]
    assert rows[-1]["t_s"] > 10.0


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
