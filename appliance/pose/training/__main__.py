"""``python -m appliance.pose.training``: simulate the training data, then fit what ships from it.

``data`` simulates the training episodes of every setup into a cache (one ``.npz`` per episode; what is
there already is kept). ``build --out appliance/pose/models/`` fits the link likelihood's constants,
trains the count/activity classifier (unless ``--likelihood-only``), exports it as int8 TFLite, and
writes provenance beside each.
The held-out evaluation is a command of the appliance: ``invispose eval sensing``.
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

from appliance.csi.simulator.room import SETUPS

DEFAULT_CACHE = Path("data/sensing-training-cache")
CLASSIFIER_STEM = "invispose-sensing-v1"
LIKELIHOOD_FILE = "link-likelihood-v1.json"
# Episodes per setup: (kind, count, seconds). Links cost simulation time, so the bigger setups get fewer.
PLAN: dict[str, list[tuple[str, int, float]]] = {
    "esp32-1x6": [("moving", 60, 40.0), ("still", 12, 90.0), ("empty", 8, 60.0)],
    "esp32-2x6": [("moving", 60, 40.0), ("still", 12, 90.0), ("empty", 8, 60.0)],
    "esp32-4x4": [("moving", 40, 40.0), ("still", 10, 90.0), ("empty", 6, 60.0)],
    "atheros-3rx": [("moving", 40, 40.0), ("still", 10, 90.0), ("empty", 6, 60.0)],
}
# Episodes of each setup's moving kind kept aside to choose the classifier's epoch.
VALIDATION_SHARE = 0.15


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m appliance.pose.training",
        description="Fit the InvisPose sensing estimators on SIMULATED training rooms.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data = sub.add_parser("data", help="simulate the training episodes into the cache")
    build = sub.add_parser("build", help="fit the likelihood, train and export the classifier")
    for p in (data, build):
        p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="episode cache (%(default)s)")
        p.add_argument("--setups", default=",".join(SETUPS), help="comma-separated (%(default)s)")
        p.add_argument("--scale", type=float, default=1.0, help="multiply every episode count (%(default)s)")
    data.add_argument("--workers", type=int, default=2, help="simulation processes (%(default)s)")
    build.add_argument("--out", type=Path, required=True, help="folder for the model files")
    build.add_argument(
        "--likelihood-only",
        action="store_true",
        help="fit the link likelihood only and keep the classifier (its cues are unchanged)",
    )
    build.add_argument("--epochs", type=int, default=15, help="classifier epochs (%(default)s)")
    build.add_argument("--seed", type=int, default=20261204, help="training seed (%(default)s)")
    build.add_argument("--falling-weight", type=float, default=4.0, help="weight of 'falling' (%(default)s)")
    return parser


def _jobs(setups: Sequence[str], scale: float) -> list[tuple[str, str, int, float]]:
    """Every episode of the plan, interleaved across setups and kinds, so that an interrupted run leaves
    some of each."""
    jobs = [
        (setup, kind, index, seconds)
        for setup in setups
        for kind, count, seconds in PLAN[setup]
        for index in range(max(1, round(count * scale)))
    ]
    return sorted(jobs, key=lambda j: (j[2], j[0], j[1]))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from appliance.pose.training.data import build_jobs, episode_path, load

    setups = [s for s in args.setups.split(",") if s]
    unknown = sorted(set(setups) - set(SETUPS))
    if unknown:
        print(f"error: unknown setup(s) {', '.join(unknown)}; known: {', '.join(SETUPS)}", file=sys.stderr)
        return 2
    jobs = _jobs(setups, args.scale)
    started = time.monotonic()
    if args.command == "data":
        build_jobs(args.cache_dir, "train", jobs, args.workers)
        print(f"{len(jobs)} episodes in {args.cache_dir} ({time.monotonic() - started:.0f} s)")
        return 0

    from appliance.pose.runtime import TRAINED_ON
    from appliance.pose.training import classifier, likelihood

    missing = [j for j in jobs if not episode_path(args.cache_dir, "train", *j).exists()]
    if missing:
        print(
            f"error: {len(missing)} episodes are not in {args.cache_dir}; run the data command first",
            file=sys.stderr,
        )
        return 1
    episodes = [load(episode_path(args.cache_dir, "train", *j)) for j in jobs]
    held = {
        j
        for j in jobs
        if j[1] == "moving" and j[2] < round(VALIDATION_SHARE * _count(j[0], "moving", args.scale))
    }
    train = [e for j, e in zip(jobs, episodes, strict=True) if j not in held]
    validation = [e for j, e in zip(jobs, episodes, strict=True) if j in held]
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m appliance.pose.training " + " ".join(sys.argv[1:] if argv is None else argv)
    data_note = {
        "split": "train",
        "episodes": len(train),
        "validation_episodes": len(validation),
        "plan": {s: PLAN[s] for s in setups},
        "scale": args.scale,
        "generator": "appliance.pose.sensing.episodes.episode('train', setup, kind, index, seconds)",
    }

    fitted = likelihood.fit([e for e in train if e.kind == "moving"])
    fitted = type(fitted)(
        **{**fitted.__dict__, "provenance": {**fitted.provenance, "command": command, "data": data_note}}
    )
    fitted.save(out / LIKELIHOOD_FILE)
    print(f"likelihood: {fitted}")
    if args.likelihood_only:
        return 0

    import tensorflow as tf

    train_set = classifier.dataset(train)
    validation_set = classifier.dataset(validation)
    fit_started = time.monotonic()
    model, history = classifier.fit(
        train_set, validation_set, epochs=args.epochs, seed=args.seed, falling_weight=args.falling_weight
    )
    tflite = out / f"{CLASSIFIER_STEM}.tflite"
    classifier.export(model, train_set[0], train_set[1], tflite, args.seed)
    sidecar = {
        "model": CLASSIFIER_STEM,
        "trained_on": TRAINED_ON,
        "command": command,
        "seed": args.seed,
        "data": {**data_note, "windows": int(train_set[0].shape[0])},
        "training": {
            "epochs": args.epochs,
            "falling_weight": args.falling_weight,
            "parameters": int(model.count_params()),
            "train_seconds": round(time.monotonic() - fit_started),
            "history": history,
        },
        "int8_bytes": tflite.stat().st_size,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    tflite.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    print(
        f"wrote {tflite} ({tflite.stat().st_size} bytes) and {LIKELIHOOD_FILE};"
        f" {time.monotonic() - started:.0f} s"
    )
    return 0


def _count(setup: str, kind: str, scale: float) -> int:
    return next(max(1, round(count * scale)) for k, count, _ in PLAN[setup] if k == kind)


if __name__ == "__main__":
    sys.exit(main())
