"""The canonical subcarrier grid, per-packet gain normalization and phase sanitization.

``CANONICAL_SUBCARRIERS`` is the 52 tones -26..-1, 1..26 (802.11a/g/n 20 MHz data and pilot tones). It is
the set every supported chip measures: an ESP32's LLTF (the block most firmware enables, and the only one
the C5/C6 106-byte layout and esp-radar's filtered LLTF carry) has nothing at +-27, +-28; the Atheros
56-tone HT20 report and the Intel 5300's 30 groups span -28..28 and cover it. Choosing the 56 HT20 tones
instead would invent +-27, +-28 for every LLTF-only ESP32 link by extrapolation, and a model fed
``n_links x n_antenna_pairs x 52`` features would learn from invented columns. What each chip lacks inside
the grid is bridged by interpolation between measured neighbours: the classic ESP32's subcarrier 1 (its
first buffer word is garbage), the Intel 5300's odd/even tones between groups, DC-adjacent holes.

Columns outside +-28 are never used: they are HT20 guard tones, and classic ESP32s report small non-zero
garbage there (about a quarter of the in-band level at -29 in the ESPectre captures). A 40 MHz frame
contributes its central tones, a 16 MHz slice around the 40 MHz centre rather than the primary channel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
C64 = npt.NDArray[np.complex64]
Indices = npt.NDArray[np.int16]

CANONICAL_HALF_WIDTH = 26
CANONICAL_SUBCARRIERS: Indices = np.concatenate(
    [np.arange(-CANONICAL_HALF_WIDTH, 0), np.arange(1, CANONICAL_HALF_WIDTH + 1)]
).astype(np.int16)
# HT20's outermost data tone; beyond it lie guard tones, whose reported values are not channel estimates.
OUTERMOST_DATA_TONE = 28
# Interpolation bridges at most this many missing tones between measured ones (DC is not a tone: the
# classic ESP32 misses 1, ath9k's 114-tone HT40 report misses +-1 around its centre); a frame with wider
# holes, or whose outermost measured tone lies further inside the grid's edge than MAX_EDGE_HOLD, is
# unusable rather than filled with invented values.
MAX_MISSING_TONES = 3
MAX_EDGE_HOLD = 2
TWO_PI = 2 * np.pi

_GRID_CENTRED = (CANONICAL_SUBCARRIERS - CANONICAL_SUBCARRIERS.mean()).astype(np.float32)


@dataclass(frozen=True, slots=True)
class _GridPlan:
    """How one frame layout maps onto the grid: which columns, and the linear weights between them."""

    columns: npt.NDArray[np.intp]
    lo: npt.NDArray[np.intp]
    hi: npt.NDArray[np.intp]
    weight: F32
    usable: bool


@functools.lru_cache(maxsize=256)
def _plan(subcarriers_bytes: bytes, valid_bytes: bytes) -> _GridPlan:
    """Interpolation plan for one (subcarrier layout, valid-column mask); real links repeat a handful."""
    subcarriers = np.frombuffer(subcarriers_bytes, dtype=np.int16)
    columns = np.flatnonzero(np.frombuffer(valid_bytes, dtype=np.bool_))
    k = subcarriers[columns].astype(np.float64)
    if k.size < 2:
        empty = np.zeros(0, dtype=np.intp)
        return _GridPlan(columns, empty, empty, np.zeros(0, np.float32), usable=False)
    # Fractional position of each grid tone among the measured ones; np.interp holds the end values, so a
    # grid tone beyond the outermost measured one takes its nearest neighbour, never an extrapolation.
    position = np.interp(CANONICAL_SUBCARRIERS, k, np.arange(k.size))
    lo = np.floor(position).astype(np.intp)
    hi = np.minimum(lo + 1, k.size - 1)
    crosses_dc = (k[:-1] < 0) & (k[1:] > 0)
    missing_tones = np.diff(k) - 1 - crosses_dc
    usable = bool(
        k[0] <= -CANONICAL_HALF_WIDTH + MAX_EDGE_HOLD
        and k[-1] >= CANONICAL_HALF_WIDTH - MAX_EDGE_HOLD
        and missing_tones.max() <= MAX_MISSING_TONES
    )
    return _GridPlan(columns, lo, hi, (position - lo).astype(np.float32), usable)


def unwrap_subcarriers(phase: F32) -> F32:
    """Unwrap along the last axis (``np.unwrap`` without its generality, a few times cheaper)."""
    step = np.diff(phase, axis=-1)
    step -= TWO_PI * np.round(step / TWO_PI)
    out = np.empty_like(phase)
    out[..., :1] = phase[..., :1]
    np.cumsum(step, axis=-1, out=out[..., 1:])
    out[..., 1:] += phase[..., :1]
    return out


def grid_polar(pairs: C64, subcarriers: Indices) -> tuple[F32, F32] | None:
    """``[n_pairs, n_sc]`` CSI -> amplitude and unwrapped phase ``[n_pairs, 52]``, or None if unusable.

    A column counts as measured when it is an in-band tone (0 < |k| <= 28) and non-zero on every antenna
    pair (chips zero their guard, DC and invalid columns). Amplitude and phase are interpolated separately:
    interpolating complex values would shrink the amplitude between tones whose phase differs.
    """
    magnitude = np.abs(pairs)
    valid = (np.abs(subcarriers) <= OUTERMOST_DATA_TONE) & (subcarriers != 0) & np.all(magnitude > 0, axis=0)
    plan = _plan(subcarriers.tobytes(), valid.tobytes())
    if not plan.usable:
        return None
    mag = magnitude[:, plan.columns]
    phase = unwrap_subcarriers(np.angle(pairs[:, plan.columns]))
    w = plan.weight
    amplitude = mag[:, plan.lo] * (1 - w) + mag[:, plan.hi] * w
    phase_grid = phase[:, plan.lo] * (1 - w) + phase[:, plan.hi] * w
    return amplitude.astype(np.float32, copy=False), phase_grid.astype(np.float32, copy=False)


def canonical_amplitude_phase(csi: C64, subcarriers: Indices) -> tuple[F32, F32]:
    """``[n_rx, n_tx, n_sc]`` -> amplitude and unwrapped phase, each ``[n_rx, n_tx, 52]``.

    Raises ``ValueError`` when the measured tones leave holes the grid would have to invent.
    """
    n_rx, n_tx, n_sc = csi.shape
    polar = grid_polar(csi.reshape(n_rx * n_tx, n_sc), np.asarray(subcarriers, dtype=np.int16))
    if polar is None:
        raise ValueError(
            f"the measured tones of subcarriers {subcarriers.min()}..{subcarriers.max()} do not cover the"
            f" canonical grid -{CANONICAL_HALF_WIDTH}..{CANONICAL_HALF_WIDTH} without wide holes"
        )
    amplitude, phase = polar
    shape = (n_rx, n_tx, CANONICAL_SUBCARRIERS.size)
    return amplitude.reshape(shape), phase.reshape(shape)


def to_canonical_grid(csi: C64, subcarriers: Indices) -> C64:
    """``[n_rx, n_tx, n_sc]`` CSI on its own subcarriers -> complex64 ``[n_rx, n_tx, 52]`` on the grid."""
    amplitude, phase = canonical_amplitude_phase(csi, subcarriers)
    grid: C64 = (amplitude * np.exp(1j * phase)).astype(np.complex64)
    return grid


def normalize_gain(amplitude: F32) -> tuple[F32, F32]:
    """Divide out each antenna pair's RMS amplitude across subcarriers: (normalized, RMS gain).

    AGC rescales a whole packet, so the cross-subcarrier shape is what carries the room; the RMS itself
    tracks received power (RSSI-like) and is returned as a feature of its own. Requires non-zero rows,
    which ``grid_polar`` guarantees.
    """
    gain: F32 = np.sqrt(np.mean(np.square(amplitude), axis=-1, dtype=np.float32)).astype(np.float32)
    normalized: F32 = (amplitude / gain[..., np.newaxis]).astype(np.float32, copy=False)
    return normalized, gain


def _remove_line(phase: F32, centred: F32) -> F32:
    """Subtract the least-squares line over centred subcarrier indices from phase ``[..., n_sc]``."""
    offset = phase.mean(axis=-1, keepdims=True)
    slope = (phase @ centred)[..., np.newaxis] / float(centred @ centred)
    residual: F32 = (phase - offset - slope * centred).astype(np.float32, copy=False)
    return residual


def detrend_phase(phase: F32) -> F32:
    """Remove the reference pair's least-squares line across the grid from every pair's phase.

    ``phase`` is ``[n_pairs, 52]``, unwrapped along the tones. The line fitted to pair 0 is the packet's
    common phase and timing slope, which every chain of a radio shares (one oscillator, one sampling clock),
    so removing that one line from all pairs jointly leaves what tells the chains apart (their own phase
    offsets and the angles the paths arrive from), where detrending each pair on its own would erase it.
    Results are wrapped to (-pi, pi]. For one pair this is linear phase sanitization (``sanitize_phase``).
    """
    reference = phase[:1]
    offset = reference.mean(axis=-1, keepdims=True)
    slope = (reference @ _GRID_CENTRED)[..., np.newaxis] / float(_GRID_CENTRED @ _GRID_CENTRED)
    residual = phase - offset - slope * _GRID_CENTRED
    wrapped: F32 = (np.mod(residual + np.pi, TWO_PI) - np.pi).astype(np.float32, copy=False)
    return wrapped


def sanitize_phase(phase: F32, subcarriers: Indices = CANONICAL_SUBCARRIERS) -> F32:
    """Linear phase sanitization (Sen et al., "You are facing the Mona Lisa"; Phaser): ``[..., n_sc]``.

    Each packet's phase carries a random common offset (carrier frequency offset, PLL) and a slope across
    subcarriers (symbol timing offset); both are linear in the subcarrier index, so unwrapping along the
    subcarriers and removing the least-squares line leaves the channel's own non-linear phase, comparable
    across packets. Phase may be wrapped or unwrapped on input.
    """
    k = np.asarray(subcarriers, dtype=np.float32)
    return _remove_line(unwrap_subcarriers(np.asarray(phase, dtype=np.float32)), k - k.mean())


def rx_phase_difference(csi: C64, reference_rx: int = 0) -> F32:
    """Phase of ``H_rx * conj(H_ref)`` for every other receive antenna: float32 ``[n_rx - 1, n_tx, n_sc]``.

    The receive chains of one radio share its oscillator and sampling clock, so the common phase and the
    timing-offset slope are the same on every chain and cancel in the conjugate product (the antenna-ratio
    idea of e.g. FarSense); what remains is the path-length difference between antennas. Needs n_rx >= 2.
    """
    n_rx = csi.shape[0]
    if n_rx < 2:
        raise ValueError(f"a phase difference needs at least two receive antennas, got {n_rx}")
    others = [r for r in range(n_rx) if r != reference_rx]
    product = csi[others] * np.conj(csi[reference_rx])[np.newaxis]
    difference: F32 = np.angle(product).astype(np.float32)
    return difference
