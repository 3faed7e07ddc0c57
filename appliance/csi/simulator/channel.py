"""Multipath channel synthesis: H(f_k) = sum_p a_p exp(-j 2 pi f_k tau_p), per packet and antenna pair.

Paths: the direct path (Friis), first-order reflections off the six room surfaces (image method), static
furniture scatterers and the scatterer points of people (bistatic radar equation). The static sum is
computed once per link. People are summed per limb: each point keeps its own carrier phase, which is where
speckle and Doppler come from, while the subcarrier-dependent delay term is taken at the limb centre, so the
exponential over subcarriers is evaluated per limb, not per point (the phase error this makes is below
0.1 rad for a 0.5 m limb at the band edge). Bodies near the line of sight also shadow the direct path.

Two things a real room adds, each switchable by the caller:

- **Body echoes via the surfaces** (``echoes=True``): the wave scattered by a body also reaches the receiver
  after bouncing off a wall, the floor or the ceiling, and the transmitter's wave reaches the body that way
  too. By the image method these are the body seen by a mirrored receiver or transmitter, weighted by the
  surface's reflection coefficient: twelve extra bistatic paths per antenna pair. They are summed per limb
  (limb centre, the limb's whole RCS) with the subcarrier delay taken at the body's torso: they are a
  third as strong as the direct echo, and their speckle matters less than their Doppler and delay.
- **Background drift** (``furniture_weights`` in ``response``): each furniture path's complex gain may
  be scaled per packet, which is how the caller makes the empty room drift slowly (temperature, humidity,
  things moved in the next room), as real empty rooms do.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.csi.simulator.room import SPEED_OF_LIGHT_M_S, RoomSpec, wavelength_m

F64 = npt.NDArray[np.float64]
C64 = npt.NDArray[np.complex64]

SUBCARRIER_SPACING_HZ = 312_500.0
# Relative permittivities at 2.4 GHz: brick/concrete walls and the slab under the floor, plasterboard ceiling.
WALL_PERMITTIVITY = 5.0
FLOOR_PERMITTIVITY = 5.0
CEILING_PERMITTIVITY = 2.5
# Furniture: a sofa, a table, shelves, a TV... each a point target of 0.02-0.5 m^2 RCS at 0.2-1.6 m height.
FURNITURE_SCATTERERS = 10
FURNITURE_RCS_M2 = (0.02, 0.5)
FURNITURE_HEIGHT_M = (0.2, 1.6)
# The radar equation is a far-field law; closer than this to an antenna a scatterer's gain would diverge.
MIN_SCATTER_RANGE_M = 0.3
# Knife-edge geometry needs the obstacle strictly between the ends of the path.
MIN_EDGE_RANGE_M = 0.05
# ITU-R P.526 approximation of single knife-edge diffraction loss holds for v > -0.78 (loss 0 below).
KNIFE_EDGE_MIN_V = -0.78
RADAR_EQUATION_FACTOR = 1.0 / (4 * np.pi) ** 1.5


def normal_incidence_reflection(permittivity: float) -> float:
    """Fresnel amplitude reflection coefficient of a lossless dielectric half-space (negative: phase flip)."""
    root = float(np.sqrt(permittivity))
    return (1 - root) / (1 + root)


def furniture(room: RoomSpec, rng: np.random.Generator) -> tuple[F64, F64]:
    """Seeded static scatterers: positions (N, 3) anywhere on the floor plan, RCS (N,) log-uniform."""
    low, high = (
        np.array([0.2, 0.2, FURNITURE_HEIGHT_M[0]]),
        np.array([room.width_m - 0.2, room.depth_m - 0.2, FURNITURE_HEIGHT_M[1]]),
    )
    positions = rng.uniform(low, high, size=(FURNITURE_SCATTERERS, 3))
    smallest, largest = FURNITURE_RCS_M2
    rcs = np.exp(rng.uniform(np.log(smallest), np.log(largest), size=FURNITURE_SCATTERERS))
    return positions, rcs


def knife_edge_loss_db(v: F64) -> F64:
    """Diffraction loss over a single knife edge with Fresnel parameter ``v`` (ITU-R P.526-15, eq. 31)."""
    v = np.maximum(v, KNIFE_EDGE_MIN_V)
    loss: F64 = 6.9 + 20 * np.log10(np.sqrt((v - 0.1) ** 2 + 1) + v - 0.1)
    return np.where(v > KNIFE_EDGE_MIN_V, loss, 0.0)


def phasor(phase: npt.NDArray[np.floating]) -> C64:
    """exp(j phase) as complex64; float32 sin/cos are several times faster than numpy's complex exp."""
    phase32 = phase.astype(np.float32, copy=False)
    out = np.empty(phase32.shape, np.complex64)
    parts = out.view(np.float32).reshape(*phase32.shape, 2)
    np.cos(phase32, out=parts[..., 0])
    np.sin(phase32, out=parts[..., 1])
    return out


