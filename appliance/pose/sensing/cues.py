"""Per-link physical cues at the full sample rate: what a body does to one link, measured against the
link's empty room.

Each link's prepared samples (``appliance.csi.prep``: fixed rate, Hampel-filtered, on the canonical grid,
gain-normalized amplitude, per-pair gain, RSSI, jointly sanitized phase) go into a ``LinkCueExtractor``;
``cues()`` then reports, over the most recent samples:

- **RSSI change** (dB): mean RSSI over ``WINDOW_S`` minus the empty room's. A body near the line of sight
  takes several dB off it; measured before the AGC, it is immune to the gain steps that hide this change
  from the CSI.
- **Beat power and its Doppler spectrum** (0-40 Hz): the spectrum over ``WINDOW_S`` of each tone's log
  amplitude shape (the gain-normalized amplitude, so AGC steps and common gain drop out), averaged over
  tones and antenna pairs, in units of the empty room's noise in each bin. A moving body's echo beats
  against the static paths at its bistatic Doppler frequency |v . (e_tx + e_rx)| / lambda, so the
  spectrum says how fast the path via the body changes, and its total above ``MOTION_BAND_HZ`` how strong
  that body's echo is on this link.
- **Profile change**: how far the mean amplitude shape over ``STILL_WINDOW_S`` is from the empty room's, in
  units of its own noise: a still body changes the static multipath too.
- **Breathing power**: the 0.1-0.5 Hz band of the shape over ``BREATHING_WINDOW_S``, over the empty room's
  power in that band. Breathing and postural sway move a still body's echo by millimetres, at those rates.
- For multi-antenna links, the **residual**: each sample's channel on every pair, with the packet's phase,
  slope and gain removed jointly across chains (the prep's joint sanitization and one gain for all pairs),
  minus the empty room's static channel. Its spatial covariance across the receive chains, corrected by
  chain phases self-calibrated from the line of sight (``ChainCalibration``), says from which directions
  moving echoes arrive.

The empty-room reference is learnt while the room is known to be empty (calibration) and afterwards adapts
only when the caller says the room is confidently empty (``adapt``), so a person sitting still for hours
never becomes part of the room.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.csi.prep import CANONICAL_SUBCARRIERS, PreparedSample

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

N_TONES = int(CANONICAL_SUBCARRIERS.size)
WINDOW_S = 1.0
# Doppler bins: 1 Hz wide from 0 to DOPPLER_MAX_HZ (a walker's bistatic Doppler reaches 2 v / lambda,
# about 16 Hz at 1 m/s; limbs swing up to twice as fast).
DOPPLER_MAX_HZ = 40
N_DOPPLER = DOPPLER_MAX_HZ + 1
# Below this the spectrum is drift, breathing and sway, not gait.
MOTION_BAND_HZ = 2.0
STILL_WINDOW_S = 4.0
BREATHING_BAND_HZ = (0.1, 0.5)
BREATHING_WINDOW_S = 30.0
# The slow signals (profile, breathing) are kept as means over this many seconds.
SLOW_STEP_S = 0.1
# The breathing power is recomputed once a second, not at every reading: over a 30 s window a tenth of a
# second changes it by nothing a reading could tell, and its spectrum is the costliest cue.
BREATHING_EVERY_STEPS = 10
# Amplitudes below this (normalized units, RMS = 1) are deep fades: floor them before the log.
AMPLITUDE_FLOOR = 1e-2
# A reference is usable after this many seconds of samples (the motion detector calibrates 10 s).
REFERENCE_MIN_S = 4.0
# Smallest per-bin noise power a reference reports, so a noiseless simulated channel stays finite.
NOISE_FLOOR = 1e-8
# The reference follows a confidently empty room with this time constant.
ADAPT_TIME_CONSTANT_S = 300.0


@dataclass(frozen=True, slots=True)
class LinkCues:
    """One link's cues at ``t_s`` (device time of its newest sample). Ratios are linear powers over the
    empty room's; a link whose reference is not ready yet reports ``ready`` False and zeros."""

    link: str
    t_s: float
    ready: bool
    rssi_change_db: float
    rssi_empty_dbm: float  # the empty room's RSSI: how strong this link's static channel is
    beat: float  # beat power above MOTION_BAND_HZ over the empty room's (1: as empty)
    echo_dbm: float  # beat power above MOTION_BAND_HZ as received power (dBm): the moving echo's strength
    doppler: F32  # (N_DOPPLER,) power per 1 Hz bin over the empty room's
    profile_change: float  # mean squared z of the slow shape against the empty room's profile
    breathing: float  # breathing-band power over the empty room's (1: as empty)
    covariance: C128 | None  # (n_rx, n_rx) spatial covariance of the moving residual (multi-antenna)
    static_covariance: C128 | None  # (n_rx, n_rx) of the empty room's channel: what calibrates the chains


