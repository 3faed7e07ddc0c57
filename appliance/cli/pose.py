"""``invispose model info``, ``eval sensing``, ``plan``, ``detect motion`` and ``bench model``.

Every sensing figure the project quotes comes from one of these commands, and every output that involves
the simulator or the model says so. Exit codes: 0 ok, 1 the model or a file could not be read, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from appliance.cli.csi import _positive_int

EXIT_OK, EXIT_ERROR = 0, 1
DETECT_STEP_S = 0.1
BENCH_ITERATIONS, BENCH_WARMUP = 2000, 200


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    """Add ``model``, ``eval``, ``plan``, ``detect`` and ``bench`` to the ``invispose`` parser."""
    from appliance.csi.formats.registry import AUTO, format_names
    from appliance.pose.sensing.classifier import DEFAULT_MODEL
    from appliance.pose.sensing.evaluation import FULL, QUICK, SETUP_CHOICES

    def model_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--model", type=Path, default=DEFAULT_MODEL, help="TFLite model file (default: the shipped one)"
        )

    model = subparsers.add_parser("model", help="the count/activity model", parents=[common])
    model_commands = model.add_subparsers(dest="model_command", required=True)
    info = model_commands.add_parser(
        "info", help="file, hash, tensors, runtime and training provenance", parents=[common]
    )
    model_option(info)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=run_model_info)

    evaluate = subparsers.add_parser("eval", help="evaluate estimators", parents=[common])
    eval_commands = evaluate.add_subparsers(dest="eval_command", required=True)
    sensing = eval_commands.add_parser(
        "sensing",
        help="held-out simulated evaluation of the sensing path beside trivial baselines",
        description="Runs the sensing path (cues, trackers, model, falls, rendered skeletons) on held-out "
        "SIMULATED rooms, every realism switch on (seeds and room sizes never used in fitting). Per setup: "
        f"{FULL.moving[0]} moving, {FULL.still[0]} still and {FULL.empty[0]} empty episodes; with --quick "
        f"{QUICK.moving[0]}, {QUICK.still[0]} and {QUICK.empty[0]} (a person still for "
        f"{QUICK.still_after_s:g} s instead of {FULL.still_after_s:g} s).",
        parents=[common],
    )
    sensing.add_argument(
        "--setup",
        choices=(*SETUP_CHOICES, "all"),
        default="esp32-1x6",
        help="node layout (default: %(default)s; all: every one)",
    )
    sensing.add_argument("--quick", action="store_true", help="a small evaluation (under a minute)")
    sensing.add_argument("--json", action="store_true", help="print a JSON array, one object per setup")
    sensing.add_argument("--first", type=int, default=0, help="first held-out episode (default: 0)")
    sensing.add_argument(
        "--rooms",
        type=_positive_int,
        default=None,
        help="held-out rooms of each kind (moving, still, empty) instead of the plan's, same lengths",
    )
    sensing.add_argument("--workers", type=int, default=2, help="simulation processes (default: 2)")
    sensing.set_defaults(handler=run_eval_sensing)

    plan = subparsers.add_parser(
        "plan",
        help="expected position error per floor cell for the configured room and nodes (PNG heatmap)",
        description="Simulates a person visiting every floor cell of the configured room (its size, nodes "
        "and channel) and places them with the sensing path, as the appliance would: the median error per "
        "cell says where the nodes see people well, before anything is drilled. SIMULATED.",
        parents=[common],
    )
    plan.add_argument("--cell", type=float, default=0.5, help="cell size in metres (%(default)s)")
    plan.add_argument("--png", type=Path, default=None, help="write the heatmap to this PNG file")
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.add_argument("--seed", type=int, default=0, help="simulation seed (%(default)s)")
    plan.set_defaults(handler=run_plan)

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
        "model", help="count/activity model latency at 1 and 2 threads (median, p99)", parents=[common]
    )
    model_option(bench_model)
    bench_model.add_argument("--json", action="store_true", help="print one JSON object")
    bench_model.add_argument("--iterations", type=int, default=BENCH_ITERATIONS, help="(%(default)s)")
    bench_model.add_argument("--warmup", type=int, default=BENCH_WARMUP, help="(%(default)s)")
    bench_model.set_defaults(handler=run_bench_model)


def _load(path: Path, threads: int = 1) -> Any:
    from appliance.pose.runtime import ModelUnavailableError
    from appliance.pose.sensing.classifier import SensingModel

    try:
        return SensingModel(path, num_threads=threads)
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
    return EXIT_OK


def run_eval_sensing(args: argparse.Namespace) -> int:
    from appliance.pose.sensing.evaluation import SETUP_CHOICES, evaluate

    if _load(_default_model()) is None:
        return EXIT_ERROR
    setups = list(SETUP_CHOICES) if args.setup == "all" else [args.setup]
    results = evaluate(
        setups, quick=args.quick, workers=args.workers, first=args.first, rooms=args.rooms, progress=True
    )
    if args.json:
        print(json.dumps(results))
    else:
        print(format_eval(results))
    return EXIT_OK


def _default_model() -> Path:
    from appliance.pose.sensing.classifier import DEFAULT_MODEL

    return DEFAULT_MODEL


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


# (key, label, baseline key in "baselines" or a constant)
_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("moving_median_m", "position error, moving, median (m)", "moving_centre_median_m"),
    ("moving_p90_m", "position error, moving, p90 (m)", "moving_centre_p90_m"),
    ("still_median_m", "position error, still, median (m)", "still_centre_median_m"),
    ("zone_accuracy", "zone accuracy (4 quadrants)", "zone_accuracy_centre"),
    ("count_accuracy", "count exact", None),
    ("count_within_one", "count within one", None),
    ("presence_f1", "presence F1", None),
    ("still_presence_recall", "still presence recall", None),
    ("empty_false_presence", "empty-room false presence", None),
    ("activity_accuracy", "activity accuracy", None),
    ("fall_recall", "fall recall", None),
    ("false_falls_per_hour", "false falls per simulated hour", None),
    ("mpjpe_mm", "MPJPE of the rendered skeleton (mm)", "mpjpe_mean_pose_mm"),
)


def format_eval(results: list[dict[str, Any]]) -> str:
    """Every setup's metrics beside the room-centre and mean-pose baselines."""
    lines = []
    for result in results:
        split = result["split"]
        lines += [
            f"*** {split['data']} ***",
            f"{result['setup']}: {result['n_rooms']} rooms ({split['rooms']}),"
            f" {result['n_windows']} readings,"
            f" {result['falls']} falls, {split['simulated_hours']} simulated h, still after"
            f" {split['still_after_s']:g} s ({split['seconds']:.0f} s)",
            f"  {'metric':40} {'sensing':>9} {'baseline':>9}",
        ]
        baselines = {**result["baselines"], "centre_median_m": result["centre_median_m"]}
        for key, label, baseline in _ROWS:
            base = "" if baseline is None else _cell(baselines.get(baseline))
            lines.append(f"  {label:40} {_cell(result[key]):>9} {base:>9}")
        lines.append(
            "  count by true count: "
            + ", ".join(
                f"{n}: {_cell(v['exact'])} exact, {_cell(v['within_one'])} within one ({v['windows']})"
                for n, v in result["count_by_true"].items()
            )
        )
        lines.append("")
    lines.append(
        "Baselines: every person at the centre of the floor (position, zone: one quadrant in four), the"
        " mean standing pose there (MPJPE). Missed people count with the centre guess's error."
    )
    return "\n".join(lines)


