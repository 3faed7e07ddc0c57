"""Simulated rooms, the labelled window stream, and the held-out evaluation of the shipped pose model.

Everything here runs the serving path: ``RoomSimulator`` frames -> ``LinkPreparer`` (per link, as
``appliance.pipeline.LinkChannel`` does) -> a 4 s ring buffer per link -> ``features.build_window`` ->
``PoseModel.infer``. Training (``appliance.pose.training.dataset``) draws its windows from the same
``simulated_windows`` generator, so the model is trained on exactly the features it is served.

**Splits.** Rooms come from ``random_room(rng, split)``. Both splits draw rooms 3-8 m wide and deep and
2.4-3.2 m high, one transmitter and 3-6 receivers at random wall positions (about one room in six is an
Atheros router setup with 2 x 3 antennas), 1-2 doors, SNR 18-35 dB and randomized impairments, and
``Scenario.random`` with 1-3 people. They differ in two ways:

- seeds: training episodes use seeds ``TRAIN_SEED_BASE + i``, held-out episodes ``HELDOUT_SEED_BASE + i``
  (disjoint ranges: different rooms, layouts, bodies, furniture, motions and noise);
- room sizes: held-out rooms have width in ``HELDOUT_WIDTH_M`` and depth in ``HELDOUT_DEPTH_M``; training
  rejects every room whose width *and* depth both fall inside those bands, so no held-out room size was
  ever seen in training.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES, KEYPOINT_INDEX, KEYPOINT_NAMES, N_KEYPOINTS
from appliance.csi.prep import LinkPreparer, PreparedSample, PrepSettings
from appliance.csi.simulator import Impairments, NodeSpec, RoomSimulator, RoomSpec, Scenario
from appliance.csi.simulator.simulator import SceneTruth
from appliance.pose.features import (
    WINDOW_S,
    EmptyRoomReference,
    ModelInputs,
    RoomGeometry,
    build_window,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Split = Literal["train", "heldout"]

MAX_PERSONS = 3
# Bump when episodes are drawn differently: training caches carry it in their names.
EPISODES_VERSION = 1
TRAIN_SEED_BASE = 1_000_000
HELDOUT_SEED_BASE = 9_000_000
HELDOUT_WIDTH_M = (4.4, 5.6)
HELDOUT_DEPTH_M = (3.4, 4.6)
ROOM_SIDE_M = (3.0, 8.0)
ROOM_HEIGHT_M = (2.4, 3.2)
ATHEROS_SHARE = 0.15
SNR_DB = (18.0, 35.0)
# Empty-room calibration before each episode, as the live motion detector's (shorter: the sim is clean).
REFERENCE_S = 4.0
# Windows are taken this often; the live pipeline may run the model more often.
STRIDE_S = 0.5
# Same as the pipeline's per-link ring buffer.
BUFFER_S = 4.0
# A window's label is the scene this long before its end: the Hampel filter delays samples by 5 packets.
LABEL_DELAY_S = 0.05
# A window is labelled "falling" for a person who was falling at any moment in its last FALL_LABEL_S: a
# fall lasts 0.8 s and the model needs most of it inside the window to recognise it.
FALL_LABEL_S = 1.2
FALLING = ACTIVITIES.index("falling")
EMPTY = ACTIVITIES.index("empty")
WALL_OFFSET_M = 0.05


# ---------------------------------------------------------------------------------------------- rooms


def _in_heldout_band(width: float, depth: float) -> bool:
    return (
        HELDOUT_WIDTH_M[0] <= width <= HELDOUT_WIDTH_M[1]
        and HELDOUT_DEPTH_M[0] <= depth <= HELDOUT_DEPTH_M[1]
    )


def _wall_point(
    rng: np.random.Generator, width: float, depth: float, fraction: float, height: float
) -> tuple[float, float, float]:
    """A point on the walls at ``fraction`` (0..1) of the perimeter, counter-clockwise from (0, 0)."""
    perimeter = 2 * (width + depth)
    s = (fraction % 1.0) * perimeter
    if s < width:
        return (s, WALL_OFFSET_M, height)
    s -= width
    if s < depth:
        return (width - WALL_OFFSET_M, s, height)
    s -= depth
    if s < width:
        return (width - s, depth - WALL_OFFSET_M, height)
    s -= width
    return (WALL_OFFSET_M, depth - s, height)


def random_room(rng: np.random.Generator, split: Split) -> RoomSpec:
    """A room with a random size, node layout and doors from the split's distribution (module docstring)."""
    while True:
        if split == "heldout":
            width = float(rng.uniform(*HELDOUT_WIDTH_M))
            depth = float(rng.uniform(*HELDOUT_DEPTH_M))
        else:
            width, depth = (float(v) for v in rng.uniform(*ROOM_SIDE_M, size=2))
        if split == "heldout" or not _in_heldout_band(width, depth):
            break
    height = float(rng.uniform(*ROOM_HEIGHT_M))
    atheros = bool(rng.random() < ATHEROS_SHARE)
    n_rx = int(rng.integers(3, 7))
    tx_fraction = float(rng.random())
    # Receivers spread round the walls (evenly, jittered) so every part of the floor is near some link.
    spacing = 1.0 / (n_rx + 1)
    nodes = [
        NodeSpec(
            "tx",
            "atheros" if atheros else "esp32",
            "tx",
            _wall_point(rng, width, depth, tx_fraction, float(rng.uniform(1.4, 2.2))),
            antennas=2 if atheros else 1,
        )
    ]
    for i in range(n_rx):
        fraction = tx_fraction + spacing * (i + 1 + float(rng.uniform(-0.3, 0.3)))
        nodes.append(
            NodeSpec(
                f"rx{i + 1}",
                "atheros" if atheros else "esp32",
                "rx",
                _wall_point(rng, width, depth, fraction, float(rng.uniform(0.8, 1.8))),
                antennas=3 if atheros else 1,
            )
        )
    doors = tuple(
        (lambda p: (p[0], p[1]))(_wall_point(rng, width, depth, float(rng.random()), 0.0))
        for _ in range(int(rng.integers(1, 3)))
    )
    return RoomSpec(width, depth, height, tuple(nodes), doors=doors)


