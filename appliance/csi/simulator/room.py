"""The simulated room: its box, the radio nodes on its walls, and the links between them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

NodeKind = Literal["esp32", "atheros"]
# tx sends, rx measures; txrx does both, taking its turn to send while the others listen (time-shared).
NodeRole = Literal["tx", "rx", "txrx"]

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
    role: NodeRole
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
        return tuple(n for n in self.nodes if n.role in ("tx", "txrx"))

    @property
    def receivers(self) -> tuple[NodeSpec, ...]:
        return tuple(n for n in self.nodes if n.role in ("rx", "txrx"))

    @property
    def links(self) -> tuple[tuple[NodeSpec, NodeSpec], ...]:
        """Every (transmitter, receiver) pair of different nodes, transmitters outermost."""
        return tuple((tx, rx) for tx in self.transmitters for rx in self.receivers if tx.id != rx.id)

    @property
    def link_ids(self) -> list[str]:
        """``<tx>-<rx>`` of every link, in ``links`` order."""
        return [f"{tx.id}-{rx.id}" for tx, rx in self.links]

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


# Node layouts that evaluation, training and `invispose plan` place in rooms of any size: transmitters and
# receivers spread round the walls, the kinds of hardware a user can buy.
SETUPS: dict[str, tuple[NodeKind, int, int]] = {
    "esp32-1x6": ("esp32", 1, 6),
    "esp32-2x6": ("esp32", 2, 6),
    "esp32-4x4": ("esp32", 4, 4),
    "atheros-3rx": ("atheros", 1, 3),
}
# Atheros routers: a 2-stream access point, 3-antenna receivers.
ATHEROS_TX_ANTENNAS, ATHEROS_RX_ANTENNAS = 2, 3
WALL_OFFSET_M = 0.05
TX_HEIGHT_M = (1.4, 2.2)
RX_HEIGHT_M = (0.8, 1.8)


def wall_point(width: float, depth: float, fraction: float, height: float) -> tuple[float, float, float]:
    """A point on the walls at ``fraction`` (0..1) of the perimeter, counter-clockwise from (0, 0)."""
    s = (fraction % 1.0) * 2 * (width + depth)
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


def setup_nodes(
    setup: str, width: float, depth: float, height: float, rng: np.random.Generator
) -> tuple[NodeSpec, ...]:
    """The nodes of a named setup (``SETUPS``) round the walls of a room, at jittered even spacing.

    All nodes share the perimeter evenly (transmitters spread among the receivers), so that every part of
    the floor lies near some line of sight, which is how users are told to place them.
    """
    if setup not in SETUPS:
        raise ValueError(f"unknown setup {setup!r}; known: {', '.join(SETUPS)}")
    kind, n_tx, n_rx = SETUPS[setup]
    n = n_tx + n_rx
    # Transmitters at evenly spread slots among all of them.
    tx_slots = {round(i * n / n_tx) for i in range(n_tx)}
    start = float(rng.random())
    nodes: list[NodeSpec] = []
    for slot in range(n):
        fraction = start + (slot + float(rng.uniform(-0.25, 0.25))) / n
        is_tx = slot in tx_slots
        z = float(rng.uniform(*(TX_HEIGHT_M if is_tx else RX_HEIGHT_M)))
        z = min(z, height - 0.1)
        antennas = 1 if kind == "esp32" else ATHEROS_TX_ANTENNAS if is_tx else ATHEROS_RX_ANTENNAS
        count = sum(node.role == ("tx" if is_tx else "rx") for node in nodes) + 1
        nodes.append(
            NodeSpec(
                f"tx{count}" if is_tx else f"rx{count}",
                kind,
                "tx" if is_tx else "rx",
                wall_point(width, depth, fraction, z),
                antennas=antennas,
            )
        )
    return tuple(nodes)
