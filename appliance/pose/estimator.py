"""The sensing estimator: the links' prepared samples -> ``RoomSensing`` -> the scene -> ``PersonPose``s.

Every prepared sample goes to ``push``; per published reading the pipeline calls ``observe`` (cheap),
``classify`` on its inference thread (the int8 model), then ``read`` (presence, trackers, falls) and
``track`` (the scene: stable ids with the configured hysteresis, zones, activity, events), and turns each
tracked person into the ``PoseFrame`` contract with ``pose``. Each link learns its empty room from its
first ``calibration_s`` seconds, as the motion detector does; ``forget_references`` starts that again.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.contracts.pose import Keypoint, PersonPose
from appliance.csi.prep import PreparedSample
from appliance.pose.camera import VirtualCamera, camera_for_room
from appliance.pose.scene import Scene, SceneUpdate, TrackedPerson
from appliance.pose.sensing.classifier import RoomClass, SensingModel
from appliance.pose.sensing.cues import RoomCues
from appliance.pose.sensing.geometry import RoomGeometry
from appliance.pose.sensing.likelihood import LinkLikelihood
from appliance.pose.sensing.room import RoomSensing, SensingReading, SensingSettings

F32 = np.typing.NDArray[np.float32]


class SensingEstimator:
    """Everything the sensing path needs between the prepared samples and a ``PoseFrame``'s persons."""

    def __init__(
        self,
        model: SensingModel,
        likelihood: LinkLikelihood,
        geometry: RoomGeometry,
        scene: Scene,
        settings: SensingSettings,
        *,
        rate_hz: float,
        calibration_s: float,
    ) -> None:
        self.model = model
        self.likelihood = likelihood
        self.scene = scene
        self.settings = settings
        self._rate_hz = rate_hz
        self._calibration_s = calibration_s
        self.geometry = geometry
        self.sensing = self._sensing(geometry)
        self.camera: VirtualCamera = camera_for_room(geometry.width_m, geometry.depth_m, geometry.height_m)

    def _sensing(self, geometry: RoomGeometry) -> RoomSensing:
        scene = self.scene.settings
        return RoomSensing(
            geometry,
            self.settings,
            self.model,
            self.likelihood,
            rate_hz=self._rate_hz,
            calibration_s=self._calibration_s,
            fall_sensitivity=scene.fall_sensitivity,
            fall_confirm_s=scene.fall_confirm_s,
            fall_refractory_s=scene.fall_refractory_s,
        )

    def push(self, samples: Sequence[PreparedSample]) -> None:
        for sample in samples:
            self.sensing.push(sample)

    def set_geometry(self, geometry: RoomGeometry) -> None:
        """The room's nodes changed while running: everything that depends on where they are starts
        again (the empty rooms are learnt anew, as a moved node sees a new one). Compared whole, not by
        link ids: a node moved (same id, new position) changes the geometry too."""
        if geometry == self.geometry:
            return
        self.geometry = geometry
        self.sensing = self._sensing(geometry)
        self.camera = camera_for_room(geometry.width_m, geometry.depth_m, geometry.height_m)

    def forget_references(self) -> None:
        """The room is to be recalibrated: every link learns its empty room anew."""
        self.sensing.recalibrate()

    @property
    def ready_links(self) -> int:
        return sum(e.reference.ready for e in self.sensing.cues.extractors.values())

    def observe(self, t_s: float) -> tuple[RoomCues, tuple[F32, F32] | None]:
        """The links' cues now and the model's inputs (None until it has two seconds of cues)."""
        return self.sensing.observe(t_s)

    def classify(self, inputs: tuple[F32, F32]) -> RoomClass:
        """Blocking: run on the pipeline's inference thread."""
        return self.sensing.classify(inputs)

    def read(self, cues: RoomCues, room_class: RoomClass | None) -> SensingReading:
        return self.sensing.read(cues, room_class)

    def track(self, reading: SensingReading) -> SceneUpdate:
        return self.scene.update(reading.window_estimate())

    def pose(self, person: TrackedPerson) -> PersonPose:
        """A tracked person in the ``PoseFrame`` contract: room metres plus the overlay view's x/y."""
        view = self.camera.project(person.keypoints)
        keypoints = tuple(
            Keypoint(
                name=name,
                x=float(view[i, 0]),
                y=float(view[i, 1]),
                position_m=(
                    float(person.keypoints[i, 0]),
                    float(person.keypoints[i, 1]),
                    float(person.keypoints[i, 2]),
                ),
                confidence=float(person.joint_confidence[i]),
            )
            for i, name in enumerate(KEYPOINT_NAMES)
        )
        finite = view[np.all(np.isfinite(view), axis=1)]
        if len(finite):
            low = np.clip(finite.min(axis=0), 0.0, 1.0)
            high = np.clip(finite.max(axis=0), 0.0, 1.0)
            bbox = (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))
        else:
            bbox = (0.0, 0.0, 0.0, 0.0)
        x, y, z = (float(v) for v in person.centre)
        return PersonPose(
            id=person.id,
            keypoints=keypoints,
            bbox=bbox,
            zone=person.zone,
            activity=person.activity,
            confidence=person.confidence,
            position_m=(x, y, z),
            uncertainty_m=person.uncertainty_m,
        )
