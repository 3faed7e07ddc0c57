"""Per-link signal preparation: raw ``CsiFrame``s in, fixed-rate, chip-independent samples out.

``counters`` (wrapping device clocks and sequence numbers), ``grid`` (the canonical subcarrier grid, gain
normalization, phase sanitization), ``hampel`` (outlier filter over time), ``resample`` (fixed-rate clock),
``link`` (``LinkPreparer``, which composes them for one link) and ``settings`` (``PrepSettings``, the
``prep:`` section of the config). Pure numpy and pydantic, no I/O; imports only ``appliance.csi.frame``.
"""

from appliance.csi.prep.counters import (
    ClockEvent,
    ClockReading,
    SequenceEvent,
    SequenceTracker,
    TimestampUnwrapper,
)
from appliance.csi.prep.grid import (
    CANONICAL_SUBCARRIERS,
    canonical_amplitude_phase,
    normalize_gain,
    rx_phase_difference,
    sanitize_phase,
    to_canonical_grid,
)
from appliance.csi.prep.hampel import StreamingHampel, hampel_filter
from appliance.csi.prep.link import CounterWidths, LinkPreparer, LinkStats, PreparedSample, counter_widths
from appliance.csi.prep.resample import LinkResampler, ResampledPoint
from appliance.csi.prep.settings import PrepSettings

__all__ = [
    "CANONICAL_SUBCARRIERS",
    "ClockEvent",
    "ClockReading",
    "CounterWidths",
    "LinkPreparer",
    "LinkResampler",
    "LinkStats",
    "PrepSettings",
    "PreparedSample",
    "ResampledPoint",
    "SequenceEvent",
    "SequenceTracker",
    "StreamingHampel",
    "TimestampUnwrapper",
    "canonical_amplitude_phase",
    "counter_widths",
    "hampel_filter",
    "normalize_gain",
    "rx_phase_difference",
    "sanitize_phase",
    "to_canonical_grid",
]
