"""``SinkRunner``: enters the sinks in order, keeps each one running, and reports them all in one place.

``async with SinkRunner(sinks, hub)`` enters the sinks in the order given (the history recorder before
anything that could publish), starts each one's ``run``, and on exit stops them in reverse order, each
leaving its context so it writes what it owes. A sink whose ``run`` raises, or whose context cannot be
entered (a broker not up yet), is reported (log and ``alert.system_error`` on the hub, once per distinct
error), left, and entered again after a backoff; the others never notice. ``status()`` is the one view of
the sinks that health, performance and ``/metrics`` read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self

from appliance.contracts import Event, EventType
from appliance.hub import Hub
from appliance.integrations.base import Backoff, Sink, SinkStats

log = logging.getLogger(__name__)

# A sink that ran this long before failing starts again from the shortest backoff.
_STABLE_S = 30.0

SinkState = Literal["starting", "running", "restarting", "stopped"]


@dataclass(frozen=True, slots=True)
class SinkStatus:
    name: str
    required: bool
    state: SinkState
    restarts: int
    last_failure: str | None  # the error that made it restart last, if any
    last_failure_at: float | None
    stats: SinkStats

    @property
    def healthy(self) -> bool:
        return self.state == "running" and self.stats.connected


class _Supervisor:
    """One sink's life: enter, run, and after a failure leave, wait and enter again."""

    def __init__(self, sink: Sink, hub: Hub, backoff: Backoff) -> None:
        self.sink = sink
        self.hub = hub
        self.backoff = backoff
        self.state: SinkState = "starting"
        self.entered = False
        self.restarts = 0
        self.last_failure: str | None = None
        self.last_failure_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._enter()
        self.task = asyncio.create_task(self._supervise(), name=f"sink:{self.sink.name}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self._leave(None)
        self.state = "stopped"

    async def _enter(self) -> bool:
        try:
            await self.sink.__aenter__()
        except Exception as exc:
            self._failed(exc, "could not start")
            return False
        self.entered = True
        return True

    async def _leave(self, exc: BaseException | None) -> None:
        if not self.entered:
            return
        self.entered = False
        try:
            await self.sink.__aexit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        except Exception:
            log.exception("sink failed to stop cleanly", extra={"fields": {"sink": self.sink.name}})

    async def _supervise(self) -> None:
        while True:
            if not self.entered:
                self.state = "restarting"
                await asyncio.sleep(self.backoff.next())
                if not await self._enter():
                    continue
                self.restarts += 1
            self.state = "running"
            started = time.monotonic()
            try:
                await self.sink.run()
            except Exception as exc:
                if time.monotonic() - started > _STABLE_S:
                    self.backoff.reset()
                self._failed(exc, "failed")
                await self._leave(exc)
                continue
            log.info("sink finished", extra={"fields": {"sink": self.sink.name}})
            self.state = "stopped"
            return

    def _failed(self, exc: Exception, what: str) -> None:
        error = f"{type(exc).__name__}: {exc}"
        if error != self.last_failure:
            log.error(
                f"sink {what}; it will be restarted",
                exc_info=exc,
                extra={"fields": {"sink": self.sink.name}},
            )
            self.hub.publish(
                Event(EventType.ALERT_SYSTEM_ERROR, {"component": f"sink:{self.sink.name}", "error": error})
            )
        self.last_failure = error
        self.last_failure_at = time.time()

    def status(self) -> SinkStatus:
        return SinkStatus(
            name=self.sink.name,
            required=self.sink.required,
            state=self.state,
            restarts=self.restarts,
            last_failure=self.last_failure,
            last_failure_at=self.last_failure_at,
            stats=self.sink.stats(),
        )


class SinkRunner:
    """Runs the given sinks for the life of an ``async with`` block."""

    def __init__(
        self, sinks: Sequence[Sink], hub: Hub, *, first_backoff_s: float = 1.0, max_backoff_s: float = 60.0
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique: {names}")
        self._supervisors = [
            _Supervisor(sink, hub, Backoff(first_backoff_s, max_backoff_s)) for sink in sinks
        ]

    async def __aenter__(self) -> Self:
        for supervisor in self._supervisors:
            await supervisor.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for supervisor in reversed(self._supervisors):
            await supervisor.stop()

    def sink(self, name: str) -> Sink | None:
        return next((s.sink for s in self._supervisors if s.sink.name == name), None)

    def status(self) -> list[SinkStatus]:
        return [supervisor.status() for supervisor in self._supervisors]
