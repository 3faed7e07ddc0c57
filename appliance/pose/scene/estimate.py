"""What the estimators say about one window: a few people, each with pose, activity and a fall if one.

The scene takes every person the estimators emit and itself drops those whose ``presence`` is below
``SceneSettings.min_presence``, so the threshold lives in one place (the ``scene:`` configuration) rather
than in each estimator. Estimates are checked here, at the door, so the tracker can trust shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES, N_KEYPOINTS, body_centre

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Fall:
    """A fall an estimator confirmed: when it began (``t_s``, host time) and how sure it is (0..1)."""

    t_s: float
    confidence: float


@dataclass(frozen=True, slots=True, eq=False)
class PersonEstimate:
    """One person: presence probability, 17 COCO keypoints in room metres (x width, y depth, z up), each
    joint's confidence in 0..1, probabilities over ``appliance.contracts.coco.ACTIVITIES``, the fall the
    estimator's fall detector confirmed for this person in this window, if any, and how uncertain the
    estimator is of the position (one standard deviation on the floor, metres), if it knows."""

    presence: float
    keypoints: F64  # (17, 3)
    joint_confidence: F64  # (17,)
    activity_probs: F64  # (len(ACTIVITIES),)
    fall: Fall | None = None
    uncertainty_m: float | None = None
    centre: F64 = field(init=False)  # (3,), see ``body_centre``

    def __post_init__(self) -> None:
        keypoints = np.asarray(self.keypoints, dtype=np.float64)
        confidence = np.asarray(self.joint_confidence, dtype=np.float64)
        activity = np.asarray(self.activity_probs, dtype=np.float64)
        if keypoints.shape != (N_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be ({N_KEYPOINTS}, 3), got {keypoints.shape}")
        if confidence.shape != (N_KEYPOINTS,):
            raise ValueError(f"joint_confidence must be ({N_KEYPOINTS},), got {confidence.shape}")
        if activity.shape != (len(ACTIVITIES),):
            raise ValueError(f"activity_probs must be ({len(ACTIVITIES)},), got {activity.shape}")
        if not (
            np.isfinite(keypoints).all() and np.isfinite(confidence).all() and np.isfinite(activity).all()
        ):
            raise ValueError("estimate holds NaN or infinite values")
        confidence = np.clip(confidence, 0.0, 1.0)
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "joint_confidence", confidence)
        object.__setattr__(self, "activity_probs", np.clip(activity, 0.0, 1.0))
        object.__setattr__(self, "presence", float(np.clip(self.presence, 0.0, 1.0)))
        object.__setattr__(self, "centre", body_centre(keypoints, confidence))


@dataclass(frozen=True, slots=True)
class WindowEstimate:
    """Every person slot of one window, at host time ``t_s`` (seconds, the clock of ``CsiFrame.host_ts``)."""

    t_s: float
    persons: Sequence[PersonEstimate]

    def __post_init__(self) -> None:
        object.__setattr__(self, "persons", tuple(self.persons))
