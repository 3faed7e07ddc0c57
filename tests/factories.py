"""The one place tests build PoseFrames, persons and events (every test module imports from here)."""

from __future__ import annotations

import time
from typing import Any

from appliance.contracts import Event, EventType, Keypoint, LinkReading, PersonPose, PoseFrame, SourceKind
from appliance.contracts.coco import KEYPOINT_NAMES

T0 = 1_700_000_000.0

# (live id, x, y, zone, activity)
Person = tuple[int, float, float, str | None, str | None]


def person_pose(
    live_id: int, x: float, y: float, zone: str | None = None, activity: str | None = None
) -> PersonPose:
    """A person standing at (x, y) in room metres, every joint there at 1 m height."""
    keypoints = tuple(Keypoint(name, 0.5, 0.5, (x, y, 1.0), 0.9) for name in KEYPOINT_NAMES)
    return PersonPose(live_id, keypoints, (0.4, 0.2, 0.2, 0.6), zone, activity, 0.8)


def frame_at(
    ts: float | None = None,
    people: list[Person] | None = None,
    frame_id: int = 0,
    *,
    source: SourceKind = "simulated",
    links: tuple[LinkReading, ...] = (),
) -> PoseFrame:
    """A model frame at ``ts`` (now by default); ``people`` None makes a motion-detector frame (no count,
    nobody)."""
    persons = tuple(person_pose(*p) for p in people or [])
    return PoseFrame(
        timestamp=time.time() if ts is None else ts,
        frame_id=frame_id,
        source=source,
        estimator="motion" if people is None else "model",
        model_version=None if people is None else "test",
        presence=bool(persons),
        motion=False,
        motion_score=0.0,
        person_count=None if people is None else len(persons),
        persons=persons,
        confidence=0.9,
        processing_ms=1.0,
        links=links,
    )


def frames(start: float, seconds: float, rate_hz: float, people: list[Person]) -> list[PoseFrame]:
    count = round(seconds * rate_hz)
    return [frame_at(start + i / rate_hz, people, i) for i in range(count)]


def event(kind: EventType = EventType.PERSON_DETECTED, t: float | None = None, **data: Any) -> Event:
    return Event(kind, dict(data), time=time.time() if t is None else t)
