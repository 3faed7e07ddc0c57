"""``invispose eval sensing``: the sensing estimators on held-out simulated rooms, beside trivial baselines.

Each setup runs held-out episodes (``episodes``: seeds and room sizes disjoint from anything fitted) of
three kinds through the serving path: ``RoomSimulator`` (every realism switch on) -> ``LinkPreparer`` ->
``RoomSensing`` (cues, classifier, presence, trackers, falls, rendered skeletons), reading every
``TICK_S`` after the empty room's calibration. Metrics, per setup:

- **position error** per true person and reading (pelvis on the floor), split into moving (faster than
  ``MOVING_M_S``) and still; a person the trackers miss counts with the room-centre guess's error. Beside
  it, the **room-centre** baseline: every person guessed at the centre of the floor.
- **zone accuracy**: the floor in four quadrants (no enrollment); a person's estimated quadrant against
  the true one (a missed person: the centre guess's quadrant).
- **count accuracy**, exact and within one, overall and by true count (capped at 3).
- **presence F1** over every reading; **still presence recall** over readings of a person who has been
  sitting or lying still for at least ``STILL_AFTER_S``; **empty false presence** over the empty episodes.
- **activity accuracy** over readings with someone present (the room's activity: ``room_activity``).
- **fall recall** (a fall found within ``FALL_MATCH_S`` of its start) and **false falls per simulated
  hour**, over every episode.
- **MPJPE** of the rendered skeletons of matched people, beside the **mean pose** at the room centre.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from appliance.contracts.coco import ACTIVITIES
from appliance.pose.scene import SceneSettings
from appliance.pose.sensing.classifier import MAX_COUNT, SensingModel, room_activity
from appliance.pose.sensing.episodes import (
    CALIBRATION_S,
    HELDOUT_DEPTH_M,
    HELDOUT_SEED_BASE,
    HELDOUT_WIDTH_M,
    Episode,
    Kind,
    episode,
    ticks,
)
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.sensing.room import RoomSensing, SensingSettings
from appliance.pose.sensing.skeleton import render

F64 = npt.NDArray[np.float64]

MOVING_M_S = 0.2
STILL_AFTER_S = 300.0
QUICK_STILL_AFTER_S = 30.0
FALL_MATCH_S = 5.0
DATA_NOTICE = (
    "SIMULATED held-out rooms (seeds and room sizes never used in fitting); not validated on real CSI"
)
SETUP_CHOICES = ("esp32-1x6", "esp32-2x6", "esp32-4x4", "atheros-3rx")
_STILL = {ACTIVITIES.index("sitting"), ACTIVITIES.index("lying")}


@dataclass(frozen=True)
class Plan:
    """How many episodes of each kind, and how long."""

    moving: tuple[int, float]
    still: tuple[int, float]
    empty: tuple[int, float]
    still_after_s: float

    def rooms(self, count: int) -> Plan:
        """The same episode lengths, ``count`` held-out rooms of each kind."""
        return replace(
            self,
            moving=(count, self.moving[1]),
            still=(count, self.still[1]),
            empty=(count, self.empty[1]),
        )

    def jobs(self, setup: str, first: int) -> list[tuple[str, Kind, int, float, float]]:
        out: list[tuple[str, Kind, int, float, float]] = []
        kinds: tuple[tuple[Kind, tuple[int, float]], ...] = (
            ("moving", self.moving),
            ("still", self.still),
            ("empty", self.empty),
        )
        for kind, (count, seconds) in kinds:
            out += [(setup, kind, first + i, seconds, self.still_after_s) for i in range(count)]
        return out


FULL = Plan(
    moving=(16, 60.0),
    still=(2, CALIBRATION_S + 20.0 + STILL_AFTER_S + 60.0),
    empty=(2, 240.0),
    still_after_s=STILL_AFTER_S,
)
QUICK = Plan(
    moving=(3, 40.0),
    still=(1, CALIBRATION_S + 15.0 + QUICK_STILL_AFTER_S + 15.0),
    empty=(1, 40.0),
    still_after_s=QUICK_STILL_AFTER_S,
)


@dataclass
class Tally:
    """Sums over readings; ``merge`` adds another's."""

    moving_errors: list[float] = field(default_factory=list)
    still_errors: list[float] = field(default_factory=list)
    centre_errors: list[float] = field(default_factory=list)
    moving_centre_errors: list[float] = field(default_factory=list)
    still_centre_errors: list[float] = field(default_factory=list)
    zone_right: int = 0
    zone_total: int = 0
    count_right: dict[int, int] = field(default_factory=dict)
    count_near: dict[int, int] = field(default_factory=dict)
    count_total: dict[int, int] = field(default_factory=dict)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    still_found: int = 0
    still_total: int = 0
    empty_present: int = 0
    empty_total: int = 0
    activity_right: int = 0
    activity_total: int = 0
    falls: int = 0
    falls_found: int = 0
    false_falls: int = 0
    seconds: float = 0.0
    joint_errors: list[float] = field(default_factory=list)
    mean_pose_errors: list[float] = field(default_factory=list)
    readings: int = 0
    rooms: int = 0

    def merge(self, other: Tally) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if isinstance(value, list):
                mine.extend(value)
            elif isinstance(value, dict):
                for key, count in value.items():
                    mine[key] = mine.get(key, 0) + count
            else:
                setattr(self, name, mine + value)


