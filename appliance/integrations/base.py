"""What every sink is: an async context that owns its resources, a ``run`` that delivers, and ``stats``.

``__aenter__`` takes what the sink needs (its hub subscription, a connection) and ``__aexit__`` gives it
back after writing what the sink still owes (buffered rows, an ``offline`` message). ``run`` delivers
until cancelled; when it raises, the runner reports the error, leaves the context, waits (``Backoff``) and
enters it again, so a sink that fails never takes the pipeline or another sink with it.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True, slots=True)
class SinkStats:
    """How a sink is doing, in the terms every sink shares; ``details`` holds its own figures."""

    connected: bool  # reaching where it delivers (the database, the broker, at least its listeners)
    pending: int = 0  # messages waiting in its hub queue: its lag
    dropped: int = 0  # messages it lost because it fell behind
    delivered: int = 0  # messages it has handed on
    last_error: str | None = None  # the latest failure, until it recovers
    details: Mapping[str, Any] = field(default_factory=dict)


class Sink(ABC):
    """A consumer of hub messages. Subclasses set ``name`` and, when the appliance cannot do its job
    without them, ``required`` (a required sink that is down makes health unhealthy; any other only
    degrades it)."""

    name: str
    required: bool = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    @abstractmethod
    async def run(self) -> None:
        """Deliver until cancelled. Returning means the sink has nothing left to do; raising is a
        failure that the runner reports and recovers from."""

    @abstractmethod
    def stats(self) -> SinkStats: ...


class Backoff:
    """Exponential delays with full jitter (``random.uniform(first, cap)`` over doubling caps), so many
    appliances that lost the same broker do not all come back at the same instant."""

    def __init__(self, first_s: float = 1.0, max_s: float = 60.0) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError("backoff needs 0 < first_s <= max_s")
        self.first_s = first_s
        self.max_s = max_s
        self._cap = first_s

    def next(self) -> float:
        delay = random.uniform(self.first_s, self._cap)
        self._cap = min(self._cap * 2.0, self.max_s)
        return delay

    def reset(self) -> None:
        self._cap = self.first_s
