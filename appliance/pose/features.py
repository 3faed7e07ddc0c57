"""The pose model's input window: per-link prepared samples, room geometry, empty-room references -> tensors.

This is the one window builder: training (``appliance.pose.training``), held-out evaluation and the live
pipeline all call ``build_window``, so the model never sees features built any other way.

Why these features generalize across rooms:

- **Change, not the room.** Each link's gain-normalized amplitude is divided by that link's *empty-room
  reference* (learnt while the motion detector calibrates, see ``EmptyRoomReference``) and the log taken.
  The static multipath of a room (walls, furniture, the link's own frequency response) is the reference;
  what is left is what people add: shadowing of the line of sight and the scatter of moving limbs. An empty
  room reads close to zero whatever its size or furniture.
- **One number per link and subcarrier.** Atheros links report 6 antenna pairs, ESP32 links 1. The model's
  per-link features are the *mean over antenna pairs* of the log ratio, so both kinds fill the same
  ``[steps, 52]`` block (averaging pairs also lowers an Atheros link's noise); a flag in the geometry says
  which kind a link is.
- **Geometry normalized by room size.** Each link's transmitter and receiver positions are divided by the
  room's width, depth and height; the room's size is a separate input. Positions the model outputs are
  fractions of the room too (see ``appliance.pose.runtime``), so one model serves a 3 m and an 8 m room.
- **Canonical link order and a mask.** Links are ordered by their receiver's then their transmitter's
  bearing from the room's centre, counter-clockwise from the middle of the y = 0 wall, so "link 0" is always
  the one nearest that wall's middle going round. At most ``MAX_LINKS`` links are used (the first in that
  order); unused slots are zeros with mask 0.
- **Each link on its own clock.** Nodes do not share a clock, so each link's window is the last
  ``WINDOW_S`` seconds before *its own* newest sample, averaged into ``N_STEPS`` bins (rate-independent:
  100 Hz ESP32 and 400 Hz Atheros give the same shape). Bins without a valid sample repeat the nearest
  earlier bin (the first filled bin before that); a link with no valid sample in the window is masked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from appliance.csi.prep import CANONICAL_SUBCARRIERS, PreparedSample
from appliance.csi.simulator.room import RoomSpec

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

MAX_LINKS = 6
N_SUBCARRIERS = int(CANONICAL_SUBCARRIERS.size)
WINDOW_S = 2.0
N_STEPS = 40  # 20 Hz: a fall (0.8 s) spans 16 steps, a walking stride (~1 s) 20
# Per link: tx (x, y, z) and rx (x, y, z) as fractions of the room, is-Atheros, mask.
LINK_GEOMETRY_FEATURES = 8
# Room width and depth over ROOM_SCALE_M, height over HEIGHT_SCALE_M: inputs near 0..1 quantize well.
ROOM_SCALE_M = 10.0
HEIGHT_SCALE_M = 4.0
N_GEOMETRY = MAX_LINKS * LINK_GEOMETRY_FEATURES + 3
# Features are the log ratio divided by this and clipped to -1..1. In simulated rooms a person moves a
# link's pair-averaged log amplitude by at most ~0.25 (about 2 dB); an empty room's noise is ~0.005. The
# int8 input then resolves ~0.003 in log units, below the empty-room noise.
LOG_RATIO_LIMIT = 0.4
# Amplitudes below this (normalized units, RMS = 1) are deep fades: floor them before the log.
AMPLITUDE_FLOOR = 1e-2
# The reference is usable after this many seconds of valid samples (the motion detector calibrates 10 s).
REFERENCE_MIN_S = 3.0

NodeKind = Literal["esp32", "atheros"]


@dataclass(frozen=True, slots=True)
class LinkGeometry:
    """Where a link's transmitter and receiver are (metres, room coordinates) and which chip receives."""

    tx: tuple[float, float, float]
    rx: tuple[float, float, float]
    kind: NodeKind = "esp32"


@dataclass(frozen=True, slots=True)
class RoomGeometry:
    """The room box (x width, y depth, z up, origin at a floor corner) and its links by link id."""

    width_m: float
    depth_m: float
    height_m: float
    links: Mapping[str, LinkGeometry]

    @classmethod
    def from_room_spec(cls, room: RoomSpec) -> RoomGeometry:
        """Every tx -> rx link of a ``RoomSpec``, ids as the simulator and the config name them (tx-rx)."""
        links = {
            f"{tx.id}-{rx.id}": LinkGeometry(tx.position, rx.position, rx.kind)
            for tx in room.transmitters
            for rx in room.receivers
        }
        return cls(room.width_m, room.depth_m, room.height_m, links)

    @property
    def size(self) -> F64:
        return np.array([self.width_m, self.depth_m, self.height_m])

    def bearing(self, point: tuple[float, float, float]) -> float:
        """Counter-clockwise angle (0..2 pi) of a point seen from the room's centre, 0 at the y = 0 wall."""
        angle = math.atan2(point[1] - self.depth_m / 2, point[0] - self.width_m / 2) + math.pi / 2
        return angle % (2 * math.pi)

    def canonical_order(self, link_ids: Sequence[str]) -> list[str]:
        """The links the model uses, in its order (see the module docstring); unknown ids are skipped."""
        known = [link for link in link_ids if link in self.links]
        known.sort(key=lambda k: (self.bearing(self.links[k].rx), self.bearing(self.links[k].tx), k))
        return known[:MAX_LINKS]


