"""``invispose plan``: where in a room the configured nodes will place people well, before drilling.

One simulated visit of the room as configured (its size, nodes and channel; every realism switch on):
after the empty room's calibration, a person walks a serpentine through every floor cell and, in each,
walks a small loop for ``DWELL_S``. The sensing path (``RoomSensing``, exactly as the appliance runs it)
places them all the while; a cell's figure is the median error of the readings taken while the person was
in it. Cells are ``cell_m`` wide; the heatmap is written with OpenCV (a runtime dependency), red where the
error is large.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.csi.prep import LinkPreparer, PrepSettings
from appliance.csi.simulator import Body, Impairments, RoomSimulator, RoomSpec, Scenario
from appliance.pose.scene import SceneSettings
from appliance.pose.sensing.classifier import SensingModel
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.sensing.room import RoomSensing, SensingSettings

F64 = npt.NDArray[np.float64]

CALIBRATION_S = 10.0
DWELL_S = 4.0
LOOP_RADIUS_M = 0.2
WALK_SPEED_M_S = 0.8
TICK_S = 0.1
# Readings in a cell's first second still carry the walk from the last cell.
SETTLE_S = 1.0
MARGIN_M = 0.3


@dataclass(frozen=True)
class PlanResult:
    """Median position error (m) per cell, NaN where no reading was taken; the room-centre guess's."""

    xs: F64  # (nx,) cell centres
    ys: F64  # (ny,)
    error_m: F64  # (ny, nx)
    centre_error_m: F64  # (ny, nx)
    simulated_s: float


def cell_centres(room: RoomSpec, cell_m: float) -> tuple[F64, F64]:
    nx = max(1, math.floor((room.width_m - 2 * MARGIN_M) / cell_m))
    ny = max(1, math.floor((room.depth_m - 2 * MARGIN_M) / cell_m))
    xs = MARGIN_M + (np.arange(nx) + 0.5) * (room.width_m - 2 * MARGIN_M) / nx
    ys = MARGIN_M + (np.arange(ny) + 0.5) * (room.depth_m - 2 * MARGIN_M) / ny
    return xs, ys


def _visit(room: RoomSpec, xs: F64, ys: F64) -> tuple[Scenario, list[tuple[int, int, float, float]]]:
    """The scripted visit, and each cell's (row, column, start, end) time while the person loops in it."""
    scenario = Scenario(room)
    person = scenario.person(Body())
    person.away(CALIBRATION_S).enter(0)
    visits = []
    for row, y in enumerate(ys):
        columns = range(len(xs)) if row % 2 == 0 else range(len(xs) - 1, -1, -1)
        for column in columns:
            x = float(xs[column])
            person.walk_to(x + LOOP_RADIUS_M, float(y), WALK_SPEED_M_S)
            start = person.duration_s
            while person.duration_s - start < DWELL_S:
                for angle in np.linspace(0.0, 2 * math.pi, 7)[1:]:
                    person.walk_to(
                        x + LOOP_RADIUS_M * math.cos(angle), float(y) + LOOP_RADIUS_M * math.sin(angle), 0.6
                    )
            visits.append((row, column, start, person.duration_s))
    return scenario, visits


