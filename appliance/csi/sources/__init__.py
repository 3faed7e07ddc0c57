"""Where ``CsiFrame``s come from: live hardware listeners, recordings, and the simulated room.

Every source satisfies ``CsiSource``; the pipeline iterates ``frames()`` and knows nothing else about it.
"""

from collections.abc import AsyncIterator
from typing import Literal, Protocol

from appliance.csi.frame import CsiFrame

SourceKind = Literal["esp32", "atheros", "replay", "simulated"]


class CsiSource(Protocol):
    """A producer of frames. ``frames()`` runs until cancelled (live) or until the data ends (replay)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> SourceKind: ...

    def frames(self) -> AsyncIterator[CsiFrame]: ...