def random_impairments(rng: np.random.Generator) -> Impairments:
    return Impairments(
        agc_steps_per_minute=float(rng.uniform(0.0, 12.0)),
        packet_loss=float(rng.uniform(0.0, 0.05)),
        timing_jitter_us=float(rng.uniform(0.0, 400.0)),
    )


@dataclass(frozen=True)
class Episode:
    """One simulated recording: a room, who does what in it, and the radio conditions."""

    seed: int
    room: RoomSpec
    scenario: Scenario
    snr_db: float
    impairments: Impairments
    duration_s: float


def episode(split: Split, index: int, duration_s: float) -> Episode:
    """Episode ``index`` of a split; the seed alone fixes everything, so any process can rebuild it."""
    seed = (HELDOUT_SEED_BASE if split == "heldout" else TRAIN_SEED_BASE) + index
    rng = np.random.default_rng(seed)
    room = random_room(rng, split)
    scenario = Scenario.random(room, rng, max_people=MAX_PERSONS, duration_s=duration_s)
    return Episode(seed, room, scenario, float(rng.uniform(*SNR_DB)), random_impairments(rng), duration_s)


# --------------------------------------------------------------------------------------- window stream


@dataclass(frozen=True)
class LabelledWindow:
    """A model input and the truth at its end: per present person (sorted by id) keypoints and activity."""

    t_s: float
    inputs: ModelInputs
    keypoints: F64  # (n_persons, 17, 3) metres
    activities: npt.NDArray[np.int64]  # (n_persons,) index into ACTIVITIES
    person_ids: tuple[int, ...]


