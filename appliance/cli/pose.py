"""``invispose model info``, ``eval pose``, ``detect motion`` and ``bench model``.

Every pose figure the project quotes comes from one of these commands, and every output that involves
the model says it was trained on simulated data. Exit codes: 0 ok, 1 the model or a file could not be
read, 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_ERROR = 0, 1
DETECT_STEP_S = 0.1
BENCH_ITERATIONS, BENCH_WARMUP = 2000, 200


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``model``, ``eval``, ``detect`` and ``bench`` command groups to the ``invispose`` parser."""
    from appliance.csi.formats.registry import AUTO, format_names
    from appliance.pose.evaluation import FULL_EPISODES, QUICK_EPISODES
    from appliance.pose.runtime import DEFAULT_MODEL

    def model_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--model", type=Path, default=DEFAULT_MODEL, help="TFLite model file (default: the shipped one)"
        )

    model = subparsers.add_parser("model", help="the pose model", parents=[common])
    model_commands = model.add_subparsers(dest="model_command", required=True)
    info = model_commands.add_parser(
        "info", help="file, hash, tensors, runtime and training provenance", parents=[common]
    )
    model_option(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=run_model_info)

    evaluate = subparsers.add_parser("eval", help="evaluate estimators", parents=[common])
    eval_commands = evaluate.add_subparsers(dest="eval_command", required=True)
    pose = eval_commands.add_parser(
        "pose",
        help="held-out simulated evaluation of the pose model beside two baselines",
        description="Runs the model through the serving path on held-out SIMULATED rooms (room sizes and "
        f"seeds never used in training): {FULL_EPISODES} episodes, or {QUICK_EPISODES} with --quick.",
        parents=[common],
    )
    model_option(pose)
    pose.add_argument("--quick", action="store_true", help="a small evaluation (under a minute)")
    pose.add_argument("--json", action="store_true", help="print one JSON object")
    pose.add_argument("--seed", type=int, default=0, help="first held-out episode (default: 0)")
    pose.add_argument("--workers", type=int, default=2, help="simulation processes (default: 2)")
    pose.set_defaults(handler=run_eval_pose)

    detect = subparsers.add_parser("detect", help="run an estimator over a capture file", parents=[common])
    detect_commands = detect.add_subparsers(dest="detect_command", required=True)
    motion = detect_commands.add_parser(
        "motion",
        help=f"motion/presence per link every {DETECT_STEP_S} s of device time",
        parents=[common],
    )
    motion.add_argument("path", help="capture file")
    motion.add_argument("--format", choices=format_names(), default=AUTO, help="file format (default: auto)")
    motion.add_argument("--jsonl", action="store_true", help="one JSON object per line")
    motion.add_argument(
        "--step", type=float, default=DETECT_STEP_S, help="seconds between lines per link (%(default)s)"
    )
    motion.set_defaults(handler=run_detect_motion)

    bench = subparsers.add_parser("bench", help="benchmarks", parents=[common])
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    bench_model = bench_commands.add_parser(
        "model", help="pose model latency at 1 and 2 threads (median, p99)", parents=[common]
    )
    model_option(bench_model)
    bench_model.add_argument("--json", action="store_true", help="print one JSON object")
    bench_model.add_argument("--iterations", type=int, default=BENCH_ITERATIONS, help="(%(default)s)")
    bench_model.add_argument("--warmup", type=int, default=BENCH_WARMUP, help="(%(default)s)")
    bench_model.set_defaults(handler=run_bench_model)


def _load(path: Path, threads: int = 1) -> Any:
    from appliance.pose.runtime import ModelUnavailableError, PoseModel

    try:
        return PoseModel(path, num_threads=threads)
    except ModelUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def run_model_info(args: argparse.Namespace) -> int:
    model = _load(args.model)
    if model is None:
        return EXIT_ERROR
    info: dict[str, Any] = model.info()
    if args.json:
        print(json.dumps(info))
        return EXIT_OK
    print(f"model     {info['path']}")
    print(f"trained   {info['trained_on']}")
    print(f"sha256    {info['sha256']}")
    print(f"bytes     {info['bytes']}")
    print(f"runtime   {info['runtime']['name']} {info['runtime']['version']}")
    for kind in ("inputs", "outputs"):
        for t in info[kind]:
            q = t["quantization"]
            print(
                f"{kind[:-1]:9} {t['role']:10} {t['dtype']} {t['shape']} "
                f"scale={q['scale']:.6g} zero_point={q['zero_point']}"
            )
    provenance = info["provenance"]
    if provenance:
        print(f"built     {provenance.get('built')} with: {provenance.get('command')}")
        print(f"data      {json.dumps(provenance.get('data'))}")
        print(f"training  {json.dumps(provenance.get('training'))}")
    return EXIT_OK


