"""Motion scripts: what each simulated person does, when, and where.

A ``PersonScript`` is built by chaining actions (``enter``, ``walk_to``, ``sit`` ...). Each action appends
timed segments that blend one pose row into another (see ``body``), with a gait, a wave or nothing on top.
Postural changes an action needs first (standing up before walking, turning to face the way) are inserted
automatically, with durations typical of adults, so every script is physically continuous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from appliance.csi.simulator.body import (
    HEAD_CENTRE_HEIGHT,
    HIP_HEIGHT,
    N_PARAMS,
    Body,
    Param,
    lying,
    sitting,
    standing,
)
from appliance.csi.simulator.room import RoomSpec

F64 = npt.NDArray[np.float64]
Easing = Literal["linear", "smooth", "gravity"]
Posture = Literal["away", "standing", "sitting", "lying"]

# Gait (e.g. Winter, "Biomechanics and Motor Control of Human Movement"): stride length ~0.83 x stature at a
# natural 1.3 m/s, shorter when slower; joint swings in the sagittal plane; the pelvis rises and falls twice
# per stride.
NATURAL_WALKING_SPEED_M_S = 1.3
STRIDE_PER_STATURE = 0.83
HIP_SWING_RAD = math.radians(25.0)
KNEE_SWING_RAD = math.radians(40.0)
ARM_SWING_RAD = math.radians(20.0)
PELVIS_BOB_M = 0.03
WALKING_LEAN_RAD = math.radians(4.0)
GAIT_RAMP_S = 0.4  # gait initiation and termination take about one step
TURN_RATE_RAD_S = math.pi  # a half turn on the spot takes about a second

SIT_DOWN_S = 1.5
STAND_UP_S = 1.5
LIE_DOWN_S = 3.0
GET_UP_S = 3.0
# A fall from standing reaches the floor in 0.5-1 s, accelerating like a toppling rod.
FALL_S = 0.8
ARM_RAISE_S = 0.6
WAVE_HZ = 2.0
WAVE_ELBOW_SWING_RAD = math.radians(30.0)
WAVE_SHOULDER_ABDUCTION_RAD = math.radians(100.0)
WAVE_ELBOW_FLEX_RAD = math.radians(70.0)

# Postural sway of a person at rest: millimetres at a few tenths of a hertz.
SWAY_M = 0.005
SWAY_HZ = 0.2
# How far from a wall a body's centre stays, and how far in a person walks after coming through a door.
WALL_CLEARANCE_M = 0.3
ENTRY_WALK_M = 0.8
DEFAULT_SEAT_M = 0.45
# The demo room stays empty this long first: the motion detector learns the quiet room in its default
# 10 s calibration plus a 1 s window, and a person walking in during it would be learnt as noise.
DEMO_EMPTY_LEAD_S = 15.0
# ... and empty this long at the end of each loop, longer than the detector's default 30 s presence hold,
# so that a user watching the demo sees presence clear once everyone has left.
DEMO_EMPTY_TAIL_S = 45.0


@dataclass(frozen=True)
class _Segment:
    """From ``t0`` to ``t1`` the pose blends ``start`` into ``end``; activity "" means the person is away."""

    t0: float
    t1: float
    activity: str
    start: F64
    end: F64
    easing: Easing = "smooth"
    walking_speed_m_s: float = 0.0
    waving: bool = False

    def params(self, t: F64, body: Body) -> F64:
        span = self.t1 - self.t0
        frac = np.clip((t - self.t0) / span, 0.0, 1.0) if span > 0 else np.ones_like(t)
        if self.easing == "smooth":
            frac = frac * frac * (3 - 2 * frac)
        elif self.easing == "gravity":
            frac = frac * frac
        p = self.start + frac[:, None] * (self.end - self.start)
        elapsed = np.clip(t - self.t0, 0.0, span)
        if self.walking_speed_m_s > 0:
            stride = (
                STRIDE_PER_STATURE
                * body.height_m
                * math.sqrt(self.walking_speed_m_s / NATURAL_WALKING_SPEED_M_S)
            )
            phase = 2 * np.pi * self.walking_speed_m_s * elapsed / stride
            envelope = np.clip(np.minimum(elapsed, span - elapsed) / GAIT_RAMP_S, 0.0, 1.0)
            swing = envelope * np.sin(phase)
            p[:, Param.HIP_L] += HIP_SWING_RAD * swing
            p[:, Param.HIP_R] -= HIP_SWING_RAD * swing
            p[:, Param.KNEE_L] += envelope * KNEE_SWING_RAD * np.maximum(0.0, np.cos(phase))
            p[:, Param.KNEE_R] += envelope * KNEE_SWING_RAD * np.maximum(0.0, -np.cos(phase))
            p[:, Param.SHOULDER_FLEX_L] -= ARM_SWING_RAD * swing
            p[:, Param.SHOULDER_FLEX_R] += ARM_SWING_RAD * swing
            p[:, Param.ROOT_Z] -= envelope * PELVIS_BOB_M * (1 - np.cos(2 * phase)) / 2
            p[:, Param.PITCH] += envelope * WALKING_LEAN_RAD
        if self.waving:
            p[:, Param.ELBOW_R] += WAVE_ELBOW_SWING_RAD * np.sin(2 * np.pi * WAVE_HZ * elapsed)
        return p


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class PersonScript:
    """One person's timeline, built by chaining actions; times are seconds from the scenario's start."""

    def __init__(self, room: RoomSpec, body: Body, person_id: int) -> None:
        self.room = room
        self.body = body
        self.person_id = person_id
        self.segments: list[_Segment] = []
        self._time = 0.0
        self._pose: F64 | None = None
        self._posture: Posture = "away"

    @property
    def duration_s(self) -> float:
        return self._time

    @property
    def posture(self) -> Posture:
        return self._posture

    def _add(
        self,
        duration: float,
        activity: str,
        end: F64,
        easing: Easing = "smooth",
        *,
        walking_speed_m_s: float = 0.0,
        waving: bool = False,
    ) -> None:
        start = end if self._pose is None else self._pose
        self.segments.append(
            _Segment(
                self._time, self._time + duration, activity, start, end, easing, walking_speed_m_s, waving
            )
        )
        self._time += duration
        self._pose = end

    def _here(self, action: str) -> tuple[float, float, float]:
        if self._pose is None:
            raise ValueError(f"person {self.person_id}: {action}() while away; enter() first")
        return float(self._pose[Param.ROOT_X]), float(self._pose[Param.ROOT_Y]), float(self._pose[Param.YAW])

    def _inside(self, x: float, y: float, margin: float) -> tuple[float, float]:
        return (
            float(np.clip(x, margin, self.room.width_m - margin)),
            float(np.clip(y, margin, self.room.depth_m - margin)),
        )

    def _door(self, door: int) -> tuple[float, float, float]:
        """A door's point just inside the room, and the heading that faces into the room from it."""
        x, y = self.room.entry_points()[door]
        walls = (x, self.room.width_m - x, y, self.room.depth_m - y)
        inward = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))[int(np.argmin(walls))]
        x, y = self._inside(x, y, WALL_CLEARANCE_M)
        return x, y, math.atan2(inward[1], inward[0])

    def _stand_up(self) -> None:
        x, y, yaw = self._here("stand up")
        if self._posture == "sitting":
            self._add(STAND_UP_S, "standing", standing(self.body, x, y, yaw))
        elif self._posture == "lying":
            self._add(GET_UP_S, "standing", standing(self.body, x, y, yaw))
        self._posture = "standing"

    def away(self, seconds: float) -> PersonScript:
        """Stay out of the room for a while (a script starts away)."""
        if self._pose is not None:
            raise ValueError(f"person {self.person_id}: away() while in the room; leave() first")
        self.segments.append(_Segment(self._time, self._time + seconds, "", *(np.zeros((2, N_PARAMS)))))
        self._time += seconds
        return self

    def enter(self, door: int = 0) -> PersonScript:
        """Appear in a doorway (index into the room's doors) and walk a step into the room."""
        if self._pose is not None:
            raise ValueError(f"person {self.person_id}: enter() while already in the room")
        x, y, yaw = self._door(door)
        self._pose = standing(self.body, x, y, yaw)
        self._posture = "standing"
        return self.walk_to(x + ENTRY_WALK_M * math.cos(yaw), y + ENTRY_WALK_M * math.sin(yaw))

    def walk_to(self, x: float, y: float, speed: float = 1.0) -> PersonScript:
        """Stand up if needed, turn on the spot to face the target, and walk there in a straight line."""
        self._stand_up()
        x0, y0, yaw = self._here("walk_to")
        x, y = self._inside(x, y, WALL_CLEARANCE_M)
        distance = math.hypot(x - x0, y - y0)
        if distance < 1e-3:
            return self
        turn = _wrap(math.atan2(y - y0, x - x0) - yaw)
        if abs(turn) > 1e-3:
            was_walking = bool(self.segments) and self.segments[-1].walking_speed_m_s > 0
            self._add(
                abs(turn) / TURN_RATE_RAD_S,
                "walking" if was_walking else "standing",
                standing(self.body, x0, y0, yaw + turn),
            )
        self._add(
            distance / speed,
            "walking",
            standing(self.body, x, y, yaw + turn),
            "linear",
            walking_speed_m_s=speed,
        )
        return self

    def stand(self, seconds: float) -> PersonScript:
        self._stand_up()
        assert self._pose is not None
        self._add(seconds, "standing", self._pose)
        return self

    def sit(self, seconds: float, seat_m: float = DEFAULT_SEAT_M) -> PersonScript:
        """Sit down where one stands (on a seat ``seat_m`` high) and stay seated."""
        if self._posture == "lying":
            self._stand_up()
        x, y, yaw = self._here("sit")
        if self._posture != "sitting":
            self._add(SIT_DOWN_S, "sitting", sitting(self.body, x, y, yaw, seat_m))
            self._posture = "sitting"
        assert self._pose is not None
        self._add(seconds, "sitting", self._pose)
        return self

    def lie_down(self, seconds: float, surface_m: float = 0.0) -> PersonScript:
        """Lie down face up on the floor or on a bed/sofa ``surface_m`` high."""
        x, y, yaw = self._here("lie_down")
        if self._posture != "lying":
            self._add(LIE_DOWN_S, "lying", lying(self.body, x, y, yaw, surface_m, face_down=False))
            self._posture = "lying"
        assert self._pose is not None
        self._add(seconds, "lying", self._pose)
        return self

    def fall(self, lie_s: float = 10.0) -> PersonScript:
        """Topple forward to the floor, pivoting on the feet, then lie there for ``lie_s``."""
        x, y, yaw = self._here("fall")
        if self._posture == "lying":
            raise ValueError(f"person {self.person_id}: fall() while lying")
        reach = HIP_HEIGHT * self.body.height_m
        margin = (HEAD_CENTRE_HEIGHT - HIP_HEIGHT) * self.body.height_m + WALL_CLEARANCE_M
        x, y = self._inside(x + reach * math.cos(yaw), y + reach * math.sin(yaw), margin)
        self._add(FALL_S, "falling", lying(self.body, x, y, yaw, 0.0, face_down=True), "gravity")
        self._posture = "lying"
        assert self._pose is not None
        self._add(lie_s, "lying", self._pose)
        return self

    def wave(self, seconds: float) -> PersonScript:
        """Raise the right arm, wave the forearm at about 2 Hz, lower the arm."""
        self._stand_up()
        x, y, yaw = self._here("wave")
        rest = standing(self.body, x, y, yaw)
        raised = rest.copy()
        raised[Param.SHOULDER_ABD_R] = WAVE_SHOULDER_ABDUCTION_RAD
        raised[Param.ELBOW_R] = WAVE_ELBOW_FLEX_RAD
        self._add(ARM_RAISE_S, "standing", raised)
        # Whole wave cycles, so the arm is back where it started when it comes down.
        cycles = max(1, round(seconds * WAVE_HZ))
        self._add(cycles / WAVE_HZ, "standing", raised, waving=True)
        self._add(ARM_RAISE_S, "standing", rest)
        return self

    def leave(self, door: int = 0) -> PersonScript:
        """Walk to a door and go through it."""
        x, y, _ = self._door(door)
        self.walk_to(x, y)
        self.segments.append(_Segment(self._time, self._time, "", *(np.zeros((2, N_PARAMS)))))
        self._pose = None
        self._posture = "away"
        return self