def prepare_frames(
    frames: Sequence[Any],
    preparers: dict[str, LinkPreparer],
    sink: Callable[[PreparedSample], None],
    settings: PrepSettings,
) -> None:
    """Push simulated frames through their links' preparers (created on a link's first frame, as the
    pipeline's ``LinkChannel`` does) and hand every prepared sample to ``sink``."""
    for frame in frames:
        preparer = preparers.get(frame.link)
        if preparer is None:
            preparer = preparers[frame.link] = LinkPreparer(settings)
        for sample in preparer.push(frame):
            sink(sample)


def empty_room_references(ep: Episode, settings: PrepSettings) -> dict[str, EmptyRoomReference]:
    """Each link's reference from ``REFERENCE_S`` of the same room (same seed: same furniture and radios)
    with nobody in it, as the live appliance learns it during calibration."""
    simulator = RoomSimulator(
        ep.room, Scenario(ep.room), seed=ep.seed, snr_db=ep.snr_db, impairments=ep.impairments
    )
    references: dict[str, EmptyRoomReference] = {}
    preparers: dict[str, LinkPreparer] = {}

    def sink(sample: PreparedSample) -> None:
        references.setdefault(sample.link, EmptyRoomReference(min_s=REFERENCE_S / 2)).update(sample)

    while simulator.t_s < REFERENCE_S - 1e-9:
        prepare_frames(simulator.advance(STRIDE_S).frames, preparers, sink, settings)
    return references


def simulated_windows(ep: Episode, settings: PrepSettings | None = None) -> Iterator[LabelledWindow]:
    """Every ``STRIDE_S`` after the first full window: the serving path's input and the scene's truth."""
    settings = settings or PrepSettings()
    references = empty_room_references(ep, settings)
    geometry = RoomGeometry.from_room_spec(ep.room)
    simulator = RoomSimulator(
        ep.room, ep.scenario, seed=ep.seed, snr_db=ep.snr_db, impairments=ep.impairments
    )
    preparers: dict[str, LinkPreparer] = {}
    buffers: dict[str, deque[PreparedSample]] = {}
    maxlen = max(1, round(BUFFER_S * settings.rate_hz))
    truths: deque[SceneTruth] = deque(maxlen=round(FALL_LABEL_S * 20) + 2)

    def sink(sample: PreparedSample) -> None:
        buffer = buffers.get(sample.link)
        if buffer is None:
            buffer = buffers[sample.link] = deque(maxlen=maxlen)
        buffer.append(sample)

    while simulator.t_s < ep.duration_s - 1e-9:
        chunk = simulator.advance(STRIDE_S)
        prepare_frames(chunk.frames, preparers, sink, settings)
        truths.extend(chunk.truth)
        end = simulator.t_s
        if end < WINDOW_S + 0.1:
            continue
        inputs = build_window(buffers, geometry, references)
        if inputs is None:
            continue
        label = simulator.truth_at(end - LABEL_DELAY_S)
        falling = {
            p.id
            for truth in truths
            if truth.t_s >= end - FALL_LABEL_S
            for p in truth.persons
            if p.activity == "falling"
        }
        persons = sorted(label.persons, key=lambda p: p.id)
        keypoints = np.array([p.keypoints for p in persons]).reshape(len(persons), N_KEYPOINTS, 3)
        activities = np.array(
            [FALLING if p.id in falling else ACTIVITIES.index(p.activity) for p in persons], dtype=np.int64
        )
        yield LabelledWindow(end, inputs, keypoints, activities, tuple(p.id for p in persons))


# ------------------------------------------------------------------------------------------ metrics

