"""``RoomSensing``: every link's cues -> presence, count, activity, positions, falls and rendered people.

Per reading (the pipeline's tick, or an evaluation's):

1. every link's cues against its empty room (``cues.RoomCueExtractor``);
2. the classifier on the last two seconds of them: person count and the room's activity;
3. presence with hysteresis from the classifier's probability that someone is there, which sees still
   people through their breathing and the change they make to the links' RSSI and amplitude profile;
4. the trackers, one particle filter per counted person, on every link's cues;
5. falls (``falls.FallDetector``);
6. the empty-room references adapt once the room has been confidently empty for ``adapt_after_s``;
7. each person rendered as 17 keypoints (``skeleton``), for the scene (ids, zones, events).

The classifier is the only step that may run in a worker thread (``classify``); the rest is cheap enough
for the event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from appliance.contracts.coco import ACTIVITIES
from appliance.csi.prep import PreparedSample
from appliance.pose.scene import PersonEstimate, WindowEstimate
from appliance.pose.scene.estimate import Fall
from appliance.pose.sensing.classifier import (
    DEFAULT_MODEL,
    MAX_COUNT,
    POSTURES,
    CueHistory,
    RoomClass,
    SensingModel,
)
from appliance.pose.sensing.cues import RoomCueExtractor, RoomCues
from appliance.pose.sensing.falls import FallDetector
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import DEFAULT_LIKELIHOOD, LinkLikelihood
from appliance.pose.sensing.skeleton import Posture, heading, joint_confidence, render
from appliance.pose.sensing.tracker import MultiTracker, PositionEstimate

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

# A fallen person is drawn on the floor for this long after the fall.
ON_FLOOR_S = 60.0


class SensingSettings(BaseModel):
    """The ``sensing:`` section: where people are, from every link's physical cues."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True,
        description="Localise people with the trackers and count/classify them with the model; false "
        "leaves every reading to the motion detector.",
    )
    model: Path = Field(
        DEFAULT_MODEL, description="The int8 count/activity model (default: the shipped one)."
    )
    likelihood: Path = Field(
        DEFAULT_LIKELIHOOD, description="The link likelihood weights (default: shipped)."
    )
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads (1 is usually fastest).")
    enter_presence: float = Field(
        0.6, gt=0.0, lt=1.0, description="Presence starts when the model is at least this sure of someone."
    )
    leave_presence: float = Field(
        0.2, gt=0.0, lt=1.0, description="Presence ends when the model's certainty stays below this..."
    )
    clear_s: float = Field(
        8.0, ge=0.0, le=600.0, description="... for this many seconds (a still person's dips are shorter)."
    )
    adapt_after_s: float = Field(
        60.0,
        ge=5.0,
        description="Seconds the room must be confidently empty before the links' empty-room references "
        "follow it (they never learn a person sitting still).",
    )
    min_links: int = Field(1, ge=1, description="Links with a learnt empty room before anything is reported.")


@dataclass(frozen=True, slots=True)
class SensedPerson:
    """One person this reading: position and its uncertainty, velocity, posture, rendered skeleton."""

    position: F64  # (2,) metres
    velocity: F64  # (2,) m/s
    uncertainty_m: float
    heading_rad: float
    posture: Posture
    keypoints: F64  # (17, 3) rendered
    joint_confidence: F64  # (17,)


@dataclass(frozen=True, slots=True)
class SensingReading:
    """The room at one reading. ``room_class`` is None until the classifier has two seconds of cues."""

    t_s: float
    ready: bool
    presence: bool
    presence_probability: float
    count: int
    room_class: RoomClass | None
    persons: tuple[SensedPerson, ...]
    fall: Fall | None
    links: int

    @property
    def activity(self) -> str | None:
        if self.room_class is None or not self.presence:
            return None
        probs = self.room_class.activity.copy()
        probs[ACTIVITIES.index("empty")] = 0.0
        return ACTIVITIES[int(np.argmax(probs))]

    def window_estimate(self) -> WindowEstimate:
        """The persons as the scene takes them (rendered keypoints; the activity is the room's)."""
        activity = np.zeros(len(ACTIVITIES))
        if self.room_class is not None:
            activity = self.room_class.activity.astype(np.float64)
        return WindowEstimate(
            self.t_s,
            [
                PersonEstimate(
                    presence=self.presence_probability,
                    keypoints=p.keypoints,
                    joint_confidence=p.joint_confidence,
                    activity_probs=activity,
                    # With several people the fall goes to the first tracked: the burst says a fall
                    # happened, not whose it was.
                    fall=self.fall if i == 0 else None,
                    uncertainty_m=p.uncertainty_m,
                )
                for i, p in enumerate(self.persons)
            ],
        )


@dataclass
class _PresenceState:
    present: bool = False
    below_since: float | None = None
    empty_since: float | None = None
    adapted_at: float | None = None
    headings: list[float] = field(default_factory=list)
    fallen_at: float = -math.inf


