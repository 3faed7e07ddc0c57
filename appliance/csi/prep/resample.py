"""Fixed-rate resampling of one link's irregular packets, driven by its unwrapped device clock.

Packets arrive with jitter and loss (73-474 packets/s on the captures); a model wants a fixed clock. The
output slots are the multiples of ``1 / rate_hz`` of device time, so a slot's time never depends on when
the stream started. A slot between two packets at most ``max_gap_s`` apart is interpolated linearly; a slot
inside a longer gap is reported missing rather than invented. A gap longer than ``restart_after_s`` (the
link was down) yields one missing slot, so that consumers see the break, and the clock restarts at the
next packet instead of emitting a missing slot for every period of the outage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
US_PER_S = 1_000_000


@dataclass(frozen=True, slots=True)
class ResampledPoint:
    """One output slot: its device time and the interpolated vector, or None when it is missing."""

    t_us: float
    values: F32 | None


class LinkResampler:
    """Linear interpolation of float32 vectors onto a fixed clock; times must increase.

    ``interrupt`` marks a break (device reboot, changed antenna layout): the interval up to the next
    packet is treated as a gap, so nothing is interpolated across it.
    """

    def __init__(self, rate_hz: float, *, max_gap_s: float, restart_after_s: float) -> None:
        if rate_hz <= 0 or max_gap_s <= 0 or restart_after_s < max_gap_s:
            raise ValueError("need rate_hz > 0, max_gap_s > 0 and restart_after_s >= max_gap_s")
        self.period_us = US_PER_S / rate_hz
        self._max_gap_us = max_gap_s * US_PER_S
        self._restart_us = restart_after_s * US_PER_S
        self._next_slot: int | None = None
        self._last_t = 0
        self._last_v: F32 | None = None
        self._broken = False
        self.ignored = 0
        self.restarts = 0

    def interrupt(self) -> None:
        self._broken = True

    def push(self, t_us: int, values: F32) -> list[ResampledPoint]:
        """The slots settled by a packet at ``t_us`` (those up to and including it)."""
        last_v, slot = self._last_v, self._next_slot
        if last_v is None or slot is None:
            slot = math.ceil(t_us / self.period_us)
            first = []
            if self._slot_time(slot) == t_us:
                first.append(ResampledPoint(t_us, values))
                slot += 1
            self._accept(t_us, values, slot)
            return first
        if t_us <= self._last_t:
            self.ignored += 1
            return []
        gap = t_us - self._last_t
        missing = self._broken or gap > self._max_gap_us
        out: list[ResampledPoint] = []
        if missing and gap > self._restart_us:
            if self._slot_time(slot) < t_us:
                out.append(ResampledPoint(self._slot_time(slot), None))
                slot += 1
            slot = max(slot, math.ceil(t_us / self.period_us))
            self.restarts += 1
        while (ts := self._slot_time(slot)) <= t_us:
            if ts == t_us:
                out.append(ResampledPoint(ts, values))
            elif missing:
                out.append(ResampledPoint(ts, None))
            else:
                weight = np.float32((ts - self._last_t) / gap)
                out.append(ResampledPoint(ts, last_v + (values - last_v) * weight))
            slot += 1
        self._accept(t_us, values, slot)
        return out

    def _slot_time(self, slot: int) -> float:
        return slot * self.period_us

    def _accept(self, t_us: int, values: F32, next_slot: int) -> None:
        self._last_t, self._last_v, self._broken = t_us, values, False
        self._next_slot = next_slot
