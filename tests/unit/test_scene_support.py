"""Builders of synthetic estimate streams shared by the scene tests (this module holds no tests itself).

Skeletons come from the simulator's body model, so keypoints have real proportions; noise, confidences
and activity probabilities stand in for what the pose model would add.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES, N_KEYPOINTS
from appliance.contracts.events import Event, EventType
from appliance.csi.simulator import Body, RoomSimulator, Scenario
from appliance.csi.simulator.body import lying, pose, sitting, standing
from appliance.pose.scene import Fall, PersonEstimate, Scene, SceneUpdate, WindowEstimate

F64 = npt.NDArray[np.float64]

RATE_HZ = 10.0
DT_S = 1.0 / RATE_HZ
# Host time of the first window: any epoch time; events carry it.
T0_S = 1_700_000_000.0
BODY = Body()
SEAT_M = 0.45
# The sensing path confirms a fall this long after the person went down (burst, then stillness).
FALL_CONFIRM_S = 3.0


def skeleton(x: float, y: float, posture: str = "standing", yaw: float = 0.0) -> F64:
    """(17, 3) keypoints of a person whose pelvis is at (x, y), in the given posture."""
    if posture == "standing":
        params = standing(BODY, x, y, yaw)
    elif posture == "sitting":
        params = sitting(BODY, x, y, yaw, SEAT_M)
    else:
        params = lying(BODY, x, y, yaw, 0.0, face_down=True)
    keypoints: F64 = pose(BODY, params[None]).keypoints[0]
    return keypoints


def activity_probs(activity: str, confidence: float = 0.8) -> F64:
    """Probabilities with ``confidence`` on ``activity`` and the rest spread over the other classes."""
    probs = np.full(len(ACTIVITIES), (1.0 - confidence) / (len(ACTIVITIES) - 1))
    probs[ACTIVITIES.index(activity)] = confidence
    return probs


def estimate(
    keypoints: F64,
    rng: np.random.Generator,
    *,
    noise_m: float = 0.05,
    activity: str | F64 = "standing",
    presence: float = 0.9,
    fall: Fall | None = None,
) -> PersonEstimate:
    probs = activity_probs(activity) if isinstance(activity, str) else activity
    return PersonEstimate(
        presence=presence,
        fall=fall,
        keypoints=keypoints + rng.normal(0.0, noise_m, keypoints.shape),
        joint_confidence=np.full(N_KEYPOINTS, 0.8),
        activity_probs=probs,
    )


def window(i: int, persons: Sequence[PersonEstimate]) -> WindowEstimate:
    return WindowEstimate(T0_S + i * DT_S, list(persons))


def run(scene: Scene, windows: Iterable[WindowEstimate]) -> list[SceneUpdate]:
    return [scene.update(w) for w in windows]


def events(updates: Iterable[SceneUpdate], kind: EventType | None = None) -> list[Event]:
    return [e for u in updates for e in u.events if kind is None or e.type == kind]


def simulated_windows(
    scenario: Scenario, rng: np.random.Generator, duration_s: float, noise_m: float = 0.04
) -> list[WindowEstimate]:
    """Windows from the simulator's TRUE keypoints and activities plus noise, at RATE_HZ.

    The activity vote is deliberately weak (0.5). A fall reaches the scene as the sensing path's fall
    detector reports it: once, ``FALL_CONFIRM_S`` after the person went down, for that person.
    """
    simulator = RoomSimulator(scenario.room, scenario, seed=0)
    windows = []
    fell_at: dict[int, float] = {}
    reported: set[int] = set()
    for i in range(round(duration_s * RATE_HZ)):
        t = i * DT_S
        truth = simulator.truth_at(t)
        persons = []
        for p in truth.persons:
            if p.activity == "falling":
                fell_at.setdefault(p.id, t)
            fall = None
            if p.id in fell_at and p.id not in reported and t - fell_at[p.id] >= FALL_CONFIRM_S:
                reported.add(p.id)
                fall = Fall(T0_S + fell_at[p.id], 0.9)
            persons.append(
                estimate(
                    p.keypoints, rng, noise_m=noise_m, activity=activity_probs(p.activity, 0.5), fall=fall
                )
            )
        windows.append(window(i, persons))
    return windows