def _quadrant(position: F64, size: F64) -> int:
    return int(position[0] >= size[0] / 2) + 2 * int(position[1] >= size[1] / 2)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def run_episode(ep: Episode, still_after_s: float, worker_seed: int = 0) -> Tally:
    """One episode through ``RoomSensing``; its tally."""
    geometry = RoomGeometry.from_room_spec(ep.room)
    scene = SceneSettings()
    sensing = RoomSensing(
        geometry,
        SensingSettings(),
        SensingModel(),
        LinkLikelihood.load(),
        rate_hz=100.0,
        calibration_s=CALIBRATION_S,
        fall_sensitivity=scene.fall_sensitivity,
        fall_confirm_s=scene.fall_confirm_s,
        fall_refractory_s=scene.fall_refractory_s,
        seed=worker_seed,
    )
    size = np.array([ep.room.width_m, ep.room.depth_m])
    centre = size / 2
    mean_pose = render(centre, 0.0, "standing")
    tally = Tally(rooms=1)
    still_since: dict[int, float] = {}
    detections: list[float] = []
    first_t: float | None = None
    last_t = 0.0
    for tick in ticks(ep, sensing.cues):
        cues, inputs = sensing.observe(tick.t_s)
        reading = sensing.read(cues, sensing.classify(inputs) if inputs is not None else None)
        first_t = tick.t_s if first_t is None else first_t
        last_t = tick.t_s
        if reading.fall is not None:
            detections.append(reading.fall.t_s)
        tally.readings += 1
        truth = tick.persons
        n_true = min(len(truth), MAX_COUNT)
        for person in truth:
            if person.activity in _STILL:
                still_since.setdefault(person.id, tick.t_s)
            else:
                still_since.pop(person.id, None)
        # Presence and count.
        present = n_true > 0
        tally.tp += int(present and reading.presence)
        tally.fp += int(not present and reading.presence)
        tally.fn += int(present and not reading.presence)
        tally.count_total[n_true] = tally.count_total.get(n_true, 0) + 1
        tally.count_right[n_true] = tally.count_right.get(n_true, 0) + int(reading.count == n_true)
        tally.count_near[n_true] = tally.count_near.get(n_true, 0) + int(abs(reading.count - n_true) <= 1)
        if ep.kind == "empty":
            tally.empty_total += 1
            tally.empty_present += int(reading.presence)
        for person in truth:
            if tick.t_s - still_since.get(person.id, math.inf) >= still_after_s:
                tally.still_total += 1
                tally.still_found += int(reading.presence)
        if present:
            tally.activity_total += 1
            tally.activity_right += int(
                reading.activity == ACTIVITIES[room_activity([p.activity for p in truth])]
            )
        # Positions, zones, skeletons.
        if not truth:
            continue
        estimates = np.array([p.position for p in reading.persons]).reshape(-1, 2)
        truths = np.array([p.position for p in truth])
        matched: dict[int, int] = {}
        if len(estimates):
            cost = np.linalg.norm(truths[:, None, :] - estimates[None, :, :], axis=2)
            rows, cols = linear_sum_assignment(cost)
            matched = dict(zip(rows.tolist(), cols.tolist(), strict=True))
        for i, person in enumerate(truth):
            guess = estimates[matched[i]] if i in matched else centre
            error = float(np.linalg.norm(guess - person.position))
            moving = float(np.linalg.norm(person.velocity)) > MOVING_M_S
            centre_error = float(np.linalg.norm(centre - person.position))
            (tally.moving_errors if moving else tally.still_errors).append(error)
            (tally.moving_centre_errors if moving else tally.still_centre_errors).append(centre_error)
            tally.centre_errors.append(centre_error)
            tally.zone_total += 1
            tally.zone_right += int(_quadrant(guess, size) == _quadrant(person.position, size))
            keypoints = reading.persons[matched[i]].keypoints if i in matched else mean_pose
            tally.joint_errors.append(float(np.linalg.norm(keypoints - person.keypoints, axis=1).mean()))
            tally.mean_pose_errors.append(float(np.linalg.norm(mean_pose - person.keypoints, axis=1).mean()))
    true_falls = sorted(
        segment.t0
        for script in ep.scenario.people
        for segment in script.segments
        if segment.activity == "falling" and first_t is not None and first_t <= segment.t0 <= last_t
    )
    found: set[int] = set()
    for t in detections:
        hit = next(
            (i for i, t0 in enumerate(true_falls) if i not in found and t0 <= t <= t0 + FALL_MATCH_S), None
        )
        if hit is None:
            tally.false_falls += 1
        else:
            found.add(hit)
    tally.falls, tally.falls_found = len(true_falls), len(found)
    tally.seconds = (last_t - first_t) if first_t is not None else 0.0
    return tally


