"""``python -m appliance.pose.training``: rebuild the shipped pose model from scratch, or just its data.

``build --out appliance/pose/models/`` simulates the training episodes (cached), trains, exports the int8
TFLite model and writes its JSON sidecar (provenance: command, seed, data, parameter count, timings).
The held-out evaluation is a separate command of the appliance: ``invispose eval pose``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

DEFAULT_CACHE = Path("data/pose-training-cache")
MODEL_STEM = "invispose-pose-v1"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m appliance.pose.training",
        description="Train the InvisPose pose model on SIMULATED rooms and export it as int8 TFLite.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("build", "simulate data, train, export the int8 model and its provenance sidecar"),
        ("dataset", "only simulate (and cache) the training data"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--episodes", type=int, default=500, help="simulated training episodes (%(default)s)")
        p.add_argument("--duration", type=float, default=30.0, help="seconds per episode (%(default)s)")
        p.add_argument("--workers", type=int, default=2, help="simulation processes (%(default)s)")
        p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="dataset cache (%(default)s)")
        if name == "build":
            p.add_argument("--out", type=Path, required=True, help="folder for the .tflite and .json")
            p.add_argument("--epochs", type=int, default=14, help="training epochs (%(default)s)")
            p.add_argument("--batch-size", type=int, default=128, help="(%(default)s)")
            p.add_argument("--learning-rate", type=float, default=2e-3, help="(%(default)s)")
            p.add_argument("--seed", type=int, default=20260101, help="training seed (%(default)s)")
            p.add_argument(
                "--falling-weight",
                type=float,
                default=1.0,
                help="weight of 'falling' in the activity loss (%(default)s; falls are ~3 %% of persons)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from appliance.pose.training.dataset import generate

    started = time.monotonic()
    arrays = generate("train", args.episodes, args.duration, args.cache_dir, args.workers)
    data_s = time.monotonic() - started
    print(f"{arrays['csi'].shape[0]} windows from {args.episodes} episodes ({data_s:.0f} s)")
    if args.command == "dataset":
        return 0

    import tensorflow as tf

    from appliance.pose.evaluation import HIPS
    from appliance.pose.runtime import TRAINED_ON
    from appliance.pose.training.export import export_int8
    from appliance.pose.training.train import TrainSettings, fit

    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        falling_weight=args.falling_weight,
    )
    fit_started = time.monotonic()
    model = fit(arrays, settings)
    train_s = time.monotonic() - fit_started
    out: Path = args.out
    tflite = out / f"{MODEL_STEM}.tflite"
    data = export_int8(
        model, arrays["csi"].astype("float32"), arrays["geometry"].astype("float32"), tflite, args.seed
    )
    present = arrays["present"].astype(bool)
    persons = arrays["keypoints"][present].astype("float64")  # [n, 17, 3]
    centres = persons[:, list(HIPS)].mean(axis=1)
    sidecar = {
        "model": MODEL_STEM,
        "trained_on": TRAINED_ON,
        "command": "python -m appliance.pose.training " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "data": {
            "split": "train",
            "episodes": args.episodes,
            "episode_seconds": args.duration,
            "windows": int(arrays["csi"].shape[0]),
            "generator": "appliance.pose.evaluation.episode('train', i), i in 0..episodes-1",
        },
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "falling_weight": args.falling_weight,
            "parameters": int(model.count_params()),
            "data_seconds": round(data_s),
            "train_seconds": round(train_s),
        },
        "int8_bytes": len(data),
        # The evaluation's baselines: the training persons' mean pose relative to the pelvis.
        "mean_pose": {
            "offsets_m": (persons - centres[:, None]).mean(axis=0).round(4).tolist(),
            "pelvis_height_m": round(float(centres[:, 2].mean()), 4),
        },
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    tflite.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    print(f"wrote {tflite} ({len(data)} bytes) and its sidecar; total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