class _Running:
    """Mean of arrays, by count while learning, then exponentially with a time constant when adapting."""

    def __init__(self) -> None:
        self.value: F64 | None = None
        self.count = 0

    def add(self, x: F64, weight: float | None = None) -> None:
        if self.value is None or self.value.shape != x.shape:
            self.value, self.count = x.astype(np.float64, copy=True), 1
            return
        self.count += 1
        w = 1.0 / self.count if weight is None else weight
        self.value += w * (x - self.value)


class EmptyRoom:
    """A link's empty-room reference: RSSI, amplitude shape and its noise, Doppler and breathing noise,
    and (multi-antenna) the static channel."""

    def __init__(self) -> None:
        self.rssi = _Running()
        self.shape = _Running()
        self.shape_sq = _Running()
        self.doppler = _Running()
        self.breathing = _Running()
        self.static = _Running()  # real/imag stacked, (2, pairs, tones)
        self.seconds = 0.0

    @property
    def ready(self) -> bool:
        return self.seconds >= REFERENCE_MIN_S and self.doppler.value is not None

    def shape_noise(self) -> F64:
        """Per pair and tone, the variance over time of a sample's shape in the empty room."""
        assert self.shape.value is not None and self.shape_sq.value is not None
        variance: F64 = np.maximum(self.shape_sq.value - self.shape.value**2, NOISE_FLOOR)
        return variance

    def static_channel(self) -> C128 | None:
        if self.static.value is None:
            return None
        channel: C128 = self.static.value[0] + 1j * self.static.value[1]
        return channel


