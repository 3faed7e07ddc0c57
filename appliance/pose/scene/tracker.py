"""Stable person ids across windows: association, prediction, smoothing, and no ghosts.

Each window's person estimates are assigned to the existing tracks by the Hungarian method on the floor
distance between a track's *predicted* body centre and each estimate's centre; a pair further apart than
the gate is never made. Prediction uses a constant-velocity Kalman filter on the centre, so two people
walking past each other keep their ids: at the crossing each track expects its person to have moved on
along its own path, not to have turned round.

Tracks start *tentative* and become *confirmed*, and so get a public id, only after being matched in most
windows for ``confirm_s``. A confirmed track survives ``lose_s`` without a match (a brief dropout, two
people merged into one model slot) by coasting on its prediction, then is removed. A tentative track that
misses ``min(confirm_s, lose_s)`` is dropped silently: a one-window ghost never becomes a person. Public ids
count up from 1 and are never reused.

Keypoints are smoothed as the Kalman centre plus an exponentially smoothed pose relative to it, so the
skeleton neither jitters nor lags behind a walking person's position.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from appliance.contracts.coco import body_centre
from appliance.pose.scene.estimate import PersonEstimate

F64 = npt.NDArray[np.float64]

# Share of the windows since a track's birth in which it must have been matched to be confirmed.
CONFIRM_HIT_FRACTION = 0.6
# While coasting, the person may have changed speed or direction; the gate widens by this much per second
# without a match so that they can be picked up again after a dropout.
GATE_GROWTH_M_S = 0.5
# Added to a tentative track's distances so that, other things equal, an estimate goes to the person
# already confirmed rather than to a candidate beside them.
TENTATIVE_PENALTY_M = 0.1
# No new track starts this close to an existing one: two people's body centres are at least a torso apart,
# so a second estimate this near is the model seeing one person twice.
MIN_SEPARATION_M = 0.3
# Initial velocity uncertainty of a new track: a brisk walk.
INITIAL_SPEED_SIGMA_M_S = 1.0
# While a track coasts its velocity fades with this time constant: the longer a person is unseen, the less
# likely they kept walking in a straight line, and a person who stopped must stay within the gate.
COAST_VELOCITY_DECAY_S = 1.0
# Cost given to pairs beyond the gate so the solver never prefers them (they are rejected afterwards).
_FORBIDDEN_COST = 1e6


def ema_weight(dt_s: float, time_constant_s: float) -> float:
    """Weight of a new sample in an exponential average with ``time_constant_s``, for a step of ``dt_s``.

    Defined by time rather than by sample so that smoothing does not change with the window rate;
    a time constant of 0 takes every new sample as is.
    """
    if time_constant_s <= 0.0:
        return 1.0
    return 1.0 - math.exp(-max(dt_s, 0.0) / time_constant_s)


@dataclass(frozen=True, slots=True)
class TrackerParams:
    """The tracker's share of ``SceneSettings`` (see there for what each means)."""

    confirm_s: float
    lose_s: float
    gate_m: float
    smoothing_s: float
    measurement_noise_m: float
    acceleration_noise_m_s2: float


class Track:
    """One candidate or confirmed person. ``key`` is internal and unique; ``person_id`` is set on
    confirmation. ``estimate`` is the estimate matched in the latest window (None while coasting)."""

    def __init__(self, key: int, t_s: float, estimate: PersonEstimate, params: TrackerParams) -> None:
        self.key = key
        self.person_id: int | None = None
        self.born_s = t_s
        self.last_matched_s = t_s
        self.windows = 1
        self.hits = 1
        self.estimate: PersonEstimate | None = estimate
        self._params = params
        self._t_s = t_s
        self._position: F64 = estimate.centre[:2].copy()
        self._velocity: F64 = np.zeros(2)
        r2 = params.measurement_noise_m**2
        # Covariance of (position, velocity), the same for x and y: the axes are filtered independently.
        self._covariance: F64 = np.diag([r2, INITIAL_SPEED_SIGMA_M_S**2])
        self._relative_pose = self._relative(estimate)
        self.joint_confidence: F64 = estimate.joint_confidence.copy()
        self.presence = estimate.presence
        self.uncertainty_m = estimate.uncertainty_m

    @property
    def confirmed(self) -> bool:
        return self.person_id is not None

    @property
    def unmatched_s(self) -> float:
        return self._t_s - self.last_matched_s

    @property
    def velocity(self) -> F64:
        """(2,) smoothed floor velocity, m/s."""
        return self._velocity.copy()

    @property
    def keypoints(self) -> F64:
        """(17, 3) smoothed keypoints: the filtered centre plus the smoothed pose relative to it."""
        keypoints = self._relative_pose.copy()
        keypoints[:, :2] += self._position
        return keypoints

    @property
    def centre(self) -> F64:
        """(3,) smoothed body centre; x and y from the Kalman filter, z from the smoothed pose."""
        centre = body_centre(self.keypoints, self.joint_confidence)
        centre[:2] = self._position
        return centre

    def predicted_position(self, t_s: float) -> F64:
        return self._position + self._velocity * max(t_s - self._t_s, 0.0)

    def gate_m(self, t_s: float) -> float:
        return self._params.gate_m + GATE_GROWTH_M_S * max(t_s - self.last_matched_s, 0.0)

    @staticmethod
    def _relative(estimate: PersonEstimate) -> F64:
        """Keypoints with the centre's x and y removed; z stays absolute (height above the floor matters)."""
        relative = estimate.keypoints.copy()
        relative[:, :2] -= estimate.centre[:2]
        return relative

    def predict(self, t_s: float) -> None:
        """Advance the filter to ``t_s`` with the constant-velocity model."""
        dt = max(t_s - self._t_s, 0.0)
        coasting = self._t_s > self.last_matched_s
        self._t_s = max(t_s, self._t_s)
        self.windows += 1
        self.estimate = None
        if dt == 0.0:
            return
        if coasting:
            self._velocity = self._velocity * math.exp(-dt / COAST_VELOCITY_DECAY_S)
        transition = np.array([[1.0, dt], [0.0, 1.0]])
        # Piecewise-constant white acceleration (Bar-Shalom): how far the velocity may wander in dt.
        q = self._params.acceleration_noise_m_s2**2
        process = q * np.array([[dt**4 / 4.0, dt**3 / 2.0], [dt**3 / 2.0, dt**2]])
        self._position = self._position + self._velocity * dt
        self._covariance = transition @ self._covariance @ transition.T + process

    def correct(self, t_s: float, estimate: PersonEstimate) -> None:
        """Fold in the estimate matched at ``t_s`` (after ``predict``)."""
        dt = t_s - self.last_matched_s
        self.last_matched_s = t_s
        self.hits += 1
        self.estimate = estimate
        r2 = self._params.measurement_noise_m**2
        innovation_variance = self._covariance[0, 0] + r2
        gain = self._covariance[:, 0] / innovation_variance
        residual = estimate.centre[:2] - self._position
        self._position = self._position + gain[0] * residual
        self._velocity = self._velocity + gain[1] * residual
        self._covariance = self._covariance - np.outer(gain, self._covariance[0, :])
        weight = ema_weight(dt, self._params.smoothing_s)
        self._relative_pose += weight * (self._relative(estimate) - self._relative_pose)
        self.joint_confidence += weight * (estimate.joint_confidence - self.joint_confidence)
        self.presence += weight * (estimate.presence - self.presence)
        if estimate.uncertainty_m is not None:
            previous = estimate.uncertainty_m if self.uncertainty_m is None else self.uncertainty_m
            self.uncertainty_m = previous + weight * (estimate.uncertainty_m - previous)


