"""The 17 COCO keypoints *rendered* from what is measured: position, heading and posture.

Nothing here measures a joint. A body of average stature is posed standing, sitting or lying (the same
forward kinematics the simulator poses its people with) at the tracked position, facing the way the
person last moved. Each joint's confidence follows the position's uncertainty, and is lower for joints
whose place the posture leaves open (wrists, elbows, ankles): a consumer that thresholds confidence
draws a torso for a well-placed person and nothing for a guess. Outputs that carry it say
``skeleton: rendered``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import KEYPOINT_INDEX, N_KEYPOINTS
from appliance.csi.simulator.body import Body, lying, pose, sitting, standing

F64 = npt.NDArray[np.float64]
Posture = Literal["standing", "sitting", "lying"]

AVERAGE_BODY = Body(height_m=1.7, build=1.0)
SEAT_M = 0.45
# Where a person lies when not fallen: a bed or a sofa.
BED_M = 0.45
# Confidence is exp(-(sigma^2 + joint^2) / (2 REFERENCE^2)): a position known to REFERENCE_M puts the
# torso at about 0.6.
REFERENCE_M = 0.5
# How far each joint may be from where the rendered posture puts it, beyond the position's own error.
_JOINT_SPREAD_M = {
    "nose": 0.10,
    "left_eye": 0.10,
    "right_eye": 0.10,
    "left_ear": 0.10,
    "right_ear": 0.10,
    "left_shoulder": 0.08,
    "right_shoulder": 0.08,
    "left_elbow": 0.20,
    "right_elbow": 0.20,
    "left_wrist": 0.30,
    "right_wrist": 0.30,
    "left_hip": 0.05,
    "right_hip": 0.05,
    "left_knee": 0.12,
    "right_knee": 0.12,
    "left_ankle": 0.18,
    "right_ankle": 0.18,
}
JOINT_SPREAD_M = np.array([_JOINT_SPREAD_M[name] for name in KEYPOINT_INDEX])
assert JOINT_SPREAD_M.shape == (N_KEYPOINTS,)


def render(position: F64, heading_rad: float, posture: Posture, *, on_floor: bool = False) -> F64:
    """(17, 3) keypoints in room metres for a person whose pelvis is over ``position`` (x, y)."""
    x, y = float(position[0]), float(position[1])
    if posture == "sitting":
        params = sitting(AVERAGE_BODY, x, y, heading_rad, SEAT_M)
    elif posture == "lying":
        params = lying(AVERAGE_BODY, x, y, heading_rad, 0.0 if on_floor else BED_M, face_down=on_floor)
    else:
        params = standing(AVERAGE_BODY, x, y, heading_rad)
    keypoints: F64 = pose(AVERAGE_BODY, params[None, :]).keypoints[0]
    if posture == "lying":
        # The pelvis, not the body's end, is over the tracked position.
        pelvis = keypoints[[KEYPOINT_INDEX["left_hip"], KEYPOINT_INDEX["right_hip"]], :2].mean(axis=0)
        keypoints[:, :2] += np.array([x, y]) - pelvis
    return keypoints


def joint_confidence(uncertainty_m: float) -> F64:
    """(17,) confidence per joint for a position known to ``uncertainty_m`` (one standard deviation)."""
    spread = uncertainty_m**2 + JOINT_SPREAD_M**2
    confidence: F64 = np.exp(-spread / (2 * REFERENCE_M**2))
    return confidence


def heading(velocity: F64, previous_rad: float, min_speed_m_s: float = 0.25) -> float:
    """The direction of motion when moving, else the last one."""
    if float(np.linalg.norm(velocity)) < min_speed_m_s:
        return previous_rad
    return math.atan2(float(velocity[1]), float(velocity[0]))