def plan(
    room: RoomSpec,
    *,
    cell_m: float = 0.5,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> PlanResult:
    """Simulate the visit and place the person all the while; see the module docstring."""
    xs, ys = cell_centres(room, cell_m)
    scenario, visits = _visit(room, xs, ys)
    duration = max(end for *_, end in visits)
    geometry = RoomGeometry.from_room_spec(room)
    scene = SceneSettings()
    sensing = RoomSensing(
        geometry,
        SensingSettings(),
        SensingModel(),
        LinkLikelihood.load(),
        rate_hz=PrepSettings().rate_hz,
        calibration_s=CALIBRATION_S,
        fall_sensitivity=scene.fall_sensitivity,
        fall_confirm_s=scene.fall_confirm_s,
        fall_refractory_s=scene.fall_refractory_s,
        seed=seed,
    )
    simulator = RoomSimulator(room, scenario, seed=seed, impairments=Impairments())
    preparers: dict[str, LinkPreparer] = {}
    errors: dict[tuple[int, int], list[float]] = {}
    centre = np.array([room.width_m / 2, room.depth_m / 2])
    while simulator.t_s < duration - 1e-9:
        for frame in simulator.advance(TICK_S).frames:
            preparer = preparers.setdefault(frame.link, LinkPreparer())
            for sample in preparer.push(frame):
                sensing.push(sample)
        t = simulator.t_s
        cues, inputs = sensing.observe(t)
        reading = sensing.read(cues, sensing.classify(inputs) if inputs is not None else None)
        if progress is not None:
            progress(t / duration)
        truth = simulator.truth_at(t)
        cell = next(((r, c) for r, c, start, end in visits if start + SETTLE_S <= t <= end), None)
        if cell is None or not truth.persons:
            continue
        hips = truth.persons[0].keypoints[[11, 12], :2].mean(axis=0)
        guess = reading.persons[0].position if reading.persons else centre
        errors.setdefault(cell, []).append(float(np.linalg.norm(guess - hips)))
    error = np.full((len(ys), len(xs)), np.nan)
    for (row, column), values in errors.items():
        error[row, column] = float(np.median(values))
    centre_error = np.hypot(xs[None, :] - centre[0], ys[:, None] - centre[1])
    return PlanResult(xs, ys, error, centre_error, duration)


def heatmap_png(result: PlanResult, room: RoomSpec, path: Path, *, pixels_per_m: int = 80) -> None:
    """The error per cell as a colour map over the floor plan (green small, red large), nodes as dots."""
    import cv2

    pad = 40  # room for the nodes' labels round the walls
    width, height = round(room.width_m * pixels_per_m), round(room.depth_m * pixels_per_m)
    image = np.full((height + 2 * pad + 30, width + 2 * pad, 3), 255, np.uint8)

    def pixel(x: float, y: float) -> tuple[int, int]:
        # Image rows grow downwards; the floor's y grows upwards.
        return pad + round(x * pixels_per_m), pad + round((room.depth_m - y) * pixels_per_m)

    finite = result.error_m[np.isfinite(result.error_m)]
    top = max(float(finite.max()) if finite.size else 1.0, 1.0)
    step_x = float(result.xs[1] - result.xs[0]) if result.xs.size > 1 else room.width_m
    step_y = float(result.ys[1] - result.ys[0]) if result.ys.size > 1 else room.depth_m
    font = cv2.FONT_HERSHEY_SIMPLEX
    for row, y in enumerate(result.ys):
        for column, x in enumerate(result.xs):
            value = float(result.error_m[row, column])
            if not np.isfinite(value):
                continue
            share = min(1.0, value / top)
            colour = (60, round(200 * (1 - share)) + 30, round(230 * share) + 20)  # BGR
            corner_a, corner_b = pixel(x - step_x / 2, y + step_y / 2), pixel(x + step_x / 2, y - step_y / 2)
            cv2.rectangle(image, corner_a, corner_b, colour, -1)
            centre = pixel(x, y)
            cv2.putText(image, f"{value:.1f}", (centre[0] - 14, centre[1] + 5), font, 0.4, (0, 0, 0), 1)
    cv2.rectangle(image, pixel(0, room.depth_m), pixel(room.width_m, 0), (0, 0, 0), 2)
    for node in room.nodes:
        px, py = pixel(node.position[0], node.position[1])
        colour = (200, 60, 0) if node.role == "rx" else (0, 0, 0)
        cv2.circle(image, (px, py), 6, colour, -1)
        cv2.putText(image, node.id, (px + 7, py - 7), font, 0.4, colour, 1)
    caption = f"median error per cell, m (0 green .. {top:.1f} red); SIMULATED"
    cv2.putText(image, caption, (6, height + 2 * pad + 20), font, 0.4, (0, 0, 0), 1)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}")
