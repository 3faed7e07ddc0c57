"""``LinkPreparer``: one link's frames -> fixed-rate, gain-normalized, sanitized samples on the grid.

Per frame: sequence bookkeeping, clock unwrapping, the canonical grid (amplitude and unwrapped phase),
gain normalization, linear phase sanitization, then the Hampel filter over packets and the fixed-rate
resampler. A device reboot or a change of antenna layout is a break: the Hampel window is flushed and
nothing is interpolated across it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from appliance.csi.frame import CsiFrame
from appliance.csi.prep.counters import ClockEvent, SequenceTracker, TimestampUnwrapper
from appliance.csi.prep.grid import CANONICAL_SUBCARRIERS, detrend_phase, grid_polar, normalize_gain
from appliance.csi.prep.hampel import StreamingHampel
from appliance.csi.prep.resample import US_PER_S, LinkResampler
from appliance.csi.prep.settings import PrepSettings

F32 = npt.NDArray[np.float32]
N_GRID = CANONICAL_SUBCARRIERS.size
# Packet rate is measured over this many most recent packets of device time (since the last break).
RATE_WINDOW_PACKETS = 256
WIDE_COUNTER_BITS = 64


class CounterWidths(NamedTuple):
    """Bit widths of a wire format's device timestamp (None: it has none, use host time) and sequence."""

    timestamp_bits: int | None
    sequence_bits: int


# esp-csi's rx_ctrl.timestamp and ADR-018's sequence are u32; Micro-ESPectre's sequence is u8; the 802.11
# MAC sequence number the Atheros parser reports is 12 bits; the Intel 5300's timestamp_low is u32 and its
# bfee_count u16. ESPectre files, recordings and the simulator carry 64-bit values that do not wrap.
_WIDTHS: dict[str, CounterWidths] = {
    "esp32-csv": CounterWidths(32, 32),
    "atheros": CounterWidths(WIDE_COUNTER_BITS, 12),
    "intel5300": CounterWidths(32, 16),
    "espectre-npz": CounterWidths(WIDE_COUNTER_BITS, WIDE_COUNTER_BITS),
    "recording": CounterWidths(WIDE_COUNTER_BITS, WIDE_COUNTER_BITS),
    "simulated": CounterWidths(WIDE_COUNTER_BITS, WIDE_COUNTER_BITS),
}
_ESP32_UDP_SEQUENCE_BITS = {"adr018": 32, "espectre": 8}


def counter_widths(frame: CsiFrame) -> CounterWidths:
    """The counter widths of the format ``frame`` came in (ESP32 UDP frames carry no device clock)."""
    if frame.wire_format == "esp32-udp":
        return CounterWidths(None, _ESP32_UDP_SEQUENCE_BITS.get(str(frame.meta.get("protocol")), 32))
    return _WIDTHS[frame.wire_format]


