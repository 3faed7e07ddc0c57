"""Fall detection for one person: a rapid drop of head and hips, then staying down.

A fall has two parts that everyday movements do not combine. First the *drop*: the head falls by most of
a stature within about a second, reaching several metres per second, with the hips going down too.
Sitting down drops the head by less than half a metre at well under 1 m/s; lying down on purpose covers
the height but takes seconds, peaking below 1 m/s; bending to pick something up lowers the head quickly
but hardly the hips. Second, the person *stays down*: head low, or torso horizontal, or the activity
"lying", for ``confirm_s``. Someone who stumbles and gets straight up is not reported.

The model's own "falling" probability counts as evidence for the drop: when it is high, a smaller drop
suffices (the model may see a fall that the estimated keypoints, smoothed by the network, render slowly).

``sensitivity`` (0..1) moves every threshold at once: higher catches slower, shorter and less certain
falls at the cost of more false alarms. After a reported fall the detector is silent for ``refractory_s``,
so one fall is one event.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import KEYPOINT_INDEX

F64 = npt.NDArray[np.float64]

HEAD_JOINTS = tuple(KEYPOINT_INDEX[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"))
SHOULDER_JOINTS = (KEYPOINT_INDEX["left_shoulder"], KEYPOINT_INDEX["right_shoulder"])
HIP_JOINTS = (KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"])

# The drop must happen within this window (falls from standing reach the floor in 0.5-1 s).
DROP_WINDOW_S = 1.5
# Downward speed is measured as the head's height change over this baseline: long enough to average out
# keypoint noise, short enough to keep the peak of a fall (about 3 m/s over the last 0.3 s).
SPEED_BASELINE_S = 0.3
# Threshold ranges, from sensitivity 0 to 1: peak downward head speed, head drop within the window, the
# model's "falling" probability that stands in for speed, and the share of windows spent down afterwards.
SPEED_RANGE_M_S = (2.2, 1.0)
DROP_RANGE_M = (1.0, 0.5)
MODEL_PROBABILITY_RANGE = (0.9, 0.5)
DOWN_FRACTION_RANGE = (0.9, 0.5)
# The hips must fall by at least this share of the head's drop threshold (rules out bending over).
HIP_DROP_SHARE = 0.4
# With the model's "falling" vote, the head must still drop by this share of the drop threshold.
MODEL_DROP_SHARE = 0.5
# A person is down when the head is below this height (a face on the floor or on a low sofa) ...
LOW_HEAD_M = 0.6
# ... or the torso rises less than this from horizontal ...
HORIZONTAL_TORSO_MAX_ELEVATION_RAD = math.radians(35.0)
# ... or the smoothed "lying" probability is at least this.
LYING_PROBABILITY = 0.5
# The first moments after the trigger are still part of the drop; staying down is judged after them.
SETTLE_S = 0.5
# Fewest windows in the staying-down check for a verdict (the person may be missed while on the floor).
MIN_DOWN_SAMPLES = 3
# Recent windows over which height level and the model's "falling" vote are taken (a median, a mean).
LEVEL_SAMPLES = 3
_MIN_WEIGHT = 1e-3
# Confidence is measured against the thresholds of this sensitivity, so the same fall gets the same
# confidence whatever the setting.
REFERENCE_SENSITIVITY = 0.5


@dataclass(frozen=True, slots=True)
class FallThresholds:
    """The thresholds that a ``sensitivity`` in 0..1 stands for; see the module docstring."""

    speed_m_s: float
    drop_m: float
    model_probability: float
    down_fraction: float

    @classmethod
    def for_sensitivity(cls, sensitivity: float) -> FallThresholds:
        s = float(np.clip(sensitivity, 0.0, 1.0))

        def between(bounds: tuple[float, float]) -> float:
            return bounds[0] + s * (bounds[1] - bounds[0])

        return cls(
            between(SPEED_RANGE_M_S),
            between(DROP_RANGE_M),
            between(MODEL_PROBABILITY_RANGE),
            between(DOWN_FRACTION_RANGE),
        )


@dataclass(frozen=True, slots=True)
class Fall:
    """A confirmed fall: when the drop was detected (``t_s``), and how sure the detector is (0..1)."""

    t_s: float
    confidence: float


def _height(keypoints: F64, joint_confidence: F64, joints: tuple[int, ...]) -> float | None:
    weights = joint_confidence[list(joints)]
    if float(weights.sum()) < _MIN_WEIGHT:
        return None
    return float(weights @ keypoints[list(joints), 2] / weights.sum())


def head_height(keypoints: F64, joint_confidence: F64) -> float:
    """Height of the head (face joints, else shoulders, else the highest joint), metres."""
    for joints in (HEAD_JOINTS, SHOULDER_JOINTS):
        height = _height(keypoints, joint_confidence, joints)
        if height is not None:
            return height
    return float(keypoints[:, 2].max())


def hip_height(keypoints: F64, joint_confidence: F64) -> float:
    height = _height(keypoints, joint_confidence, HIP_JOINTS)
    return float(np.median(keypoints[:, 2])) if height is None else height


def torso_is_horizontal(keypoints: F64) -> bool:
    axis = keypoints[list(SHOULDER_JOINTS)].mean(axis=0) - keypoints[list(HIP_JOINTS)].mean(axis=0)
    length = float(np.linalg.norm(axis))
    if length < _MIN_WEIGHT:
        return False
    return math.asin(min(abs(float(axis[2])) / length, 1.0)) < HORIZONTAL_TORSO_MAX_ELEVATION_RAD


@dataclass(slots=True)
class _Candidate:
    """A drop seen at ``t_s``, waiting to learn whether the person stays down."""

    t_s: float
    evidence: float
    down: int = 0
    samples: int = 0


class FallDetector:
    """Falls of one person; ``update`` with every matched estimate, in time order."""

    def __init__(self, sensitivity: float, confirm_s: float, refractory_s: float) -> None:
        self.thresholds = FallThresholds.for_sensitivity(sensitivity)
        self._reference = FallThresholds.for_sensitivity(REFERENCE_SENSITIVITY)
        self._confirm_s = confirm_s
        self._refractory_s = refractory_s
        self._history: deque[tuple[float, float, float, float]] = deque()  # t, head, hips, p(falling)
        self._candidate: _Candidate | None = None
        self._quiet_until = -math.inf

    def update(
        self,
        t_s: float,
        keypoints: F64,
        joint_confidence: F64,
        falling_probability: float,
        lying_probability: float,
    ) -> Fall | None:
        """Take one window's raw (unsmoothed) keypoints; a ``Fall`` when one is confirmed in it.

        ``falling_probability`` is the model's raw vote for "falling" in this window, ``lying_probability``
        the smoothed probability of "lying".
        """
        head = head_height(keypoints, joint_confidence)
        hips = hip_height(keypoints, joint_confidence)
        history = self._history
        history.append((t_s, head, hips, falling_probability))
        while history[0][0] < t_s - DROP_WINDOW_S:
            history.popleft()
        candidate = self._candidate
        if candidate is None:
            if t_s >= self._quiet_until:
                evidence = self._drop_evidence()
                if evidence is not None:
                    self._candidate = _Candidate(t_s, evidence)
            return None
        if t_s < candidate.t_s + SETTLE_S:
            candidate.evidence = max(candidate.evidence, self._drop_evidence() or 0.0)
            return None
        down = head < LOW_HEAD_M or torso_is_horizontal(keypoints) or lying_probability >= LYING_PROBABILITY
        candidate.down += int(down)
        candidate.samples += 1
        if t_s < candidate.t_s + SETTLE_S + self._confirm_s:
            return None
        self._candidate = None
        history.clear()
        if candidate.samples < MIN_DOWN_SAMPLES:
            return None
        down_fraction = candidate.down / candidate.samples
        if down_fraction < self.thresholds.down_fraction:
            return None
        self._quiet_until = t_s + self._refractory_s
        return Fall(candidate.t_s, round(candidate.evidence * down_fraction, 3))

    def _drop_evidence(self) -> float | None:
        """Evidence (0..1) that the recent windows hold a fall's drop, or None if they do not.

        Kinematic evidence is 0.5 at the reference thresholds and 1 at twice them; the model's vote is its
        mean "falling" probability; the two combine as independent sources (1 - (1-a)(1-b)).
        """
        if len(self._history) < LEVEL_SAMPLES:
            return None
        # Centred medians, so each height (and its time) stands for three windows.
        times = np.array([h[0] for h in self._history])[1:-1]
        head = _running_median(np.array([h[1] for h in self._history]))
        hips = _running_median(np.array([h[2] for h in self._history]))
        head_drop = float(head.max() - head[-1])
        hip_drop = float(hips.max() - hips[-1])
        limits = self.thresholds
        if hip_drop < HIP_DROP_SHARE * limits.drop_m:
            return None
        earlier = np.searchsorted(times, times - SPEED_BASELINE_S, side="right") - 1
        valid = earlier >= 0
        speed = 0.0
        if valid.any():
            fall = head[earlier[valid]] - head[valid]
            speed = float(np.max(fall / (times[valid] - times[earlier[valid]])))
        model = float(np.mean([h[3] for h in list(self._history)[-LEVEL_SAMPLES:]]))
        kinematic = speed >= limits.speed_m_s and head_drop >= limits.drop_m
        voted = model >= limits.model_probability and head_drop >= MODEL_DROP_SHARE * limits.drop_m
        if not (kinematic or voted):
            return None
        reference = self._reference
        strength = min(speed / reference.speed_m_s, head_drop / reference.drop_m)
        kinematic_evidence = float(np.clip(strength / 2.0, 0.0, 1.0))
        return 1.0 - (1.0 - kinematic_evidence) * (1.0 - model)


def _running_median(values: F64) -> F64:
    """Median of every three consecutive samples (two fewer values): one wild keypoint estimate is not
    a drop."""
    median: F64 = np.median(np.lib.stride_tricks.sliding_window_view(values, LEVEL_SAMPLES), axis=1)
    return median
