"""Per-person activity from the model's probabilities, steady enough to report.

The probabilities are averaged exponentially over ``smoothing_s``; the leading class must then stay in the
lead for ``dwell_s`` before it replaces the current activity. A model whose top class wavers between
"standing" and "walking" from one window to the next therefore yields one activity, not a stream of
changes. "empty" is never a person's activity (it is the model's label for a slot with nobody in it).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from appliance.contracts.coco import ACTIVITIES
from appliance.pose.scene.tracker import ema_weight

F64 = npt.NDArray[np.float64]

_EMPTY = ACTIVITIES.index("empty")


class ActivitySmoother:
    """Smoothed activity of one person; ``update`` with every matched estimate, in time order."""

    def __init__(self, smoothing_s: float, dwell_s: float) -> None:
        self._smoothing_s = smoothing_s
        self._dwell_s = dwell_s
        self._probabilities: F64 | None = None
        self._t_s = 0.0
        self._activity: str | None = None
        self._pending: str | None = None
        self._pending_since = 0.0

    @property
    def activity(self) -> str | None:
        """The current activity; None before the first estimate."""
        return self._activity

    def probability(self, activity: str) -> float:
        """The smoothed probability of ``activity`` (0 before the first estimate)."""
        if self._probabilities is None:
            return 0.0
        return float(self._probabilities[ACTIVITIES.index(activity)])

    def update(self, t_s: float, probabilities: F64) -> str | None:
        """Fold in one estimate's probabilities; the new activity if it changed (not on the first)."""
        if self._probabilities is None:
            self._probabilities = probabilities.astype(np.float64, copy=True)
        else:
            weight = ema_weight(t_s - self._t_s, self._smoothing_s)
            self._probabilities += weight * (probabilities - self._probabilities)
        self._t_s = t_s
        ranked = self._probabilities.copy()
        ranked[_EMPTY] = -np.inf
        leader = ACTIVITIES[int(np.argmax(ranked))]
        if self._activity is None:
            self._activity = leader
            return None
        if leader == self._activity:
            self._pending = None
            return None
        if leader != self._pending:
            self._pending, self._pending_since = leader, t_s
        if t_s - self._pending_since < self._dwell_s:
            return None
        self._activity, self._pending = leader, None
        return leader
