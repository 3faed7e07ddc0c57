"""Falls from what a fall does to the radio: a Doppler burst, then stillness at floor height.

A fall is the fastest thing a body does in a home: the torso and head reach 2-4 m/s within a second,
which puts echo power into the highest Doppler bins (8-40 Hz at 2.4 GHz) on the links that see the
person, far above walking's. What follows tells it from a sit-down or a dropped object: the person stays
down and still (little Doppler power above ``cues.MOTION_BAND_HZ``) in a lying posture (the classifier's
"lying" and "falling" probabilities, which see height through the links' shadows) for ``confirm_s``.

``sensitivity`` (0..1) moves every threshold at once: higher catches softer falls at the cost of more
false alarms. After a reported fall the detector is silent for ``refractory_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES
from appliance.pose.scene.estimate import Fall
from appliance.pose.sensing.cues import RoomCues

F32 = npt.NDArray[np.float32]

# The burst: power in the high Doppler bins over the empty room's, on the link that sees most of it.
HIGH_DOPPLER_HZ = 8
BURST_RANGE = (300.0, 30.0)  # from sensitivity 0 to 1
# The classifier's "falling" probability that counts as a burst by itself.
FALLING_RANGE = (0.6, 0.3)
# Afterwards: share of readings that are still and lying.
DOWN_SHARE_RANGE = (0.8, 0.4)
# Still: Doppler power above the motion band at most this many times the empty room's on every link.
STILL_BEAT = 30.0
LYING_PROBABILITY = 0.35
# The first moments after the burst are still part of the fall.
SETTLE_S = 0.8
MIN_READINGS = 5
_FALLING = ACTIVITIES.index("falling")
_LYING = ACTIVITIES.index("lying")


@dataclass(frozen=True, slots=True)
class FallThresholds:
    burst: float
    falling_probability: float
    down_share: float

    @classmethod
    def for_sensitivity(cls, sensitivity: float) -> FallThresholds:
        s = float(np.clip(sensitivity, 0.0, 1.0))

        def between(bounds: tuple[float, float], log: bool = False) -> float:
            if log:
                return math.exp(math.log(bounds[0]) + s * (math.log(bounds[1]) - math.log(bounds[0])))
            return bounds[0] + s * (bounds[1] - bounds[0])

        return cls(between(BURST_RANGE, log=True), between(FALLING_RANGE), between(DOWN_SHARE_RANGE))


@dataclass(slots=True)
class _Candidate:
    t_s: float
    strength: float
    down: int = 0
    readings: int = 0


def burst_strength(cues: RoomCues) -> float:
    """The largest mean high-Doppler power ratio over the links (1: as in the empty room)."""
    if not cues.cues:
        return 0.0
    return max(float(np.mean(c.doppler[HIGH_DOPPLER_HZ:])) for c in cues.cues)


def is_still(cues: RoomCues) -> bool:
    return all(c.beat <= STILL_BEAT for c in cues.cues)


class FallDetector:
    """The room's falls; ``update`` with every reading, in time order."""

    def __init__(self, sensitivity: float, confirm_s: float, refractory_s: float) -> None:
        self.thresholds = FallThresholds.for_sensitivity(sensitivity)
        self._confirm_s = confirm_s
        self._refractory_s = refractory_s
        self._candidate: _Candidate | None = None
        self._quiet_until = -math.inf

    def update(self, cues: RoomCues, activity: F32 | None) -> Fall | None:
        """One reading: the room's cues and the classifier's activity probabilities (None: not yet)."""
        t = cues.t_s
        falling = float(activity[_FALLING]) if activity is not None else 0.0
        lying = float(activity[_LYING] + activity[_FALLING]) if activity is not None else 0.0
        candidate = self._candidate
        if candidate is None:
            if t < self._quiet_until:
                return None
            burst = burst_strength(cues)
            limits = self.thresholds
            if burst >= limits.burst or falling >= limits.falling_probability:
                strength = max(min(1.0, math.log(max(burst, 1.0)) / math.log(BURST_RANGE[0])), falling)
                self._candidate = _Candidate(t, strength)
            return None
        if t < candidate.t_s + SETTLE_S:
            candidate.strength = max(candidate.strength, falling)
            return None
        candidate.readings += 1
        candidate.down += int(is_still(cues) and lying >= LYING_PROBABILITY)
        if t < candidate.t_s + SETTLE_S + self._confirm_s:
            return None
        self._candidate = None
        if candidate.readings < MIN_READINGS:
            return None
        share = candidate.down / candidate.readings
        if share < self.thresholds.down_share:
            return None
        self._quiet_until = t + self._refractory_s
        return Fall(candidate.t_s, round(min(1.0, candidate.strength * share + 0.25 * share), 3))