@dataclass(frozen=True, slots=True)
class PreparedSample:
    """One fixed-rate sample of a link. When ``valid`` is False every array and ``rssi_dbm`` are NaN.

    ``amplitude`` and ``phase`` are ``[n_pairs, 52]`` (pairs rx-major, as ``csi.reshape(n_rx * n_tx, -1)``),
    ``gain`` is each pair's RMS amplitude in the chip's counts before normalization. ``phase`` has the
    packet's common phase and timing slope removed jointly across pairs (``grid.detrend_phase``), so pairs
    keep their phase differences; it is wrapped to (-pi, pi] and resampled as a phasor, never across a wrap.
    """

    link: str
    t_s: float
    amplitude: F32
    phase: F32
    gain: F32
    rssi_dbm: float
    valid: bool


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Counters of one link since it started. ``lost`` counts the packets missing from sequence gaps."""

    packets: int
    used: int
    lost: int
    duplicates: int
    reordered: int
    sequence_resets: int
    clock_wraps: int
    reboots: int
    late: int
    unusable: int
    layout_changes: int
    outliers: int
    samples: int
    missing_samples: int
    packets_per_s: float


class _Packet(NamedTuple):
    t_us: int
    phase: F32
    gain: F32
    rssi_dbm: float


class LinkPreparer:
    """Composes sequence tracking, clock unwrapping, grid, gain, phase, Hampel and resampling for one link.

    Counter widths come from the first frame's wire format unless given. ``push`` costs one grid mapping,
    a few small numpy reductions and one Hampel median per frame; ``flush`` drains the Hampel delay at the
    end of a stream.
    """

    def __init__(self, settings: PrepSettings | None = None, *, widths: CounterWidths | None = None) -> None:
        self.settings = settings or PrepSettings()
        self._widths = widths
        self._clock: TimestampUnwrapper | None = None
        self._sequence: SequenceTracker | None = None
        self._hampel: StreamingHampel[_Packet] = StreamingHampel(
            self.settings.hampel_half_window, self.settings.hampel_sigmas
        )
        self._resampler = LinkResampler(
            self.settings.rate_hz,
            max_gap_s=self.settings.max_gap_s,
            restart_after_s=self.settings.restart_after_s,
        )
        self._link = ""
        self._n_pairs = 0
        self._last_t: int | None = None
        self._recent_t: deque[int] = deque(maxlen=RATE_WINDOW_PACKETS)
        self._packets = self._used = self._late = self._unusable = self._layout_changes = 0
        self._samples = self._missing = 0

    def _counters(self, frame: CsiFrame) -> tuple[TimestampUnwrapper, SequenceTracker]:
        if self._clock is None or self._sequence is None:
            widths = self._widths or counter_widths(frame)
            self._widths = widths
            self._clock = TimestampUnwrapper(
                widths.timestamp_bits or WIDE_COUNTER_BITS,
                max_backward=round(self.settings.max_reorder_s * US_PER_S),
                max_wrap_step=round(self.settings.max_wrap_step_s * US_PER_S),
            )
            self._sequence = SequenceTracker(widths.sequence_bits)
            self._link = frame.link
        return self._clock, self._sequence

    def push(self, frame: CsiFrame) -> list[PreparedSample]:
        """Feed one frame; returns the samples it settled (often none or one, several after a gap)."""
        clock, sequence = self._counters(frame)
        self._packets += 1
        sequence.observe(frame.seq)
        device_clock = self._widths is not None and self._widths.timestamp_bits is not None
        raw = frame.device_ts_us if device_clock else round(frame.host_ts * US_PER_S)
        t_us, event = clock.update(raw)
        out: list[PreparedSample] = []
        if event is ClockEvent.REBOOT:
            out += self._break()
        if self._last_t is not None and t_us <= self._last_t:
            self._late += 1
            return out
        n_rx, n_tx, n_sc = frame.csi.shape
        polar = grid_polar(frame.csi.reshape(n_rx * n_tx, n_sc), frame.subcarriers)
        if polar is None:
            self._unusable += 1
            return out
        if self._n_pairs and n_rx * n_tx != self._n_pairs:
            self._layout_changes += 1
            out += self._break()
        self._n_pairs = n_rx * n_tx
        self._last_t = t_us
        self._recent_t.append(t_us)
        self._used += 1
        amplitude, phase = polar
        normalized, gain = normalize_gain(amplitude)
        packet = _Packet(t_us, detrend_phase(phase), gain, frame.rssi_dbm)
        for filtered, settled in self._hampel.push(normalized, packet):
            out += self._resample(filtered, settled)
        return out

    def flush(self) -> list[PreparedSample]:
        """Samples still held by the Hampel delay (end of a stream)."""
        out: list[PreparedSample] = []
        for filtered, settled in self._hampel.flush():
            out += self._resample(filtered, settled)
        return out

    def _break(self) -> list[PreparedSample]:
        out = self.flush()
        self._resampler.interrupt()
        self._last_t = None
        self._recent_t.clear()
        return out

    def _resample(self, amplitude: F32, packet: _Packet) -> list[PreparedSample]:
        # Phase travels as cosine and sine: interpolating the angle itself across a wrap would invent one.
        vector = np.concatenate(
            [
                amplitude.ravel(),
                np.cos(packet.phase).ravel(),
                np.sin(packet.phase).ravel(),
                packet.gain,
                np.array([packet.rssi_dbm], np.float32),
            ]
        )
        points = self._resampler.push(packet.t_us, vector)
        n = self._n_pairs * N_GRID
        shape = (self._n_pairs, N_GRID)
        samples = []
        for point in points:
            values = point.values
            valid = values is not None
            if values is None:
                values = np.full(vector.shape, np.nan, dtype=np.float32)
                self._missing += 1
            samples.append(
                PreparedSample(
                    link=self._link,
                    t_s=point.t_us / US_PER_S,
                    amplitude=values[:n].reshape(shape),
                    phase=np.arctan2(values[2 * n : 3 * n], values[n : 2 * n]).reshape(shape),
                    gain=values[3 * n : 3 * n + self._n_pairs],
                    rssi_dbm=float(values[-1]),
                    valid=valid,
                )
            )
        self._samples += len(samples)
        return samples

    @property
    def stats(self) -> LinkStats:
        clock, sequence = self._clock, self._sequence
        recent = self._recent_t
        span_us = recent[-1] - recent[0] if len(recent) > 1 else 0
        return LinkStats(
            packets=self._packets,
            used=self._used,
            lost=sequence.lost if sequence else 0,
            duplicates=sequence.duplicates if sequence else 0,
            reordered=sequence.reordered if sequence else 0,
            sequence_resets=sequence.resets if sequence else 0,
            clock_wraps=clock.wraps if clock else 0,
            reboots=clock.reboots if clock else 0,
            late=self._late,
            unusable=self._unusable,
            layout_changes=self._layout_changes,
            outliers=self._hampel.outliers,
            samples=self._samples,
            missing_samples=self._missing,
            packets_per_s=(len(recent) - 1) * US_PER_S / span_us if span_us > 0 else 0.0,
        )
