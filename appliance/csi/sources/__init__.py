"""Where ``CsiFrame``s come from: live hardware listeners, recordings, and the simulated room.

Every source satisfies ``CsiSource``; the pipeline iterates ``frames()`` and knows nothing else about it,
except that a ``TruthSource`` (the simulator, a replayed simulator recording) can also say what really
happened, for people to judge the estimators by.
"""

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from appliance.contracts import SourceKind
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator.simulator import SceneTruth


class CsiSource(Protocol):
    """A producer of frames. ``frames()`` runs until cancelled (live) or until the data ends (replay)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> SourceKind: ...

    def frames(self) -> AsyncIterator[CsiFrame]: ...


@runtime_checkable
class TruthSource(Protocol):
    """A source that knows what really happened (the simulator, a replayed simulator recording)."""

    @property
    def latest_truth(self) -> SceneTruth | None: ...