def run_plan(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from appliance.config import ConfigError, load_config
    from appliance.pose.sensing.plan import heatmap_png, plan

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    room = config.room.to_spec()
    with tqdm(total=100, desc="simulating the visit", unit="%", disable=args.json) as bar:

        def progress(share: float) -> None:
            bar.update(round(100 * share) - bar.n)

        result = plan(room, cell_m=args.cell, seed=args.seed, progress=progress)
    if args.png is not None:
        heatmap_png(result, room, args.png)
    if args.json:
        print(
            json.dumps(
                {
                    "simulated": True,
                    "room": config.room.name,
                    "cells_x_m": result.xs.round(3).tolist(),
                    "cells_y_m": result.ys.round(3).tolist(),
                    "error_m": [
                        [round(float(v), 3) if np.isfinite(v) else None for v in row]
                        for row in result.error_m
                    ],
                    "centre_error_m": result.centre_error_m.round(3).tolist(),
                    "simulated_s": round(result.simulated_s, 1),
                }
            )
        )
        return EXIT_OK
    print(
        f"*** SIMULATED: {config.room.name}, {room.width_m} x {room.depth_m} m,"
        f" {len(room.link_ids)} links ***"
    )
    print("median position error per cell (m); rows from the back wall (largest y) to the front:")
    print("  y \\ x " + " ".join(f"{x:5.1f}" for x in result.xs))
    for row in range(len(result.ys) - 1, -1, -1):
        values = " ".join(f"{v:5.2f}" if np.isfinite(v) else "    -" for v in result.error_m[row])
        print(f"  {result.ys[row]:5.1f} " + values)
    finite = result.error_m[np.isfinite(result.error_m)]
    if finite.size:
        print(
            f"median over the floor {float(np.median(finite)):.2f} m;"
            f" the room-centre guess {float(np.median(result.centre_error_m)):.2f} m"
        )
    if args.png is not None:
        print(f"heatmap: {args.png}")
    return EXIT_OK


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
    import numpy as np

    from appliance.pose.sensing.classifier import LINK_INPUTS, MAX_LINKS, STEPS

    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.0, 0.3, (STEPS, MAX_LINKS, LINK_INPUTS)), -3, 3).astype(np.float32)
    mask = np.zeros(MAX_LINKS, np.float32)
    mask[:12] = 1.0
    result: dict[str, Any] = {}
    for threads in (1, 2):
        model = _load(args.model, threads)
        if model is None:
            return EXIT_ERROR
        result[f"threads_{threads}"] = model.benchmark(
            x, mask, iterations=args.iterations, warmup=args.warmup
        )
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(f"{args.model} ({model.runtime}), 12 links, {args.iterations} runs each")
    for key, figures in result.items():
        print(
            f"{key}: interpreter median {figures['median_us']} us, p99 {figures['p99_us']} us;"
            f" with Python quantize/dequantize median {figures['run_median_us']} us,"
            f" p99 {figures['run_p99_us']} us"
        )
    return EXIT_OK
