"""``PrepSettings``: the ``prep:`` section of the appliance config."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PrepSettings(BaseModel):
    """How each link's packets are turned into fixed-rate samples on the canonical subcarrier grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_hz: float = Field(
        100.0,
        gt=0,
        le=1000,
        description="Samples per second each link is resampled to (device time). Links sending fewer"
        " packets are interpolated up to it; ESP32 nodes send about 70-150, Atheros routers up to ~500.",
    )
    hampel_half_window: int = Field(
        5,
        ge=1,
        le=50,
        description="Hampel outlier filter: packets on each side of the one tested (window 2k+1). Larger"
        " rejects longer bursts but delays every sample by this many packets.",
    )
    hampel_sigmas: float = Field(
        3.0,
        gt=0,
        description="Hampel outlier filter: an amplitude further than this many robust standard"
        " deviations from its window's median is replaced by the median.",
    )
    max_gap_s: float = Field(
        0.1,
        gt=0,
        description="Gaps between packets up to this long are bridged by interpolation; samples inside a"
        " longer gap are marked invalid instead of invented.",
    )
    restart_after_s: float = Field(
        5.0,
        gt=0,
        description="A gap longer than this counts as the link having been down: one invalid sample marks"
        " it and the sample clock restarts at the next packet.",
    )
    max_reorder_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="A device timestamp at most this far behind the newest is a reordered or jittered"
        " packet (dropped if it is not newer than the last one used); further back is a device reboot.",
    )
    max_wrap_step_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A device clock that goes back (a 32-bit microsecond counter wraps every 71.6"
        " minutes) is read as a wrap only if the step across the wrap is at most this long; otherwise"
        " the device rebooted.",
    )

    @model_validator(mode="after")
    def _gaps_ordered(self) -> PrepSettings:
        if self.restart_after_s < self.max_gap_s:
            raise ValueError("restart_after_s must be at least max_gap_s")
        return self