class LinkCueExtractor:
    """Cues of one link; ``push`` every prepared sample, ``cues`` whenever a reading is wanted."""

    def __init__(self, link: str, rate_hz: float, n_rx: int = 1) -> None:
        self.link = link
        self.rate_hz = rate_hz
        self.n_rx = n_rx
        self._capacity = max(8, round(max(WINDOW_S, STILL_WINDOW_S) * rate_hz) + 1)
        self._n_pairs = 0
        self._times = np.full(self._capacity, np.nan)
        self._rssi = np.full(self._capacity, np.nan)
        self._amplitude = np.zeros((self._capacity, 1, N_TONES), np.float32)
        self._log_shape = np.zeros((self._capacity, 1, N_TONES), np.float32)
        self._channel = np.zeros((self._capacity, 1, N_TONES), np.complex64)
        self._valid = np.zeros(self._capacity, bool)
        self._next = 0
        self._filled = 0
        # Samples pushed but not yet settled (``_settle``): per-sample work is done per reading, in bulk.
        self._pending = 0
        slow = round(BREATHING_WINDOW_S / SLOW_STEP_S)
        self._slow = np.full((slow, N_TONES), np.nan, np.float32)
        self._slow_next = 0
        self._slow_filled = 0
        self._slow_sum = np.zeros(N_TONES, np.float64)
        self._slow_count = 0
        self._slow_started: float | None = None
        self._slow_steps = 0
        self._breathing_power: float | None = None
        self._breathing_at = 0
        self.reference = EmptyRoom()
        self._last_t: float | None = None

    def _reset(self, n_pairs: int) -> None:
        self._n_pairs = n_pairs
        self._amplitude = np.zeros((self._capacity, n_pairs, N_TONES), np.float32)
        self._log_shape = np.zeros((self._capacity, n_pairs, N_TONES), np.float32)
        self._channel = np.zeros((self._capacity, n_pairs, N_TONES), np.complex64)
        self._valid[:] = False
        self._filled = self._pending = 0
        self.reference = EmptyRoom()

    def push(self, sample: PreparedSample) -> None:
        pairs = sample.amplitude.shape[0]
        if pairs != self._n_pairs:
            self._reset(pairs)
        i = self._next
        self._times[i] = sample.t_s
        self._valid[i] = sample.valid
        self._last_t = sample.t_s
        if sample.valid:
            self._rssi[i] = sample.rssi_dbm
            self._amplitude[i] = sample.amplitude
            if pairs > 1:
                # One gain for all pairs: the packet's AGC is common, the chains' relative gains are not.
                gain = sample.gain / np.sqrt(np.mean(sample.gain**2))
                self._channel[i] = (sample.amplitude * gain[:, None]) * np.exp(1j * sample.phase)
        self._next = (i + 1) % self._capacity
        self._filled = min(self._filled + 1, self._capacity)
        self._pending += 1
        if self._pending == self._capacity:
            self._settle()

    def _settle(self) -> None:
        """The pending samples' log shapes, and the slow steps they close, in one go."""
        n, self._pending = self._pending, 0
        if n == 0:
            return
        index = (self._next - n + np.arange(n)) % self._capacity
        shapes = self._log_shape[index] = np.log(np.maximum(self._amplitude[index], AMPLITUDE_FLOOR))
        # Invalid samples add nothing to a slow step (their amplitudes are stale).
        rows = np.where(self._valid[index][:, None], shapes.mean(axis=1, dtype=np.float64), 0.0)
        valid = self._valid[index]
        start = 0
        for k, t in enumerate(self._times[index].tolist()):
            if self._slow_started is None:
                self._slow_started = t
            if t - self._slow_started >= SLOW_STEP_S - 1e-9:
                self._slow_sum += rows[start : k + 1].sum(axis=0)
                self._slow_count += int(valid[start : k + 1].sum())
                self._close_slow_step()
                self._slow_started = t
                start = k + 1
        self._slow_sum += rows[start:].sum(axis=0)
        self._slow_count += int(valid[start:].sum())

    def _close_slow_step(self) -> None:
        row = self._slow_sum / self._slow_count if self._slow_count else np.full(N_TONES, np.nan)
        self._slow[self._slow_next] = row
        self._slow_next = (self._slow_next + 1) % self._slow.shape[0]
        self._slow_filled = min(self._slow_filled + 1, self._slow.shape[0])
        self._slow_steps += 1
        self._slow_sum[:] = 0.0
        self._slow_count = 0

    def _recent(self, seconds: float) -> npt.NDArray[np.intp]:
        """Ring indices of the valid samples of the last ``seconds``, oldest first."""
        count = min(self._filled, round(seconds * self.rate_hz))
        index = (self._next - count + np.arange(count)) % self._capacity
        return index[self._valid[index]]

    def _shape(self, index: npt.NDArray[np.intp]) -> F64:
        shape: F64 = self._log_shape[index].astype(np.float64)
        return shape

    def _doppler_window(self, index: npt.NDArray[np.intp]) -> F32 | None:
        """The amplitudes ``doppler_spectra`` reads, or None when too many of the window's were lost."""
        if index.size < 0.8 * round(WINDOW_S * self.rate_hz):
            return None
        window: F32 = self._amplitude[index]
        return window

    def _doppler(self, index: npt.NDArray[np.intp]) -> F64 | None:
        window = self._doppler_window(index)
        return None if window is None else doppler_spectra(window[None], self.rate_hz)[0]

    def _slow_rows(self) -> F64 | None:
        """The slow shape's last ``BREATHING_WINDOW_S``, oldest first (what ``breathing_powers`` reads),
        or None before there are that many."""
        if self._slow_filled < self._slow.shape[0]:
            return None
        rows: F64 = np.roll(self._slow, -self._slow_next, axis=0).astype(np.float64)
        if np.isnan(rows).any():
            rows = np.where(np.isnan(rows), np.nanmean(rows, axis=0), rows)
        return rows

    def _breathing_due(self) -> F64 | None:
        """The slow rows when the breathing power is due to be recomputed, else None."""
        fresh = self._slow_steps - self._breathing_at < BREATHING_EVERY_STEPS
        if self._breathing_power is not None and fresh:
            return None
        return self._slow_rows()

    def _set_breathing(self, power: float) -> None:
        self._breathing_power, self._breathing_at = power, self._slow_steps

    def _breathing(self) -> float | None:
        rows = self._breathing_due()
        if rows is not None:
            self._set_breathing(float(breathing_powers(rows[None])[0]))
        return self._breathing_power

    def _profile(self, index: npt.NDArray[np.intp]) -> F64 | None:
        if index.size < 0.5 * STILL_WINDOW_S * self.rate_hz:
            return None
        profile: F64 = self._log_shape[index].mean(axis=0, dtype=np.float64)
        return profile

    def learn(self, seconds: float, *, adapt: bool = False) -> None:
        """Fold the latest ``seconds`` into the empty-room reference: by plain averaging while calibrating,
        with ``ADAPT_TIME_CONSTANT_S`` when ``adapt`` (the room is confidently empty, long after)."""
        self._settle()
        recent = self._recent(seconds)
        window = self._recent(WINDOW_S)
        doppler = self._doppler(window)
        if recent.size == 0 or doppler is None:
            return
        ref = self.reference
        weight = min(1.0, seconds / ADAPT_TIME_CONSTANT_S) if adapt else None
        ref.rssi.add(np.array([np.nanmean(self._rssi[recent])]), weight)
        shapes = self._shape(recent)
        ref.shape.add(shapes.mean(axis=0), weight)
        ref.shape_sq.add((shapes**2).mean(axis=0), weight)
        ref.doppler.add(doppler, weight)
        breathing = self._breathing()
        if breathing is not None:
            ref.breathing.add(np.array([breathing]), weight)
        if self._n_pairs > 1:
            channel = self._channel[recent].mean(axis=0)
            ref.static.add(np.stack([channel.real, channel.imag]).astype(np.float64), weight)
        ref.seconds += seconds

    def cues(self) -> LinkCues | None:
        """The cues over the latest samples; None before there is a full window."""
        return link_cues([self])[0]

    def _cues(self, window: npt.NDArray[np.intp], doppler: F64, breathing: float | None) -> LinkCues:
        """The cues, given the window's Doppler spectrum and the breathing power (``link_cues``)."""
        assert self._last_t is not None
        ref = self.reference
        if not ref.ready or ref.doppler.value is None or ref.rssi.value is None or ref.shape.value is None:
            return LinkCues(
                self.link,
                self._last_t,
                False,
                0.0,
                0.0,
                1.0,
                -100.0,
                np.ones(N_DOPPLER, np.float32),
                0.0,
                1.0,
                None,
                None,
            )
        noise = np.maximum(ref.doppler.value, NOISE_FLOOR)
        ratio = doppler / noise
        motion = slice(math.ceil(MOTION_BAND_HZ), None)
        still = self._recent(STILL_WINDOW_S)
        profile = self._profile(still)
        profile_change = 0.0
        if profile is not None:
            # A mean over n samples has the per-sample variance over n (samples are nearly independent
            # at these rates in an empty room; correlated noise only makes this conservative).
            z2 = (profile - ref.shape.value) ** 2 / (ref.shape_noise() / still.size)
            profile_change = float(np.mean(z2))
        breathing_ratio = 1.0
        if breathing is not None and ref.breathing.value is not None:
            breathing_ratio = breathing / max(float(ref.breathing.value[0]), NOISE_FLOOR)
        rssi_window = self._rssi[window]
        known = rssi_window[~np.isnan(rssi_window)]
        rssi = float(known.mean()) if known.size else math.nan
        # The normalized amplitude's power is a share of the received power: as dBm, the echo's own power.
        echo_dbm = 10 * math.log10(max(float(doppler[motion].sum()), NOISE_FLOOR)) + rssi
        return LinkCues(
            link=self.link,
            t_s=self._last_t,
            ready=True,
            rssi_change_db=rssi - float(ref.rssi.value[0]),
            rssi_empty_dbm=float(ref.rssi.value[0]),
            beat=float(doppler[motion].sum() / noise[motion].sum()),
            echo_dbm=echo_dbm,
            doppler=ratio.astype(np.float32),
            profile_change=profile_change,
            breathing=breathing_ratio,
            covariance=self._covariance(window),
            static_covariance=self._static_covariance(),
        )

    def _covariance(self, index: npt.NDArray[np.intp]) -> C128 | None:
        static = self.reference.static_channel()
        if self._n_pairs < 2 or self.n_rx < 2 or static is None:
            return None
        return self._across_chains(self._channel[index] - static[None])

    def _static_covariance(self) -> C128 | None:
        static = self.reference.static_channel()
        if self._n_pairs < 2 or self.n_rx < 2 or static is None:
            return None
        return self._across_chains(static[None])

    def _across_chains(self, channel: npt.NDArray[np.complexfloating]) -> C128:
        """Covariance across the receive chains of (n, pairs, tones) channels; snapshots are every sample,
        transmit chain and tone."""
        n_tx = self._n_pairs // self.n_rx
        chains = channel.reshape(channel.shape[0], self.n_rx, n_tx, N_TONES)
        snapshots = chains.transpose(1, 0, 2, 3).reshape(self.n_rx, -1)
        covariance: C128 = (snapshots @ snapshots.conj().T / snapshots.shape[1]).astype(np.complex128)
        return covariance


