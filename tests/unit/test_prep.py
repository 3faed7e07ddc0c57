"""Per-link signal preparation: counters, canonical grid, gain, phase, Hampel, resampling, LinkPreparer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.csi.frame import CsiFrame
from appliance.csi.prep import (
    CANONICAL_SUBCARRIERS,
    ClockEvent,
    CounterWidths,
    LinkPreparer,
    LinkResampler,
    PreparedSample,
    PrepSettings,
    SequenceEvent,
    SequenceTracker,
    StreamingHampel,
    TimestampUnwrapper,
    canonical_amplitude_phase,
    hampel_filter,
    normalize_gain,
    rx_phase_difference,
    sanitize_phase,
    to_canonical_grid,
)
from tests.captures import capture

WRAP_32 = 1 << 32
ESP32_62 = np.concatenate([np.arange(-32, 0), np.arange(2, 32)]).astype(np.int16)
ESP32_64 = np.arange(-32, 32, dtype=np.int16)
ATHEROS_56 = np.concatenate([np.arange(-28, 0), np.arange(1, 29)]).astype(np.int16)
INTEL_30 = np.concatenate([np.arange(-28, -1, 2), [-1, 1], np.arange(3, 28, 2), [28]]).astype(np.int16)


# ---------------------------------------------------------------------------------------------- counters


def test_unwrapper_crosses_the_32_bit_boundary() -> None:
    """An ESP32 stream at 100 packets/s from 71.5 to 71.7 minutes after boot crosses 2^32 us once."""
    true_us = np.arange(round(71.5 * 60e6), round(71.7 * 60e6), 10_000)
    unwrapper = TimestampUnwrapper(32)
    values = [unwrapper.update(int(t) % WRAP_32).value for t in true_us]
    assert np.array_equal(np.array(values) - values[0], true_us - true_us[0])
    assert unwrapper.wraps == 1
    assert unwrapper.reboots == 0


def test_unwrapper_tolerates_reordering_across_the_wrap() -> None:
    unwrapper = TimestampUnwrapper(32)
    raw = [WRAP_32 - 3000, WRAP_32 - 1000, 500, WRAP_32 - 200, 1500]
    readings = [unwrapper.update(r) for r in raw]
    base = readings[0].value
    assert [r.value - base for r in readings] == [0, 2000, 3500, 2800, 4500]
    assert [r.event for r in readings] == [
        ClockEvent.FIRST,
        ClockEvent.FORWARD,
        ClockEvent.WRAP,
        ClockEvent.BACKWARD,
        ClockEvent.FORWARD,
    ]
    assert unwrapper.wraps == 1


def test_unwrapper_reports_a_reboot_and_stays_monotonic() -> None:
    unwrapper = TimestampUnwrapper(32)
    before = unwrapper.update(40 * 60_000_000).value
    after = unwrapper.update(2_000_000)
    assert after.event is ClockEvent.REBOOT
    assert after.value == before + 2_000_000
    assert unwrapper.update(2_010_000).value == after.value + 10_000
    assert unwrapper.reboots == 1


def test_unwrapper_reads_a_long_outage_without_a_wrap_as_forward() -> None:
    unwrapper = TimestampUnwrapper(32)
    unwrapper.update(1_000)
    assert unwrapper.update(1_000 + 30 * 60_000_000).event is ClockEvent.FORWARD


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 2 * WRAP_32),
    steps=st.lists(st.integers(0, 50_000_000), min_size=1, max_size=300),
)
def test_unwrapper_recovers_any_increasing_sequence(start: int, steps: list[int]) -> None:
    true_us = start + np.cumsum([0, *steps])
    unwrapper = TimestampUnwrapper(32)
    values = [unwrapper.update(int(t)).value for t in true_us]
    assert np.array_equal(np.array(values) - values[0], true_us - true_us[0])
    assert unwrapper.reboots == 0


def test_sequence_tracker_counts_gaps_duplicates_reorders_and_resets() -> None:
    tracker = SequenceTracker(16)
    top = (1 << 16) - 1
    events = [
        tracker.observe(s)
        for s in [top - 5, top - 4, top - 2, top - 1, top - 3, top - 1, top, 0, 3, 1, 40_000]
    ]
    assert events == [
        SequenceEvent.FIRST,
        SequenceEvent.IN_ORDER,
        SequenceEvent.GAP,
        SequenceEvent.IN_ORDER,
        SequenceEvent.LATE,
        SequenceEvent.DUPLICATE,
        SequenceEvent.IN_ORDER,
        SequenceEvent.IN_ORDER,
        SequenceEvent.GAP,
        SequenceEvent.LATE,
        SequenceEvent.RESET,
    ]
    assert (tracker.lost, tracker.duplicates, tracker.reordered, tracker.resets) == (1, 1, 2, 1)


@settings(max_examples=40, deadline=None)
@given(kept=st.lists(st.booleans(), min_size=2, max_size=2000), bits=st.sampled_from([8, 12, 16, 32]))
def test_sequence_tracker_counts_every_lost_packet(kept: list[bool], bits: int) -> None:
    kept[0] = kept[-1] = True
    tracker = SequenceTracker(bits)
    for seq in np.flatnonzero(kept):
        tracker.observe(int(seq) + 200)
    assert tracker.lost == kept.count(False)
    assert tracker.resets == 0


# ------------------------------------------------------------------------------------------ grid, gain, phase


def _channel(k: np.ndarray, common: float = 0.7, slope: float = -0.09) -> np.ndarray:
    """A smooth channel with a non-linear phase, plus a common phase and a timing slope."""
    kf = k.astype(np.float64)
    amplitude = 30 * (1 + 0.3 * np.cos(kf / 9))
    phase = common + slope * kf + 0.4 * np.sin(kf / 7)
    return amplitude * np.exp(1j * phase)


def _esp32_columns(k: np.ndarray) -> np.ndarray:
    """As a chip reports it: zero guard and DC, and non-zero garbage at -29 like a classic ESP32."""
    h = _channel(k)
    h[(np.abs(k) > 28) | (k == 0)] = 0
    h[k == -29] = 7 - 3j
    return h


def test_canonical_grid_is_the_same_from_every_chip_layout() -> None:
    truth = _channel(CANONICAL_SUBCARRIERS)
    for k in (ESP32_62, ESP32_64, ATHEROS_56, INTEL_30):
        csi = _esp32_columns(k)[np.newaxis, np.newaxis].astype(np.complex64)
        grid = to_canonical_grid(csi, k)[0, 0]
        assert grid.shape == (52,)
        np.testing.assert_allclose(np.abs(grid), np.abs(truth), rtol=0.02, err_msg=str(k.size))
        np.testing.assert_allclose(np.angle(grid * np.conj(truth)), 0, atol=0.02, err_msg=str(k.size))


def test_canonical_grid_refuses_to_invent_a_wide_hole() -> None:
    csi = _esp32_columns(ATHEROS_56)[np.newaxis, np.newaxis].astype(np.complex64)
    csi[..., 10:20] = 0
    with pytest.raises(ValueError, match="canonical grid"):
        to_canonical_grid(csi, ATHEROS_56)


def test_sanitize_phase_removes_common_phase_and_slope_exactly() -> None:
    rng = np.random.default_rng(1)
    reference = sanitize_phase(np.angle(_channel(ATHEROS_56, 0, 0)).astype(np.float32), ATHEROS_56)
    for _ in range(20):
        h = _channel(ATHEROS_56, common=rng.uniform(0, 2 * np.pi), slope=rng.uniform(-0.15, 0.15))
        sanitized = sanitize_phase(np.angle(h).astype(np.float32), ATHEROS_56)
        np.testing.assert_allclose(sanitized, reference, atol=1e-4)


def test_rx_phase_difference_cancels_the_common_phase() -> None:
    rng = np.random.default_rng(2)
    antennas = np.stack([_channel(ATHEROS_56, 0, 0) * np.exp(1j * 0.3 * r) for r in range(3)])
    reference = rx_phase_difference(antennas[:, np.newaxis].astype(np.complex64))
    for _ in range(5):
        common = np.exp(1j * (rng.uniform(0, 2 * np.pi) + rng.uniform(-0.1, 0.1) * ATHEROS_56))
        shifted = (antennas * common)[:, np.newaxis].astype(np.complex64)
        np.testing.assert_allclose(rx_phase_difference(shifted), reference, atol=1e-4)
    assert reference.shape == (2, 1, 56)


def test_gain_normalization_hides_an_agc_step() -> None:
    csi = _esp32_columns(ESP32_62)[np.newaxis, np.newaxis].astype(np.complex64)
    amplitude, _ = canonical_amplitude_phase(csi, ESP32_62)
    stepped, _ = canonical_amplitude_phase(csi * np.float32(10 ** (3 / 20)), ESP32_62)
    normalized, gain = normalize_gain(amplitude)
    normalized_step, gain_step = normalize_gain(stepped)
    np.testing.assert_allclose(normalized_step, normalized, rtol=1e-5)
    np.testing.assert_allclose(gain_step / gain, 10 ** (3 / 20), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.mean(normalized**2)), 1, rtol=1e-5)


# ------------------------------------------------------------------------------------------------- Hampel


def test_hampel_removes_spikes_and_leaves_a_clean_signal_alone() -> None:
    t = np.arange(500)
    clean = (1 + 0.2 * np.sin(t / 15)[:, None, None] * np.ones((1, 2, 52))).astype(np.float32)
    filtered, outliers = hampel_filter(clean, 5, 3.0)
    assert not outliers.any()
    np.testing.assert_array_equal(filtered, clean)
    spiky = clean.copy()
    spikes = [(40, 0, 3), (41, 1, 7), (300, 0, 51), (499, 1, 0)]
    for i in spikes:
        spiky[i] += 5
    filtered, outliers = hampel_filter(spiky, 5, 3.0)
    assert {tuple(map(int, i)) for i in np.argwhere(outliers)} == set(spikes)
    np.testing.assert_allclose(filtered, clean, atol=0.05)


def test_streaming_hampel_matches_the_batch_filter() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(1, 0.05, (97, 3, 52)).astype(np.float32)
    x[rng.random(x.shape) < 0.01] += 3
    batch, _ = hampel_filter(x, 4, 3.0)
    stream: StreamingHampel[int] = StreamingHampel(4, 3.0)
    out = [item for i in range(len(x)) for item in stream.push(x[i], i)] + stream.flush()
    assert [i for _, i in out] == list(range(len(x)))
    np.testing.assert_array_equal(np.stack([a for a, _ in out]), batch)


# ------------------------------------------------------------------------------------------------ resampling


def test_resampler_puts_jittered_lossy_packets_on_an_exact_clock() -> None:
    rng = np.random.default_rng(4)
    nominal = np.arange(0, 10_000_000, 7_000)
    t_us = nominal + rng.integers(-1500, 1500, nominal.size)
    t_us = t_us[rng.random(t_us.size) > 0.1]
    t_us[t_us.size // 2 :] += 400_000  # a 0.4 s outage halfway
    resampler = LinkResampler(100.0, max_gap_s=0.1, restart_after_s=5.0)
    slope = 1e-6
    points = [p for t in t_us for p in resampler.push(int(t), np.array([t * slope], np.float32))]
    times = np.array([p.t_us for p in points])
    np.testing.assert_array_equal(np.diff(times), 10_000)
    assert times[0] >= t_us[0] and times[-1] <= t_us[-1]
    valid = np.array([p.values is not None for p in points])
    outage = (times > t_us[t_us.size // 2 - 1]) & (times < t_us[t_us.size // 2])
    assert not valid[outage].any() and outage.sum() >= 39
    assert valid[~outage].all()
    values = np.array([p.values[0] for p in points if p.values is not None])
    np.testing.assert_allclose(values, times[valid] * slope, rtol=1e-5)


def test_resampler_restarts_after_a_long_outage() -> None:
    resampler = LinkResampler(100.0, max_gap_s=0.1, restart_after_s=5.0)
    one = np.ones(1, np.float32)
    for t in range(0, 1_000_000, 10_000):
        resampler.push(t, one)
    points = resampler.push(60_000_000, one)
    assert [(p.t_us, p.values is None) for p in points] == [(1_000_000, True), (60_000_000, False)]
    assert resampler.restarts == 1


# --------------------------------------------------------------------------------------------- LinkPreparer


def _frame(i: int, t_us: int, csi: np.ndarray, k: np.ndarray, *, link: str = "a") -> CsiFrame:
    return CsiFrame(
        link=link,
        device_ts_us=t_us,
        host_ts=0.0,
        seq=i,
        rssi_dbm=-50.0,
        noise_dbm=-95.0,
        channel_mhz=2437,
        bandwidth_mhz=20,
        csi=csi.astype(np.complex64),
        subcarriers=k,
        wire_format="esp32-csv",
    )


def test_link_preparer_crosses_a_wrap_and_survives_a_reboot() -> None:
    rng = np.random.default_rng(5)
    base = _esp32_columns(ESP32_62)
    preparer = LinkPreparer(PrepSettings(rate_hz=50.0))
    samples = []
    start = WRAP_32 - 2_000_000
    times = [start + i * 10_000 for i in range(400)] + [300_000 + i * 10_000 for i in range(100)]
    for i, t in enumerate(times):
        h = (
            base
            * rng.uniform(0.7, 1.4)
            * np.exp(1j * (rng.uniform(0, 6.3) + rng.uniform(-0.1, 0.1) * ESP32_62))
        )
        samples += preparer.push(_frame(i % 256, t % WRAP_32, h[np.newaxis, np.newaxis], ESP32_62))
    samples += preparer.flush()
    stats = preparer.stats
    assert (stats.clock_wraps, stats.reboots, stats.lost, stats.late, stats.unusable) == (1, 1, 0, 0, 0)
    t_s = np.array([s.t_s for s in samples])
    assert np.all(np.diff(t_s) > 0)
    valid = [s for s in samples if s.valid]
    assert len(valid) >= 240
    amplitude = np.stack([s.amplitude for s in valid])
    phase = np.stack([s.phase for s in valid])
    assert amplitude.shape[1:] == (1, 52)
    assert np.ptp(amplitude, axis=0).max() < 1e-2
    assert np.ptp(phase, axis=0).max() < 0.05
    assert stats.packets_per_s == pytest.approx(100, rel=0.01)


def test_prepared_phase_keeps_the_chains_differences_and_loses_the_packets_rotation() -> None:
    """Three receive chains with their own phase offsets (as real radios boot) under a random common phase
    and timing slope per packet: the prepared phase of chain r minus chain 0 is the conjugate product's
    phase (``rx_phase_difference``, an independent definition), the same in every sample."""
    rng = np.random.default_rng(8)
    offsets = np.array([0.0, 2.9, -2.4])  # near the wrap, where interpolating an angle would go wrong
    chains = np.stack([_channel(ATHEROS_56, 0, 0) * np.exp(1j * (o + 0.02 * ATHEROS_56)) for o in offsets])
    expected = rx_phase_difference(chains[:, np.newaxis].astype(np.complex64))[:, 0]  # (2, 56)
    on_grid = np.isin(ATHEROS_56, CANONICAL_SUBCARRIERS)
    preparer = LinkPreparer(PrepSettings(rate_hz=100.0))
    samples = []
    for i in range(60):
        rotation = np.exp(1j * (rng.uniform(0, 2 * np.pi) + rng.uniform(-0.15, 0.15) * ATHEROS_56))
        csi = (chains * rotation)[:, np.newaxis]
        samples += preparer.push(_frame(i, 1_000_000 + i * 9_700, csi, ATHEROS_56))
    valid = [s for s in samples if s.valid]
    assert len(valid) > 40
    for sample in valid:
        difference = np.angle(np.exp(1j * (sample.phase[1:] - sample.phase[:1])))
        np.testing.assert_allclose(np.angle(np.exp(1j * (difference - expected[:, on_grid]))), 0.0, atol=2e-3)


def test_link_preparer_uses_host_time_for_esp32_udp() -> None:
    preparer = LinkPreparer(widths=CounterWidths(None, 8))
    h = _esp32_columns(ESP32_64)[np.newaxis, np.newaxis]
    for i in range(50):
        frame = _frame(i % 256, 0, h, ESP32_64)
        preparer.push(CsiFrame(**{**_fields(frame), "host_ts": 1000.0 + i * 0.01}))
    assert preparer.stats.used == 50
    assert preparer.stats.packets_per_s == pytest.approx(100, rel=0.01)


def _fields(frame: CsiFrame) -> dict[str, object]:
    return {name: getattr(frame, name) for name in CsiFrame.__dataclass_fields__}


def test_prep_settings_reject_unknown_keys_and_inverted_gaps() -> None:
    with pytest.raises(ValueError, match="extra"):
        PrepSettings.model_validate({"rate": 10})
    with pytest.raises(ValueError, match="restart_after_s"):
        PrepSettings(max_gap_s=2.0, restart_after_s=1.0)


# --------------------------------------------------------------------------------------------- real captures


def _run(frames: list[CsiFrame]) -> tuple[LinkPreparer, list[PreparedSample]]:
    preparer = LinkPreparer()
    samples = [s for f in frames for s in preparer.push(f)] + preparer.flush()
    return preparer, samples


def _raw_phase_spread(frames: list[CsiFrame]) -> float:
    """Circular spread of the raw phase across packets, per (pair, grid tone), averaged."""
    phases = np.stack([canonical_amplitude_phase(f.csi, f.subcarriers)[1] for f in frames])
    return float(np.mean(1 - np.abs(np.mean(np.exp(1j * phases), axis=0))))


def _sanitized_phase_spread(samples: list[PreparedSample]) -> float:
    phases = np.stack([s.phase for s in samples if s.valid])
    return float(np.mean(1 - np.abs(np.mean(np.exp(1j * phases), axis=0))))


@pytest.mark.parametrize(
    ("name", "rate"),
    [
        ("baseline_esp32_64sc_20260214_183059.npz", 96),
        ("movement_esp32_64sc_20260214_183141.npz", 73),
        ("baseline_s3_64sc_20260117_222606.npz", 135),
        ("movement_s3_64sc_20260117_222626.npz", 136),
    ],
)
def test_espectre_captures_prepare_cleanly(name: str, rate: float) -> None:
    from appliance.csi.formats.espectre_npz import read_espectre_npz

    frames = read_espectre_npz(capture(f"esp32/{name}"))
    preparer, samples = _run(frames)
    stats = preparer.stats
    assert (stats.used, stats.unusable, stats.late, stats.lost) == (len(frames), 0, 0, 0)
    assert stats.packets_per_s == pytest.approx(rate, rel=0.03)
    duration_s = (frames[-1].device_ts_us - frames[0].device_ts_us) / 1e6
    assert len(samples) == pytest.approx(duration_s * 100, abs=2)
    assert all(s.valid for s in samples)
    assert _sanitized_phase_spread(samples) < 0.2 * _raw_phase_spread(frames)


def test_atheros_capture_prepares_cleanly() -> None:
    from appliance.csi.formats.atheros import read_atheros_file

    frames = read_atheros_file(capture("atheros/ath_csi_1.dat"))
    preparer, samples = _run(frames)
    stats = preparer.stats
    assert (stats.used, stats.unusable, stats.late) == (len(frames), 0, 0)
    assert stats.packets_per_s == pytest.approx(460, rel=0.03)
    assert 0 < stats.lost < 0.1 * len(frames)
    assert samples[0].amplitude.shape == (6, 52)
    assert all(s.valid for s in samples)
    assert _sanitized_phase_spread(samples) < 0.2 * _raw_phase_spread(frames)
