"""Wrapping device counters: the microsecond clock and the packet sequence number.

Radios report both as fixed-width integers that wrap (a classic ESP32's ``rx_ctrl.timestamp`` is a 32-bit
microsecond counter: 2^32 us = 71.6 minutes; UDP sequence numbers are 8 to 32 bits; the 802.11 MAC
sequence number is 12 bits). Modular arithmetic alone cannot tell a wrap from a reboot, a late packet from
a duplicate, or a long outage from a restart, so each tracker takes explicit limits for what is plausible.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

# Defaults in microseconds for a device clock: packets reordered by the network or the driver arrive at
# most milliseconds late; a wrap is only believed when the step across it is short.
DEFAULT_MAX_BACKWARD_US = 1_000_000
DEFAULT_MAX_WRAP_STEP_US = 60_000_000

# Sequence numbers: how far back a late packet may be and still fill its gap, and the longest forward step
# counted as lost packets (beyond it the sender restarted its counter).
DEFAULT_REORDER_WINDOW = 64
DEFAULT_MAX_SEQUENCE_GAP = 1 << 16


class ClockEvent(enum.Enum):
    """What the last raw timestamp did relative to the newest one seen before it."""

    FIRST = "first"
    FORWARD = "forward"
    WRAP = "wrap"
    BACKWARD = "backward"
    REBOOT = "reboot"


class ClockReading(NamedTuple):
    value: int
    event: ClockEvent


class TimestampUnwrapper:
    """Turns a ``bits``-wide wrapping counter into a monotonic-by-construction integer timeline.

    A raw value is read relative to the newest value seen so far (the reference):

    - at most ``max_backward`` behind it (also across a wrap): a reordered or jittered packet; it gets its
      own earlier time and leaves the reference alone, so a late packet never invents a wrap;
    - ahead of it without wrapping: a forward step of any size (a long outage is still forward);
    - numerically smaller, and the step across the wrap is at most ``max_wrap_step``: a wrap;
    - anything else: the counter restarted (device reboot). The true gap is unknown; the device counts from
      its boot, so at least ``raw`` ticks passed and the timeline continues at ``reference + max(raw, 1)``.

    A long silence that happens to span a wrap reads as a reboot; both mean the stream was broken.
    """

    def __init__(
        self,
        bits: int,
        *,
        max_backward: int = DEFAULT_MAX_BACKWARD_US,
        max_wrap_step: int = DEFAULT_MAX_WRAP_STEP_US,
    ) -> None:
        if bits < 2:
            raise ValueError(f"a counter needs at least 2 bits, got {bits}")
        self.modulus = 1 << bits
        if not 0 <= max_backward < self.modulus // 2 or not 0 < max_wrap_step < self.modulus:
            raise ValueError("max_backward must be below half the counter range and max_wrap_step inside it")
        self._max_backward = max_backward
        self._max_wrap_step = max_wrap_step
        self._ref_raw: int | None = None
        self._ref_value = 0
        self.wraps = 0
        self.backward = 0
        self.reboots = 0

    def update(self, raw: int) -> ClockReading:
        """The unwrapped value of ``raw`` and what kind of step it was."""
        raw %= self.modulus
        if self._ref_raw is None:
            self._ref_raw, self._ref_value = raw, raw
            return ClockReading(raw, ClockEvent.FIRST)
        back = (self._ref_raw - raw) % self.modulus
        if 0 < back <= self._max_backward:
            self.backward += 1
            return ClockReading(self._ref_value - back, ClockEvent.BACKWARD)
        step = (raw - self._ref_raw) % self.modulus
        if raw >= self._ref_raw:
            event = ClockEvent.FORWARD
        elif step <= self._max_wrap_step:
            event = ClockEvent.WRAP
            self.wraps += 1
        else:
            event = ClockEvent.REBOOT
            self.reboots += 1
            step = max(raw, 1)
        self._ref_raw = raw
        self._ref_value += step
        return ClockReading(self._ref_value, event)


class SequenceEvent(enum.Enum):
    FIRST = "first"
    IN_ORDER = "in_order"
    GAP = "gap"
    LATE = "late"
    DUPLICATE = "duplicate"
    RESET = "reset"


class SequenceTracker:
    """Counts lost, duplicated, reordered packets and counter resets from ``bits``-wide sequence numbers.

    A forward step of ``d`` (modulo the range) up to ``max_gap`` counts ``d - 1`` packets lost and remembers
    which, so that one arriving late (within ``reorder_window`` behind the newest) is counted as reordered
    and no longer lost; a number seen again is a duplicate. Any other step means the sender restarted its
    counter. Values wider than ``bits`` are reduced modulo the range, so a parser's running index works too.
    """

    def __init__(
        self,
        bits: int,
        *,
        reorder_window: int = DEFAULT_REORDER_WINDOW,
        max_gap: int = DEFAULT_MAX_SEQUENCE_GAP,
    ) -> None:
        if bits < 2:
            raise ValueError(f"a counter needs at least 2 bits, got {bits}")
        self.modulus = 1 << bits
        self._window = min(reorder_window, self.modulus // 4)
        # Beyond half the range a forward step is as likely a restart as a gap.
        self._max_gap = min(max_gap, self.modulus // 2)
        self._last: int | None = None
        # Recently skipped numbers, oldest first (dicts keep insertion order), at most `_window` of them.
        self._missing: dict[int, None] = {}
        self.received = 0
        self.lost = 0
        self.duplicates = 0
        self.reordered = 0
        self.resets = 0

    def observe(self, seq: int) -> SequenceEvent:
        self.received += 1
        seq %= self.modulus
        if self._last is None:
            self._last = seq
            return SequenceEvent.FIRST
        step = (seq - self._last) % self.modulus
        if step == 0:
            self.duplicates += 1
            return SequenceEvent.DUPLICATE
        if step <= self._max_gap:
            return self._forward(self._last, seq, step)
        if self.modulus - step <= self._window:
            if seq in self._missing:
                del self._missing[seq]
                self.lost -= 1
                self.reordered += 1
                return SequenceEvent.LATE
            self.duplicates += 1
            return SequenceEvent.DUPLICATE
        self.resets += 1
        self._last = seq
        self._missing.clear()
        return SequenceEvent.RESET

    def _forward(self, last: int, seq: int, step: int) -> SequenceEvent:
        skipped = step - 1
        self.lost += skipped
        for k in range(max(1, step - self._window), step):
            self._missing[(last + k) % self.modulus] = None
        self._last = seq
        while self._missing:
            oldest = next(iter(self._missing))
            if (seq - oldest) % self.modulus <= self._window:
                break
            del self._missing[oldest]
        return SequenceEvent.GAP if skipped else SequenceEvent.IN_ORDER
