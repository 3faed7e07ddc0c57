"""The int8 model for what learning is good at here: how many people, and what they are doing.

Input: the last ``STEPS`` readings, ``STEP_S`` apart, of every link's cue vector (``cues.cue_vectors``)
beside that link's length over ``LENGTH_SCALE_M`` and whether an Atheros receiver measures it; up to
``MAX_LINKS`` links, the rest masked. Inside, one small network embeds each link at each step, the links
are pooled (masked mean and max: any number of links, in any order), and a short convolution over the
steps feeds two heads: the person count (0 .. ``MAX_COUNT``) and the room's activity over
``ACTIVITIES`` (empty, standing, walking, sitting, lying, falling; with several people, the most telling
of theirs: falling, then walking, lying, sitting, standing). Posture follows from the activity.

``SensingModel`` runs the shipped TFLite file in LiteRT (``runtime``); tensors are found by shape.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES
from appliance.pose.runtime import TfliteModel
from appliance.pose.sensing.cues import N_CUE_FEATURES, RoomCues
from appliance.pose.sensing.geometry import RoomGeometry

F32 = npt.NDArray[np.float32]

STEPS = 10
STEP_S = 0.2
MAX_LINKS = 16
LINK_INPUTS = N_CUE_FEATURES + 2
LENGTH_SCALE_M = 10.0
MAX_COUNT = 3
# With several people the room's activity is the most telling one, in this order.
ACTIVITY_PRIORITY = ("falling", "walking", "lying", "sitting", "standing")
POSTURES = {"standing": "standing", "walking": "standing", "sitting": "sitting", "lying": "lying"}
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "invispose-sensing-v1.tflite"
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "cues": (1, STEPS, MAX_LINKS, LINK_INPUTS),
    "mask": (1, MAX_LINKS),
}
OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {"count": (1, MAX_COUNT + 1), "activity": (1, len(ACTIVITIES))}


def room_activity(activities: list[int]) -> int:
    """The label of a room whose people do ``activities`` (indices into ACTIVITIES)."""
    if not activities:
        return ACTIVITIES.index("empty")
    names = {ACTIVITIES[a] for a in activities}
    return next(ACTIVITIES.index(name) for name in ACTIVITY_PRIORITY if name in names)


def link_inputs(geometry: RoomGeometry, links: tuple[str, ...], vectors: F32) -> F32:
    """[len(links), LINK_INPUTS]: each link's cue vector, its length, whether Atheros."""
    tx, rx = geometry.ends(links)
    length = np.linalg.norm(tx - rx, axis=1) / LENGTH_SCALE_M
    atheros = np.array([geometry.links[link].kind == "atheros" for link in links], np.float32)
    rows: F32 = np.concatenate([vectors, length[:, None], atheros[:, None]], axis=1).astype(np.float32)
    return rows


class CueHistory:
    """The classifier's input from a stream of ``RoomCues``: one reading per ``STEP_S``, ``STEPS`` of
    them; a link's slot is fixed while it stays (slots of links that went quiet are reused)."""

    def __init__(self, geometry: RoomGeometry) -> None:
        self.geometry = geometry
        self._steps: deque[tuple[float, dict[str, F32]]] = deque(maxlen=STEPS)
        self._slots: dict[str, int] = {}

    def add(self, cues: RoomCues) -> None:
        if self._steps and cues.t_s - self._steps[-1][0] < STEP_S - 1e-6:
            return
        known = tuple(link for link in cues.links if link in self.geometry.links)
        rows = (
            link_inputs(self.geometry, known, cues.vectors[[cues.links.index(link) for link in known]])
            if known
            else np.zeros((0, LINK_INPUTS), np.float32)
        )
        self._steps.append((cues.t_s, dict(zip(known, rows, strict=True))))

    @property
    def full(self) -> bool:
        return len(self._steps) == STEPS

    def inputs(self) -> tuple[F32, F32]:
        """([STEPS, MAX_LINKS, LINK_INPUTS], [MAX_LINKS]); a link missing at a step repeats its nearest
        reading, a link missing throughout is masked."""
        present = {link for _, rows in self._steps for link in rows}
        for link in [link for link in self._slots if link not in present]:
            del self._slots[link]
        for link in sorted(present - set(self._slots)):
            free = sorted(set(range(MAX_LINKS)) - set(self._slots.values()))
            if free:
                self._slots[link] = free[0]
        x = np.zeros((STEPS, MAX_LINKS, LINK_INPUTS), np.float32)
        mask = np.zeros(MAX_LINKS, np.float32)
        steps = list(self._steps)
        offset = STEPS - len(steps)
        for link, slot in self._slots.items():
            last: F32 | None = next((rows[link] for _, rows in steps if link in rows), None)
            for i, (_, rows) in enumerate(steps):
                last = rows.get(link, last)
                if last is not None:
                    x[offset + i, slot] = last
            x[:offset, slot] = x[offset, slot]
            mask[slot] = 1.0
        return x, mask


@dataclass(frozen=True, slots=True)
class RoomClass:
    """The model's reading of the room: probabilities of 0..MAX_COUNT people and of each activity."""

    count: F32
    activity: F32

    @property
    def presence(self) -> float:
        return float(1.0 - self.count[0])

    @property
    def expected_count(self) -> int:
        return int(np.argmax(self.count))

    @property
    def activity_name(self) -> str:
        return ACTIVITIES[int(np.argmax(self.activity))]


class SensingModel:
    """The shipped classifier in a TFLite runtime; ``classify`` is synchronous (one worker thread)."""

    def __init__(self, path: Path = DEFAULT_MODEL, *, num_threads: int = 1) -> None:
        self._model = TfliteModel(path, INPUT_SHAPES, OUTPUT_SHAPES, num_threads=num_threads)

    @property
    def version(self) -> str:
        return self._model.version

    @property
    def path(self) -> Path:
        return self._model.path

    @property
    def runtime(self) -> str:
        return self._model.runtime

    def info(self) -> dict[str, Any]:
        return self._model.info()

    def classify(self, x: F32, mask: F32) -> RoomClass:
        out = self._model.run({"cues": x, "mask": mask})
        return RoomClass(out["count"], out["activity"])

    def benchmark(self, x: F32, mask: F32, *, iterations: int, warmup: int) -> dict[str, float]:
        return self._model.benchmark({"cues": x, "mask": mask}, iterations=iterations, warmup=warmup)
