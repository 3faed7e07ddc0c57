"""Simulated episodes for fitting and evaluating the sensing estimators, and the stream of their ticks.

Every episode runs the serving path: ``RoomSimulator`` frames (every realism switch on) ->
``LinkPreparer`` per link -> ``RoomCueExtractor`` -> one ``RoomCues`` per tick, beside the simulation's
truth. Evaluation feeds the same ticks to ``RoomSensing``; fitting stores them (``collect``).

**Splits.** Held-out episodes (``split="heldout"``) use seeds from ``HELDOUT_SEED_BASE`` and rooms with
width in ``HELDOUT_WIDTH_M`` and depth in ``HELDOUT_DEPTH_M``; training episodes use seeds from
``TRAIN_SEED_BASE`` and reject every room whose width and depth both fall in those bands. So no held-out
room, layout, body, motion or noise, and no held-out room size, was ever seen by anything fitted.

**Kinds.** ``moving``: 1-3 people walk, stand, sit, lie, wave and fall (``Scenario.random``). ``still``:
one person comes in, walks to a random spot and sits or lies still there for the rest of the episode.
``empty``: nobody, while the room drifts. Each starts with ``CALIBRATION_S`` of empty room, which the
estimators calibrate on, as the appliance does after it starts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES, KEYPOINT_INDEX
from appliance.csi.prep import LinkPreparer, PrepSettings
from appliance.csi.simulator import Body, Impairments, RoomSimulator, RoomSpec, Scenario
from appliance.csi.simulator.room import SETUPS, setup_nodes, wall_point
from appliance.csi.simulator.simulator import SceneTruth
from appliance.pose.sensing.cues import N_CUE_FEATURES, RoomCueExtractor, RoomCues

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Split = Literal["train", "heldout"]
Kind = Literal["moving", "still", "empty"]

TRAIN_SEED_BASE = 2_000_000
HELDOUT_SEED_BASE = 9_000_000
HELDOUT_WIDTH_M = (4.4, 5.6)
HELDOUT_DEPTH_M = (3.4, 4.6)
ROOM_SIDE_M = (3.0, 8.0)
ROOM_HEIGHT_M = (2.4, 3.0)
SNR_DB = (20.0, 35.0)
CALIBRATION_S = 10.0
TICK_S = 0.1
MAX_PERSONS = 3
MAX_CHAINS = 3
# A tick is labelled "falling" for a person who was falling at any moment in its last FALL_LABEL_S.
FALL_LABEL_S = 1.0
# The truth is taken this long before a tick: the Hampel filter delays samples by 5 packets.
LABEL_DELAY_S = 0.05
WALL_CLEARANCE_M = 0.5
HIPS = (KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])
FALLING = ACTIVITIES.index("falling")


def _in_heldout_band(width: float, depth: float) -> bool:
    return (
        HELDOUT_WIDTH_M[0] <= width <= HELDOUT_WIDTH_M[1]
        and HELDOUT_DEPTH_M[0] <= depth <= HELDOUT_DEPTH_M[1]
    )


@dataclass(frozen=True)
class Episode:
    """One simulated recording: a room with a setup's nodes, who does what in it, and the radio."""

    seed: int
    setup: str
    kind: Kind
    room: RoomSpec
    scenario: Scenario
    snr_db: float
    duration_s: float


