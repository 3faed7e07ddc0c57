"""Angle of arrival with and without the chains' self-calibration, on held-out simulated Atheros rooms.

Each reading of a single person is placed, from the angle term alone, at the floor cell where the three
receivers' beams (``likelihood.beam_power`` of the moving residual's covariance) agree best: once with
each receiver's chain phases calibrated on the line of sight (``likelihood.chain_phases``, as the
appliance does), once without (the chains' random boot phases left in). Printed: the median distance of
that cell to the true position, beside the room-centre guess, over the readings of ``--episodes``
held-out ``atheros-3rx`` episodes (every realism switch on, per-chain phase offsets included).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from appliance.csi.simulator.room import HALF_WAVELENGTH_2G4_M, wavelength_m
from appliance.pose.sensing.episodes import collect, episode
from appliance.pose.sensing.geometry import array_axis, steering
from appliance.pose.sensing.likelihood import AOA_FLOOR, beam_power

GRID_STEP_M = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--episodes", type=int, default=3, help="held-out episodes (default 3)")
    parser.add_argument("--seconds", type=float, default=40.0, help="each (default 40)")
    args = parser.parse_args()
    errors: dict[str, list[float]] = {"calibrated": [], "uncalibrated": [], "room centre": []}
    for index in range(args.episodes):
        data = collect(episode("heldout", "atheros-3rx", "moving", index, args.seconds))
        width, depth = float(data.room_size[0]), float(data.room_size[1])
        xs = np.arange(GRID_STEP_M / 2, width, GRID_STEP_M)
        ys = np.arange(GRID_STEP_M / 2, depth, GRID_STEP_M)
        cells = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
        wavelength = wavelength_m(2437)
        arrays = []
        for link in range(len(data.links)):
            axis = np.asarray(array_axis(data.rx[link, 0], data.rx[link, 1], width, depth))
            args_ = (data.rx[link], axis, 3, HALF_WAVELENGTH_2G4_M, wavelength)
            los = steering(data.tx[link][None], *args_)[0]
            arrays.append((steering(cells, *args_), los))
        for t in np.flatnonzero(data.count == 1):
            truth = data.positions[t, 0]
            for name in ("calibrated", "uncalibrated"):
                score = np.zeros(len(cells))
                for link, (vectors, los) in enumerate(arrays):
                    covariance = data.covariances[t, link]
                    if np.real(np.trace(covariance)) <= 0:
                        continue
                    # Uncalibrated: a static channel that is the line of sight alone, so no offset is found.
                    static = (
                        data.static_covariances[link] if name == "calibrated" else np.outer(los, los.conj())
                    )
                    score += np.log(np.maximum(beam_power(covariance, static, vectors, los), AOA_FLOOR))
                errors[name].append(float(np.linalg.norm(cells[int(np.argmax(score))] - truth)))
            errors["room centre"].append(float(np.linalg.norm(np.array([width, depth]) / 2 - truth)))
    readings = len(errors["room centre"])
    print(f"atheros-3rx, {args.episodes} held-out SIMULATED rooms, {readings} single-person readings")
    for name, values in errors.items():
        print(f"  {name:<14} median error {statistics.median(values):.2f} m")


if __name__ == "__main__":
    main()