def doppler_spectra(amplitude: F32, rate_hz: float) -> F64:
    """(B, N_DOPPLER): for B windows of amplitudes (B, n, pairs, tones), the mean over pairs and tones of
    each 1 Hz bin's power, 0..DOPPLER_MAX_HZ, of the spectrum of the gain-normalized amplitude (RMS 1 per
    packet, so a bin's power is a share of the received power; linear rather than log, so that a tone in
    a deep fade does not outweigh the others)."""
    n = round(WINDOW_S * rate_hz)
    shape = amplitude.astype(np.float64)
    shape -= shape.mean(axis=1, keepdims=True)
    taper = np.hanning(shape.shape[1])[:, None, None]
    # Zero-padded to one second at the nominal rate: bins land on whole hertz whatever was lost.
    spectrum = np.fft.rfft(shape * taper, n=max(n, 2 * N_DOPPLER), axis=1)
    power = np.mean(np.abs(spectrum) ** 2, axis=(2, 3)) / np.sum(taper**2)
    freqs = np.fft.rfftfreq(max(n, 2 * N_DOPPLER), 1.0 / rate_hz)
    bins: F64 = np.stack([np.interp(np.arange(N_DOPPLER), freqs, p) for p in power])
    return bins


def breathing_powers(rows: F64) -> F64:
    """(B,): the breathing band's mean power in B slow shapes (B, steps, tones), each tone's straight-line
    trend removed first (drift is slower than breathing)."""
    steps = np.arange(rows.shape[1], dtype=np.float64)
    centred = steps - steps.mean()
    rows = rows - rows.mean(axis=1, keepdims=True)
    rows -= centred[None, :, None] * (np.einsum("s,bst->bt", centred, rows) / (centred @ centred))[:, None]
    spectrum = np.abs(np.fft.rfft(rows * np.hanning(rows.shape[1])[:, None], axis=1)) ** 2
    freqs = np.fft.rfftfreq(rows.shape[1], SLOW_STEP_S)
    band = (freqs >= BREATHING_BAND_HZ[0]) & (freqs <= BREATHING_BAND_HZ[1])
    powers: F64 = spectrum[:, band].mean(axis=(1, 2))
    return powers


