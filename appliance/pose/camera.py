"""The fixed virtual camera of the overlay view: room metres -> normalized image coordinates.

A WiFi pose has no camera, but the overlay video and ``PoseFrame`` keypoints' x/y need one view that is the
same for every frame and every room, so people can read it. The camera is a pinhole:

- placed above the middle of the y = 0 wall, ``CAMERA_BACKOFF_M`` outside it, at ``CAMERA_HEIGHT_M``
  (2.4 m, lowered to just below the ceiling in a lower room);
- looking at the point (width / 2, depth / 2, ``LOOK_AT_HEIGHT_M``), no roll;
- image aspect ``ASPECT`` (16:9, square pixels); the focal length is the largest at which the whole floor
  and everything up to ``FIT_HEIGHT_M`` above it fits inside the image with ``MARGIN`` to spare.

``project`` returns (u, v) with u to the right and v down, 0..1 inside the image; points outside the view
come back outside 0..1 (not clipped, so a caller can tell), points behind the camera as NaN.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

CAMERA_HEIGHT_M = 2.4
CAMERA_BACKOFF_M = 0.5
CEILING_CLEARANCE_M = 0.05
LOOK_AT_HEIGHT_M = 0.9
FIT_HEIGHT_M = 2.0
ASPECT = 16.0 / 9.0
MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class VirtualCamera:
    """Camera position, world-to-camera rotation (rows: right, down, forward) and normalized focal lengths."""

    position: F64
    rotation: F64
    focal_u: float
    focal_v: float

    def project(self, points_m: npt.ArrayLike) -> F64:
        """``(..., 3)`` room points in metres -> ``(..., 2)`` image (u, v), 0..1 inside the view."""
        points = np.asarray(points_m, dtype=np.float64)
        cam = (points - self.position) @ self.rotation.T
        depth = cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = 0.5 + self.focal_u * cam[..., 0] / depth
            v = 0.5 + self.focal_v * cam[..., 1] / depth
        out = np.stack([u, v], axis=-1)
        out[depth <= 0] = np.nan
        return out


def camera_for_room(width_m: float, depth_m: float, height_m: float) -> VirtualCamera:
    """The overlay camera of a ``width x depth x height`` room (see the module docstring)."""
    position = np.array(
        [width_m / 2, -CAMERA_BACKOFF_M, min(CAMERA_HEIGHT_M, height_m - CEILING_CLEARANCE_M)]
    )
    target = np.array([width_m / 2, depth_m / 2, LOOK_AT_HEIGHT_M])
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    corners = np.array(list(itertools.product((0.0, width_m), (0.0, depth_m), (0.0, FIT_HEIGHT_M))))
    cam = (corners - position) @ rotation.T
    half = 0.5 - MARGIN
    # Largest focal that keeps |focal * x / z| <= half for every corner, with v scaled by the aspect.
    focal_u = float(np.min(half * cam[:, 2] / np.maximum(np.abs(cam[:, 0]), 1e-9)))
    focal_v_limit = float(np.min(half * cam[:, 2] / np.maximum(np.abs(cam[:, 1]), 1e-9)))
    focal = min(focal_u, focal_v_limit / ASPECT)
    return VirtualCamera(position, rotation, focal, focal * ASPECT)


def project(points_m: npt.ArrayLike, width_m: float, depth_m: float, height_m: float) -> F64:
    """Shorthand: ``camera_for_room(width_m, depth_m, height_m).project(points_m)``."""
    return camera_for_room(width_m, depth_m, height_m).project(points_m)
