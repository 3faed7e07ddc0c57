"""The pose model's input window: per-link prepared samples, room geometry, empty-room references -> tensors.

This is the one window builder: training (``appliance.pose.training``), held-out evaluation and the live
pipeline all call ``build_window``, so the model never sees features built any other way.

Why these features generalize across rooms:

- **Change, not the room.** Each link's gain-normalized amplitude is divided by that link's *empty-room
  reference* (learnt while the motion detector calibrates, see ``EmptyRoomReference``) and the log taken.
  The static multipath of a room (walls, furniture, the link's own frequency response) is the reference;
  what is left is what people add: shadowing of the line of sight and the scatter of moving limbs.
- **In units of the link's own noise.** The log ratio, averaged into time bins, is divided by the standard
  error the empty room's noise gives such a bin (a z-score) and compressed with asinh. An empty room reads
  N(0, 1) per bin whatever its size, furniture, SNR, packet rate or chip, so "nothing changed" looks the
  same in every room; a person reads as z-scores of a few (far off, low SNR) to ~100 (on the line of sight).
- **Broadband gain too.** Gain normalization removes what a body on the line of sight mostly does: take
  2-4 dB off every subcarrier. In simulated rooms that loss is what locates a person (the spectral shape
  changes about as much wherever the person is), so each link also carries its mean log gain ratio to the
  empty room (``GAIN_LOG_LIMIT``) as a 53rd feature. AGC steps add +-1 dB to it now and then.
- **One number per link and subcarrier.** Atheros links report 6 antenna pairs, ESP32 links 1. The model's
  per-link features are the *mean over antenna pairs* of the log ratio, so both kinds fill the same
  ``[steps, 52]`` block (averaging pairs lowers an Atheros link's noise, and the z-score accounts for it);
  a flag in the geometry says which kind a link is.
- **Geometry normalized by room size.** Each link's transmitter and receiver positions are divided by the
  room's width, depth and height; the room's size is a separate input. Positions the model outputs are
  fractions of the room too (see ``appliance.pose.runtime``), so one model serves a 3 m and an 8 m room.
- **Canonical link order and a mask.** Links are ordered by their receiver's then their transmitter's
  bearing from the room's centre, counter-clockwise from the middle of the y = 0 wall, so "link 0" is always
  the one nearest that wall's middle going round. At most ``MAX_LINKS`` links are used (the first in that
  order); unused slots are zeros with mask 0.
- **Where each link can see.** ``link_maps`` turns the geometry into, per link, a weight for each cell of
  an 8 x 8 grid over the floor: high near the link's line of sight, falling with the excess path length of
  a bounce in that cell (the ellipses of radio tomographic imaging). The model combines its per-link
  evidence through these maps, so "which links changed" becomes "where", with the same weights in any
  room and layout. The maps are computed from the geometry input (not stored in windows) and fed to the
  model as a third input.
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
# Per link and step: the 52 subcarriers' shape features, then the broadband gain feature.
LINK_FEATURES = N_SUBCARRIERS + 1
# The gain feature is the log ratio of the link's RMS amplitude to the empty room's over this, clipped to
# -1..1 (+-5 dB): a body on the line of sight takes 2-4 dB; AGC steps add +-1 dB now and then.
GAIN_LOG_LIMIT = 0.6
WINDOW_S = 2.0
N_STEPS = 40  # 20 Hz: a fall (0.8 s) spans 16 steps, a walking stride (~1 s) 20
# Per link: tx (x, y, z) and rx (x, y, z) as fractions of the room, is-Atheros, mask.
LINK_GEOMETRY_FEATURES = 8
# Room width and depth over ROOM_SCALE_M, height over HEIGHT_SCALE_M: inputs near 0..1 quantize well.
ROOM_SCALE_M = 10.0
HEIGHT_SCALE_M = 4.0
N_GEOMETRY = MAX_LINKS * LINK_GEOMETRY_FEATURES + 3
# Features are z-scores, compressed: a bin's mean log ratio over the standard error the empty room's noise
# gives a bin of that many samples, then asinh(z) / ASINH_SCALE. z makes an empty room read N(0, 1) per
# bin whatever the SNR, packet rate or chip; asinh keeps the int8 input fine near zero (a person at low
# SNR, z of a few) and still unsaturated at z ~ 100 (a person on the line of sight at high SNR).
ASINH_SCALE = 6.0
# Amplitudes below this (normalized units, RMS = 1) are deep fades: floor them before the log.
AMPLITUDE_FLOOR = 1e-2
# Smallest per-sample log-amplitude noise a reference reports (a clean simulated channel has none).
NOISE_FLOOR = 1e-3
# The reference is usable after this many seconds of valid samples (the motion detector calibrates 10 s).
REFERENCE_MIN_S = 3.0

# Bump when a window's content changes: training caches carry it in their names.
FEATURES_VERSION = 3
# Link maps: the floor as MAP_SIDE x MAP_SIDE cells (room fractions); a cell's weight for a link falls off
# with the excess path length of a bounce there over the line of sight, on this scale (metres): roughly
# the first Fresnel zone's width at 2.4 GHz for a few-metre link, where a body changes the link most.
MAP_SIDE = 8
MAP_CELLS = MAP_SIDE * MAP_SIDE
MAP_EXCESS_M = 0.25

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
    features average to exactly zero. It also keeps the spread over time, the link's noise, which scales
    the features to z-scores. A change of antenna layout (different pair count) restarts it.
    """

    def __init__(self, min_s: float = REFERENCE_MIN_S) -> None:
        self.min_s = min_s
        self._sum: F64 | None = None
        self._sum_sq: F64 | None = None
        self._gain_sum: F64 | None = None
        self._count = 0
        self._first_t: float | None = None
        self._last_t: float | None = None

    def update(self, sample: PreparedSample) -> None:
        if not sample.valid:
            return
        logs = np.log(np.maximum(sample.amplitude, AMPLITUDE_FLOOR)).astype(np.float64)
        if self._sum is None or self._sum_sq is None or self._sum.shape != logs.shape:
            self.reset()
            self._sum = np.zeros_like(logs)
            self._sum_sq = np.zeros_like(logs)
            self._gain_sum = np.zeros(logs.shape[0])
            self._first_t = sample.t_s
        self._sum += logs
        self._sum_sq += logs * logs
        assert self._gain_sum is not None
        self._gain_sum += np.log(np.maximum(sample.gain, AMPLITUDE_FLOOR))
        self._count += 1
        self._last_t = sample.t_s

    def reset(self) -> None:
        self._sum = self._sum_sq = self._gain_sum = None
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

    @property
    def log_gain(self) -> F32:
        """``[n_pairs]`` mean log RMS amplitude (chip counts) of each antenna pair in the empty room."""
        if self._gain_sum is None or not self.ready:
            raise RuntimeError("the empty-room reference has not seen enough samples yet")
        gain: F32 = (self._gain_sum / self._count).astype(np.float32)
        return gain

    @property
    def noise(self) -> float:
        """The link's per-sample noise in log amplitude: the median over pairs and subcarriers of the
        standard deviation over time in the empty room (floored so a noiseless channel stays finite)."""
        if self._sum is None or self._sum_sq is None or not self.ready:
            raise RuntimeError("the empty-room reference has not seen enough samples yet")
        mean = self._sum / self._count
        variance = np.maximum(self._sum_sq / self._count - mean * mean, 0.0)
        return max(float(np.median(np.sqrt(variance))), NOISE_FLOOR)


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """One window, ready for ``PoseModel.infer``: float tensors without the batch axis.

    ``csi`` is ``[N_STEPS, MAX_LINKS * 53]`` (link-major: columns ``53 i .. 53 i + 51`` are link ``i``'s
    subcarriers, column ``53 i + 52`` its gain),
    ``geometry`` is ``[N_GEOMETRY]``; ``links`` names the links in slot order and ``room_size_m`` is
    (width, depth, height), which turns the model's room-fraction outputs back into metres.
    """

    csi: F32
    geometry: F32
    links: tuple[str, ...]
    room_size_m: tuple[float, float, float]