def _job(job: tuple[str, Kind, int, float, float]) -> Tally:
    setup, kind, index, seconds, still_after_s = job
    return run_episode(episode("heldout", setup, kind, index, seconds), still_after_s, worker_seed=index)


def summary(setup: str, tally: Tally, plan: Plan, seconds: float) -> dict[str, Any]:
    """The evaluation contract's keys for one setup, then details."""

    def median(values: Sequence[float]) -> float | None:
        return round(float(np.median(values)), 3) if values else None

    def p90(values: Sequence[float]) -> float | None:
        return round(float(np.percentile(values, 90)), 3) if values else None

    precision = tally.tp / (tally.tp + tally.fp) if tally.tp + tally.fp else 0.0
    recall = tally.tp / (tally.tp + tally.fn) if tally.tp + tally.fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    hours = tally.seconds / 3600
    return {
        "setup": setup,
        "moving_median_m": median(tally.moving_errors),
        "moving_p90_m": p90(tally.moving_errors),
        "still_median_m": median(tally.still_errors),
        "centre_median_m": median(tally.centre_errors),
        "zone_accuracy": _ratio(tally.zone_right, tally.zone_total),
        "count_accuracy": _ratio(sum(tally.count_right.values()), sum(tally.count_total.values())),
        "count_within_one": _ratio(sum(tally.count_near.values()), sum(tally.count_total.values())),
        "presence_f1": round(f1, 4),
        "still_presence_recall": _ratio(tally.still_found, tally.still_total),
        "empty_false_presence": _ratio(tally.empty_present, tally.empty_total),
        "activity_accuracy": _ratio(tally.activity_right, tally.activity_total),
        "fall_recall": _ratio(tally.falls_found, tally.falls),
        "false_falls_per_hour": round(tally.false_falls / hours, 2) if hours else None,
        "mpjpe_mm": round(1000 * float(np.mean(tally.joint_errors)), 1) if tally.joint_errors else None,
        "n_windows": tally.readings,
        "n_rooms": tally.rooms,
        "baselines": {
            "centre_p90_m": p90(tally.centre_errors),
            "moving_centre_median_m": median(tally.moving_centre_errors),
            "moving_centre_p90_m": p90(tally.moving_centre_errors),
            "still_centre_median_m": median(tally.still_centre_errors),
            "zone_accuracy_centre": 0.25,
            "mpjpe_mean_pose_mm": round(1000 * float(np.mean(tally.mean_pose_errors)), 1)
            if tally.mean_pose_errors
            else None,
        },
        # How many readings (people x readings for positions and zones) each figure rests on.
        "readings": {
            "moving": len(tally.moving_errors),
            "still": len(tally.still_errors),
            "zone": tally.zone_total,
            "activity": tally.activity_total,
            "still_presence": tally.still_total,
            "empty": tally.empty_total,
        },
        "count_by_true": {
            str(n): {
                "exact": _ratio(tally.count_right.get(n, 0), total),
                "within_one": _ratio(tally.count_near.get(n, 0), total),
                "windows": total,
            }
            for n, total in sorted(tally.count_total.items())
        },
        "falls": tally.falls,
        "split": {
            "data": DATA_NOTICE,
            "rooms": f"width {HELDOUT_WIDTH_M[0]}-{HELDOUT_WIDTH_M[1]} m x depth "
            f"{HELDOUT_DEPTH_M[0]}-{HELDOUT_DEPTH_M[1]} m (a size band never used in fitting)",
            "seeds_from": HELDOUT_SEED_BASE,
            "episodes": {
                "moving": list(plan.moving),
                "still": list(plan.still),
                "empty": list(plan.empty),
            },
            "still_after_s": plan.still_after_s,
            "simulated_hours": round(hours, 3),
            "seconds": round(seconds, 1),
        },
    }


def evaluate(
    setups: Sequence[str],
    *,
    quick: bool,
    workers: int = 2,
    first: int = 0,
    rooms: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Held-out episodes ``first ..`` of every setup; one summary per setup. ``rooms`` replaces the
    plan's number of rooms of each kind (a larger sample where the quick one is too small to tell).

    All setups' episodes share one pool of ``workers`` processes, longest first, so that the long still
    episodes do not wait for one another; ``progress`` shows a bar on stderr.
    """
    from tqdm import tqdm

    plan = QUICK if quick else FULL
    if rooms is not None:
        plan = plan.rooms(rooms)
    started = time.monotonic()
    jobs = sorted((job for setup in setups for job in plan.jobs(setup, first)), key=lambda j: -j[3])
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            tallies = list(
                tqdm(pool.imap(_job, jobs), total=len(jobs), desc="episodes", disable=not progress)
            )
    else:
        tallies = [_job(job) for job in tqdm(jobs, desc="episodes", disable=not progress)]
    totals = {setup: Tally() for setup in setups}
    for job, tally in zip(jobs, tallies, strict=True):
        totals[job[0]].merge(tally)
    seconds = time.monotonic() - started
    return [summary(setup, totals[setup], plan, seconds) for setup in setups]
