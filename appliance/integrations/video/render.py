"""The overlay renderer: the room as the appliance reads it now, drawn into one BGR video frame.

Each frame shows the skeletons in the overlay view (``Keypoint.x/y``, 0..1 in the pose's fixed virtual
camera, a 16:9 view letterboxed into the frame), each person's id and activity, the floor plan with its
zones, their occupancy and the people on it in a corner, the reading's time and the frames per second,
and what the picture is: "estimated from WiFi", the estimator that produced it, and "SIMULATED" whenever
the source is simulated. A reading that has gone stale, detection switched off, or no reading yet are
said in words rather than shown as an empty room.

Rendering is plain numpy and OpenCV work, run by the sink on its render thread, never on the event loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from appliance.contracts import PersonPose, PoseFrame, ZoneShape
from appliance.contracts.coco import KEYPOINT_INDEX, N_KEYPOINTS, SKELETON_EDGES

Image = npt.NDArray[np.uint8]
Point = tuple[int, int]

VIEW_ASPECT = 16.0 / 9.0  # the virtual camera's image (appliance/pose/models/MODEL_CARD.md)
MIN_CONFIDENCE = 0.3  # joints less confident than this are not drawn
STALE_S = 2.0  # a reading older than this is said to be stale
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = (KEYPOINT_INDEX[n] for n in ("nose", "left_shoulder", "right_shoulder"))
# Reference height of the layout: sizes below are in pixels of a 360-line frame and scale with it.
_REFERENCE_LINES = 360.0
_FONT = cv2.FONT_HERSHEY_SIMPLEX

# BGR colours.
BACKGROUND = (24, 24, 24)
FLOOR = (96, 88, 80)
PANEL = (40, 40, 40)
TEXT = (235, 235, 235)
DIM = (150, 150, 150)
WARNING = (0, 170, 255)
SIMULATED = (40, 40, 235)
RESTRICTED = (60, 60, 220)
ZONE = (190, 170, 120)
NODE = (200, 200, 200)
# People's colours by id: saturated and far from the greys of the room and from the warning red.
PERSON_COLOURS = (
    (0, 215, 255),
    (255, 170, 0),
    (80, 230, 80),
    (230, 90, 255),
    (255, 255, 60),
    (60, 140, 255),
)


@dataclass(frozen=True, slots=True)
class RoomPlan:
    """What the renderer knows of the room: its floor, the radios on it, and the floor's outline in the
    overlay view (its corners as the pose's virtual camera sees them, 0..1), given by the composition
    root since sinks do not know the pose package."""

    width_m: float
    depth_m: float
    nodes: tuple[tuple[str, float, float], ...] = ()
    floor_outline: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class OverlayScene:
    """Everything one frame shows; taken from the hub's retained topics at the frame's tick."""

    pose: PoseFrame | None
    zones: tuple[ZoneShape, ...] = ()
    occupancy: Mapping[str, int | None] = field(default_factory=dict)
    detection_enabled: bool = True
    now: float = 0.0  # wall clock, seconds since the epoch
    fps: float = 0.0  # frames per second actually produced


def person_colour(person_id: int) -> tuple[int, int, int]:
    return PERSON_COLOURS[person_id % len(PERSON_COLOURS)]


def view_rect(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest 16:9 rectangle centred in a ``width x height`` frame: x, y, w, h."""
    if width / height > VIEW_ASPECT:
        w = round(height * VIEW_ASPECT)
        return (width - w) // 2, 0, w, height
    h = round(width / VIEW_ASPECT)
    return 0, (height - h) // 2, width, h


def describe_estimator(pose: PoseFrame) -> str:
    """The estimator in words; a tracker's skeletons are drawn from position and posture, and say so."""
    if pose.estimator == "tracker":
        return "estimator: tracker (skeleton drawn, not measured)"
    if pose.estimator == "model":
        version = f" {pose.model_version}" if pose.model_version else ""
        return f"estimator: pose model{version}"
    return "estimator: motion detector (presence and motion, no skeletons)"


class OverlayRenderer:
    """Draws ``OverlayScene``s into ``height x width x 3`` BGR frames; one instance per render thread."""

    def __init__(self, width: int, height: int, room: RoomPlan) -> None:
        self.width = width
        self.height = height
        self.room = room
        self.scale = height / _REFERENCE_LINES
        self.view = view_rect(width, height)
        self.plan = self._plan_rect()
        self._background: Image | None = None
        self._background_zones: tuple[ZoneShape, ...] | None = None

    # -- geometry -----------------------------------------------------------------------------------------

    def _px(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def to_frame(self, x: float, y: float) -> Point:
        """Overlay-view coordinates (0..1) -> frame pixels."""
        vx, vy, vw, vh = self.view
        return round(vx + x * vw), round(vy + y * vh)

    def _plan_rect(self) -> tuple[int, int, int, int]:
        """Where the floor plan goes: the bottom-right corner, the room's aspect, at most 26 % x 32 %."""
        room_aspect = self.room.width_m / self.room.depth_m
        w = self.width * 0.26
        h = w / room_aspect
        if h > self.height * 0.32:
            h = self.height * 0.32
            w = h * room_aspect
        margin = self._px(8)
        return self.width - margin - round(w), self.height - margin - round(h), round(w), round(h)

    def on_plan(self, x_m: float, y_m: float) -> Point:
        """Floor metres -> plan pixels; the y = 0 wall (the virtual camera's) is at the bottom."""
        left, top, w, h = self.plan
        return (
            round(left + x_m / self.room.width_m * w),
            round(top + h - y_m / self.room.depth_m * h),
        )

    # -- drawing ------------------------------------------------------------------------------------------

    def render(self, scene: OverlayScene) -> Image:
        """A new frame (never one handed out before: encoders and viewers may still hold those)."""
        frame = self._background_for(scene.zones).copy()
        pose = scene.pose
        if pose is not None:
            for person in pose.persons:
                self._skeleton(frame, person)
            self._plan_people(frame, pose.persons)
        self._plan_occupancy(frame, scene.zones, scene.occupancy)
        self._header(frame, scene)
        self._footer(frame, scene)
        return frame

    def _background_for(self, zones: tuple[ZoneShape, ...]) -> Image:
        if self._background is None or zones != self._background_zones:
            self._background = self._draw_background(zones)
            self._background_zones = zones
        return self._background

    def _draw_background(self, zones: Sequence[ZoneShape]) -> Image:
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        frame[:] = BACKGROUND
        if len(self.room.floor_outline) >= 3:
            outline = np.array([self.to_frame(x, y) for x, y in self.room.floor_outline], dtype=np.int32)
            cv2.polylines(frame, [outline], True, FLOOR, self._px(1), cv2.LINE_AA)
        left, top, w, h = self.plan
        pad = self._px(4)
        cv2.rectangle(frame, (left - pad, top - pad), (left + w + pad, top + h + pad), PANEL, cv2.FILLED)
        cv2.rectangle(frame, (left, top), (left + w, top + h), FLOOR, self._px(1))
        for zone in zones:
            corners = np.array([self.on_plan(x, y) for x, y in zone.polygon], dtype=np.int32)
            if len(corners) >= 3:
                colour = RESTRICTED if zone.restricted else ZONE
                cv2.polylines(frame, [corners], True, colour, self._px(1), cv2.LINE_AA)
        for _, x, y in self.room.nodes:
            cx, cy = self.on_plan(x, y)
            r = self._px(2)
            cv2.rectangle(frame, (cx - r, cy - r), (cx + r, cy + r), NODE, cv2.FILLED)
        return frame

    def _text(
        self, frame: Image, text: str, org: Point, size: float = 1.0, colour: tuple[int, int, int] = TEXT
    ) -> None:
        scale = 0.45 * size * self.scale
        cv2.putText(frame, text, org, _FONT, scale, colour, max(1, round(scale * 2.2)), cv2.LINE_AA)

    def _line_height(self, size: float = 1.0) -> int:
        return self._px(16 * size)

    def _skeleton(self, frame: Image, person: PersonPose) -> None:
        colour = person_colour(person.id)
        points = [
            self.to_frame(k.x, k.y)
            if k.confidence >= MIN_CONFIDENCE and math.isfinite(k.x) and math.isfinite(k.y)
            else None
            for k in person.keypoints
        ]
        bones = [(points[a], points[b]) for a, b in SKELETON_EDGES if max(a, b) < len(points)]
        if len(points) == N_KEYPOINTS:
            # COCO has no neck; without one the head floats above the shoulders.
            nose, left, right = points[NOSE], points[LEFT_SHOULDER], points[RIGHT_SHOULDER]
            if left is not None and right is not None:
                bones.append((nose, ((left[0] + right[0]) // 2, (left[1] + right[1]) // 2)))
        for pa, pb in bones:
            if pa is not None and pb is not None:
                cv2.line(frame, pa, pb, colour, self._px(2), cv2.LINE_AA)
        drawn = [p for p in points if p is not None]
        for point in drawn:
            cv2.circle(frame, point, self._px(3.5), colour, cv2.FILLED, cv2.LINE_AA)
        if drawn:
            x = min(p[0] for p in drawn)
            y = min(p[1] for p in drawn) - self._px(8)
            label = f"#{person.id}" + (f" {person.activity}" if person.activity else "")
            self._text(frame, label, (x, max(y, self._line_height())), 1.0, colour)

    def _plan_people(self, frame: Image, persons: Sequence[PersonPose]) -> None:
        for person in persons:
            centre = person.centre_m()
            if centre is None:
                continue
            cx, cy = self.on_plan(
                min(max(centre[0], 0.0), self.room.width_m), min(max(centre[1], 0.0), self.room.depth_m)
            )
            cv2.circle(frame, (cx, cy), self._px(3), person_colour(person.id), cv2.FILLED, cv2.LINE_AA)

    def _plan_occupancy(
        self, frame: Image, zones: Sequence[ZoneShape], occupancy: Mapping[str, int | None]
    ) -> None:
        for zone in zones:
            if not zone.polygon:
                continue
            count = occupancy.get(zone.id)
            xs = [x for x, _ in zone.polygon]
            ys = [y for _, y in zone.polygon]
            x, y = self.on_plan(min(xs), max(ys))
            label = f"{zone.name}: {'?' if count is None else count}"
            colour = RESTRICTED if zone.restricted and count else DIM
            self._text(frame, label, (x + self._px(2), y + self._line_height(0.7)), 0.7, colour)

    def _header(self, frame: Image, scene: OverlayScene) -> None:
        pose = scene.pose
        line = self._line_height()
        x = self._px(8)
        self._text(frame, "estimated from WiFi - not a camera", (x, line))
        if pose is not None:
            self._text(frame, describe_estimator(pose), (x, 2 * line), 0.9, DIM)
            if pose.simulated:
                size = 2.0
                (w, _), _ = cv2.getTextSize("SIMULATED", _FONT, 0.45 * size * self.scale, 1)
                org = (self.width - w - self._px(12), self._line_height(size))
                self._text(frame, "SIMULATED", org, size, SIMULATED)
        warning = self._warning(scene)
        if warning is not None:
            self._text(frame, warning, (x, 3 * line + self._px(4)), 1.1, WARNING)

    @staticmethod
    def _warning(scene: OverlayScene) -> str | None:
        if not scene.detection_enabled:
            return "detection is switched off"
        if scene.pose is None:
            return "waiting for the first reading"
        age = scene.now - scene.pose.timestamp
        if age > STALE_S:
            return f"no new reading for {age:.0f} s"
        return None

    def _footer(self, frame: Image, scene: OverlayScene) -> None:
        x = self._px(8)
        bottom = self.height - self._px(8)
        line = self._line_height()
        pose = scene.pose
        stamp = "-" if pose is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(pose.timestamp))
        self._text(frame, f"{stamp}   {scene.fps:4.1f} fps", (x, bottom))
        if pose is None:
            return
        people = "?" if pose.person_count is None else str(pose.person_count)
        state = (
            f"presence {'yes' if pose.presence else 'no'}   motion {'yes' if pose.motion else 'no'}"
            f" ({pose.motion_score:.2f})   people {people}"
        )
        self._text(frame, state, (x, bottom - line), 0.9, DIM)