@dataclass(frozen=True)
class BodyField:
    """Everyone in the room over T packets, as the channel needs them."""

    points: F64  # (T, P, 3) scatterer points, grouped by limb
    point_rcs_m2: F64  # (T, P), 0 where the person is away
    limb_starts: npt.NDArray[np.intp]  # (L,) first point of each limb
    limb_centres: F64  # (T, L, 3)
    probes: F64  # (T, S, 3) points on limb axes for line-of-sight clearance
    probe_radii_m: F64  # (S,)
    probe_present: npt.NDArray[np.bool_]  # (T, S)
    limb_rcs_m2: F64  # (T, L), 0 where the person is away
    body_starts: npt.NDArray[np.intp]  # (B,) first limb of each body; a body's first limb is its torso


class MultipathChannel:
    """The channel between antenna pairs (any number of links that share a set of subcarriers).

    ``tx`` and ``rx`` are (pairs, 3) antenna positions; results are (T, pairs, K).
    """

    def __init__(
        self,
        tx: F64,
        rx: F64,
        subcarriers: npt.NDArray[np.int16],
        room: RoomSpec,
        furniture_positions: F64,
        furniture_rcs_m2: F64,
        *,
        echoes: bool = False,
    ) -> None:
        self._tx, self._rx = tx, rx
        self._wavelength = wavelength_m(room.channel_mhz)
        self._freq = room.channel_mhz * 1e6 + subcarriers.astype(np.float64) * SUBCARRIER_SPACING_HZ
        # Per-limb delay term: exp(-j 2 pi k df tau), with tau = path length / c.
        self._baseband_rad_per_m = (
            -2 * np.pi * SUBCARRIER_SPACING_HZ / SPEED_OF_LIGHT_M_S * subcarriers.astype(np.float32)
        ).astype(np.float32)

        reflection = {
            "wall": normal_incidence_reflection(WALL_PERMITTIVITY),
            "floor": normal_incidence_reflection(FLOOR_PERMITTIVITY),
            "ceiling": normal_incidence_reflection(CEILING_PERMITTIVITY),
        }
        surfaces = (
            (0, 0.0, reflection["wall"]),
            (0, room.width_m, reflection["wall"]),
            (1, 0.0, reflection["wall"]),
            (1, room.depth_m, reflection["wall"]),
            (2, 0.0, reflection["floor"]),
            (2, room.height_m, reflection["ceiling"]),
        )
        # Specular paths as polylines tx -> turning point -> rx; the direct path turns at its midpoint.
        turns, lengths, gains = (
            [(self._tx + self._rx) / 2],
            [np.linalg.norm(self._rx - self._tx, axis=1)],
            [1.0],
        )
        echo_tx, echo_rx, echo_gain = [], [], []
        for axis, plane, gamma in surfaces:
            image = self._tx.copy()
            image[:, axis] = 2 * plane - image[:, axis]
            to_rx = self._rx - image
            crossing = (plane - image[:, axis]) / to_rx[:, axis]
            turns.append(image + crossing[:, None] * to_rx)
            lengths.append(np.linalg.norm(to_rx, axis=1))
            gains.append(gamma)
            rx_image = self._rx.copy()
            rx_image[:, axis] = 2 * plane - rx_image[:, axis]
            echo_tx += [image, self._tx]
            echo_rx += [self._rx, rx_image]
            echo_gain += [gamma, gamma]
        # Body echoes by way of a surface: (pairs, 12) mirrored ends, the surface's reflection coefficient.
        self._echoes = echoes
        self._echo_tx = np.stack(echo_tx, axis=1)
        self._echo_rx = np.stack(echo_rx, axis=1)
        self._echo_gain = np.asarray(echo_gain)
        self._echo_direct = np.linalg.norm(self._echo_rx - self._echo_tx, axis=2)
        path_lengths = np.stack(lengths, axis=1)
        self._specular = self._paths(
            np.asarray(gains)[None, :] * self._wavelength / (4 * np.pi * path_lengths), path_lengths
        )
        polyline = np.stack(
            [
                np.broadcast_to(self._tx[:, None], (tx.shape[0], len(turns), 3)),
                np.stack(turns, axis=1),
                np.broadcast_to(self._rx[:, None], (tx.shape[0], len(turns), 3)),
            ],
            axis=2,
        )
        segments = np.diff(polyline, axis=2)  # (pairs, paths, 2, 3)
        self._segment_start = polyline[:, :, :2]
        self._segment_length = np.maximum(np.linalg.norm(segments, axis=3), 1e-9)
        self._segment_direction = segments / self._segment_length[..., None]
        self._segment_offset = np.stack(
            [np.zeros_like(self._segment_length[..., 0]), self._segment_length[..., 0]], axis=2
        )
        self._path_length = self._segment_length.sum(axis=2)

        d_tx = np.linalg.norm(furniture_positions[None] - self._tx[:, None], axis=2)
        d_rx = np.linalg.norm(furniture_positions[None] - self._rx[:, None], axis=2)
        d_tx, d_rx = np.maximum(d_tx, MIN_SCATTER_RANGE_M), np.maximum(d_rx, MIN_SCATTER_RANGE_M)
        furniture_gain = (
            np.sqrt(furniture_rcs_m2)[None] * RADAR_EQUATION_FACTOR * self._wavelength / (d_tx * d_rx)
        )
        self._furniture = self._paths(furniture_gain, d_tx + d_rx)  # (pairs, F, K)
        self._specular_sum: C64 = self._specular.sum(axis=1)
        self.static: C64 = self._specular_sum + self._furniture.sum(axis=1)

    def _paths(self, gains: F64, lengths: F64) -> C64:
        """Paths' responses: (pairs, paths) gains and lengths -> (pairs, paths, K)."""
        phase = -2 * np.pi * self._freq[None, None, :] * lengths[:, :, None] / SPEED_OF_LIGHT_M_S
        response: C64 = (gains[:, :, None] * np.exp(1j * phase)).astype(np.complex64)
        return response

    def response(
        self,
        bodies: BodyField | None,
        packets: int,
        *,
        shadow_stride: int = 1,
        furniture_weights: npt.NDArray[np.complex128] | None = None,
    ) -> C64:
        """(T, pairs, K) channel for T packets with the given people (None: an empty room).

        Diffraction loss changes over the width of a Fresnel zone (tens of centimetres), so it may be
        evaluated every ``shadow_stride`` packets and interpolated linearly in between.
        ``furniture_weights`` (T, F) scale each furniture path per packet (None: all 1).
        """
        if furniture_weights is None:
            static: C64 = np.broadcast_to(self.static, (packets, *self.static.shape)).copy()
        else:
            drift = np.einsum("tf,pfk->tpk", furniture_weights.astype(np.complex64), self._furniture)
            static = self._specular_sum[None] + drift
        if bodies is None:
            return static
        samples = np.unique(np.append(np.arange(0, packets, shadow_stride), packets - 1))
        sampled = dataclasses.replace(
            bodies, probes=bodies.probes[samples], probe_present=bodies.probe_present[samples]
        )
        gains = self.path_gains(sampled)
        if samples.size < packets:
            position = np.arange(packets)
            after = np.clip(np.searchsorted(samples, position), 1, samples.size - 1)
            weight = ((position - samples[after - 1]) / (samples[after] - samples[after - 1]))[:, None, None]
            gains = (1 - weight) * gains[after - 1] + weight * gains[after]
        shadow = (gains - 1).astype(np.complex64)
        shadowing = np.matmul(shadow[:, :, None, :], self._specular[None])[:, :, 0, :]
        result: C64 = static + shadowing + self._scattered(bodies)
        if self._echoes:
            result += self._echoed(bodies)
        return result

    def _echoed(self, bodies: BodyField) -> C64:
        """(T, pairs, K) body echoes by way of one surface (see the module docstring)."""
        centres = bodies.limb_centres[:, None, None, :, :]  # (T, 1, 1, L, 3)
        d_tx = np.linalg.norm(centres - self._echo_tx[None, :, :, None, :], axis=4)  # (T, pairs, E, L)
        d_rx = np.linalg.norm(centres - self._echo_rx[None, :, :, None, :], axis=4)
        d_tx, d_rx = np.maximum(d_tx, MIN_SCATTER_RANGE_M), np.maximum(d_rx, MIN_SCATTER_RANGE_M)
        excess = d_tx + d_rx - self._echo_direct[None, :, :, None]
        fresnel_taper = np.clip(excess * (2 / self._wavelength), 0.0, 1.0)
        gain = (
            np.sqrt(bodies.limb_rcs_m2)[:, None, None, :]
            * fresnel_taper
            * (self._echo_gain[None, None, :, None] * RADAR_EQUATION_FACTOR * self._wavelength)
            / (d_tx * d_rx)
        )
        carrier = phasor(np.mod((-2 * np.pi / self._wavelength) * (d_tx + d_rx), 2 * np.pi))
        per_body = np.add.reduceat(gain.astype(np.float32) * carrier, bodies.body_starts, axis=3)
        torso = bodies.limb_centres[:, bodies.body_starts][:, None, None, :, :]  # (T, 1, 1, B, 3)
        torso_length = np.linalg.norm(torso - self._echo_tx[None, :, :, None, :], axis=4) + np.linalg.norm(
            torso - self._echo_rx[None, :, :, None, :], axis=4
        )
        delay = phasor(torso_length.astype(np.float32)[..., None] * self._baseband_rad_per_m)
        echoed: C64 = np.einsum("tpeb,tpebk->tpk", per_body, delay)
        return echoed

    def _scattered(self, bodies: BodyField) -> C64:
        points = bodies.points[:, None, :, :]
        d_tx = np.linalg.norm(points - self._tx[None, :, None, :], axis=3)
        d_rx = np.linalg.norm(points - self._rx[None, :, None, :], axis=3)
        d_tx, d_rx = np.maximum(d_tx, MIN_SCATTER_RANGE_M), np.maximum(d_rx, MIN_SCATTER_RANGE_M)
        # Inside a pair's first Fresnel zone (excess path < lambda / 2) the forward-scattered field is the
        # shadow that path_gains already takes off the specular paths; counting it again as scatter would
        # add in phase with the direct path instead. So a point's scatter fades in across that zone.
        excess = d_tx + d_rx - self._path_length[None, :, 0, None]
        fresnel_taper = np.clip(excess * (2 / self._wavelength), 0.0, 1.0)
        gain = (
            np.sqrt(bodies.point_rcs_m2)[:, None, :]
            * fresnel_taper
            * (RADAR_EQUATION_FACTOR * self._wavelength)
            / (d_tx * d_rx)
        )
        carrier = phasor(np.mod((-2 * np.pi / self._wavelength) * (d_tx + d_rx), 2 * np.pi))
        per_limb = np.add.reduceat(gain.astype(np.float32) * carrier, bodies.limb_starts, axis=2)

        centres = bodies.limb_centres[:, None, :, :]
        centre_length = np.linalg.norm(centres - self._tx[None, :, None, :], axis=3) + np.linalg.norm(
            centres - self._rx[None, :, None, :], axis=3
        )
        delay_phase = centre_length.astype(np.float32)[..., None] * self._baseband_rad_per_m
        delay = phasor(delay_phase)
        scattered: C64 = np.matmul(per_limb[:, :, None, :], delay)[:, :, 0, :]
        return scattered

    def path_gains(self, bodies: BodyField) -> F64:
        """(T, pairs, paths) amplitude factor of each specular path (direct first) by knife-edge diffraction.

        A limb of radius r whose axis passes at distance rho from a path is an edge protruding h = r - rho
        into it; with d1, d2 the distances along the path to its ends, the Fresnel parameter is
        v = h sqrt(2 (d1 + d2) / (lambda d1 d2)).
        The nearest limb (largest v) sets the loss.
        """
        start = self._segment_start[None, :, :, :, None, :].astype(np.float32)
        direction = self._segment_direction[None, :, :, :, None, :].astype(np.float32)
        offset = bodies.probes.astype(np.float32)[:, None, None, None, :, :] - start
        along = np.sum(offset * direction, axis=5)
        rho = np.sqrt(np.maximum(np.sum(offset * offset, axis=5) - along * along, 0.0))
        total = self._path_length[None, :, :, None, None]
        d1 = along + self._segment_offset[None, :, :, :, None]
        between = (
            (along >= 0)
            & (along <= self._segment_length[None, :, :, :, None])
            & (d1 > MIN_EDGE_RANGE_M)
            & (d1 < total - MIN_EDGE_RANGE_M)
        )
        d1 = np.clip(d1, MIN_EDGE_RANGE_M, total - MIN_EDGE_RANGE_M)
        v = (bodies.probe_radii_m - rho) * np.sqrt(2 * total / (self._wavelength * d1 * (total - d1)))
        v = np.where(between & bodies.probe_present[:, None, None, None, :], v, -np.inf)
        gain: F64 = 10 ** (-knife_edge_loss_db(v.max(axis=(3, 4))) / 20)
        return gain
