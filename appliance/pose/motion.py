"""Motion and presence from CSI amplitudes: moving variance of spatial turbulence, per link and per room.

The method follows ESPectre's MVS (Moving Variance Segmentation). Each packet is reduced to one number,
its *spatial turbulence*: the spread of the amplitudes across the used subcarriers divided by their mean
(a coefficient of variation), passed through a short Hampel filter so that a single glitched packet does
not count. A person moving changes the multipath, so the shape of the amplitude profile and with it the
turbulence fluctuate from packet to packet; an empty room leaves it nearly constant. The *score* is the
variance of the turbulence over the last ``window_s`` seconds, divided by a threshold learnt from the
quiet room.

Dividing by the packet's own mean amplitude makes the turbulence blind to the overall gain, so an AGC step
or a different chip's scale cannot look like motion; only the profile's shape counts.

Calibration is automatic. For the first ``calibration_s`` seconds of data (the room should be empty and
still then; ``calibrate_now`` restarts it) the detector records the moving variance and takes its low
decile as the room's noise level; the threshold is ``threshold_factor`` times that. A low quantile rather
than a high one, because it is what someone walking through the room during calibration disturbs least:
on the real ESP32-S3 baseline the first seconds hold such a disturbance, which a 95th percentile would have
turned into a threshold ten times too high. Afterwards the noise level keeps following the long-run low
decile of the moving variance (a stochastic quantile tracker in the log domain, see ``adapt_s``), so a
detector calibrated while the room was busy converges once the room has been quiet for a while, and one
whose radio environment got noisier does not stay in motion forever.

Presence here is motion-based: it lasts ``presence_hold_s`` after the last motion. A still-person cue
(the amplitude profile drifting away from the empty room's) is deliberately absent: slow drift from
temperature, doors and furniture can be as large as a seated person's effect, and none of the recordings
holds a still person to show that such a cue would be reliable.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from appliance.contracts import LinkReading
from appliance.contracts.control import DetectorProfile
from appliance.csi.frame import CsiFrame

# The noise level is this quantile of the empty room's moving variance (see the module docstring).
_NOISE_QUANTILE = 0.1
# A noise level of exactly zero (a synthetic, noiseless channel) would make every wobble "motion".
_MIN_NOISE = 1e-9
# Legacy (LLTF) subcarriers every 20 MHz chip reports; outside them lie guards and edge tones that some
# chips zero and others fill with half-scaled values.
_MAX_USED_SUBCARRIER = 26
# Hampel filter on the turbulence: a value further than this many (MAD-estimated) standard deviations
# from the median of the last few packets is replaced by that median. ESP32s now and then deliver a single
# packet with a wholly different amplitude profile (the esp32 baseline recording holds several); each one
# would otherwise inflate the moving variance for a whole window.
_HAMPEL_PACKETS = 7
_HAMPEL_SIGMAS = 3.0
_MAD_TO_SIGMA = 1.4826
# Too few packets in the window make the variance itself noise (e.g. right after a gap).
_MIN_WINDOW_PACKETS = 5
# The running sums lose a little precision with every add and remove; rebuilding them now and then from
# the window keeps them exact however long the appliance runs.
_RESUM_EVERY = 4096


class MotionSettings(BaseModel):
    """The ``detector:`` section of the configuration: how motion and presence are decided per link."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(
        default=1.0,
        gt=0.0,
        le=10.0,
        description="Seconds of packets over which the turbulence's variance is taken. Shorter reacts "
        "faster but is noisier; 0.5 to 1 s suits 50 to 150 packets per second.",
    )
    calibration_s: float = Field(
        default=10.0,
        gt=0.0,
        description="Seconds of data, after start or a recalibration, from which the empty room's noise "
        "level is learnt. Keep the room empty and still meanwhile.",
    )
    threshold_factor: float = Field(
        default=12.0,
        gt=1.0,
        description="Motion threshold as a multiple of the calibrated noise level (the empty room's low "
        "decile of moving variance). Raise it if an empty room reports motion; lower it to catch "
        "smaller movements.",
    )
    exit_ratio: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Motion starts when the score reaches 1 (the threshold) and ends only when it falls "
        "below this fraction of it, so a score hovering near the threshold does not flicker.",
    )
    min_motion_s: float = Field(
        default=1.0,
        ge=0.0,
        description="Shortest motion episode in seconds, once started.",
    )
    presence_hold_s: float = Field(
        default=30.0,
        ge=0.0,
        description="Seconds presence is kept after the last motion: a person who stops moving is "
        "still there for a while.",
    )
    adapt_s: float = Field(
        default=1800.0,
        ge=0.0,
        description="Time constant, in seconds, with which the noise level follows the room after "
        "calibration: it rises by a factor e in this time when almost every window is above it and "
        "falls nine times faster. 0 keeps the calibrated level fixed.",
    )
    min_links: int = Field(
        default=1,
        ge=1,
        description="How many calibrated links must see motion for the room to be in motion.",
    )

    @model_validator(mode="after")
    def _calibration_spans_windows(self) -> MotionSettings:
        if self.calibration_s < self.window_s:
            raise ValueError("calibration_s must be at least window_s: calibration needs full windows")
        return self