def run_eval_pose(args: argparse.Namespace) -> int:
    from appliance.pose.evaluation import (
        FULL_DURATION_S,
        FULL_EPISODES,
        QUICK_DURATION_S,
        QUICK_EPISODES,
        evaluate,
    )

    if _load(args.model) is None:
        return EXIT_ERROR
    episodes, duration = (
        (QUICK_EPISODES, QUICK_DURATION_S) if args.quick else (FULL_EPISODES, FULL_DURATION_S)
    )
    result = evaluate(
        args.model, episodes=episodes, duration_s=duration, seed=args.seed, workers=args.workers
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(format_eval(result))
    return EXIT_OK


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def format_eval(result: dict[str, Any]) -> str:
    """The evaluation as a readable table: every metric beside the two baselines."""
    split = result["split"]
    lines = [
        f"*** {split['data']} ***",
        f"held-out split: {split['episodes']} episodes x {split['episode_seconds']:g} s,"
        f" seeds {split['seeds']},"
        f" rooms {split['rooms']}; {result['n_windows']} windows, {split['falls']} falls,"
        f" {split['simulated_hours']} simulated h ({split['seconds']:.0f} s)",
        "",
        f"{'metric':28} {'model':>9} {'mean_pose':>10} {'centred':>9}",
    ]
    groups: list[tuple[str, dict[str, Any], dict[str, Any]]] = [("all", result, result["baselines"])]
    groups += [(f"{k} person(s)", v, v["baselines"]) for k, v in result["by_person_count"].items()]
    for label, metrics, baselines in groups:
        lines.append(f"-- {label} ({metrics['n_windows']} windows)")
        for key in ("pck_0_2", "mpjpe_mm"):
            lines.append(
                f"  {key:26} {_cell(metrics[key]):>9} {_cell(baselines['mean_pose'][key]):>10}"
                f" {_cell(baselines['centred_mean_pose'][key]):>9}"
            )
        for key in ("count_accuracy", "presence_f1", "activity_accuracy"):
            lines.append(f"  {key:26} {_cell(metrics[key]):>9}")
    lines.append(f"  {'fall_recall':26} {_cell(result['fall_recall']):>9}")
    lines.append(f"  {'false_falls_per_hour':26} {_cell(result['false_falls_per_hour']):>9}")
    lines.append("-- per-joint PCK@0.2 (all windows)")
    base = result["baselines"]["centred_mean_pose"]["per_joint_pck"]
    for name, value in result["per_joint_pck"].items():
        lines.append(f"  {name:26} {_cell(value):>9} {'':>10} {_cell(base[name]):>9}")
    lines.append(
        "PCK@0.2: a joint counts when within 0.2 x the true left_shoulder-right_hip distance; missed persons"
        " count all joints wrong. Baselines are given the true person count."
    )
    return "\n".join(lines)


def _readings(path: str, fmt: str, errors: list[str]) -> Iterable[Any]:
    import appliance.csi.recording  # noqa: F401  (registers the appliance's own recording format)
    from appliance.csi.formats.errors import CsiFormatError
    from appliance.csi.formats.registry import iter_file
    from appliance.csi.frame import CsiFrame
    from appliance.pose.motion import detect

    def frames() -> Iterable[CsiFrame]:
        for item in iter_file(path, fmt):
            if isinstance(item, CsiFormatError):
                errors.append(str(item))
            else:
                yield item

    return detect(frames())


def run_detect_motion(args: argparse.Namespace) -> int:
    """One line per link every ``--step`` seconds of that link's device time (the first reading of each
    step), as ``t_s,node,motion,presence,score`` or JSON lines; t_s counts from the link's first packet."""
    errors: list[str] = []
    first: dict[str, float] = {}
    next_t: dict[str, float] = {}
    try:
        readings = _readings(args.path, args.format, errors)
        if not args.jsonl:
            print("t_s,node,motion,presence,score")
        for r in readings:
            t0 = first.setdefault(r.link, r.t_s)
            t = r.t_s - t0
            if t < next_t.get(r.link, 0.0):
                continue
            next_t[r.link] = t + args.step
            if args.jsonl:
                row = {"t_s": round(t, 3), "node": r.link, "motion": r.motion, "presence": r.presence}
                print(json.dumps({**row, "score": round(r.score, 4), "calibrated": r.calibrated}))
            else:
                print(f"{t:.3f},{r.link},{int(r.motion)},{int(r.presence)},{r.score:.4f}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for error in errors:
        print(f"bad record: {error}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_OK


def run_bench_model(args: argparse.Namespace) -> int:
    from appliance.pose.runtime import benchmark, example_inputs

    result: dict[str, Any] = {}
    for threads in (1, 2):
        model = _load(args.model, threads)
        if model is None:
            return EXIT_ERROR
        result[f"threads_{threads}"] = benchmark(
            model, example_inputs(), iterations=args.iterations, warmup=args.warmup
        )
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(f"{args.model} ({model.runtime} {model.info()['runtime']['version']}), {args.iterations} runs each")
    for key, figures in result.items():
        print(
            f"{key}: interpreter median {figures['median_us']} us, p99 {figures['p99_us']} us;"
            f" with Python quantize/dequantize median {figures['infer_median_us']} us,"
            f" p99 {figures['infer_p99_us']} us"
        )
    return EXIT_OK