def episode(split: Split, setup: str, kind: Kind, index: int, duration_s: float) -> Episode:
    """Episode ``index`` of a split; the arguments alone fix everything, so any process can rebuild it."""
    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; known: {', '.join(SETUPS)}")
    base = HELDOUT_SEED_BASE if split == "heldout" else TRAIN_SEED_BASE
    kinds: tuple[Kind, ...] = ("moving", "still", "empty")
    seed = base + 100_000 * (sorted(SETUPS).index(setup) * len(kinds) + kinds.index(kind)) + index
    rng = np.random.default_rng(seed)
    while True:
        if split == "heldout":
            width, depth = float(rng.uniform(*HELDOUT_WIDTH_M)), float(rng.uniform(*HELDOUT_DEPTH_M))
        else:
            width, depth = (float(v) for v in rng.uniform(*ROOM_SIDE_M, size=2))
        if split == "heldout" or not _in_heldout_band(width, depth):
            break
    height = float(rng.uniform(*ROOM_HEIGHT_M))
    nodes = setup_nodes(setup, width, depth, height, rng)
    doors = tuple(
        wall_point(width, depth, float(rng.random()), 0.0)[:2] for _ in range(int(rng.integers(1, 3)))
    )
    room = RoomSpec(width, depth, height, nodes, doors=doors)
    if kind == "moving":
        scenario = Scenario.random(
            room, rng, max_people=MAX_PERSONS, duration_s=duration_s, empty_lead_s=CALIBRATION_S
        )
    elif kind == "still":
        scenario = Scenario(room)
        person = scenario.person(Body.random(rng))
        person.away(CALIBRATION_S + float(rng.uniform(0.0, 5.0))).enter(int(rng.integers(len(doors))))
        person.walk_to(
            float(rng.uniform(WALL_CLEARANCE_M, width - WALL_CLEARANCE_M)),
            float(rng.uniform(WALL_CLEARANCE_M, depth - WALL_CLEARANCE_M)),
        )
        rest = duration_s - person.duration_s
        if rng.random() < 0.6:
            person.sit(rest, float(rng.uniform(0.4, 0.5)))
        else:
            person.lie_down(rest, float(rng.choice([0.0, 0.45, 0.55])))
    else:
        scenario = Scenario(room)
    return Episode(seed, setup, kind, room, scenario, float(rng.uniform(*SNR_DB)), duration_s)


@dataclass(frozen=True)
class PersonState:
    """One person at a tick: floor position of the pelvis, its velocity, the activity label, keypoints."""

    id: int
    position: F64  # (2,)
    velocity: F64  # (2,)
    activity: int  # index into ACTIVITIES
    height_m: float  # of the pelvis above the floor
    keypoints: F64  # (17, 3)


@dataclass(frozen=True)
class Tick:
    """The serving path's cues at ``t_s`` and the truth just before."""

    t_s: float
    cues: RoomCues
    persons: tuple[PersonState, ...]


def _pelvis(truth: SceneTruth) -> dict[int, F64]:
    return {p.id: p.keypoints[list(HIPS)].mean(axis=0) for p in truth.persons}


def ticks(
    ep: Episode,
    extractor: RoomCueExtractor | None = None,
    settings: PrepSettings | None = None,
    impairments: Impairments | None = None,
) -> Iterator[Tick]:
    """Every ``TICK_S`` of the episode after calibration: the room's cues and the truth.

    ``extractor`` may be the one a ``RoomSensing`` owns, so that its reference adaptation takes part.
    ``impairments`` default to every realism switch on; others are for measuring what each one costs.
    """
    settings = settings or PrepSettings()
    n_rx = {f"{tx.id}-{rx.id}": rx.antennas for tx, rx in ep.room.links}
    extractor = extractor or RoomCueExtractor(settings.rate_hz, CALIBRATION_S, n_rx)
    simulator = RoomSimulator(
        ep.room, ep.scenario, seed=ep.seed, snr_db=ep.snr_db, impairments=impairments or Impairments()
    )
    preparers: dict[str, LinkPreparer] = {}
    falling_until: dict[int, float] = {}
    while simulator.t_s < ep.duration_s - 1e-9:
        chunk = simulator.advance(TICK_S)
        for frame in chunk.frames:
            preparer = preparers.get(frame.link)
            if preparer is None:
                preparer = preparers[frame.link] = LinkPreparer(settings)
            for sample in preparer.push(frame):
                extractor.push(sample)
        for truth in chunk.truth:
            for person in truth.persons:
                if person.activity == "falling":
                    falling_until[person.id] = truth.t_s + FALL_LABEL_S
        t = simulator.t_s
        label = simulator.truth_at(t - LABEL_DELAY_S)
        before = simulator.truth_at(t - LABEL_DELAY_S - TICK_S)
        now, then = _pelvis(label), _pelvis(before)
        persons = tuple(
            PersonState(
                p.id,
                now[p.id][:2],
                (now[p.id][:2] - then[p.id][:2]) / TICK_S if p.id in then else np.zeros(2),
                FALLING if falling_until.get(p.id, -math.inf) >= t else ACTIVITIES.index(p.activity),
                float(now[p.id][2]),
                p.keypoints,
            )
            for p in sorted(label.persons, key=lambda p: p.id)
        )
        if t < CALIBRATION_S + 1.0 - 1e-9:
            continue
        yield Tick(t, extractor.room(t), persons)


