"""Simulated people: a COCO-17 skeleton posed by a handful of joint angles, and its limbs as radar targets.

A pose is a row of ``Param`` values (root position, heading, torso pitch, hip/knee/shoulder/elbow angles).
Blending two rows gives a transition that keeps bone lengths, which a blend of keypoints would not. Forward
kinematics turns rows into keypoints (the ground truth); each limb is an ellipsoid whose surface carries a
fixed, seeded set of scatterer points, so that a moving limb moves its points and the channel sees speckle
and Doppler from their path lengths alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import KEYPOINT_INDEX, N_KEYPOINTS

F64 = npt.NDArray[np.float64]

# Body segment lengths as fractions of stature (Drillis & Contini, 1966).
HIP_HEIGHT = 0.530
KNEE_HEIGHT = 0.285
ANKLE_HEIGHT = 0.039
SHOULDER_HEIGHT = 0.818
HEAD_CENTRE_HEIGHT = 0.930
UPPER_ARM_LENGTH = 0.186
FOREARM_LENGTH = 0.146
SHOULDER_HALF_WIDTH = 0.129
HIP_JOINT_HALF_WIDTH = 0.050
THIGH_LENGTH = HIP_HEIGHT - KNEE_HEIGHT
SHANK_LENGTH = KNEE_HEIGHT - ANKLE_HEIGHT

# Sizes below are for an adult of REFERENCE_STATURE_M and scale with stature (and girth with build).
REFERENCE_STATURE_M = 1.75
# Face keypoints relative to the head centre: (forward, left, up), metres.
FACE_OFFSETS_M: dict[str, tuple[float, float, float]] = {
    "nose": (0.100, 0.0, -0.020),
    "left_eye": (0.080, 0.032, 0.015),
    "right_eye": (0.080, -0.032, 0.015),
    "left_ear": (0.0, 0.075, 0.0),
    "right_ear": (0.0, -0.075, 0.0),
}
HEAD_FORWARD_M = 0.02
HEAD_HALF_HEIGHT_M = 0.11
# Soft tissue between the hip joint centre and a seat, and the half-thickness of a body lying down.
HIP_ABOVE_SEAT_M = 0.10
LYING_HALF_THICKNESS_M = 0.11
SITTING_RECLINE_DEG = 8.0
FACE_DOWN_PROP_DEG = 6.0
# The elbow bends the forearm towards this direction (body frame: mostly up, a little forward).
FOREARM_BEND_REFERENCE = np.array([0.3, 0.0, 1.0]) / np.hypot(0.3, 1.0)

# Whole-body radar cross-section of an adult at 2.4 GHz (measured values lie around 0.3-1 m^2).
HUMAN_RCS_M2 = 0.6
# Breathing moves the chest wall by a few millimetres: a fraction of the torso's half depth.
BREATHING_DEPTH_FRACTION = 0.03
# Limb axis points at which the line-of-sight clearance is checked (fractions of the half length).
SHADOW_SAMPLE_FRACTIONS = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])


class Param(IntEnum):
    """Columns of a pose row. Angles in radians; root is the pelvis centre in room metres."""

    ROOT_X = 0
    ROOT_Y = 1
    ROOT_Z = 2
    YAW = 3
    PITCH = 4
    HIP_L = 5
    HIP_R = 6
    KNEE_L = 7
    KNEE_R = 8
    SHOULDER_FLEX_L = 9
    SHOULDER_FLEX_R = 10
    SHOULDER_ABD_L = 11
    SHOULDER_ABD_R = 12
    ELBOW_L = 13
    ELBOW_R = 14


N_PARAMS = len(Param)


@dataclass(frozen=True)
class Body:
    """One person's physique. ``build`` scales girth (and so radar cross-section) against an average adult."""

    height_m: float = 1.75
    build: float = 1.0
    breathing_hz: float = 0.25

    @classmethod
    def random(cls, rng: np.random.Generator) -> Body:
        """Adult statures 1.5-1.95 m, slim to heavy builds, resting breathing at 12-20 breaths a minute."""
        return cls(
            height_m=float(rng.uniform(1.5, 1.95)),
            build=float(rng.uniform(0.8, 1.3)),
            breathing_hz=float(rng.uniform(0.2, 0.33)),
        )

    @property
    def scale(self) -> float:
        return self.height_m / REFERENCE_STATURE_M