@dataclass(frozen=True)
class PersonState:
    """One person over T instants: where present, the pose rows, activity labels and breathing phase."""

    person_id: int
    body: Body
    present: npt.NDArray[np.bool_]
    params: F64  # (T, N_PARAMS)
    activities: list[str]  # "" where away
    breathing: F64  # (T,) in -1..1


class Scenario:
    """Scripts for everyone who appears in the room; with ``loop_s`` the whole scenario repeats."""

    def __init__(self, room: RoomSpec, *, loop_s: float | None = None) -> None:
        self.room = room
        self.loop_s = loop_s
        self.people: list[PersonScript] = []

    def person(self, body: Body | None = None) -> PersonScript:
        script = PersonScript(self.room, body or Body(), len(self.people))
        self.people.append(script)
        return script

    def evaluate(self, t_s: F64) -> list[PersonState]:
        """Every scripted person's state at the (sorted) times ``t_s``."""
        local = np.mod(t_s, self.loop_s) if self.loop_s else t_s
        states = []
        for script in self.people:
            segments = script.segments
            params = np.zeros((local.shape[0], N_PARAMS))
            activities = [""] * local.shape[0]
            if segments:
                starts = np.array([s.t0 for s in segments])
                index = np.clip(np.searchsorted(starts, local, side="right") - 1, 0, len(segments) - 1)
                for i in np.unique(index):
                    segment = segments[i]
                    mask = index == i
                    if segment.activity:
                        params[mask] = segment.params(local[mask], script.body)
                    for j in np.flatnonzero(mask):
                        activities[j] = segment.activity
            present = np.array([bool(a) for a in activities])
            sway_phase = 2 * np.pi * SWAY_HZ * local + 1.7 * script.person_id
            params[:, Param.ROOT_X] += SWAY_M * np.sin(sway_phase)
            params[:, Param.ROOT_Y] += SWAY_M * np.sin(1.3 * sway_phase)
            breathing = np.sin(2 * np.pi * script.body.breathing_hz * local)
            states.append(PersonState(script.person_id, script.body, present, params, activities, breathing))
        return states

    @classmethod
    def demo(cls, room: RoomSpec, seed: int) -> Scenario:
        """A household loop of about three minutes for the default run.

        One person comes in, sits on the sofa, stands by the window and waves, lies down on the sofa, and
        leaves; a second arrives while the first is still there, sits at the table, falls, gets up and leaves;
        the first comes back for a short walk round. The room is empty at the start (long enough for the
        motion detector's default calibration) and at the end of each loop.
        Positions are fractions of the room so that any room works; the seed varies bodies and timings.
        """
        rng = np.random.default_rng(seed)
        w, d = room.width_m, room.depth_m
        last_door = len(room.entry_points()) - 1

        def jitter(seconds: float) -> float:
            return float(seconds * rng.uniform(0.8, 1.2))

        first = Body(float(rng.uniform(1.7, 1.9)), float(rng.uniform(0.9, 1.2)), float(rng.uniform(0.2, 0.3)))
        second = Body(
            float(rng.uniform(1.55, 1.7)), float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.22, 0.33))
        )
        scenario = cls(room)
        a = scenario.person(first)
        a.away(DEMO_EMPTY_LEAD_S).enter(0).walk_to(0.25 * w, 0.7 * d, 1.1).sit(jitter(14))
        a.walk_to(0.7 * w, 0.3 * d, 0.9).stand(jitter(6)).wave(jitter(4))
        a.walk_to(0.3 * w, 0.75 * d, 1.2).lie_down(jitter(15), surface_m=DEFAULT_SEAT_M).stand(jitter(3))
        a.walk_to(0.6 * w, 0.55 * d, 1.0).stand(jitter(5)).leave(last_door)
        b = scenario.person(second)
        b.away(jitter(60)).enter(last_door).walk_to(0.65 * w, 0.65 * d, 1.0).sit(jitter(12))
        b.walk_to(0.5 * w, 0.4 * d, 0.8).stand(jitter(4)).fall(lie_s=jitter(12)).stand(jitter(4))
        b.walk_to(0.35 * w, 0.35 * d, 0.7).stand(jitter(5)).leave(0)
        a.away(max(jitter(8), b.duration_s - a.duration_s + jitter(8))).enter(0)
        a.walk_to(0.8 * w, 0.7 * d, 1.4).stand(jitter(5)).walk_to(0.2 * w, 0.3 * d, 1.3).leave(0)
        scenario.loop_s = max(p.duration_s for p in scenario.people) + DEMO_EMPTY_TAIL_S
        return scenario

    @classmethod
    def random(
        cls,
        room: RoomSpec,
        rng: np.random.Generator,
        max_people: int = 3,
        duration_s: float = 60.0,
        *,
        empty_lead_s: float = 0.0,
    ) -> Scenario:
        """Randomized scripts for training data: random bodies, doors, paths, activities and falls.

        Nobody enters before ``empty_lead_s`` (the empty room a live appliance calibrates on).
        """
        scenario = cls(room)
        doors = len(room.entry_points())
        margin = WALL_CLEARANCE_M + 0.2
        for _ in range(int(rng.integers(1, max_people + 1))):
            script = scenario.person(Body.random(rng))
            lead = empty_lead_s + float(rng.uniform(0.0, 0.3 * duration_s))
            script.away(lead).enter(int(rng.integers(doors)))
            while script.duration_s < duration_s:
                action = rng.choice(["walk", "stand", "sit", "lie", "fall", "wave"], p=_RANDOM_ACTION_WEIGHTS)
                if action == "walk":
                    script.walk_to(
                        float(rng.uniform(margin, room.width_m - margin)),
                        float(rng.uniform(margin, room.depth_m - margin)),
                        float(rng.uniform(0.6, 1.4)),
                    )
                elif action == "stand":
                    script.stand(float(rng.uniform(2, 8)))
                elif action == "sit":
                    script.sit(float(rng.uniform(3, 15)), float(rng.uniform(0.4, 0.5)))
                elif action == "lie":
                    script.lie_down(float(rng.uniform(3, 15)), float(rng.choice([0.0, DEFAULT_SEAT_M, 0.55])))
                elif action == "fall":
                    if script.posture == "lying":
                        script.stand(float(rng.uniform(1, 3)))
                    script.fall(float(rng.uniform(3, 12)))
                else:
                    script.wave(float(rng.uniform(1.5, 5)))
            if rng.random() < 0.5:
                script.leave(int(rng.integers(doors)))
        return scenario


# Walking dominates daily life; falls are rare but must be well represented in training data.
_RANDOM_ACTION_WEIGHTS = np.array([0.4, 0.15, 0.13, 0.1, 0.1, 0.12])
