"""How well the motion/presence detector separates quiet rooms from movement, beside trivial baselines.

Real captures (ESPectre's ESP32 and ESP32-S3 recordings of an empty room and of a person moving): the
detector is calibrated on the first half of the empty-room file, then every packet after that is
labelled by its file (quiet or movement) and compared with the detector's motion flag. Simulated room: the
demo scenario's ground truth (anyone present) against the detector's presence flag, per 0.1 s step, after
the calibration period. Trivial baselines: always "quiet"/"absent", and always "motion"/"present".
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import numpy as np
from captures import CAPTURES

from appliance.csi.formats.espectre_npz import read_espectre_npz
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import RoomSimulator, Scenario, default_room
from appliance.pose.motion import LinkMotionDetector, MotionSettings, RoomMotion


def _scores(truth: Sequence[bool], predicted: Sequence[bool]) -> tuple[float, float, float]:
    """Accuracy, recall of the positive class, and false-positive rate."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    accuracy = float(np.mean(t == p))
    recall = float(np.mean(p[t])) if t.any() else float("nan")
    false_positive = float(np.mean(p[~t])) if (~t).any() else float("nan")
    return accuracy, recall, false_positive


def _row(name: str, truth: Sequence[bool], predicted: Sequence[bool]) -> str:
    accuracy, recall, false_positive = _scores(truth, predicted)
    return (
        f"  {name:<26} accuracy {accuracy:6.3f}   recall {recall:6.3f}   "
        f"false positives {false_positive:6.3f}"
    )


def _print_rows(truth: Sequence[bool], predicted: Sequence[bool], positive: str, negative: str) -> None:
    print(_row("detector", truth, predicted))
    print(_row(f"always {negative}", truth, [False] * len(truth)))
    print(_row(f"always {positive}", truth, [True] * len(truth)))


def _continue_clock(frames: list[CsiFrame], after: list[CsiFrame]) -> list[CsiFrame]:
    step = after[1].device_ts_us - after[0].device_ts_us
    offset = after[-1].device_ts_us + step - frames[0].device_ts_us
    return [dataclasses.replace(f, device_ts_us=f.device_ts_us + offset) for f in frames]


def real_captures(settings: MotionSettings) -> None:
    for chip in ("esp32", "s3"):
        baseline_files = sorted((CAPTURES / "esp32").glob(f"baseline_{chip}_*.npz"))
        movement_files = sorted((CAPTURES / "esp32").glob(f"movement_{chip}_*.npz"))
        if not baseline_files or not movement_files:
            print(f"{chip}: captures not found under {CAPTURES} (set INVISPOSE_CAPTURES)")
            continue
        baseline = read_espectre_npz(baseline_files[0])
        movement = _continue_clock(read_espectre_npz(movement_files[0]), baseline)
        half_s = baseline[len(baseline) // 2].device_ts_us * 1e-6
        calibrated = settings.model_copy(update={"calibration_s": half_s - settings.window_s})
        detector = LinkMotionDetector(chip, calibrated)
        truth, predicted = [], []
        for moving, frames in ((False, baseline), (True, movement)):
            for frame in frames:
                reading = detector.update(frame)
                if reading.calibrated:
                    truth.append(moving)
                    predicted.append(reading.motion)
        print(f"{chip}: {len(truth)} packets after calibration ({sum(truth)} in the movement recording)")
        _print_rows(truth, predicted, "motion", "quiet")


def simulated_room(settings: MotionSettings, seconds: float, seed: int) -> None:
    room = default_room()
    simulator = RoomSimulator(room, Scenario.demo(room, seed=seed), seed=seed)
    detector = RoomMotion(settings)
    truth, predicted = [], []
    step_s = 0.1
    for _ in range(round(seconds / step_s)):
        chunk = simulator.advance(step_s)
        for frame in chunk.frames:
            detector.update(frame)
        if simulator.t_s < settings.calibration_s + settings.window_s:
            continue
        truth.append(simulator.truth_at(simulator.t_s).person_count > 0)
        predicted.append(detector.reading().presence)
    print(f"simulated demo room, seed {seed}: {len(truth)} steps of {step_s} s, {sum(truth)} with someone in")
    _print_rows(truth, predicted, "present", "absent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sim-seconds", type=float, default=600.0, help="simulated seconds (default 600)")
    parser.add_argument(
        "--seed", type=int, default=7, help="simulator seed (default 7, the shipped config's)"
    )
    args = parser.parse_args()
    settings = MotionSettings()
    real_captures(settings)
    simulated_room(settings, args.sim_seconds, args.seed)


if __name__ == "__main__":
    main()
