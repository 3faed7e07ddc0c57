"""The COCO-17 keypoint set shared by the simulator's bodies and the pose estimators."""

from typing import Final

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
