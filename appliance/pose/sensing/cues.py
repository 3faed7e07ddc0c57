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
from collections.abc import Mapping
from dataclasses import dataclass

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
        self._channel = np.zeros((self._capacity, 1, N_TONES), np.complex64)
        self._valid = np.zeros(self._capacity, bool)
        self._next = 0
        self._filled = 0
        slow = round(BREATHING_WINDOW_S / SLOW_STEP_S)
        self._slow = np.full((slow, N_TONES), np.nan, np.float32)
        self._slow_next = 0
        self._slow_filled = 0
        self._slow_sum = np.zeros(N_TONES, np.float64)
        self._slow_count = 0
        self._slow_started: float | None = None
        self.reference = EmptyRoom()
        self._last_t: float | None = None

    def _reset(self, n_pairs: int) -> None:
        self._n_pairs = n_pairs
        self._amplitude = np.zeros((self._capacity, n_pairs, N_TONES), np.float32)
        self._channel = np.zeros((self._capacity, n_pairs, N_TONES), np.complex64)
        self._valid[:] = False
        self._filled = 0
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
            shape = np.log(np.maximum(sample.amplitude, AMPLITUDE_FLOOR))
            if pairs > 1:
                # One gain for all pairs: the packet's AGC is common, the chains' relative gains are not.
                gain = sample.gain / np.sqrt(np.mean(sample.gain**2))
                self._channel[i] = (sample.amplitude * gain[:, None]) * np.exp(1j * sample.phase)
            self._slow_sum += shape.mean(axis=0)
            self._slow_count += 1
        if self._slow_started is None:
            self._slow_started = sample.t_s
        if sample.t_s - self._slow_started >= SLOW_STEP_S - 1e-9:
            self._close_slow_step()
            self._slow_started = sample.t_s
        self._next = (i + 1) % self._capacity
        self._filled = min(self._filled + 1, self._capacity)

    def _close_slow_step(self) -> None:
        row = self._slow_sum / self._slow_count if self._slow_count else np.full(N_TONES, np.nan)
        self._slow[self._slow_next] = row
        self._slow_next = (self._slow_next + 1) % self._slow.shape[0]
        self._slow_filled = min(self._slow_filled + 1, self._slow.shape[0])
        self._slow_sum[:] = 0.0
        self._slow_count = 0

    def _recent(self, seconds: float) -> npt.NDArray[np.intp]:
        """Ring indices of the valid samples of the last ``seconds``, oldest first."""
        count = min(self._filled, round(seconds * self.rate_hz))
        index = (self._next - count + np.arange(count)) % self._capacity
        return index[self._valid[index]]

    def _shape(self, index: npt.NDArray[np.intp]) -> F64:
        shape: F64 = np.log(np.maximum(self._amplitude[index], AMPLITUDE_FLOOR)).astype(np.float64)
        return shape

    def _doppler(self, index: npt.NDArray[np.intp]) -> F64 | None:
        """Mean over pairs and tones of each 1 Hz bin's power, 0..DOPPLER_MAX_HZ, of the spectrum of the
        gain-normalized amplitude (RMS 1 per packet, so a bin's power is a share of the received power;
        linear rather than log, so that a tone in a deep fade does not outweigh the others)."""
        n = round(WINDOW_S * self.rate_hz)
        if index.size < 0.8 * n:
            return None
        shape = self._amplitude[index].astype(np.float64)
        shape -= shape.mean(axis=0)
        taper = np.hanning(index.size)[:, None, None]
        # Zero-padded to one second at the nominal rate: bins land on whole hertz whatever was lost.
        spectrum = np.fft.rfft(shape * taper, n=max(n, 2 * N_DOPPLER), axis=0)
        power = np.mean(np.abs(spectrum) ** 2, axis=(1, 2)) / np.sum(taper**2)
        freqs = np.fft.rfftfreq(max(n, 2 * N_DOPPLER), 1.0 / self.rate_hz)
        bins: F64 = np.interp(np.arange(N_DOPPLER), freqs, power)
        return bins

    def _breathing(self) -> float | None:
        if self._slow_filled < self._slow.shape[0]:
            return None
        rows = np.roll(self._slow, -self._slow_next, axis=0).astype(np.float64)
        if np.isnan(rows).any():
            rows = np.where(np.isnan(rows), np.nanmean(rows, axis=0), rows)
        steps = np.arange(rows.shape[0], dtype=np.float64)
        # Remove each tone's straight-line trend: drift is slower than breathing.
        centred = steps - steps.mean()
        rows -= rows.mean(axis=0)
        rows -= np.outer(centred, centred @ rows / (centred @ centred))
        spectrum = np.abs(np.fft.rfft(rows * np.hanning(rows.shape[0])[:, None], axis=0)) ** 2
        freqs = np.fft.rfftfreq(rows.shape[0], SLOW_STEP_S)
        band = (freqs >= BREATHING_BAND_HZ[0]) & (freqs <= BREATHING_BAND_HZ[1])
        return float(spectrum[band].mean())

    def _profile(self, index: npt.NDArray[np.intp]) -> F64 | None:
        if index.size < 0.5 * STILL_WINDOW_S * self.rate_hz:
            return None
        profile: F64 = self._shape(index).mean(axis=0)
        return profile

    def learn(self, seconds: float, *, adapt: bool = False) -> None:
        """Fold the latest ``seconds`` into the empty-room reference: by plain averaging while calibrating,
        with ``ADAPT_TIME_CONSTANT_S`` when ``adapt`` (the room is confidently empty, long after)."""
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
        if self._last_t is None:
            return None
        window = self._recent(WINDOW_S)
        doppler = self._doppler(window)
        if doppler is None:
            return None
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
        motion = np.arange(N_DOPPLER) >= MOTION_BAND_HZ
        still = self._recent(STILL_WINDOW_S)
        profile = self._profile(still)
        profile_change = 0.0
        if profile is not None:
            # A mean over n samples has the per-sample variance over n (samples are nearly independent
            # at these rates in an empty room; correlated noise only makes this conservative).
            z2 = (profile - ref.shape.value) ** 2 / (ref.shape_noise() / still.size)
            profile_change = float(np.mean(z2))
        breathing = self._breathing()
        breathing_ratio = 1.0
        if breathing is not None and ref.breathing.value is not None:
            breathing_ratio = breathing / max(float(ref.breathing.value[0]), NOISE_FLOOR)
        rssi = float(np.nanmean(self._rssi[window]))
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