# PCK's torso length: the true pose's left shoulder to right hip distance (a torso diagonal: defined in
# every posture, unlike a vertical torso height for someone lying down).
TORSO = (KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_hip"])
HIPS = (KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])
PCK_FRACTION = 0.2
PRESENCE_THRESHOLD = 0.5
# Fall rule (see detect_falls) and how a detection is matched to a true fall.
FALL_THRESHOLD = 0.5
FALL_MIN_WINDOWS = 1
FALL_REFRACTORY_S = 10.0
FALL_MATCH_AFTER_S = 3.0
QUICK_EPISODES, QUICK_DURATION_S = 10, 40.0
FULL_EPISODES, FULL_DURATION_S = 60, 60.0
DATA_NOTICE = (
    "model trained on SIMULATED data only; evaluated on held-out SIMULATED rooms; not validated on real CSI"
)


def pelvis(keypoints: F64) -> F64:
    centre: F64 = keypoints[..., list(HIPS), :].mean(axis=-2)
    return centre


def match_persons(pred_centres: F64, true_centres: F64) -> list[tuple[int, int]]:
    """Minimum-total-distance matching of predicted to true pelvis centres (Hungarian; with at most three
    of each, exhaustive search finds the same optimum). Returns (pred, true) index pairs."""
    n_pred, n_true = pred_centres.shape[0], true_centres.shape[0]
    if not n_pred or not n_true:
        return []
    cost = np.linalg.norm(pred_centres[:, None, :] - true_centres[None, :, :], axis=-1)
    best: list[tuple[int, int]] = []
    best_cost = math.inf
    k = min(n_pred, n_true)
    for preds in itertools.permutations(range(n_pred), k):
        for trues in itertools.combinations(range(n_true), k):
            total = float(sum(cost[p, t] for p, t in zip(preds, trues, strict=True)))
            if total < best_cost:
                best_cost, best = total, list(zip(preds, trues, strict=True))
    return best


def detect_falls(
    activity_probs: F64,
    times_s: F64,
    *,
    threshold: float = FALL_THRESHOLD,
    min_windows: int = FALL_MIN_WINDOWS,
    refractory_s: float = FALL_REFRACTORY_S,
) -> list[float]:
    """Fall events from the model's activity output over time.

    ``activity_probs`` is [T, slots, 6] (``ModelOutput.activity`` of consecutive windows), ``times_s`` [T].
    A fall is declared when the highest ``falling`` probability over the slots has been at least
    ``threshold`` for ``min_windows`` consecutive windows, and at most once per ``refractory_s`` (a person
    lying after a fall keeps some ``falling`` probability for a few windows). Returns the event times.
    """
    falling = activity_probs[..., ACTIVITIES.index("falling")].max(axis=-1)
    events: list[float] = []
    run = 0
    for t, p in zip(times_s, falling, strict=True):
        run = run + 1 if p >= threshold else 0
        if run >= min_windows and (not events or t - events[-1] >= refractory_s):
            events.append(float(t))
    return events


@dataclass
class _Tally:
    """Running sums for one group of windows (all, or one true person count)."""

    windows: int = 0
    count_right: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    persons: int = 0
    activity_right: int = 0
    matched: int = 0
    hits: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    error_sum: dict[str, float] = field(default_factory=dict)
    error_n: dict[str, int] = field(default_factory=dict)

    def add_pose(self, name: str, hits: npt.NDArray[np.bool_], errors: F64 | None) -> None:
        self.hits.setdefault(name, np.zeros(N_KEYPOINTS, np.int64))
        self.hits[name] += hits
        if errors is not None:
            self.error_sum[name] = self.error_sum.get(name, 0.0) + float(errors.sum())
            self.error_n[name] = self.error_n.get(name, 0) + int(errors.size)

    def pose_metrics(self, name: str) -> dict[str, Any]:
        hits = self.hits.get(name, np.zeros(N_KEYPOINTS, np.int64))
        persons = max(1, self.persons)
        n = self.error_n.get(name, 0)
        return {
            "pck_0_2": round(float(hits.sum()) / (persons * N_KEYPOINTS), 4),
            "mpjpe_mm": round(1000 * self.error_sum.get(name, 0.0) / n, 1) if n else None,
            "per_joint_pck": {
                KEYPOINT_NAMES[j]: round(float(hits[j]) / persons, 4) for j in range(N_KEYPOINTS)
            },
        }

    def summary(self) -> dict[str, Any]:
        precision = self.tp / max(1, self.tp + self.fp)
        recall = self.tp / max(1, self.tp + self.fn)
        return {
            **self.pose_metrics("model"),
            "count_accuracy": round(self.count_right / max(1, self.windows), 4),
            "presence_f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
            "activity_accuracy": round(self.activity_right / max(1, self.matched), 4),
            "n_windows": self.windows,
        }