@dataclass(frozen=True, slots=True)
class RoomReading:
    """The room's verdict from the latest reading of every link; ``score`` is the highest calibrated
    link's score."""

    motion: bool
    presence: bool
    score: float
    links: tuple[LinkReading, ...]


def _used_columns(subcarriers: npt.NDArray[np.int16]) -> npt.NDArray[np.intp]:
    """Columns of the legacy subcarriers (|k| in 1..26); every non-DC column for a grid without them."""
    k = np.abs(subcarriers.astype(np.int32))
    used = np.flatnonzero((k >= 1) & (k <= _MAX_USED_SUBCARRIER))
    if used.size == 0:
        used = np.flatnonzero(k != 0)
    return used


class LinkMotionDetector:
    """Motion and presence on one link; feed every packet of that link to ``update``, in order.

    Time comes from ``device_ts_us``. It may jump forward (a link that was silent) and counts then as
    elapsed; if it jumps backward (a node rebooted) the window restarts and no time is counted.
    """

    def __init__(self, link: str, settings: MotionSettings) -> None:
        self.link = link
        self.settings = settings
        self._subcarriers: npt.NDArray[np.int16] | None = None
        self._columns: npt.NDArray[np.intp] = np.empty(0, dtype=np.intp)
        # Monotonic internal clock (s) built from device time: immune to device clock resets.
        self._clock = 0.0
        self._last_device_s: float | None = None
        self._recent: deque[float] = deque(maxlen=_HAMPEL_PACKETS)
        self._window: deque[tuple[float, float]] = deque()
        self._window_start = 0.0
        self._sum = 0.0
        self._sumsq = 0.0
        self._since_resum = 0
        self._calibration: list[float] = []
        self._calibration_s = 0.0
        self._noise: float | None = None
        self._motion = False
        self._motion_since = 0.0
        self._last_motion: float | None = None
        self._reading: LinkReading | None = None

    @property
    def reading(self) -> LinkReading | None:
        """The latest verdict; None until the first usable packet."""
        return self._reading

    @property
    def calibrated(self) -> bool:
        return self._noise is not None

    def calibrate_now(self) -> None:
        """Forget the learnt noise level and learn it again from the next ``calibration_s`` seconds.

        Meant for "the room is empty now", so motion and presence are cleared as well.
        """
        self._calibration = []
        self._calibration_s = 0.0
        self._noise = None
        self._motion = False
        self._last_motion = None

    def update(self, frame: CsiFrame) -> LinkReading:
        """Take one packet and return the link's verdict; an unusable packet changes nothing."""
        device_s = frame.device_ts_us * 1e-6
        turbulence = self._turbulence(frame)
        if turbulence is None:
            if self._reading is None:
                self._reading = LinkReading(self.link, device_s, 0.0, 0.0, False, False, False)
            return self._reading
        dt = self._advance_clock(device_s)
        variance = self._push(self._despike(turbulence))
        if variance is not None:
            if self._noise is None:
                self._collect_calibration(variance, dt)
            else:
                self._adapt(variance, dt)
        self._reading = self._decide(device_s, variance)
        return self._reading

    def _turbulence(self, frame: CsiFrame) -> float | None:
        """Mean over antenna pairs of the amplitude profile's coefficient of variation; None if broken."""
        if frame.subcarriers is not self._subcarriers:
            if self._subcarriers is None or not np.array_equal(frame.subcarriers, self._subcarriers):
                self._columns = _used_columns(frame.subcarriers)
            self._subcarriers = frame.subcarriers
        n = self._columns.size
        if n < 2:
            return None
        amplitude = np.abs(frame.csi[..., self._columns]).reshape(-1, n)
        totals = amplitude.sum(axis=1, dtype=np.float64).tolist()
        squares = np.einsum("ij,ij->i", amplitude, amplitude, dtype=np.float64).tolist()
        spread = 0.0
        for total, square in zip(totals, squares, strict=True):
            if not total > 0.0:  # all zero, or NaN
                return None
            cv2 = square * n / (total * total) - 1.0
            if not math.isfinite(cv2):
                return None
            spread += math.sqrt(max(cv2, 0.0))
        return spread / len(totals)

    def _despike(self, value: float) -> float:
        """Hampel filter: an isolated outlier becomes the median of its neighbours; a run of them (motion)
        widens the MAD and passes. A flat run (MAD 0) gives no scale to judge by, so nothing is replaced."""
        recent = self._recent
        recent.append(value)
        if len(recent) < _HAMPEL_PACKETS:
            return value
        middle = _HAMPEL_PACKETS // 2
        median = sorted(recent)[middle]
        mad = sorted(abs(v - median) for v in recent)[middle]
        if mad > 0.0 and abs(value - median) > _HAMPEL_SIGMAS * _MAD_TO_SIGMA * mad:
            return median
        return value

    def _advance_clock(self, device_s: float) -> float:
        last = self._last_device_s
        self._last_device_s = device_s
        if last is None:
            return 0.0
        if device_s < last:
            self._clear_window()
            return 0.0
        dt = device_s - last
        self._clock += dt
        return dt

    def _clear_window(self) -> None:
        self._window.clear()
        self._sum = self._sumsq = 0.0

    def _push(self, value: float) -> float | None:
        """Add a turbulence value; the window's variance, or None while the window is not yet full."""
        window = self._window
        now = self._clock
        if not window:
            self._window_start = now
        window.append((now, value))
        self._sum += value
        self._sumsq += value * value
        horizon = now - self.settings.window_s
        while window[0][0] < horizon:
            _, old = window.popleft()
            self._sum -= old
            self._sumsq -= old * old
        if len(window) == 1:
            # Everything else aged out in a gap: the window starts afresh at this packet.
            self._window_start = now
            self._sum, self._sumsq = value, value * value
        self._since_resum += 1
        if self._since_resum >= _RESUM_EVERY:
            self._since_resum = 0
            self._sum = math.fsum(v for _, v in window)
            self._sumsq = math.fsum(v * v for _, v in window)
        n = len(window)
        if now - self._window_start < self.settings.window_s or n < _MIN_WINDOW_PACKETS:
            return None
        mean = self._sum / n
        return max(self._sumsq / n - mean * mean, 0.0)

    def _collect_calibration(self, variance: float, dt: float) -> None:
        self._calibration.append(variance)
        self._calibration_s += min(dt, self.settings.window_s)
        if self._calibration_s >= self.settings.calibration_s:
            level = float(np.quantile(np.asarray(self._calibration), _NOISE_QUANTILE))
            self._noise = max(level, _MIN_NOISE)
            self._calibration = []

    def _adapt(self, variance: float, dt: float) -> None:
        """Nudge the noise level toward the long-run low decile of the moving variance.

        Robbins-Monro quantile tracking on log(noise): up by step when a window is above the level, down
        by step * (1 - q) / q when below, which balances exactly when a fraction q of windows lies below.
        The step is dt / adapt_s, so the level follows in time rather than in packets.
        """
        noise = self._noise
        if noise is None or self.settings.adapt_s <= 0.0:
            return
        step = min(dt, self.settings.window_s) / self.settings.adapt_s
        if variance <= noise:
            step *= -(1.0 - _NOISE_QUANTILE) / _NOISE_QUANTILE
        self._noise = max(noise * math.exp(step), _MIN_NOISE)

    def _decide(self, device_s: float, variance: float | None) -> LinkReading:
        settings = self.settings
        noise = self._noise
        if noise is None:
            return LinkReading(self.link, device_s, 0.0, 0.0, False, False, False)
        threshold = noise * settings.threshold_factor
        now = self._clock
        score = 0.0 if variance is None else variance / threshold
        if not self._motion:
            if score >= 1.0:
                self._motion = True
                self._motion_since = now
        elif score < settings.exit_ratio and now - self._motion_since >= settings.min_motion_s:
            self._motion = False
        if self._motion:
            self._last_motion = now
        presence = self._last_motion is not None and now - self._last_motion <= settings.presence_hold_s
        return LinkReading(self.link, device_s, score, threshold, self._motion, presence, True)