def link_window(samples: Sequence[PreparedSample], reference: F32, noise: float, log_gain: F32) -> F32 | None:
    """``[N_STEPS, LINK_FEATURES]`` features for the window before the newest sample: per bin, the mean over
    samples and pairs of the log ratio to ``reference``, as a z-score against ``noise`` (per-sample) and
    compressed (see ``ASINH_SCALE``); then the mean log gain ratio to ``log_gain`` over ``GAIN_LOG_LIMIT``.

    None when the window holds no valid sample of the reference's pair count.
    """
    if not samples:
        return None
    end = samples[-1].t_s
    start = end - WINDOW_S
    # Select the window's usable samples in one pass, then do the arithmetic on stacked arrays: a
    # per-sample loop of small numpy calls cost more than the model itself at 10 windows a second.
    window: list[PreparedSample] = []
    for sample in reversed(samples):
        if sample.t_s <= start:
            break
        if sample.valid and sample.amplitude.shape == reference.shape:
            window.append(sample)
    sums = np.zeros((N_STEPS, N_SUBCARRIERS), np.float64)
    gains = np.zeros(N_STEPS, np.float64)
    counts = np.zeros(N_STEPS, np.int64)
    if window:
        times = np.fromiter((w.t_s for w in window), np.float64, len(window))
        steps = np.minimum(N_STEPS - 1, ((times - start) / WINDOW_S * N_STEPS).astype(np.int64))
        amplitudes = np.stack([w.amplitude for w in window])
        logs = np.log(np.maximum(amplitudes, AMPLITUDE_FLOOR)) - reference
        log_gains = np.log(np.maximum(np.stack([w.gain for w in window]), AMPLITUDE_FLOOR)) - log_gain
        np.add.at(sums, steps, logs.mean(axis=1))
        np.add.at(gains, steps, log_gains.mean(axis=1))
        np.add.at(counts, steps, 1)
    filled = np.flatnonzero(counts)
    if filled.size == 0:
        return None
    # Each empty bin takes the nearest earlier filled bin; leading empty bins take the first filled one.
    source = np.maximum.accumulate(np.where(counts > 0, np.arange(N_STEPS), -1))
    source[source < 0] = filled[0]
    n = counts[source][:, None]
    # Averaging n samples and P pairs shrinks the noise by sqrt(n P) (pairs' noise is independent).
    pairs = reference.shape[0]
    z = sums[source] / n / (noise / np.sqrt(n * pairs))
    gain = np.clip(gains[source] / counts[source] / GAIN_LOG_LIMIT, -1.0, 1.0)
    features: F32 = np.concatenate([np.arcsinh(z) / ASINH_SCALE, gain[:, None]], axis=1).astype(np.float32)
    return features