def standing(body: Body, x: float, y: float, yaw: float) -> F64:
    """Upright, arms hanging slightly away from the body."""
    p = np.zeros(N_PARAMS)
    p[[Param.ROOT_X, Param.ROOT_Y, Param.YAW]] = x, y, yaw
    p[Param.ROOT_Z] = HIP_HEIGHT * body.height_m
    p[[Param.SHOULDER_ABD_L, Param.SHOULDER_ABD_R]] = np.radians(6.0)
    p[[Param.ELBOW_L, Param.ELBOW_R]] = np.radians(10.0)
    return p


def sitting(body: Body, x: float, y: float, yaw: float, seat_m: float) -> F64:
    """On a seat: thighs level, shanks down, leaning back a little, hands on the lap."""
    p = standing(body, x, y, yaw)
    p[Param.ROOT_Z] = seat_m + HIP_ABOVE_SEAT_M * body.scale
    p[Param.PITCH] = np.radians(-SITTING_RECLINE_DEG)
    p[[Param.HIP_L, Param.HIP_R]] = np.radians(90.0 - SITTING_RECLINE_DEG)
    p[[Param.KNEE_L, Param.KNEE_R]] = np.radians(90.0)
    p[[Param.SHOULDER_FLEX_L, Param.SHOULDER_FLEX_R]] = np.radians(25.0)
    p[[Param.ELBOW_L, Param.ELBOW_R]] = np.radians(60.0)
    return p


def lying(body: Body, x: float, y: float, yaw: float, surface_m: float, *, face_down: bool) -> F64:
    """On a surface, the torso along the heading (head ahead when face down, behind when face up).

    Face down, the chest is propped up a little so that the face clears the floor.
    """
    p = standing(body, x, y, yaw)
    p[Param.ROOT_Z] = surface_m + LYING_HALF_THICKNESS_M * body.scale * body.build
    p[Param.PITCH] = np.radians(90.0 - FACE_DOWN_PROP_DEG if face_down else -90.0)
    p[[Param.KNEE_L, Param.KNEE_R]] = np.radians(5.0)
    return p


@dataclass(frozen=True)
class Skeleton:
    """Posed bodies over T instants: keypoints plus the body axes the limb ellipsoids are oriented by."""

    keypoints: F64  # (T, 17, 3)
    head_centre: F64  # (T, 3)
    forward: F64  # (T, 3)
    left: F64  # (T, 3)
    up: F64  # (T, 3)


def _unit(v: F64) -> F64:
    norm: F64 = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-9)