def cue_vector(cues: LinkCues) -> F32:
    """``[N_CUE_FEATURES]`` of one link, for the likelihood and the classifier: RSSI change, the empty
    room's RSSI, log beat, the echo's power, log profile change, log power in each of
    ``DOPPLER_BANDS_HZ``, the frequencies below which half and nine tenths of the Doppler excess lie (the
    torso's and the limbs' bistatic Doppler), log breathing power, each scaled."""
    bands = [float(np.mean(cues.doppler[low:high])) for low, high in DOPPLER_BANDS_HZ]
    excess = np.maximum(cues.doppler.astype(np.float64) - DOPPLER_EXCESS, 0.0)
    excess[: int(MOTION_BAND_HZ)] = 0.0
    total = float(excess.sum())
    if total > 0:
        cumulative = np.cumsum(excess) / total
        edges = [float(np.searchsorted(cumulative, q)) for q in (0.5, 0.9)]
    else:
        edges = [0.0, 0.0]
    values = [
        float(np.clip(cues.rssi_change_db / RSSI_SCALE_DB, -3.0, 3.0)),
        (cues.rssi_empty_dbm - ABSOLUTE_CENTRE_DBM) / ABSOLUTE_SCALE_DB,
        math.log(max(cues.beat, 1e-3)) / LOG_SCALE,
        (cues.echo_dbm - ABSOLUTE_CENTRE_DBM) / ABSOLUTE_SCALE_DB,
        math.log1p(max(cues.profile_change, 0.0)) / LOG_SCALE,
        *(math.log(max(b, 1e-3)) / LOG_SCALE for b in bands),
        *(edge / DOPPLER_SCALE_HZ for edge in edges),
        math.log(max(cues.breathing, 1e-3)) / LOG_SCALE,
    ]
    vector: F32 = np.clip(np.asarray(values, np.float32), -3.0, 3.0)
    return vector


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
        ready = []
        for link in sorted(self.extractors):
            cues = self.extractors[link].cues()
            if cues is not None and cues.ready:
                ready.append(cues)
        vectors = (
            np.stack([cue_vector(c) for c in ready]) if ready else np.zeros((0, N_CUE_FEATURES), np.float32)
        )
        return RoomCues(t_s, tuple(c.link for c in ready), vectors, tuple(ready))
