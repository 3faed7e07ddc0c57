"""The COCO-17 keypoint set shared by the simulator's bodies, the pose estimators and every output."""

from typing import Final

import numpy as np
import numpy.typing as npt

KEYPOINT_NAMES: Final[tuple[str, ...]] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
N_KEYPOINTS: Final[int] = len(KEYPOINT_NAMES)
KEYPOINT_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Bones drawn in overlays and used to place limb scatterers, as index pairs.
SKELETON_EDGES: Final[tuple[tuple[int, int], ...]] = (
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (5, 6),
    (5, 7),
    (7, 9),
    (6, 8),
    (8, 10),
    (5, 11),
    (6, 12),
    (11, 12),
    (11, 13),
    (13, 15),
    (12, 14),
    (14, 16),
)

# Activity classes, in the order the pose model's activity head emits them.
ACTIVITIES: Final[tuple[str, ...]] = ("empty", "standing", "walking", "sitting", "lying", "falling")

# The body centre is the confidence-weighted mean of the torso joints: they move least with the limbs,
# so the centre does not wobble with a swinging arm or a step.
TORSO_JOINTS: tuple[int, ...] = tuple(
    KEYPOINT_INDEX[name] for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
)
# Below this summed confidence the torso is not trusted and every joint counts instead.
_MIN_TORSO_WEIGHT = 1e-3


F64 = npt.NDArray[np.float64]


def body_centre(keypoints: F64, joint_confidence: F64) -> F64:
    """(3,) centre of the body: the torso joints weighted by confidence, else all joints, else their mean."""
    torso = np.asarray(TORSO_JOINTS)
    weights = joint_confidence[torso]
    if float(weights.sum()) > _MIN_TORSO_WEIGHT:
        centre: F64 = weights @ keypoints[torso] / weights.sum()
        return centre
    if float(joint_confidence.sum()) > _MIN_TORSO_WEIGHT:
        centre = joint_confidence @ keypoints / joint_confidence.sum()
        return centre
    mean: F64 = keypoints.mean(axis=0)
    return mean