def pose(body: Body, params: F64) -> Skeleton:
    """Forward kinematics of (T, N_PARAMS) pose rows, vectorized over T."""
    h, s = body.height_m, body.scale
    t = params.shape[0]
    local = np.zeros((t, N_KEYPOINTS, 3))
    k = KEYPOINT_INDEX
    for side, sign in (("left", 1.0), ("right", -1.0)):
        suffix = "L" if side == "left" else "R"
        hip_flex = params[:, Param[f"HIP_{suffix}"]]
        shank_angle = hip_flex - params[:, Param[f"KNEE_{suffix}"]]
        hip = np.array([0.0, sign * HIP_JOINT_HALF_WIDTH * h, 0.0])
        thigh = np.stack([np.sin(hip_flex), np.zeros(t), -np.cos(hip_flex)], axis=1)
        shank = np.stack([np.sin(shank_angle), np.zeros(t), -np.cos(shank_angle)], axis=1)
        knee = hip + THIGH_LENGTH * h * thigh
        local[:, k[f"{side}_hip"]] = hip
        local[:, k[f"{side}_knee"]] = knee
        local[:, k[f"{side}_ankle"]] = knee + SHANK_LENGTH * h * shank

        flex = params[:, Param[f"SHOULDER_FLEX_{suffix}"]]
        abduction = params[:, Param[f"SHOULDER_ABD_{suffix}"]]
        elbow_flex = params[:, Param[f"ELBOW_{suffix}"]][:, None]
        shoulder = np.array([0.0, sign * SHOULDER_HALF_WIDTH * h, (SHOULDER_HEIGHT - HIP_HEIGHT) * h])
        upper = np.stack(
            [np.sin(flex) * np.cos(abduction), sign * np.sin(abduction), -np.cos(flex) * np.cos(abduction)],
            axis=1,
        )
        bend = _unit(FOREARM_BEND_REFERENCE - (upper @ FOREARM_BEND_REFERENCE)[:, None] * upper)
        forearm = np.cos(elbow_flex) * upper + np.sin(elbow_flex) * bend
        elbow = shoulder + UPPER_ARM_LENGTH * h * upper
        local[:, k[f"{side}_shoulder"]] = shoulder
        local[:, k[f"{side}_elbow"]] = elbow
        local[:, k[f"{side}_wrist"]] = elbow + FOREARM_LENGTH * h * forearm

    head = np.array([HEAD_FORWARD_M * s, 0.0, (HEAD_CENTRE_HEIGHT - HIP_HEIGHT) * h])
    for name, offset in FACE_OFFSETS_M.items():
        local[:, k[name]] = head + np.asarray(offset) * s

    yaw, pitch = params[:, Param.YAW], params[:, Param.PITCH]
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    zeros = np.zeros(t)
    # Columns of Rz(yaw) @ Ry(pitch): the body's forward, left and up axes in the room.
    forward = np.stack([cy * cp, sy * cp, -sp], axis=1)
    left = np.stack([-sy, cy, zeros], axis=1)
    up = np.stack([cy * sp, sy * sp, cp], axis=1)
    rotation = np.stack([forward, left, up], axis=2)
    root = params[:, [Param.ROOT_X, Param.ROOT_Y, Param.ROOT_Z]]
    keypoints = root[:, None, :] + np.einsum("tij,tkj->tki", rotation, local)
    head_centre = root + rotation @ head
    return Skeleton(keypoints, head_centre, forward, left, up)


@dataclass(frozen=True)
class _Limb:
    """An ellipsoid between two anchor points; ``radii`` across it (reference direction, then the other)."""

    start: str
    end: str
    radii_m: tuple[float, float]
    points: int
    across_forward: bool  # orient by the body's forward axis (arms) rather than its left axis


# Anchors are keypoint names plus the derived head ends and girdle midpoints.
_LIMBS: tuple[_Limb, ...] = (
    _Limb("hip_mid", "shoulder_mid", (0.16, 0.11), 16, False),
    _Limb("head_bottom", "head_top", (0.085, 0.095), 6, False),
    _Limb("left_shoulder", "left_elbow", (0.045, 0.045), 4, True),
    _Limb("right_shoulder", "right_elbow", (0.045, 0.045), 4, True),
    _Limb("left_elbow", "left_wrist", (0.035, 0.035), 3, True),
    _Limb("right_elbow", "right_wrist", (0.035, 0.035), 3, True),
    _Limb("left_hip", "left_knee", (0.075, 0.075), 6, False),
    _Limb("right_hip", "right_knee", (0.075, 0.075), 6, False),
    _Limb("left_knee", "left_ankle", (0.05, 0.05), 4, False),
    _Limb("right_knee", "right_ankle", (0.05, 0.05), 4, False),
)
_TORSO = 0
_ANCHORS = (*KEYPOINT_INDEX, "head_bottom", "head_top", "hip_mid", "shoulder_mid")
_ANCHOR_INDEX = {name: i for i, name in enumerate(_ANCHORS)}
_LIMB_START = np.array([_ANCHOR_INDEX[limb.start] for limb in _LIMBS])
_LIMB_END = np.array([_ANCHOR_INDEX[limb.end] for limb in _LIMBS])
_LIMB_ACROSS_FORWARD = np.array([limb.across_forward for limb in _LIMBS])
N_LIMBS = len(_LIMBS)


@dataclass(frozen=True)
class LimbGeometry:
    """Scatterer points and line-of-sight probes of one body over T instants."""

    points: F64  # (T, P, 3), grouped by limb in _LIMBS order
    limb_centres: F64  # (T, N_LIMBS, 3)
    probes: F64  # (T, N_LIMBS * len(SHADOW_SAMPLE_FRACTIONS), 3) points on the limb axes
    probe_radii: F64  # (N_LIMBS * len(SHADOW_SAMPLE_FRACTIONS),)