class EmptyRoomReference:
    """One link's empty-room amplitude profile: the mean log amplitude per antenna pair and subcarrier.

    Feed it the link's prepared samples while the room is known to be empty (the live pipeline does so
    during the motion detector's calibration; training uses an empty stretch of the same simulated room).
    A log mean rather than a plain mean, because the features are log ratios: it makes an empty room's
    features average to exactly zero. A change of antenna layout (different pair count) restarts it.
    """

    def __init__(self, min_s: float = REFERENCE_MIN_S) -> None:
        self.min_s = min_s
        self._sum: F64 | None = None
        self._count = 0
        self._first_t: float | None = None
        self._last_t: float | None = None

    def update(self, sample: PreparedSample) -> None:
        if not sample.valid:
            return
        logs = np.log(np.maximum(sample.amplitude, AMPLITUDE_FLOOR)).astype(np.float64)
        if self._sum is None or self._sum.shape != logs.shape:
            self.reset()
            self._sum = np.zeros_like(logs)
            self._first_t = sample.t_s
        self._sum += logs
        self._count += 1
        self._last_t = sample.t_s

    def reset(self) -> None:
        self._sum = None
        self._count = 0
        self._first_t = self._last_t = None

    @property
    def seconds(self) -> float:
        if self._first_t is None or self._last_t is None:
            return 0.0
        return self._last_t - self._first_t

    @property
    def ready(self) -> bool:
        return self._sum is not None and self.seconds >= self.min_s

    @property
    def log_profile(self) -> F32:
        """``[n_pairs, 52]`` mean log amplitude; raises until ``ready``."""
        if self._sum is None or not self.ready:
            raise RuntimeError("the empty-room reference has not seen enough samples yet")
        profile: F32 = (self._sum / self._count).astype(np.float32)
        return profile


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """One window, ready for ``PoseModel.infer``: float tensors without the batch axis.

    ``csi`` is ``[N_STEPS, MAX_LINKS * 52]`` (link-major: columns ``52 i .. 52 i + 51`` are link ``i``),
    ``geometry`` is ``[N_GEOMETRY]``; ``links`` names the links in slot order and ``room_size_m`` is
    (width, depth, height), which turns the model's room-fraction outputs back into metres.
    """

    csi: F32
    geometry: F32
    links: tuple[str, ...]
    room_size_m: tuple[float, float, float]


def link_window(samples: Sequence[PreparedSample], reference: F32) -> F32 | None:
    """``[N_STEPS, 52]`` mean-over-pairs log ratio to the reference for the window before the newest sample,
    over ``LOG_RATIO_LIMIT`` and clipped to -1..1.

    None when the window holds no valid sample of the reference's pair count.
    """
    if not samples:
        return None
    end = samples[-1].t_s
    start = end - WINDOW_S
    sums = np.zeros((N_STEPS, N_SUBCARRIERS), np.float64)
    counts = np.zeros(N_STEPS, np.int64)
    for sample in reversed(samples):
        if sample.t_s <= start:
            break
        if not sample.valid or sample.amplitude.shape != reference.shape:
            continue
        step = min(N_STEPS - 1, int((sample.t_s - start) / WINDOW_S * N_STEPS))
        logs = np.log(np.maximum(sample.amplitude, AMPLITUDE_FLOOR)) - reference
        sums[step] += logs.mean(axis=0)
        counts[step] += 1
    filled = np.flatnonzero(counts)
    if filled.size == 0:
        return None
    # Each empty bin takes the nearest earlier filled bin; leading empty bins take the first filled one.
    source = np.maximum.accumulate(np.where(counts > 0, np.arange(N_STEPS), -1))
    source[source < 0] = filled[0]
    window = sums[source] / counts[source][:, None]
    clipped: F32 = np.clip(window / LOG_RATIO_LIMIT, -1.0, 1.0).astype(np.float32)
    return clipped


def build_window(
    samples: Mapping[str, Sequence[PreparedSample]],
    geometry: RoomGeometry,
    references: Mapping[str, EmptyRoomReference],
) -> ModelInputs | None:
    """The model's inputs from each link's recent prepared samples (oldest first, e.g. the pipeline's ring
    buffer). Links without geometry, without a ready reference or without valid samples in the window are
    left out; None when no link is left."""
    usable = [link for link in samples if link in references and references[link].ready]
    csi = np.zeros((N_STEPS, MAX_LINKS * N_SUBCARRIERS), np.float32)
    geo = np.zeros(N_GEOMETRY, np.float32)
    size = geometry.size
    used: list[str] = []
    for link in geometry.canonical_order(usable):
        window = link_window(samples[link], references[link].log_profile)
        if window is None:
            continue
        slot = len(used)
        used.append(link)
        csi[:, slot * N_SUBCARRIERS : (slot + 1) * N_SUBCARRIERS] = window
        spec = geometry.links[link]
        row = slot * LINK_GEOMETRY_FEATURES
        geo[row : row + 3] = np.asarray(spec.tx) / size
        geo[row + 3 : row + 6] = np.asarray(spec.rx) / size
        geo[row + 6] = float(spec.kind == "atheros")
        geo[row + 7] = 1.0
    if not used:
        return None
    geo[-3:] = (
        geometry.width_m / ROOM_SCALE_M,
        geometry.depth_m / ROOM_SCALE_M,
        geometry.height_m / HEIGHT_SCALE_M,
    )
    return ModelInputs(csi, geo, tuple(used), (geometry.width_m, geometry.depth_m, geometry.height_m))