@dataclass(frozen=True, slots=True)
class TrackerStep:
    """What one window changed: tracks confirmed in it and confirmed tracks removed in it."""

    confirmed: tuple[Track, ...]
    lost: tuple[Track, ...]
    dropped: tuple[Track, ...]  # tentative tracks given up, never confirmed


class Tracker:
    """Multi-person tracker; feed each window's estimates to ``update`` in time order."""

    def __init__(self, params: TrackerParams) -> None:
        self.params = params
        self._tracks: list[Track] = []
        self._next_key = 1
        self._next_person_id = 1

    def __iter__(self) -> Iterator[Track]:
        return iter(self._tracks)

    def update(self, t_s: float, estimates: Sequence[PersonEstimate]) -> TrackerStep:
        for track in self._tracks:
            track.predict(t_s)
        unmatched = self._assign(t_s, estimates)
        confirmed = []
        for track in self._tracks:
            if (
                not track.confirmed
                and track.estimate is not None
                and t_s - track.born_s >= self.params.confirm_s
                and track.hits >= CONFIRM_HIT_FRACTION * track.windows
            ):
                track.person_id = self._next_person_id
                self._next_person_id += 1
                confirmed.append(track)
        tentative_patience = min(self.params.confirm_s, self.params.lose_s)
        lost = [t for t in self._tracks if t.confirmed and t.unmatched_s >= self.params.lose_s]
        dropped = [t for t in self._tracks if not t.confirmed and t.unmatched_s >= tentative_patience]
        self._tracks = [t for t in self._tracks if t not in lost and t not in dropped]
        for index in unmatched:
            self._start(t_s, estimates[index])
        return TrackerStep(tuple(confirmed), tuple(lost), tuple(dropped))

    def _assign(self, t_s: float, estimates: Sequence[PersonEstimate]) -> list[int]:
        """Match estimates to tracks (correcting the matched tracks); the indices of unmatched estimates."""
        if not estimates:
            return []
        if not self._tracks:
            return list(range(len(estimates)))
        predicted = np.array([t.predicted_position(t_s) for t in self._tracks])
        measured = np.array([e.centre[:2] for e in estimates])
        distance = np.linalg.norm(predicted[:, None, :] - measured[None, :, :], axis=2)
        gates = np.array([t.gate_m(t_s) for t in self._tracks])
        penalty = np.array([0.0 if t.confirmed else TENTATIVE_PENALTY_M for t in self._tracks])
        cost = np.where(distance <= gates[:, None], distance + penalty[:, None], _FORBIDDEN_COST)
        rows, cols = linear_sum_assignment(cost)
        matched = set()
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            if cost[row, col] < _FORBIDDEN_COST:
                self._tracks[row].correct(t_s, estimates[col])
                matched.add(col)
        return [i for i in range(len(estimates)) if i not in matched]

    def _start(self, t_s: float, estimate: PersonEstimate) -> None:
        centre = estimate.centre[:2]
        if any(float(np.linalg.norm(t.centre[:2] - centre)) < MIN_SEPARATION_M for t in self._tracks):
            return
        self._tracks.append(Track(self._next_key, t_s, estimate, self.params))
        self._next_key += 1