class BodyScatterers:
    """A body's limbs as ellipsoids carrying seeded scatterer points, with their share of the body's RCS.

    Points sit on the ellipsoid surface (skin reflects at 2.4 GHz; little goes deeper). A limb's RCS is
    proportional to its lateral surface, and split evenly between its points, so that the points' powers add
    up to the whole-body RCS whatever their phases.
    """

    def __init__(self, body: Body, rng: np.random.Generator) -> None:
        self.body = body
        girth = body.scale * body.build
        self._radii = np.array([limb.radii_m for limb in _LIMBS]) * girth
        counts = np.array([limb.points for limb in _LIMBS])
        self.limb_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._limb_of_point = np.repeat(np.arange(N_LIMBS), counts)
        directions = rng.normal(size=(int(counts.sum()), 3))
        self._surface = directions / np.linalg.norm(directions, axis=1, keepdims=True)

        rest = pose(body, standing(body, 0.0, 0.0, 0.0)[None, :])
        anchors = self._anchors(rest)
        lengths = np.linalg.norm(anchors[0, _LIMB_END] - anchors[0, _LIMB_START], axis=1)
        surface_area = np.pi * self._radii.sum(axis=1) * lengths
        limb_rcs = HUMAN_RCS_M2 * body.build * surface_area / surface_area.sum()
        self.limb_rcs_m2: F64 = limb_rcs
        self.point_rcs_m2: F64 = (limb_rcs / counts)[self._limb_of_point]

    @property
    def n_points(self) -> int:
        return int(self._limb_of_point.shape[0])

    def _anchors(self, skeleton: Skeleton) -> F64:
        kp = skeleton.keypoints
        head_half = HEAD_HALF_HEIGHT_M * self.body.scale
        extra = np.stack(
            [
                skeleton.head_centre - head_half * skeleton.up,
                skeleton.head_centre + head_half * skeleton.up,
                (kp[:, KEYPOINT_INDEX["left_hip"]] + kp[:, KEYPOINT_INDEX["right_hip"]]) / 2,
                (kp[:, KEYPOINT_INDEX["left_shoulder"]] + kp[:, KEYPOINT_INDEX["right_shoulder"]]) / 2,
            ],
            axis=1,
        )
        return np.concatenate([kp, extra], axis=1)

    def geometry(self, skeleton: Skeleton, breathing: F64) -> LimbGeometry:
        """Place the points for T poses; ``breathing`` (T,) in -1..1 swells the chest."""
        anchors = self._anchors(skeleton)
        start, end = anchors[:, _LIMB_START], anchors[:, _LIMB_END]
        centre = (start + end) / 2
        axis = end - start
        half_length = np.linalg.norm(axis, axis=2, keepdims=True) / 2
        along = axis / np.maximum(2 * half_length, 1e-9)
        reference = np.where(
            _LIMB_ACROSS_FORWARD[None, :, None], skeleton.forward[:, None, :], skeleton.left[:, None, :]
        )
        across = _unit(reference - np.sum(reference * along, axis=2, keepdims=True) * along)
        third = np.cross(along, across)

        t = skeleton.keypoints.shape[0]
        radii = np.broadcast_to(self._radii, (t, N_LIMBS, 2)).copy()
        radii[:, _TORSO, 1] *= 1 + BREATHING_DEPTH_FRACTION * breathing
        li = self._limb_of_point
        u, a, b = self._surface[:, 0], self._surface[:, 1], self._surface[:, 2]
        points = (
            centre[:, li]
            + along[:, li] * (half_length[:, li] * u[:, None])
            + across[:, li] * (radii[:, li, 0] * a)[..., None]
            + third[:, li] * (radii[:, li, 1] * b)[..., None]
        )
        probes = centre[:, :, None, :] + along[:, :, None, :] * (
            half_length[:, :, None, :] * SHADOW_SAMPLE_FRACTIONS[None, None, :, None]
        )
        probe_radii = np.repeat(self._radii.mean(axis=1), len(SHADOW_SAMPLE_FRACTIONS))
        return LimbGeometry(points, centre, probes.reshape(t, -1, 3), probe_radii)