class RoomSensing:
    """Everything between prepared samples and the scene; feed ``push`` and call ``read`` per tick."""

    def __init__(
        self,
        geometry: RoomGeometry,
        settings: SensingSettings,
        model: SensingModel,
        likelihood: LinkLikelihood,
        *,
        rate_hz: float,
        calibration_s: float,
        fall_sensitivity: float,
        fall_confirm_s: float,
        fall_refractory_s: float,
        seed: int = 0,
    ) -> None:
        self.geometry = geometry
        self.settings = settings
        self.model = model
        n_rx = {link: spec.rx_antennas for link, spec in geometry.links.items()}
        self.cues = RoomCueExtractor(rate_hz, calibration_s, n_rx)
        self.history = CueHistory(geometry)
        self.tracker = MultiTracker(geometry, likelihood, seed)
        self.falls = FallDetector(fall_sensitivity, fall_confirm_s, fall_refractory_s)
        self._state = _PresenceState()

    def push(self, sample: PreparedSample) -> None:
        if sample.link in self.geometry.links:
            self.cues.push(sample)

    def recalibrate(self) -> None:
        self.cues.recalibrate()
        self._state = _PresenceState()

    def observe(self, t_s: float) -> tuple[RoomCues, tuple[F32, F32] | None]:
        """The cues now, and the classifier's inputs when it has enough history (else None)."""
        cues = self.cues.room(t_s)
        self.history.add(cues)
        return cues, (self.history.inputs() if self.history.full and cues.links else None)

    def classify(self, inputs: tuple[F32, F32]) -> RoomClass:
        """Blocking: run on the pipeline's inference thread."""
        return self.model.classify(*inputs)

    def read(self, cues: RoomCues, room_class: RoomClass | None) -> SensingReading:
        """Fold one reading in: presence, trackers, falls, reference adaptation, rendered people."""
        t = cues.t_s
        state = self._state
        settings = self.settings
        ready = len(cues.links) >= settings.min_links and room_class is not None
        probability = room_class.presence if room_class is not None else 0.0
        if not ready:
            state.present = False
        elif probability >= settings.enter_presence:
            state.present, state.below_since = True, None
        elif state.present and probability < settings.leave_presence:
            state.below_since = t if state.below_since is None else state.below_since
            if t - state.below_since >= settings.clear_s:
                state.present, state.below_since = False, None
        elif state.present:
            state.below_since = None
        count = 0
        if state.present and room_class is not None:
            count = max(1, int(np.argmax(room_class.count)))
        count = min(count, MAX_COUNT)
        estimates = self.tracker.update(cues, count) if ready else []
        fall = (
            self.falls.update(cues, room_class.activity if room_class is not None else None)
            if ready
            else None
        )
        if fall is not None:
            state.fallen_at = t
        self._adapt(t, ready and not state.present and probability < settings.leave_presence)
        posture = self._posture(room_class)
        persons = tuple(self._person(i, e, posture, t) for i, e in enumerate(estimates))
        return SensingReading(
            t, ready, state.present, probability, count, room_class, persons, fall, len(cues.links)
        )

    def _adapt(self, t: float, empty: bool) -> None:
        state = self._state
        if not empty:
            state.empty_since = state.adapted_at = None
            return
        state.empty_since = t if state.empty_since is None else state.empty_since
        if t - state.empty_since < self.settings.adapt_after_s:
            return
        since = state.adapted_at if state.adapted_at is not None else t - 1.0
        if t - since >= 1.0:
            self.cues.adapt(t - since)
            state.adapted_at = t

    @staticmethod
    def _posture(room_class: RoomClass | None) -> Posture:
        if room_class is None:
            return "standing"
        by_posture: dict[str, float] = {}
        for name, posture in POSTURES.items():
            by_posture[posture] = by_posture.get(posture, 0.0) + float(
                room_class.activity[ACTIVITIES.index(name)]
            )
        by_posture["lying"] += float(room_class.activity[ACTIVITIES.index("falling")])
        best = max(by_posture, key=lambda k: by_posture[k])
        return "sitting" if best == "sitting" else "lying" if best == "lying" else "standing"

    def _person(self, index: int, estimate: PositionEstimate, posture: Posture, t: float) -> SensedPerson:
        headings = self._state.headings
        while len(headings) <= index:
            headings.append(0.0)
        headings[index] = heading(estimate.velocity, headings[index])
        on_floor = posture == "lying" and t - self._state.fallen_at < ON_FLOOR_S
        keypoints = render(estimate.position, headings[index], posture, on_floor=on_floor)
        return SensedPerson(
            position=estimate.position,
            velocity=estimate.velocity,
            uncertainty_m=estimate.uncertainty_m,
            heading_rad=headings[index],
            posture=posture,
            keypoints=keypoints,
            joint_confidence=joint_confidence(estimate.uncertainty_m),
        )
