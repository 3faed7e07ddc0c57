"""``CsiFrame``: one received packet's channel estimate, whatever hardware or file it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

WireFormat = Literal[
    "esp32-csv", "esp32-udp", "atheros", "intel5300", "espectre-npz", "recording", "simulated"
]


@dataclass(frozen=True, slots=True)
class CsiFrame:
    """Channel state of one packet on one link.

    ``csi`` is complex64 ``[n_rx, n_tx, n_subcarriers]`` holding the raw values as the hardware reported
    them (no gain or phase correction); ``subcarriers`` holds the signed OFDM subcarrier index of each
    column (0 is DC), so that frames from different chips can be put on one grid.
    """

    link: str
    device_ts_us: int
    host_ts: float
    seq: int
    rssi_dbm: float
    noise_dbm: float
    channel_mhz: int
    bandwidth_mhz: int
    csi: npt.NDArray[np.complex64]
    subcarriers: npt.NDArray[np.int16]
    wire_format: WireFormat
    meta: dict[str, int | float | str | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.csi.ndim != 3:
            raise ValueError(f"csi must be [n_rx, n_tx, n_subcarriers], got shape {self.csi.shape}")
        if self.csi.shape[2] != self.subcarriers.shape[0]:
            raise ValueError(
                f"{self.csi.shape[2]} CSI columns but {self.subcarriers.shape[0]} subcarrier indices"
            )

    @property
    def n_rx(self) -> int:
        return int(self.csi.shape[0])

    @property
    def n_tx(self) -> int:
        return int(self.csi.shape[1])

    @property
    def n_subcarriers(self) -> int:
        return int(self.csi.shape[2])