class RoomMotion:
    """The room's motion and presence from every link's detector, created on a link's first packet.

    The room is in motion when at least ``min_links`` calibrated links are; it is occupied when any
    link still holds presence (each link holds it ``presence_hold_s`` after its last motion).
    """

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._links: dict[str, LinkMotionDetector] = {}
        self._host_seen: dict[str, float] = {}

    @property
    def links(self) -> dict[str, LinkMotionDetector]:
        return self._links

    def update(self, frame: CsiFrame) -> LinkReading:
        detector = self._links.get(frame.link)
        if detector is None:
            detector = self._links[frame.link] = LinkMotionDetector(frame.link, self.settings)
        self._host_seen[frame.link] = frame.host_ts
        return detector.update(frame)

    def calibrate_now(self) -> None:
        """Recalibrate every link (see ``LinkMotionDetector.calibrate_now``)."""
        for detector in self._links.values():
            detector.calibrate_now()

    def retune(self, settings: MotionSettings) -> None:
        """Use ``settings`` from the next packet on, on every link; what was learnt is kept."""
        self.settings = settings
        for detector in self._links.values():
            detector.settings = settings

    def reading(self, now_s: float | None = None) -> RoomReading:
        """The room's state from each link's latest reading.

        ``now_s`` is host time on the clock of ``CsiFrame.host_ts``; when given, a link whose last
        packet arrived more than ``presence_hold_s`` earlier no longer votes, so a node that went silent
        cannot hold the room occupied. Readings are still listed. Without it (replays, files whose
        frames carry no host time) every link votes.
        """
        readings = tuple(r for d in self._links.values() if (r := d.reading) is not None)
        voters = [
            r
            for r in readings
            if r.calibrated
            and (now_s is None or now_s - self._host_seen[r.link] <= self.settings.presence_hold_s)
        ]
        moving = sum(r.motion for r in voters)
        return RoomReading(
            motion=moving >= self.settings.min_links,
            presence=any(r.presence for r in voters),
            score=max((r.score for r in voters), default=0.0),
            links=readings,
        )