@dataclass(frozen=True)
class EpisodeData:
    """An episode's ticks as arrays, for fitting: ``cues`` [T, L, N_CUE_FEATURES] (NaN: link not ready),
    link ends [L, 2] each, and per tick up to ``MAX_PERSONS`` people (NaN-padded, ``count`` of them)."""

    seed: int
    setup: str
    kind: str
    room_size: F64  # (3,)
    links: tuple[str, ...]
    tx: F64
    rx: F64
    times: F64
    cues: F32
    count: npt.NDArray[np.int64]
    positions: F64  # (T, MAX_PERSONS, 2)
    velocities: F64
    activities: npt.NDArray[np.int64]  # (T, MAX_PERSONS), -1 where nobody
    heights: F64  # (T, MAX_PERSONS)
    # Multi-antenna links: covariance across receive chains of the moving residual [T, L, R, R] and of
    # the empty room's channel [L, R, R] (R = MAX_CHAINS; zeros for single-antenna links).
    covariances: npt.NDArray[np.complex64]
    static_covariances: npt.NDArray[np.complex64]


def collect(ep: Episode, impairments: Impairments | None = None) -> EpisodeData:
    """Run an episode and keep its ticks as arrays (``impairments``: see ``ticks``)."""
    links = tuple(ep.room.link_ids)
    column = {link: i for i, link in enumerate(links)}
    rows = list(ticks(ep, impairments=impairments))
    t = len(rows)
    cues = np.full((t, len(links), N_CUE_FEATURES), np.nan, np.float32)
    positions = np.full((t, MAX_PERSONS, 2), np.nan)
    velocities = np.full((t, MAX_PERSONS, 2), np.nan)
    activities = np.full((t, MAX_PERSONS), -1, np.int64)
    heights = np.full((t, MAX_PERSONS), np.nan)
    covariances = np.zeros((t, len(links), MAX_CHAINS, MAX_CHAINS), np.complex64)
    static_covariances = np.zeros((len(links), MAX_CHAINS, MAX_CHAINS), np.complex64)
    for i, tick in enumerate(rows):
        for link, vector, link_cues in zip(tick.cues.links, tick.cues.vectors, tick.cues.cues, strict=True):
            cues[i, column[link]] = vector
            if link_cues.covariance is not None and link_cues.static_covariance is not None:
                r = link_cues.covariance.shape[0]
                covariances[i, column[link], :r, :r] = link_cues.covariance
                static_covariances[column[link], :r, :r] = link_cues.static_covariance
        for j, person in enumerate(tick.persons[:MAX_PERSONS]):
            positions[i, j], velocities[i, j] = person.position, person.velocity
            activities[i, j], heights[i, j] = person.activity, person.height_m
    return EpisodeData(
        seed=ep.seed,
        setup=ep.setup,
        kind=ep.kind,
        room_size=np.array([ep.room.width_m, ep.room.depth_m, ep.room.height_m]),
        links=links,
        tx=np.array([tx.position[:2] for tx, _ in ep.room.links]),
        rx=np.array([rx.position[:2] for _, rx in ep.room.links]),
        times=np.array([r.t_s for r in rows]),
        cues=cues,
        count=np.array([min(len(r.persons), MAX_PERSONS) for r in rows], np.int64),
        positions=positions,
        velocities=velocities,
        activities=activities,
        heights=heights,
        covariances=covariances,
        static_covariances=static_covariances,
    )