def build_window(
    samples: Mapping[str, Sequence[PreparedSample]],
    geometry: RoomGeometry,
    references: Mapping[str, EmptyRoomReference],
) -> ModelInputs | None:
    """The model's inputs from each link's recent prepared samples (oldest first, e.g. the pipeline's ring
    buffer). Links without geometry, without a ready reference or without valid samples in the window are
    left out; None when no link is left."""
    usable = [link for link in samples if link in references and references[link].ready]
    csi = np.zeros((N_STEPS, MAX_LINKS * LINK_FEATURES), np.float32)
    geo = np.zeros(N_GEOMETRY, np.float32)
    size = geometry.size
    used: list[str] = []
    for link in geometry.canonical_order(usable):
        reference = references[link]
        window = link_window(samples[link], reference.log_profile, reference.noise, reference.log_gain)
        if window is None:
            continue
        slot = len(used)
        used.append(link)
        csi[:, slot * LINK_FEATURES : (slot + 1) * LINK_FEATURES] = window
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


def link_maps(geometry: npt.ArrayLike) -> F32:
    """``[..., MAX_LINKS, MAP_CELLS]`` floor weights of each link from ``[..., N_GEOMETRY]`` geometry inputs
    (batched or not): exp(-excess path / ``MAP_EXCESS_M``) in the horizontal plane, 0 for masked slots."""
    geo = np.asarray(geometry, np.float64)
    size = geo[..., -3:-1] * ROOM_SCALE_M  # width, depth in metres
    links = geo[..., : MAX_LINKS * LINK_GEOMETRY_FEATURES].reshape(*geo.shape[:-1], MAX_LINKS, -1)
    tx = links[..., 0:2] * size[..., None, :]
    rx = links[..., 3:5] * size[..., None, :]
    cells = (
        np.stack(np.meshgrid(np.arange(MAP_SIDE), np.arange(MAP_SIDE), indexing="xy"), -1) + 0.5
    ) / MAP_SIDE
    points = cells.reshape(MAP_CELLS, 2) * size[..., None, :]  # [..., cells, 2]
    to_tx = np.linalg.norm(points[..., None, :, :] - tx[..., :, None, :], axis=-1)
    to_rx = np.linalg.norm(points[..., None, :, :] - rx[..., :, None, :], axis=-1)
    direct = np.linalg.norm(tx - rx, axis=-1)[..., None]
    weights = np.exp(-(to_tx + to_rx - direct) / MAP_EXCESS_M) * links[..., 7:8]
    maps: F32 = weights.astype(np.float32)
    return maps