# Detector profiles (the "detector profile" control), as factors on the configured settings: responsive
# reacts and clears twice as fast at the cost of more false motion; steady the reverse.
_PROFILES: dict[DetectorProfile, dict[str, float]] = {
    "balanced": {},
    "responsive": {"window_s": 0.5, "min_motion_s": 0.5, "presence_hold_s": 0.5},
    "steady": {"window_s": 2.0, "min_motion_s": 2.0, "presence_hold_s": 2.0, "exit_ratio": 0.8},
}
# Each 25 points of sensitivity above 50 halve the threshold; below 50 double it.
_SENSITIVITY_DOUBLING = 25.0
_NEUTRAL_SENSITIVITY = 50.0
_MIN_THRESHOLD_FACTOR = 1.01


def tuned(base: MotionSettings, profile: DetectorProfile, sensitivity: float) -> MotionSettings:
    """The configured settings adjusted by a profile and a sensitivity (0..100, 50: as configured)."""
    changes = {name: getattr(base, name) * factor for name, factor in _PROFILES[profile].items()}
    changes["window_s"] = min(changes.get("window_s", base.window_s), base.calibration_s)
    threshold = base.threshold_factor * 2.0 ** ((_NEUTRAL_SENSITIVITY - sensitivity) / _SENSITIVITY_DOUBLING)
    changes["threshold_factor"] = max(_MIN_THRESHOLD_FACTOR, threshold)
    return MotionSettings.model_validate({**base.model_dump(), **changes})


def detect(frames: Iterable[CsiFrame], settings: MotionSettings | None = None) -> Iterator[LinkReading]:
    """Run the detector over recorded frames (any number of links): one reading per frame."""
    room = RoomMotion(settings or MotionSettings())
    for frame in frames:
        yield room.update(frame)
