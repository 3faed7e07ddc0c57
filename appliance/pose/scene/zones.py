"""Zones: named floor polygons, and who is in them, with hysteresis so an edge does not flicker.

A person is placed by their body centre projected on the floor. Membership changes only when the centre
is clearly across the border, ``margin_m / 2`` inside (to enter) or outside (to leave), and has stayed so
for ``dwell_s``: someone standing on the line, whose estimated position jitters by a few centimetres either
way, stays where they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from appliance.contracts.system import ZoneLike

F64 = npt.NDArray[np.float64]

MIN_POLYGON_VERTICES = 3


@dataclass(frozen=True, slots=True)
class Zone:
    """A floor polygon in room metres; ``restricted`` zones raise an alert when someone enters."""

    id: str
    name: str
    polygon: tuple[tuple[float, float], ...]
    restricted: bool = False
    _vertices: F64 = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vertices = np.asarray(self.polygon, dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[1] != 2 or vertices.shape[0] < MIN_POLYGON_VERTICES:
            raise ValueError(f"zone {self.id!r}: polygon needs at least {MIN_POLYGON_VERTICES} [x, y] points")
        object.__setattr__(self, "polygon", tuple((float(x), float(y)) for x, y in vertices))
        object.__setattr__(self, "_vertices", vertices)

    @classmethod
    def of(cls, zone: ZoneLike) -> Zone:
        if isinstance(zone, Zone):
            return zone
        return cls(zone.id, zone.name, tuple(zone.polygon), zone.restricted)

    def signed_distance(self, x: float, y: float) -> float:
        """Distance from (x, y) to the polygon's border in metres: positive inside, negative outside."""
        a = self._vertices
        b = np.roll(a, -1, axis=0)
        edge = b - a
        point = np.array([x, y])
        t = np.clip(((point - a) * edge).sum(axis=1) / np.maximum((edge * edge).sum(axis=1), 1e-12), 0, 1)
        nearest = a + t[:, None] * edge
        distance = float(np.min(np.linalg.norm(point - nearest, axis=1)))
        # Even-odd rule: count the edges that a ray towards +x crosses.
        straddles = (a[:, 1] > y) != (b[:, 1] > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing_x = a[:, 0] + (y - a[:, 1]) * edge[:, 0] / edge[:, 1]
        inside = int(np.count_nonzero(straddles & (crossing_x > x))) % 2 == 1
        return distance if inside else -distance


def zones_from(zones: Iterable[ZoneLike]) -> tuple[Zone, ...]:
    """Validated zones with unique ids, in the given order."""
    result = tuple(Zone.of(z) for z in zones)
    ids = [z.id for z in result]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"zone ids must be unique; repeated: {', '.join(repeated)}")
    return result


class ZoneMembership:
    """Which zones one person is in, changing only past the hysteresis band and after the dwell."""

    def __init__(self, margin_m: float, dwell_s: float) -> None:
        self._half_margin = margin_m / 2.0
        self._dwell_s = dwell_s
        self._inside: list[str] = []  # in order of entry
        self._pending: dict[str, float] = {}  # zone id -> since when the opposite side has held

    @property
    def inside(self) -> tuple[str, ...]:
        """Ids of the zones the person is in, oldest entry first."""
        return tuple(self._inside)

    def forget(self, zone_ids: Iterable[str]) -> None:
        """Drop state for zones that no longer exist."""
        gone = set(zone_ids)
        self._inside = [z for z in self._inside if z not in gone]
        self._pending = {z: t for z, t in self._pending.items() if z not in gone}

    def update(self, t_s: float, zones: Sequence[Zone], x: float, y: float) -> tuple[list[Zone], list[Zone]]:
        """Zones entered and zones left at ``t_s`` with the person's floor position at (x, y)."""
        entered: list[Zone] = []
        left: list[Zone] = []
        for zone in zones:
            depth = zone.signed_distance(x, y)
            was_inside = zone.id in self._inside
            crossed = depth <= -self._half_margin if was_inside else depth >= self._half_margin
            if not crossed:
                self._pending.pop(zone.id, None)
                continue
            since = self._pending.setdefault(zone.id, t_s)
            if t_s - since < self._dwell_s:
                continue
            del self._pending[zone.id]
            if was_inside:
                self._inside.remove(zone.id)
                left.append(zone)
            else:
                self._inside.append(zone.id)
                entered.append(zone)
        return entered, left
