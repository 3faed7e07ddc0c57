"""How far a fall can be told from everything else with the room's amplitude cues: a measurement of the
gap, on the SIMULATED training episodes.

The shipped detector (``appliance.pose.sensing.falls``) looks for what a fall is made of: motion (some
link's beat power well above the empty room's), then, within ``--before`` seconds, a room that is still
(every link's beat power low) and a lying posture (the classifier's "lying" + "falling" probability) for
the confirmation time. This script searches that family of rules over a grid of every threshold, on
every moving and still episode of the training cache (the classifier replayed over each episode's cues,
as the appliance runs it), and prints, for each false-alarm budget, the best recall any rule reaches,
beside chance (firing at random at the same rate finds a fall within the 5 s match window with
probability 1 - exp(-rate x 5 s)). Falls are split by whether the faller was alone: the cues are the
room's, so anyone else moving hides the faller's stillness.

The rules are chosen on the same episodes they are scored on, so the recall printed is an upper bound
for this family on held-out rooms. Needs the training cache: ``python -m appliance.pose.training data``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from tqdm import tqdm

from appliance.contracts.coco import ACTIVITIES
from appliance.pose.sensing.classifier import CueHistory, SensingModel
from appliance.pose.sensing.cues import LOG_SCALE, RoomCues
from appliance.pose.sensing.episodes import TICK_S, Kind, episode
from appliance.pose.sensing.evaluation import FALL_MATCH_S
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.training.data import load

F64 = npt.NDArray[np.float64]

FALLING, LYING = ACTIVITIES.index("falling"), ACTIVITIES.index("lying")
REFRACTORY_S = 60.0
# The grid: confirmation (still and lying) seconds, seconds of motion looked for before it, the beat power
# under which every link counts as still, the beat power some link must reach before, the mean lying
# probability while confirming.
CONFIRM_S = (1.5, 2.0, 3.0)
BEFORE_S = (1.0, 2.0)
STILL_BEAT = (1.5, 2.0, 3.0, 5.0)
MOTION_BEAT = (3.0, 6.0, 12.0, 30.0)
LYING_PROBABILITY = (0.2, 0.35, 0.5, 0.7)
BUDGETS_PER_HOUR = (0.5, 1.0, 2.0, 5.0, 10.0)
_NAME = re.compile(r"-train-(.+)-(moving|still)-([\d.]+)s-(\d+)\.npz$")


@dataclass(frozen=True)
class Replayed:
    times: F64
    beat: F64  # the largest beat power over the links, per tick
    lying: F64  # the classifier's lying + falling probability, per tick
    falls: list[tuple[float, bool]]  # (onset, the faller was alone)


def replay(path: Path, model: SensingModel) -> Replayed:
    match = _NAME.search(path.name)
    assert match is not None
    setup, kind, seconds, index = match.group(1), match.group(2), float(match.group(3)), int(match.group(4))
    kind_name: Kind = "moving" if kind == "moving" else "still"
    geometry = RoomGeometry.from_room_spec(episode("train", setup, kind_name, index, seconds).room)
    data = load(path)
    history = CueHistory(geometry)
    lying = np.zeros(len(data.times))
    latest = 0.0
    for i, t in enumerate(data.times):
        ready = ~np.isnan(data.cues[i, :, 0])
        links = tuple(link for link, ok in zip(data.links, ready, strict=True) if ok)
        history.add(RoomCues(float(t), links, data.cues[i, ready], ()))
        if history.full and links:
            activity = model.classify(*history.inputs()).activity
            latest = float(activity[LYING] + activity[FALLING])
        lying[i] = latest
    falls = []
    for person in range(data.activities.shape[1]):
        falling = data.activities[:, person] == FALLING
        for i in (np.flatnonzero(falling[1:] & ~falling[:-1]) + 1).tolist():
            falls.append((float(data.times[i]), int(data.count[i]) == 1))
    beat = np.exp(np.nan_to_num(np.nanmax(data.cues[:, :, 2], axis=1)) * LOG_SCALE)
    return Replayed(data.times.astype(np.float64), beat, lying, falls)


def fires(ep: Replayed, rule: tuple[float, float, float, float, float]) -> list[float]:
    """When the rule raises a fall in one episode (then silent for ``REFRACTORY_S``)."""
    confirm_s, before_s, still_beat, motion_beat, lying_probability = rule
    confirm, before = round(confirm_s / TICK_S), round(before_s / TICK_S)
    if len(ep.times) < confirm + before:
        return []
    still = sliding_window_view(ep.beat, confirm).max(axis=1)[before:] < still_beat
    moved = sliding_window_view(ep.beat[:-confirm], before).max(axis=1) >= motion_beat
    lying = sliding_window_view(ep.lying, confirm).mean(axis=1)[before:] >= lying_probability
    candidates = ep.times[confirm + before - 1 :][still & moved & lying]
    found: list[float] = []
    for t in candidates:
        if not found or t >= found[-1] + REFRACTORY_S:
            found.append(float(t))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/sensing-training-cache"))
    args = parser.parse_args()
    paths = sorted(p for p in args.cache_dir.glob("*-train-*.npz") if _NAME.search(p.name))
    if not paths:
        print(
            f"error: no training episodes in {args.cache_dir}; run: python -m appliance.pose.training data",
            file=sys.stderr,
        )
        return 1
    model = SensingModel()
    episodes = [replay(p, model) for p in tqdm(paths, desc="replaying episodes")]
    hours = sum(float(e.times[-1] - e.times[0]) for e in episodes) / 3600
    alone = sum(a for e in episodes for _, a in e.falls)
    total = sum(len(e.falls) for e in episodes)
    results = []
    grid = list(itertools.product(CONFIRM_S, BEFORE_S, STILL_BEAT, MOTION_BEAT, LYING_PROBABILITY))
    for rule in tqdm(grid, desc="rules"):
        found = found_alone = false = 0
        for ep in episodes:
            matched: set[int] = set()
            for t in fires(ep, rule):
                hit = next(
                    (
                        k
                        for k, (t0, _) in enumerate(ep.falls)
                        if k not in matched and t0 <= t <= t0 + FALL_MATCH_S
                    ),
                    None,
                )
                if hit is None:
                    false += 1
                else:
                    matched.add(hit)
            found += len(matched)
            found_alone += sum(int(ep.falls[k][1]) for k in matched)
        results.append((false / hours, found / total, found_alone / max(alone, 1), rule))
    print("*** SIMULATED training episodes (rules chosen and scored on the same: an upper bound) ***")
    print(f"{len(episodes)} episodes, {hours:.2f} h, {total} falls ({alone} with the faller alone)")
    print(
        f"{'false falls/h <=':>17} {'best recall':>11} {'alone':>6} {'chance':>7}"
        "  rule (confirm s, before s, still beat, motion beat, lying)"
    )
    for budget in BUDGETS_PER_HOUR:
        within = [r for r in results if r[0] <= budget]
        chance = 1 - math.exp(-budget / 3600 * FALL_MATCH_S)
        if not within:
            print(f"{budget:17.1f} {'-':>11} {'-':>6} {chance:7.4f}")
            continue
        rate, recall, recall_alone, rule = max(within, key=lambda r: (r[1], -r[0]))
        print(f"{budget:17.1f} {recall:11.3f} {recall_alone:6.3f} {chance:7.4f}  {rule} at {rate:.2f}/h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