def _score_window(
    tallies: Sequence[_Tally],
    window: LabelledWindow,
    output: Any,
    mean_offsets: F64,
    mean_pelvis_height: float,
) -> None:
    truth = window.keypoints
    n_true = truth.shape[0]
    slots = output.present_slots(PRESENCE_THRESHOLD)
    pred = np.asarray(output.keypoints, np.float64)[slots]
    torso = np.linalg.norm(truth[:, TORSO[0]] - truth[:, TORSO[1]], axis=-1)
    true_centres = pelvis(truth)
    room = np.asarray(window.inputs.room_size_m)
    pairs = match_persons(pelvis(pred), true_centres)
    room_centre = np.array([room[0] / 2, room[1] / 2, mean_pelvis_height])
    for tally in tallies:
        tally.windows += 1
        tally.count_right += int(len(slots) == n_true)
        occupied, said = n_true > 0, len(slots) > 0
        tally.tp += int(occupied and said)
        tally.fp += int(said and not occupied)
        tally.fn += int(occupied and not said)
        tally.persons += n_true
        hits = np.zeros(N_KEYPOINTS, bool)
        for p, t in pairs:
            errors = np.linalg.norm(pred[p] - truth[t], axis=-1)
            tally.add_pose("model", errors <= PCK_FRACTION * torso[t], errors)
            tally.matched += 1
            tally.activity_right += int(
                int(np.argmax(output.activity[slots[p]])) == int(window.activities[t])
            )
        # Unmatched true persons (missed) add no hits: every one of their joints counts as wrong.
        tally.add_pose("model", hits, None)
        for t in range(n_true):
            for name, centre in (("mean_pose", room_centre), ("centred_mean_pose", true_centres[t])):
                errors = np.linalg.norm(centre + mean_offsets - truth[t], axis=-1)
                tally.add_pose(name, errors <= PCK_FRACTION * torso[t], errors)


def _evaluate_episode(args: tuple[int, float, str, int]) -> dict[str, Any]:
    """One held-out episode: tallies by person count plus the fall stream (runs in a worker process)."""
    from appliance.pose.runtime import PoseModel

    index, duration_s, model_path, seed_base = args
    model = PoseModel(Path(model_path))
    provenance = model.info()["provenance"]
    mean_offsets = np.asarray(provenance["mean_pose"]["offsets_m"], np.float64)
    mean_height = float(provenance["mean_pose"]["pelvis_height_m"])
    ep = episode("heldout", seed_base + index, duration_s)
    tallies: dict[str, _Tally] = {"all": _Tally(), "1": _Tally(), "2": _Tally(), "3": _Tally()}
    times, probs = [], []
    first_t: float | None = None
    for window in simulated_windows(ep):
        output = model.infer(window.inputs)
        group = [tallies["all"]]
        if str(len(window.person_ids)) in tallies:
            group.append(tallies[str(len(window.person_ids))])
        _score_window(group, window, output, mean_offsets, mean_height)
        times.append(window.t_s)
        probs.append(output.activity)
        first_t = window.t_s if first_t is None else first_t
    detections = detect_falls(np.asarray(probs), np.asarray(times)) if times else []
    last_t = times[-1] if times else 0.0
    true_falls = [
        s.t0
        for person in ep.scenario.people
        for s in person.segments
        if s.activity == "falling" and first_t is not None and first_t <= s.t1 and s.t0 <= last_t
    ]
    matched: set[int] = set()
    false = 0
    for t in detections:
        hit = next(
            (
                i
                for i, t0 in enumerate(true_falls)
                if i not in matched and t0 <= t <= t0 + FALL_LABEL_S + FALL_MATCH_AFTER_S
            ),
            None,
        )
        if hit is None:
            false += 1
        else:
            matched.add(hit)
    return {
        "tallies": tallies,
        "falls": len(true_falls),
        "falls_found": len(matched),
        "false_falls": false,
        "seconds": (last_t - first_t + STRIDE_S) if first_t is not None else 0.0,
    }


