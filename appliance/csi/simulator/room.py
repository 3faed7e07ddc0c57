"""The simulated room: its box, the radio nodes on its walls, and the links between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

NodeKind = Literal["esp32", "atheros"]

SPEED_OF_LIGHT_M_S = 299_792_458.0

# Half-wavelength at 2.44 GHz: the usual spacing of a router's antenna array.
HALF_WAVELENGTH_2G4_M = 0.0613

# OFDM subcarrier indices each receiver reports for a 20 MHz HT packet.
# ESP32: the 64-entry LLTF block; the 11 guard tones (|k| > 26) and DC carry no energy and read 0.
ESP32_SUBCARRIERS: npt.NDArray[np.int16] = np.arange(-32, 32, dtype=np.int16)
ESP32_ACTIVE_HALF_WIDTH = 26
# Atheros (ath9k CSI tool): the 56 HT20 data and pilot tones, DC excluded.
ATHEROS_SUBCARRIERS: npt.NDArray[np.int16] = np.concatenate([np.arange(-28, 0), np.arange(1, 29)]).astype(
    np.int16
)


@dataclass(frozen=True)
class NodeSpec:
    """A radio in the room. ``position`` is the centre of its antenna array in metres (room coordinates)."""

    id: str
    kind: NodeKind
    role: Literal["tx", "rx"]
    position: tuple[float, float, float]
    antennas: int = 1
    antenna_spacing_m: float = HALF_WAVELENGTH_2G4_M


@dataclass(frozen=True)
class RoomSpec:
    """A box room: x along the width, y along the depth, z up, origin at a floor corner.

    ``doors`` are floor points on the walls where simulated people enter and leave.
    """

    width_m: float
    depth_m: float
    height_m: float
    nodes: tuple[NodeSpec, ...]
    channel_mhz: int = 2437
    doors: tuple[tuple[float, float], ...] = ()

    @property
    def transmitters(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.role == "tx")

    @property
    def receivers(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.role == "rx")

    @property
    def link_ids(self) -> list[str]:
        """Every transmitter paired with every receiver, transmitters outermost."""
        return [f"{tx.id}-{rx.id}" for tx in self.transmitters for rx in self.receivers]

    def entry_points(self) -> tuple[tuple[float, float], ...]:
        """The doors, or one in the middle of the x = 0 wall: people must come from somewhere."""
        return self.doors or ((0.0, self.depth_m / 2),)


def default_room() -> RoomSpec:
    """A 5 m x 4 m x 2.7 m living room: an ESP32 soft-AP on one wall sending to six ESP32 sensing nodes.

    The receivers ring the walls at 1-2 m height so that every part of the floor lies near some line of
    sight, which is what makes the links' shadowing tell people apart by position.
    """
    width, depth, height = 5.0, 4.0, 2.7
    nodes = (
        NodeSpec("ap", "esp32", "tx", (2.5, 0.05, 1.8)),
        NodeSpec("rx1", "esp32", "rx", (0.05, 1.2, 1.2)),
        NodeSpec("rx2", "esp32", "rx", (0.05, 3.0, 1.6)),
        NodeSpec("rx3", "esp32", "rx", (1.6, 3.95, 1.4)),
        NodeSpec("rx4", "esp32", "rx", (3.6, 3.95, 1.0)),
        NodeSpec("rx5", "esp32", "rx", (4.95, 2.6, 1.5)),
        NodeSpec("rx6", "esp32", "rx", (4.95, 0.9, 1.1)),
    )
    return RoomSpec(width, depth, height, nodes, doors=((0.0, 0.6), (5.0, 3.5)))


def antenna_positions(node: NodeSpec, room: RoomSpec) -> npt.NDArray[np.float64]:
    """(antennas, 3) positions: a horizontal linear array along the wall the node is mounted on."""
    x, y, _ = node.position
    wall_distance = (x, room.width_m - x, y, room.depth_m - y)
    along = np.array([0.0, 1.0, 0.0]) if int(np.argmin(wall_distance)) < 2 else np.array([1.0, 0.0, 0.0])
    offsets = (np.arange(node.antennas) - (node.antennas - 1) / 2) * node.antenna_spacing_m
    positions: npt.NDArray[np.float64] = (
        np.asarray(node.position, dtype=np.float64) + offsets[:, None] * along
    )
    return positions


def wavelength_m(channel_mhz: int) -> float:
    return SPEED_OF_LIGHT_M_S / (channel_mhz * 1e6)
