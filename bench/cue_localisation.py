"""How well each cue alone places one person, from single readings of the SIMULATED training episodes.

For every reading of a training episode of ``--setup`` with exactly one person in the room, each term of
the shipped link likelihood (shadow, echo, Doppler; ``LinkLikelihood.terms``) and their sum is evaluated
on a floor grid (``--cell`` m), and the grid cell it likes best, and its likelihood-weighted mean at the
tracker's temperature, are compared with the truth, beside the room-centre guess for the same readings.
The Doppler term needs a velocity: it is given the true one (an upper bound on what that term can say).
Also printed per cue: how well it alone tells a link with the body near its line of sight (path via
the body at most ``NEAR_M`` longer) from one with the body far from it (over ``FAR_M``), as the area
under the ROC curve (0.5: not at all), over all links and readings. Training rooms only (3-8 m,
outside the held-out size band): this is for finding where the tracker loses, never for claims; those
come from ``invispose eval sensing``. Needs the cache: ``python -m appliance.pose.training data``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu
from tqdm import tqdm

from appliance.pose.sensing import tracker
from appliance.pose.sensing.cues import LOG_SCALE, RSSI_SCALE_DB
from appliance.pose.sensing.evaluation import MOVING_M_S
from appliance.pose.sensing.geometry import state_features
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.training.data import load

NEAR_M, FAR_M = 0.3, 1.0
_NAME = re.compile(r"-train-(.+)-(moving|still)-([\d.]+)s-(\d+)\.npz$")
TERMS = ("shadow", "echo", "doppler", "all")
WAVELENGTH_M = 299_792_458.0 / 2.437e9


CUES = ("|RSSI change|", "RSSI drop", "log beat", "log profile change")


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (Mann-Whitney U)."""
    return float(mannwhitneyu(positive, negative).statistic / (positive.size * negative.size))


def grid(width: float, depth: float, cell: float) -> np.ndarray:
    margin = tracker.WALL_MARGIN_M
    xs = np.arange(margin, width - margin + 1e-9, cell)
    ys = np.arange(margin, depth - margin + 1e-9, cell)
    return np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--setup", default="esp32-1x6", help="an ESP32 setup (default: %(default)s)")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/sensing-training-cache"))
    parser.add_argument("--cell", type=float, default=0.1, help="grid cell, m (default: %(default)s)")
    parser.add_argument("--every", type=int, default=5, help="use every n-th reading (default: %(default)s)")
    args = parser.parse_args()
    paths = sorted(p for p in args.cache_dir.glob(f"*-train-{args.setup}-*.npz") if _NAME.search(p.name))
    if not paths:
        print(f"error: no {args.setup} training episodes in {args.cache_dir}", file=sys.stderr)
        return 1
    likelihood = LinkLikelihood.load()
    errors: dict[str, list[float]] = {}
    # Per state: each link's excess path and its cues.
    links: dict[str, list[np.ndarray]] = {"moving": [], "still": []}
    for path in tqdm(paths, desc="episodes"):
        data = load(path)
        width, depth = float(data.room_size[0]), float(data.room_size[1])
        cells = grid(width, depth, args.cell)
        centre = np.array([width / 2, depth / 2])
        for i in range(0, len(data.times), args.every):
            if data.count[i] != 1:
                continue
            ready = ~np.isnan(data.cues[i, :, 0])
            if ready.sum() < 2:
                continue
            truth, velocity = data.positions[i, 0], data.velocities[i, 0]
            state = "moving" if np.linalg.norm(velocity) > MOVING_M_S else "still"
            vectors = data.cues[i, ready]
            tx, rx = data.tx[ready], data.rx[ready]
            states = state_features(cells, np.broadcast_to(velocity, cells.shape), tx, rx, WAVELENGTH_M)
            shadow, echo, doppler = likelihood.terms(vectors, states)
            for name, term in zip(TERMS, (shadow, echo, doppler, shadow + echo + doppler), strict=True):
                best = cells[int(np.argmax(term))]
                weights = np.exp(tracker.LIKELIHOOD_TEMPERATURE * (term - term.max()))
                mean = weights @ cells / weights.sum()
                errors.setdefault(f"{state} {name} best", []).append(float(np.linalg.norm(best - truth)))
                errors.setdefault(f"{state} {name} mean", []).append(float(np.linalg.norm(mean - truth)))
            errors.setdefault(f"{state} centre", []).append(float(np.linalg.norm(centre - truth)))
            at_truth = state_features(truth[None], velocity[None], tx, rx, WAVELENGTH_M)[0]
            rssi_change = vectors[:, 0] * RSSI_SCALE_DB
            links[state].append(
                np.stack(
                    [
                        at_truth[:, 0],
                        np.abs(rssi_change),
                        -rssi_change,
                        vectors[:, 2] * LOG_SCALE,
                        vectors[:, 4] * LOG_SCALE,
                    ],
                    axis=1,
                )
            )
    print(f"*** SIMULATED training rooms of {args.setup}, one person, single readings ***")
    for state in ("moving", "still"):
        n = len(errors.get(f"{state} centre", []))
        if not n:
            continue
        print(f"{state} ({n} readings): room centre {np.median(errors[f'{state} centre']):.2f} m")
        for name in TERMS:
            best, mean = errors[f"{state} {name} best"], errors[f"{state} {name} mean"]
            print(
                f"  {name:8} best cell median {np.median(best):.2f} / p90 {np.percentile(best, 90):.2f} m,"
                f" weighted mean median {np.median(mean):.2f} m"
            )
    print(f"near (excess <= {NEAR_M} m) or far (> {FAR_M} m) from a link, ROC AUC of each cue alone:")
    for state, rows in links.items():
        if not rows:
            continue
        table = np.concatenate(rows)
        near, far = table[table[:, 0] <= NEAR_M], table[table[:, 0] > FAR_M]
        aucs = ", ".join(
            f"{name} {auc(near[:, column], far[:, column]):.3f}" for column, name in enumerate(CUES, start=1)
        )
        print(f"  {state} ({len(near)} near, {len(far)} far link readings): {aucs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