def evaluate(
    model_path: Path,
    *,
    episodes: int = FULL_EPISODES,
    duration_s: float = FULL_DURATION_S,
    seed: int = 0,
    workers: int = 2,
) -> dict[str, Any]:
    """Held-out episodes ``seed .. seed + episodes - 1`` through the serving path; the metrics as JSON."""
    import multiprocessing

    jobs = [(i, duration_s, str(model_path), seed) for i in range(episodes)]
    started = time.monotonic()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_evaluate_episode, jobs, chunksize=1)
    else:
        results = [_evaluate_episode(job) for job in jobs]
    merged = {key: _Tally() for key in ("all", "1", "2", "3")}
    for result in results:
        for key, tally in result["tallies"].items():
            _merge(merged[key], tally)
    falls = sum(r["falls"] for r in results)
    found = sum(r["falls_found"] for r in results)
    false = sum(r["false_falls"] for r in results)
    hours = sum(r["seconds"] for r in results) / 3600
    overall = merged["all"].summary()
    return {
        "pck_0_2": overall["pck_0_2"],
        "mpjpe_mm": overall["mpjpe_mm"],
        "per_joint_pck": overall["per_joint_pck"],
        "count_accuracy": overall["count_accuracy"],
        "presence_f1": overall["presence_f1"],
        "activity_accuracy": overall["activity_accuracy"],
        "fall_recall": round(found / falls, 4) if falls else None,
        "false_falls_per_hour": round(false / hours, 3) if hours else None,
        "by_person_count": {
            key: {
                **merged[key].summary(),
                "baselines": {b: merged[key].pose_metrics(b) for b in ("mean_pose", "centred_mean_pose")},
            }
            for key in ("1", "2", "3")
        },
        "n_windows": overall["n_windows"],
        "split": {
            "name": "heldout",
            "data": DATA_NOTICE,
            "episodes": episodes,
            "episode_seconds": duration_s,
            "seeds": f"{HELDOUT_SEED_BASE + seed}..{HELDOUT_SEED_BASE + seed + episodes - 1}",
            "rooms": f"width {HELDOUT_WIDTH_M[0]}-{HELDOUT_WIDTH_M[1]} m x depth "
            f"{HELDOUT_DEPTH_M[0]}-{HELDOUT_DEPTH_M[1]} m (a size band excluded from training)",
            "falls": falls,
            "simulated_hours": round(hours, 3),
            "model": str(model_path),
            "seconds": round(time.monotonic() - started, 1),
        },
        "baselines": {b: merged["all"].pose_metrics(b) for b in ("mean_pose", "centred_mean_pose")},
    }


def _merge(into: _Tally, other: _Tally) -> None:
    for name in ("windows", "count_right", "tp", "fp", "fn", "persons", "activity_right", "matched"):
        setattr(into, name, getattr(into, name) + getattr(other, name))
    for name, hits in other.hits.items():
        into.hits[name] = into.hits.get(name, np.zeros(N_KEYPOINTS, np.int64)) + hits
    for name, value in other.error_sum.items():
        into.error_sum[name] = into.error_sum.get(name, 0.0) + value
        into.error_n[name] = into.error_n.get(name, 0) + other.error_n[name]
