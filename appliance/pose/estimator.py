"""The model estimator: links' prepared samples -> pose model -> tracked scene -> ``PersonPose``s.

It learns each link's empty-room reference while the motion detector calibrates that link (the room is
quiet then by contract), builds the model's window from the pipeline's per-link ring buffers with the one
window builder (``features.build_window``), runs the int8 model, and feeds the tracker. Rooms with fewer
usable links than ``min_links`` are left to the motion detector: the pipeline asks ``ready_links`` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.contracts.pose import Keypoint, PersonPose
from appliance.csi.prep import PreparedSample
from appliance.pose.camera import VirtualCamera, camera_for_room
from appliance.pose.features import MAX_LINKS, EmptyRoomReference, ModelInputs, RoomGeometry, build_window
from appliance.pose.runtime import DEFAULT_MODEL, ModelOutput, PoseModel
from appliance.pose.scene import PersonEstimate, Scene, SceneUpdate, TrackedPerson, WindowEstimate


class ModelSettings(BaseModel):
    """The ``model:`` section: which pose model runs, and when the room is left to the motion detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        False,
        description="Run the pose model. Off by default: the shipped v1 does not yet beat trivial baselines "
        "on held-out rooms (see its MODEL_CARD); off leaves every reading to the motion detector.",
    )
    path: Path = Field(DEFAULT_MODEL, description="The int8 .tflite model (default: the shipped one).")
    threads: int = Field(1, ge=1, le=8, description="Interpreter threads (1 is usually fastest).")
    presence_gate: bool = Field(
        True,
        description="Report the model's people only while the motion detector senses presence, so a "
        "quiet, empty room never shows phantom people; false trusts the model alone.",
    )
    min_links: int = Field(
        3,
        ge=1,
        le=MAX_LINKS,
        description="Links with a learnt empty-room reference needed before the model is trusted; with "
        "fewer, the motion detector's presence and motion are reported instead.",
    )


class ModelEstimator:
    """Everything the model path needs between the ring buffers and a ``PoseFrame``'s persons."""

    def __init__(
        self, model: PoseModel, geometry: RoomGeometry, scene: Scene, settings: ModelSettings
    ) -> None:
        self.model = model
        self.geometry = geometry
        self.scene = scene
        self.settings = settings
        self.camera: VirtualCamera = camera_for_room(geometry.width_m, geometry.depth_m, geometry.height_m)
        self.references: dict[str, EmptyRoomReference] = {}

    def learn_reference(self, link: str, samples: Sequence[PreparedSample]) -> None:
        """Feed samples of a link known to be in an empty room (its detector is calibrating)."""
        if link not in self.geometry.links:
            return
        reference = self.references.setdefault(link, EmptyRoomReference())
        for sample in samples:
            reference.update(sample)

    def set_geometry(self, geometry: RoomGeometry) -> None:
        """The room's nodes changed while running: links that are gone lose their reference. Compared
        whole, not by link ids: a node moved (same id, new position) changes the geometry too."""
        if geometry == self.geometry:
            return
        self.geometry = geometry
        for link in set(self.references) - set(geometry.links):
            del self.references[link]

    def forget_references(self) -> None:
        """The room is to be recalibrated: learn every reference anew."""
        self.references.clear()

    @property
    def ready_links(self) -> int:
        return sum(reference.ready for reference in self.references.values())

    @property
    def ready(self) -> bool:
        return self.ready_links >= self.settings.min_links

    def window(self, samples: Mapping[str, Sequence[PreparedSample]]) -> ModelInputs | None:
        """The model's inputs now (cheap enough for the event loop), or None while not enough links are."""
        if not self.ready:
            return None
        return build_window(samples, self.geometry, self.references)

    def infer(self, inputs: ModelInputs) -> ModelOutput:
        """Blocking: run on the pipeline's inference thread."""
        return self.model.infer(inputs)

    def track(self, output: ModelOutput, t_s: float, *, room_occupied: bool = True) -> SceneUpdate:
        """Feed one window to the tracker. With the presence gate on and the detector sensing nobody,
        the window counts as empty: tracks fade and are lost as with any window without people."""
        if self.settings.presence_gate and not room_occupied:
            return self.scene.update(WindowEstimate(t_s, []))
        persons = [
            PersonEstimate(
                presence=float(output.presence[slot]),
                keypoints=output.keypoints[slot].astype(np.float64),
                joint_confidence=output.confidence[slot].astype(np.float64),
                activity_probs=output.activity[slot].astype(np.float64),
            )
            for slot in range(len(output.presence))
        ]
        return self.scene.update(WindowEstimate(t_s, persons))

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
        return PersonPose(
            id=person.id,
            keypoints=keypoints,
            bbox=bbox,
            zone=person.zone,
            activity=person.activity,
            confidence=person.confidence,
        )
