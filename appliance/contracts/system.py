"""The appliance's own state as messages: ``SystemStatus`` (topic ``status``) and the zones in force
(``ZoneLayout``, topic ``config/zones``), each with its one serializer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from appliance.contracts.pose import Estimator, SourceKind, is_simulated


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    kind: SourceKind
    running: bool
    frames: int
    last_frame: float | None  # host time of the latest frame, seconds since the epoch
    error: str | None  # why the source stopped, when it failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "simulated": is_simulated(self.kind),
            "running": self.running,
            "frames": self.frames,
            "last_frame": self.last_frame,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class LinkStatus:
    link: str
    source: str  # the name of the source it arrives through
    up: bool  # heard from within the link timeout
    frames: int
    packets_per_s: float  # host clock, last 2 s
    rssi_dbm: float | None
    last_seen: float  # host time, seconds since the epoch
    packets_lost: int  # sequence gaps
    calibrated: bool  # the motion detector has learnt this link's empty room

    def to_dict(self) -> dict[str, Any]:
        return {
            "link": self.link,
            "source": self.source,
            "up": self.up,
            "frames": self.frames,
            "packets_per_s": round(self.packets_per_s, 1),
            "rssi_dbm": None if self.rssi_dbm is None else round(self.rssi_dbm, 1),
            "last_seen": round(self.last_seen, 3),
            "packets_lost": self.packets_lost,
            "calibrated": self.calibrated,
        }


@dataclass(frozen=True, slots=True)
class SystemStatus:
    """What is running and how well (topic ``status``, retained): sources, links and the estimator."""

    retained: ClassVar[bool] = True

    timestamp: float
    version: str
    uptime_s: float
    source: SourceKind
    estimator: Estimator | None  # of the latest PoseFrame; None before the first
    frames_published: int
    sources: tuple[SourceStatus, ...]
    links: tuple[LinkStatus, ...]

    @property
    def topic(self) -> str:
        return "status"

    @property
    def simulated(self) -> bool:
        return is_simulated(self.source)

    @property
    def state(self) -> tuple[object, ...]:
        """What a change of status is judged by: which parts run and which links are up, not counters."""
        return (
            self.source,
            self.estimator,
            tuple((s.name, s.running, s.error) for s in self.sources),
            tuple((link.link, link.up, link.calibrated) for link in self.links),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "version": self.version,
            "uptime_s": round(self.uptime_s, 1),
            "source": self.source,
            "simulated": self.simulated,
            "estimator": self.estimator,
            "frames_published": self.frames_published,
            "sources": [s.to_dict() for s in self.sources],
            "links": [link.to_dict() for link in self.links],
        }


class ZoneLike(Protocol):
    """Anything that describes a zone: ``ZoneShape``, the configuration's ``ZoneConfig``."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def polygon(self) -> Sequence[tuple[float, float]]: ...

    @property
    def restricted(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class ZoneShape:
    id: str
    name: str
    polygon: tuple[tuple[float, float], ...]  # floor, metres
    restricted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "polygon": [[x, y] for x, y in self.polygon],
            "restricted": self.restricted,
        }


@dataclass(frozen=True, slots=True)
class ZoneLayout:
    """The zones in force (topic ``config/zones``, retained), announced at start and on every change so
    that sinks (MQTT discovery, the UI) follow zones created or removed through the API."""

    retained: ClassVar[bool] = True

    timestamp: float
    zones: tuple[ZoneShape, ...]

    @property
    def topic(self) -> str:
        return "config/zones"

    def to_dict(self) -> dict[str, Any]:
        return {"timestamp": self.timestamp, "zones": [z.to_dict() for z in self.zones]}