def _by_shape(
    compute: Callable[[npt.NDArray[Any]], F64], inputs: Sequence[npt.NDArray[Any] | None]
) -> list[F64 | None]:
    """``compute`` over the inputs stacked, once per shape among them: one FFT for the room's links
    rather than one per link. None stays None."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        if x is not None:
            groups.setdefault(x.shape, []).append(i)
    results: list[F64 | None] = [None] * len(inputs)
    for members in groups.values():
        stacked = np.stack([x for i in members if (x := inputs[i]) is not None])
        for i, result in zip(members, compute(stacked), strict=True):
            results[i] = result
    return results


def link_cues(extractors: Sequence[LinkCueExtractor]) -> list[LinkCues | None]:
    """Each extractor's cues now (None before it has a full window), the spectra of all of them computed
    together. Their rate is one (a room's links are prepared at one rate)."""
    if not extractors:
        return []
    rate_hz = extractors[0].rate_hz
    for extractor in extractors:
        extractor._settle()
    windows = [e._recent(WINDOW_S) if e._last_t is not None else None for e in extractors]
    amplitudes = [
        e._doppler_window(w) if w is not None else None for e, w in zip(extractors, windows, strict=True)
    ]
    dopplers = _by_shape(lambda x: doppler_spectra(x, rate_hz), amplitudes)
    due = [e._breathing_due() if d is not None else None for e, d in zip(extractors, dopplers, strict=True)]
    for extractor, power in zip(extractors, _by_shape(breathing_powers, due), strict=True):
        if power is not None:
            extractor._set_breathing(float(power))
    return [
        None if d is None or w is None else e._cues(w, d, e._breathing_power)
        for e, w, d in zip(extractors, windows, dopplers, strict=True)
    ]


# Doppler bands of the cue vector, hertz: a drift/sway floor, gait, brisk limbs, fast swings and falls.
DOPPLER_BANDS_HZ = ((2, 4), (4, 8), (8, 16), (16, DOPPLER_MAX_HZ + 1))
N_CUE_FEATURES = 12
# A Doppler bin counts as holding the echo when its power is this many times the empty room's.
DOPPLER_EXCESS = 3.0
DOPPLER_SCALE_HZ = 10.0
# Log power ratios and dB are divided by these so that features sit near -1..1.
LOG_SCALE = 5.0
RSSI_SCALE_DB = 5.0
# Absolute powers (dBm) are centred on this and divided by ABSOLUTE_SCALE_DB.
ABSOLUTE_CENTRE_DBM = -60.0
ABSOLUTE_SCALE_DB = 20.0


def cue_vectors(cues: Sequence[LinkCues]) -> F32:
    """``[L, N_CUE_FEATURES]`` of L links, for the likelihood and the classifier: RSSI change, the empty
    room's RSSI, log beat, the echo's power, log profile change, log power in each of
    ``DOPPLER_BANDS_HZ``, the frequencies below which half and nine tenths of the Doppler excess lie (the
    torso's and the limbs' bistatic Doppler), log breathing power, each scaled."""
    if not cues:
        return np.zeros((0, N_CUE_FEATURES), np.float32)
    doppler = np.stack([c.doppler for c in cues]).astype(np.float64)
    scalars = np.array(
        [
            (c.rssi_change_db, c.rssi_empty_dbm, c.beat, c.echo_dbm, c.profile_change, c.breathing)
            for c in cues
        ]
    )
    rssi_change, rssi_empty, beat, echo, profile_change, breathing = scalars.T
    bands = np.stack([doppler[:, low:high].mean(axis=1) for low, high in DOPPLER_BANDS_HZ], axis=1)
    excess = np.maximum(doppler - DOPPLER_EXCESS, 0.0)
    excess[:, : int(MOTION_BAND_HZ)] = 0.0
    total = excess.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(excess, axis=1) / np.where(total > 0, total, 1.0)
    # The first bin where the cumulative share reaches q (searchsorted's left side); 0 without excess.
    edges = np.stack([np.sum(cumulative < q, axis=1) for q in (0.5, 0.9)], axis=1).astype(np.float64)
    edges[total[:, 0] <= 0] = 0.0
    columns = [
        np.clip(rssi_change / RSSI_SCALE_DB, -3.0, 3.0),
        (rssi_empty - ABSOLUTE_CENTRE_DBM) / ABSOLUTE_SCALE_DB,
        np.log(np.maximum(beat, 1e-3)) / LOG_SCALE,
        (echo - ABSOLUTE_CENTRE_DBM) / ABSOLUTE_SCALE_DB,
        np.log1p(np.maximum(profile_change, 0.0)) / LOG_SCALE,
        *(np.log(np.maximum(bands, 1e-3)) / LOG_SCALE).T,
        *(edges / DOPPLER_SCALE_HZ).T,
        np.log(np.maximum(breathing, 1e-3)) / LOG_SCALE,
    ]
    vectors: F32 = np.clip(np.stack(columns, axis=1).astype(np.float32), -3.0, 3.0)
    return vectors


@dataclass(frozen=True, slots=True)
class RoomCues:
    """Every ready link's cues at one instant: ``vectors`` [L, N_CUE_FEATURES] in ``links`` order."""

    t_s: float
    links: tuple[str, ...]
    vectors: F32
    cues: tuple[LinkCues, ...]


class RoomCueExtractor:
    """A ``LinkCueExtractor`` per link, and when each learns its empty room.

    Each link learns its reference from its first ``calibration_s`` seconds (the room is empty then, by
    the same contract as the motion detector's calibration), at least ``REFERENCE_MIN_S`` of them, then
    only while ``adapt`` is called, which the caller does when the room is confidently empty. A shorter
    calibration would leave every reference unready for good: nothing could then say the room is empty,
    so no reference would ever adapt either. Links are created on their first sample.
    """

    def __init__(self, rate_hz: float, calibration_s: float, n_rx: Mapping[str, int] | None = None) -> None:
        self.rate_hz = rate_hz
        self.calibration_s = max(calibration_s, REFERENCE_MIN_S)
        self._n_rx = dict(n_rx or {})
        self.extractors: dict[str, LinkCueExtractor] = {}
        self._started: dict[str, float] = {}
        self._learnt_until: dict[str, float] = {}

    def push(self, sample: PreparedSample) -> None:
        extractor = self.extractors.get(sample.link)
        if extractor is None:
            extractor = self.extractors[sample.link] = LinkCueExtractor(
                sample.link, self.rate_hz, self._n_rx.get(sample.link, 1)
            )
            self._started[sample.link] = sample.t_s
            self._learnt_until[sample.link] = sample.t_s
        extractor.push(sample)
        # During calibration, fold in each whole second as it completes.
        since = sample.t_s - self._learnt_until[sample.link]
        if sample.t_s - self._started[sample.link] <= self.calibration_s + 1e-9 and since >= 1.0 - 1e-9:
            extractor.learn(since)
            self._learnt_until[sample.link] = sample.t_s

    def calibrating(self, link: str) -> bool:
        started = self._started.get(link)
        last = self._learnt_until.get(link)
        return started is None or last is None or last - started < self.calibration_s - 1e-9

    def adapt(self, seconds: float) -> None:
        """The room has been confidently empty for the last ``seconds``: every calibrated link follows."""
        for link, extractor in self.extractors.items():
            if not self.calibrating(link):
                extractor.learn(seconds, adapt=True)

    def recalibrate(self) -> None:
        """Learn every link's empty room anew from its next ``calibration_s`` (the room is empty now)."""
        for link, extractor in self.extractors.items():
            extractor.reference = EmptyRoom()
            last = self._learnt_until[link]
            self._started[link] = last

    def room(self, t_s: float) -> RoomCues:
        """The cues of every link whose reference is ready, in link-id order."""
        measured = link_cues([self.extractors[link] for link in sorted(self.extractors)])
        ready = [c for c in measured if c is not None and c.ready]
        return RoomCues(t_s, tuple(c.link for c in ready), cue_vectors(ready), tuple(ready))
