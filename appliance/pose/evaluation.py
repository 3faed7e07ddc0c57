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

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from appliance.coco import ACTIVITIES, KEYPOINT_INDEX, KEYPOINT_NAMES, N_KEYPOINTS
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
        HELDOUT_WIDTH_M[0] <= width <= HELDOUT_WIDTH_M[1] and HELDOUT_DEPTH_M[0] <= depth <= HELDOUT_DEPTH_M[1]
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
    return Episode(
        seed, room, scenario, float(rng.uniform(*SNR_DB)), random_impairments(rng), duration_s
    )


# --------------------------------------------------------------------------------------- window stream


@dataclass(frozen=True)
class LabelledWindow:
    """A model input and the truth at its end: per present person (sorted by id) keypoints and activity."""

    t_s: float
    inputs: ModelInputs
    keypoints: F64  # (n_persons, 17, 3) metres
    activities: npt.NDArray[np.int64]  # (n_persons,) index into ACTIVITIES
    person_ids: tuple[int, ...]


def _feed(
    frames: Sequence[Any],
    preparers: dict[str, LinkPreparer],
    sink: Callable[[PreparedSample], None],
    settings: PrepSettings,
) -> None:
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
        _feed(simulator.advance(STRIDE_S).frames, preparers, sink, settings)
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
        _feed(chunk.frames, preparers, sink, settings)
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
