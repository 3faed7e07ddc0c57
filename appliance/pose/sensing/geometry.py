"""The room and its links, and what a body at a floor position, moving at a velocity, is to each link.

Everything is on the floor plane: people are tall and the nodes sit between knee and head height, so a
body's effect on a link is decided by where it stands. For a link tx -> rx and a body at p:

- the **excess path** |p - tx| + |p - rx| - |tx - rx|: zero on the line of sight, where the body shadows
  it; a body within about a Fresnel zone's width (tens of centimetres of excess) changes the link most,
  which is what radio tomographic imaging builds on;
- the **distances** to each end: a body's echo falls with the product |p - tx| |p - rx| (bistatic radar
  equation) against a static channel that falls with |tx - rx|;
- the **bistatic Doppler** |v . (e_tx + e_rx)| / lambda, e the unit vectors from each end to the body: how
  fast the path via the body changes, which is the beat frequency the link sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from appliance.csi.simulator.room import RoomSpec, wavelength_m

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
NodeKind = Literal["esp32", "atheros"]

# Geometry features of a (link, state) pair; see ``state_features``.
N_STATE_FEATURES = 8
SHADOW_SCALE_M = (0.1, 0.4)
DOPPLER_SCALE_HZ = 10.0
# Closer than this a distance is the body's own size, not a range.
MIN_RANGE_M = 0.3


@dataclass(frozen=True, slots=True)
class LinkGeometry:
    """Where a link's transmitter and receiver are (metres, room coordinates), which chip receives, and
    the receiver's antenna array (count and unit direction along it, on the floor plane)."""

    tx: tuple[float, float, float]
    rx: tuple[float, float, float]
    kind: NodeKind = "esp32"
    rx_antennas: int = 1
    rx_axis: tuple[float, float] = (1.0, 0.0)
    antenna_spacing_m: float = 0.0613


@dataclass(frozen=True, slots=True)
class RoomGeometry:
    """The room box (x width, y depth, z up, origin at a floor corner) and its links by link id."""

    width_m: float
    depth_m: float
    height_m: float
    links: Mapping[str, LinkGeometry]
    channel_mhz: int = 2437

    @classmethod
    def from_room_spec(cls, room: RoomSpec) -> RoomGeometry:
        """Every link of a ``RoomSpec``, ids as the simulator and the configuration name them (tx-rx)."""
        links = {}
        for tx, rx in room.links:
            axis = array_axis(rx.position[0], rx.position[1], room.width_m, room.depth_m)
            links[f"{tx.id}-{rx.id}"] = LinkGeometry(
                tx.position, rx.position, rx.kind, rx.antennas, axis, rx.antenna_spacing_m
            )
        return cls(room.width_m, room.depth_m, room.height_m, links, room.channel_mhz)

    @property
    def wavelength_m(self) -> float:
        return wavelength_m(self.channel_mhz)

    @property
    def centre(self) -> F64:
        return np.array([self.width_m / 2, self.depth_m / 2])

    def ends(self, link_ids: Sequence[str]) -> tuple[F64, F64]:
        """(L, 2) transmitter and receiver floor positions of the given links."""
        tx = np.array([self.links[link].tx[:2] for link in link_ids], dtype=np.float64).reshape(-1, 2)
        rx = np.array([self.links[link].rx[:2] for link in link_ids], dtype=np.float64).reshape(-1, 2)
        return tx, rx

    def cells(self, step_m: float) -> F64:
        """(N, 2) centres of a grid of ``step_m`` cells over the floor."""
        nx = max(1, math.ceil(self.width_m / step_m))
        ny = max(1, math.ceil(self.depth_m / step_m))
        xs = (np.arange(nx) + 0.5) * self.width_m / nx
        ys = (np.arange(ny) + 0.5) * self.depth_m / ny
        grid: F64 = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
        return grid


def array_axis(x: float, y: float, width: float, depth: float) -> tuple[float, float]:
    """Unit direction of an antenna array at (x, y): along the wall nearest to it, as routers hang (and as
    the simulator mounts them)."""
    walls = (x, width - x, y, depth - y)
    return (0.0, 1.0) if int(np.argmin(walls)) < 2 else (1.0, 0.0)


def steering(
    positions: F64, centre: F64, axis: F64, antennas: int, spacing_m: float, wavelength: float
) -> npt.NDArray[np.complex128]:
    """(N, antennas) phases with which a wave from each floor position reaches a linear array at ``centre``
    (antenna k at centre + (k - (antennas - 1) / 2) spacing axis), relative to the array's centre: a path
    shorter by s arrives earlier, exp(+j 2 pi s / lambda)."""
    towards = positions - centre
    unit = towards / np.maximum(np.linalg.norm(towards, axis=-1, keepdims=True), 1e-9)
    offsets = (np.arange(antennas) - (antennas - 1) / 2) * spacing_m
    vectors: npt.NDArray[np.complex128] = np.exp(
        2j * np.pi / wavelength * (unit @ axis)[:, None] * offsets[None, :]
    )
    return vectors


def state_features(position: F64, velocity: F64, tx: F64, rx: F64, wavelength: float) -> F32:
    """(..., L, N_STATE_FEATURES) what bodies at ``position`` (..., 2) moving at ``velocity`` (..., 2) are
    to each of L links with ends ``tx``, ``rx`` (L, 2): excess path (raw, and on two shadow scales), log
    distances to each end, log link length, bistatic Doppler over ``DOPPLER_SCALE_HZ`` and speed."""
    # Coordinates one by one and written straight into the output: the tracker calls this for every
    # particle and link at every reading, and per-axis arithmetic is twice as fast as norms of stacks.
    px, py = position[..., None, 0], position[..., None, 1]
    vx, vy = velocity[..., None, 0], velocity[..., None, 1]
    to_tx_x, to_tx_y = px - tx[:, 0], py - tx[:, 1]
    to_rx_x, to_rx_y = px - rx[:, 0], py - rx[:, 1]
    d_tx = np.maximum(np.hypot(to_tx_x, to_tx_y), 1e-6)
    d_rx = np.maximum(np.hypot(to_rx_x, to_rx_y), 1e-6)
    direct = np.hypot(tx[:, 0] - rx[:, 0], tx[:, 1] - rx[:, 1])
    excess = d_tx + d_rx - direct
    out: F32 = np.empty((*excess.shape, N_STATE_FEATURES), np.float32)
    out[..., 0] = excess
    out[..., 1] = np.exp(-excess / SHADOW_SCALE_M[0])
    out[..., 2] = np.exp(-excess / SHADOW_SCALE_M[1])
    out[..., 3] = np.log(np.maximum(d_tx, MIN_RANGE_M))
    out[..., 4] = np.log(np.maximum(d_rx, MIN_RANGE_M))
    out[..., 5] = np.log(np.maximum(direct, MIN_RANGE_M))
    # Bistatic Doppler: the velocity along the sum of the unit vectors from each end.
    along = (to_tx_x / d_tx + to_rx_x / d_rx) * vx + (to_tx_y / d_tx + to_rx_y / d_rx) * vy
    out[..., 6] = np.abs(along) / wavelength / DOPPLER_SCALE_HZ
    out[..., 7] = np.hypot(vx, vy)
    return out
