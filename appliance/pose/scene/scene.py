"""``Scene``: the room's people over time, built from the pose model's per-window estimates.

Each ``update`` takes one ``WindowEstimate`` and returns the confirmed people (smoothed pose, zone,
activity, confidence), the occupancy of every zone, and the events of that window. Every event is fired
once per change, never per window; its ``time`` is the window's host time and its ``data`` always has the
keys listed below (positions are the body centre, metres, rounded to millimetres):

- ``person.detected``: person_id, position {x, y, z}, activity, confidence. Fired on confirmation; the
  zones the person is already in follow as ``person.entered_zone``.
- ``person.lost``: person_id, position (last known), first_seen, last_seen. Preceded by
  ``person.left_zone`` for every zone the person was in, so entries and exits always pair up.
- ``person.entered_zone`` / ``person.left_zone``: person_id, zone_id, zone_name, position.
- ``person.activity_detected``: person_id, activity, previous_activity, position. On a change of the
  smoothed activity; the first activity comes with ``person.detected``.
- ``person.fall_detected``: person_id, position, confidence (0..1), fall_time (when the fall began;
  the event follows once the person has stayed down), zone_id and zone_name (None outside every zone).
- ``alert.high_occupancy``: occupancy, max_occupancy, person_ids. When the number of people rises above
  ``max_occupancy``; again only after it has been back at or below it.
- ``alert.restricted_zone_breach``: person_id, zone_id, zone_name, position. Beside the
  ``person.entered_zone`` of a restricted zone.

The scene keeps its own clock from the estimates' times and never lets it run backward, so a host clock
step cannot make tracks age negatively.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.contracts.events import Event, EventType
from appliance.contracts.system import ZoneLike
from appliance.pose.scene.activity import ActivitySmoother
from appliance.pose.scene.estimate import Fall, WindowEstimate
from appliance.pose.scene.tracker import GATE_GROWTH_M_S, Track, Tracker, TrackerParams
from appliance.pose.scene.zones import Zone, ZoneMembership, zones_from

F64 = npt.NDArray[np.float64]

# Named sensitivities accepted for ``fall_sensitivity``, as points on its 0..1 scale.
FALL_SENSITIVITY_NAMES: dict[str, float] = {"low": 0.25, "medium": 0.5, "high": 0.75}
# Most recent activity changes kept per person for the history.
ACTIVITY_CHANGES_KEPT = 100
_POSITION_DECIMALS = 3


class SceneSettings(BaseModel):
    """The ``scene:`` section of the configuration: how estimates become people, zones, activities, falls."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_presence: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="A model slot counts as a person only if its presence probability is at least this. "
        "Raise it if phantom people appear; lower it if real people are missed.",
    )
    confirm_s: float = Field(
        default=1.0,
        ge=0.0,
        le=30.0,
        description="Seconds a new person must be seen (in most windows) before being reported. Longer "
        "suppresses brief phantoms; shorter reports arrivals sooner.",
    )
    lose_s: float = Field(
        default=3.0,
        gt=0.0,
        le=120.0,
        description="Seconds a reported person may go unseen before being reported lost. Bridges brief "
        "dropouts (two people passing, a still person fading) without a new id.",
    )
    gate_m: float = Field(
        default=1.0,
        gt=0.0,
        le=5.0,
        description="Farthest, in metres, that a person's estimate may be from where their track "
        "expected them to be and still be the same person.",
    )
    smoothing_s: float = Field(
        default=0.2,
        ge=0.0,
        le=5.0,
        description="Time constant, in seconds, with which keypoints are smoothed. 0 shows the model's "
        "raw pose; larger is steadier but lags.",
    )
    measurement_noise_m: float = Field(
        default=0.15,
        gt=0.0,
        le=2.0,
        description="Typical error, in metres, of the model's body position; the position filter trusts "
        "estimates less the larger it is.",
    )
    acceleration_noise_m_s2: float = Field(
        default=2.0,
        gt=0.0,
        le=20.0,
        description="How abruptly, in m/s², people are expected to change speed or direction; larger "
        "follows turns faster but smooths less.",
    )
    zone_margin_m: float = Field(
        default=0.3,
        ge=0.0,
        le=2.0,
        description="Width, in metres, of the band around a zone's border that must be crossed to enter "
        "or leave it, so a person standing on the border does not flicker in and out.",
    )
    zone_dwell_s: float = Field(
        default=0.5,
        ge=0.0,
        le=30.0,
        description="Seconds a person must stay across a zone's border band before entering or leaving "
        "counts.",
    )
    activity_smoothing_s: float = Field(
        default=0.5,
        ge=0.0,
        le=10.0,
        description="Time constant, in seconds, with which the model's activity probabilities are averaged.",
    )
    activity_dwell_s: float = Field(
        default=1.0,
        ge=0.0,
        le=30.0,
        description="Seconds a new activity must lead before it replaces the current one.",
    )
    fall_sensitivity: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="0 to 1, or low / medium / high (0.25 / 0.5 / 0.75): higher catches softer falls (a "
        "weaker Doppler burst, a shorter stay down) but raises more false alarms.",
    )
    fall_confirm_s: float = Field(
        default=2.0,
        ge=0.0,
        le=60.0,
        description="Seconds a person must stay down and still after the burst for it to be reported as "
        "a fall; someone who gets straight back up is not.",
    )
    fall_refractory_s: float = Field(
        default=60.0,
        ge=0.0,
        le=3600.0,
        description="Seconds after a reported fall during which no new one is raised.",
    )
    max_occupancy: int | None = Field(
        default=None,
        ge=0,
        description="Raise alert.high_occupancy when more people than this are in the room; empty "
        "(null) turns the alert off.",
    )
    trajectory_points: int = Field(
        default=300,
        ge=0,
        le=100_000,
        description="Positions kept per person for their history's trajectory; 0 keeps none.",
    )
    trajectory_interval_s: float = Field(
        default=1.0,
        gt=0.0,
        le=3600.0,
        description="Seconds between the positions kept in a trajectory.",
    )
    history_size: int = Field(
        default=100,
        ge=0,
        le=10_000,
        description="How many people who have left are still kept in memory for the history.",
    )

    @field_validator("fall_sensitivity", mode="before")
    @classmethod
    def _named_sensitivity(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in FALL_SENSITIVITY_NAMES:
            return FALL_SENSITIVITY_NAMES[value.lower()]
        return value

    def tracker_params(self) -> TrackerParams:
        return TrackerParams(
            confirm_s=self.confirm_s,
            lose_s=self.lose_s,
            gate_m=self.gate_m,
            smoothing_s=self.smoothing_s,
            measurement_noise_m=self.measurement_noise_m,
            acceleration_noise_m_s2=self.acceleration_noise_m_s2,
        )


@dataclass(frozen=True, slots=True, eq=False)
class TrackedPerson:
    """A confirmed person in one window. ``zone`` is the zone entered most recently of those the person is
    in (``zones``, oldest entry first); ``confidence`` is the smoothed presence probability, fading to 0
    over ``lose_s`` while the person is unseen."""

    id: int
    keypoints: F64  # (17, 3) metres, smoothed
    joint_confidence: F64  # (17,)
    centre: F64  # (3,) metres
    velocity: F64  # (2,) m/s on the floor
    zone: str | None
    zones: tuple[str, ...]
    activity: str | None
    confidence: float
    first_seen: float
    last_seen: float
    uncertainty_m: float | None = None  # the estimator's, grown while the person is unseen


@dataclass(frozen=True, slots=True)
class SceneUpdate:
    persons: tuple[TrackedPerson, ...]
    zone_occupancy: dict[str, int]
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class PersonHistory:
    """What is known about one person's visit, for the API: ``activity_seconds`` is time spent per
    activity, ``activity_changes`` (time, activity) the latest changes, ``trajectory`` (time, x, y)
    positions every ``trajectory_interval_s``."""

    person_id: int
    active: bool
    first_seen: float
    last_seen: float
    zones_visited: tuple[str, ...]
    activity_seconds: MappingProxyType[str, float]
    activity_changes: tuple[tuple[float, str], ...]
    average_confidence: float
    falls: int
    trajectory: tuple[tuple[float, float, float], ...]


class _Record:
    """The growing history of one confirmed person."""

    def __init__(self, person_id: int, t_s: float, trajectory_points: int) -> None:
        self.person_id = person_id
        self.active = True
        self.first_seen = t_s
        self.last_seen = t_s
        self.zones_visited: list[str] = []
        self.activity_seconds: dict[str, float] = {}
        self.activity_changes: deque[tuple[float, str]] = deque(maxlen=ACTIVITY_CHANGES_KEPT)
        self.confidence_sum = 0.0
        self.windows = 0
        self.falls = 0
        self.trajectory: deque[tuple[float, float, float]] = deque(maxlen=trajectory_points)
        self.updated_s = t_s

    def snapshot(self) -> PersonHistory:
        return PersonHistory(
            person_id=self.person_id,
            active=self.active,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            zones_visited=tuple(self.zones_visited),
            activity_seconds=MappingProxyType(dict(self.activity_seconds)),
            activity_changes=tuple(self.activity_changes),
            average_confidence=self.confidence_sum / self.windows if self.windows else 0.0,
            falls=self.falls,
            trajectory=tuple(self.trajectory),
        )


class _PersonState:
    """Everything the scene follows per track, from the track's birth (so it is warm at confirmation)."""

    def __init__(self, settings: SceneSettings) -> None:
        self.activity = ActivitySmoother(settings.activity_smoothing_s, settings.activity_dwell_s)
        self.zones = ZoneMembership(settings.zone_margin_m, settings.zone_dwell_s)
        self.record: _Record | None = None


def _position(centre: F64) -> dict[str, float]:
    x, y, z = (round(float(v), _POSITION_DECIMALS) for v in centre)
    return {"x": x, "y": y, "z": z}


class Scene:
    """People, zones, activities and falls from a stream of ``WindowEstimate``s, in time order."""

    def __init__(self, settings: SceneSettings | None = None, zones: Iterable[ZoneLike] = ()) -> None:
        self.settings = settings or SceneSettings()
        self._zones = zones_from(zones)
        self._tracker = Tracker(self.settings.tracker_params())
        self._people: dict[int, _PersonState] = {}
        self._past: deque[_Record] = deque(maxlen=self.settings.history_size)
        self._t_s: float | None = None
        self._occupancy_alerted = False

    @property
    def zones(self) -> tuple[Zone, ...]:
        return self._zones

    def set_zones(self, zones: Iterable[ZoneLike]) -> None:
        """Replace the zones while running. People keep their membership of zones whose id remains; zones
        that are gone are dropped without ``person.left_zone`` (nobody moved); new zones are entered, with
        events, as soon as the usual border rules are met."""
        new = zones_from(zones)
        gone = {z.id for z in self._zones} - {z.id for z in new}
        for person in self._people.values():
            person.zones.forget(gone)
        self._zones = new

    def set_alerts(self, max_occupancy: int | None, restricted_zone_ids: Iterable[str]) -> None:
        """Change the alert thresholds while running: the occupancy limit (None: off) and which zones are
        restricted. A breach is raised on the next entry into a newly restricted zone; nobody already in it
        raises one, since nobody entered. A lowered limit alerts on the next window that is above it."""
        restricted = set(restricted_zone_ids)
        self.settings = self.settings.model_copy(update={"max_occupancy": max_occupancy})
        self._zones = tuple(Zone(z.id, z.name, z.polygon, restricted=z.id in restricted) for z in self._zones)

    def history(self, person_id: int) -> PersonHistory | None:
        for record in self._records():
            if record.person_id == person_id:
                return record.snapshot()
        return None

    def histories(self) -> list[PersonHistory]:
        """Everyone present now and the latest ``history_size`` who have left, by first sighting."""
        return sorted((r.snapshot() for r in self._records()), key=lambda h: (h.first_seen, h.person_id))

    def _records(self) -> Iterable[_Record]:
        yield from self._past
        for person in self._people.values():
            if person.record is not None:
                yield person.record

    def update(self, estimate: WindowEstimate) -> SceneUpdate:
        t = estimate.t_s if self._t_s is None else max(estimate.t_s, self._t_s)
        self._t_s = t
        minimum = self.settings.min_presence
        step = self._tracker.update(t, [p for p in estimate.persons if p.presence >= minimum])
        for track in step.dropped:
            self._people.pop(track.key, None)
        events: list[Event] = []
        persons: list[TrackedPerson] = []
        for track in self._tracker:
            person = self._people.setdefault(track.key, _PersonState(self.settings))
            self._follow(t, track, person, track in step.confirmed, events)
            if track.confirmed:
                persons.append(self._tracked(track, person))
        for track in step.lost:
            self._lose(t, track, events)
        occupancy = {zone.id: 0 for zone in self._zones}
        for tracked in persons:
            for zone_id in tracked.zones:
                occupancy[zone_id] += 1
        self._check_occupancy(t, persons, events)
        return SceneUpdate(tuple(persons), occupancy, tuple(events))

    def _follow(
        self, t: float, track: Track, person: _PersonState, confirmed_now: bool, events: list[Event]
    ) -> None:
        """Advance one track's activity, falls and zones, and note the events of a confirmed one."""
        changed: str | None = None
        fall: Fall | None = None
        matched = track.estimate
        previous = person.activity.activity
        if matched is not None:
            changed = person.activity.update(t, matched.activity_probs)
            fall = matched.fall
            # An unseen person's predicted position is a guess: zones change only on sight.
            entered, left = person.zones.update(t, self._zones, *track.centre[:2].tolist())
        else:
            entered, left = [], []
        if track.person_id is None:
            return
        person_id = track.person_id
        position = _position(track.centre)
        zone_by_id = {z.id: z for z in self._zones}
        if confirmed_now:
            person.record = _Record(person_id, t, self.settings.trajectory_points)
            events.append(
                Event(
                    EventType.PERSON_DETECTED,
                    {
                        "person_id": person_id,
                        "position": position,
                        "activity": person.activity.activity,
                        "confidence": round(track.presence, 3),
                    },
                    time=t,
                )
            )
            entered, left = [zone_by_id[z] for z in person.zones.inside], []
        record = person.record
        assert record is not None  # set on confirmation, above or in an earlier window
        for zone in left:
            events.append(self._zone_event(EventType.PERSON_LEFT_ZONE, t, person_id, zone, position))
        for zone in entered:
            events.append(self._zone_event(EventType.PERSON_ENTERED_ZONE, t, person_id, zone, position))
            if zone.restricted:
                events.append(
                    self._zone_event(EventType.ALERT_RESTRICTED_ZONE_BREACH, t, person_id, zone, position)
                )
            if zone.id not in record.zones_visited:
                record.zones_visited.append(zone.id)
        if changed is not None and not confirmed_now:
            record.activity_changes.append((t, changed))
            events.append(
                Event(
                    EventType.PERSON_ACTIVITY_DETECTED,
                    {
                        "person_id": person_id,
                        "activity": changed,
                        "previous_activity": previous,
                        "position": position,
                    },
                    time=t,
                )
            )
        elif confirmed_now and person.activity.activity is not None:
            record.activity_changes.append((t, person.activity.activity))
        if fall is not None:
            record.falls += 1
            inside = person.zones.inside
            zone_now = zone_by_id[inside[-1]] if inside else None
            events.append(
                Event(
                    EventType.PERSON_FALL_DETECTED,
                    {
                        "person_id": person_id,
                        "position": position,
                        "confidence": fall.confidence,
                        "fall_time": fall.t_s,
                        "zone_id": zone_now.id if zone_now else None,
                        "zone_name": zone_now.name if zone_now else None,
                    },
                    time=t,
                )
            )
        self._note(t, track, person, record)

    def _note(self, t: float, track: Track, person: _PersonState, record: _Record) -> None:
        """Add this window to the person's history."""
        activity = person.activity.activity
        if activity is not None:
            record.activity_seconds[activity] = (
                record.activity_seconds.get(activity, 0.0) + t - record.updated_s
            )
        record.updated_s = t
        if track.estimate is not None:
            record.last_seen = t
            record.confidence_sum += track.presence
            record.windows += 1
        if not record.trajectory or t - record.trajectory[-1][0] >= self.settings.trajectory_interval_s:
            x, y = (round(float(v), _POSITION_DECIMALS) for v in track.centre[:2])
            record.trajectory.append((t, x, y))

    def _lose(self, t: float, track: Track, events: list[Event]) -> None:
        person = self._people.pop(track.key)
        record = person.record
        assert record is not None and track.person_id is not None  # only confirmed tracks are lost
        position = _position(track.centre)
        zone_by_id = {z.id: z for z in self._zones}
        for zone_id in person.zones.inside:
            zone = zone_by_id[zone_id]
            events.append(self._zone_event(EventType.PERSON_LEFT_ZONE, t, track.person_id, zone, position))
        events.append(
            Event(
                EventType.PERSON_LOST,
                {
                    "person_id": track.person_id,
                    "position": position,
                    "first_seen": record.first_seen,
                    "last_seen": record.last_seen,
                },
                time=t,
            )
        )
        record.active = False
        self._past.append(record)

    @staticmethod
    def _zone_event(
        kind: EventType, t: float, person_id: int, zone: Zone, position: dict[str, float]
    ) -> Event:
        data: dict[str, Any] = {
            "person_id": person_id,
            "zone_id": zone.id,
            "zone_name": zone.name,
            "position": position,
        }
        return Event(kind, data, time=t)

    def _check_occupancy(self, t: float, persons: Sequence[TrackedPerson], events: list[Event]) -> None:
        limit = self.settings.max_occupancy
        if limit is None:
            return
        if len(persons) <= limit:
            self._occupancy_alerted = False
            return
        if self._occupancy_alerted:
            return
        self._occupancy_alerted = True
        events.append(
            Event(
                EventType.ALERT_HIGH_OCCUPANCY,
                {"occupancy": len(persons), "max_occupancy": limit, "person_ids": [p.id for p in persons]},
                time=t,
            )
        )

    def _tracked(self, track: Track, person: _PersonState) -> TrackedPerson:
        assert track.person_id is not None and person.record is not None
        inside = person.zones.inside
        fade = max(0.0, 1.0 - track.unmatched_s / self.settings.lose_s)
        uncertainty = None
        if track.uncertainty_m is not None:
            uncertainty = track.uncertainty_m + GATE_GROWTH_M_S * track.unmatched_s
        return TrackedPerson(
            id=track.person_id,
            keypoints=track.keypoints,
            joint_confidence=track.joint_confidence.copy(),
            centre=track.centre,
            velocity=track.velocity,
            zone=inside[-1] if inside else None,
            zones=inside,
            activity=person.activity.activity,
            confidence=track.presence * fade,
            first_seen=person.record.first_seen,
            last_seen=person.record.last_seen,
            uncertainty_m=uncertainty,
        )
