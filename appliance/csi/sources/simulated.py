"""``SimulatedSource``: the room simulator as a live CSI source, paced like real receivers."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

from appliance.contracts import SourceKind
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import RoomSimulator, SceneTruth

# Simulated time generated per worker-thread call: short enough for a fresh ground truth and a quick
# cancellation, long enough that the per-call overhead stays small.
CHUNK_S = 0.1


class SimulatedSource:
    """Streams a ``RoomSimulator``'s frames, in real time by default, with the matching ground truth.

    Chunks are simulated in a worker thread so that the event loop never waits on numpy. With
    ``realtime=True`` each frame is released when the wall clock reaches its simulated time (measured from
    the first chunk), so a slow consumer sees a backlog rather than a slowed simulation; with
    ``realtime=False`` frames come as fast as they are made. ``host_ts`` is the wall time of emission.
    """

    def __init__(
        self,
        simulator: RoomSimulator,
        *,
        name: str = "simulated",
        realtime: bool = True,
        chunk_s: float = CHUNK_S,
    ) -> None:
        self._simulator = simulator
        self._name = name
        self._realtime = realtime
        self._chunk_s = chunk_s
        self._pending_truth: list[SceneTruth] = []
        self.latest_truth: SceneTruth | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SourceKind:
        return "simulated"

    @property
    def links(self) -> list[str]:
        return self._simulator.links

    def _release_truth(self, sim_t_s: float) -> None:
        """Publish the newest ground truth that is not ahead of the frames already emitted."""
        while self._pending_truth and self._pending_truth[0].t_s <= sim_t_s:
            self.latest_truth = self._pending_truth.pop(0)

    async def frames(self) -> AsyncIterator[CsiFrame]:
        wall_start = time.monotonic()
        sim_start = self._simulator.t_s
        while True:
            chunk = await asyncio.to_thread(self._simulator.advance, self._chunk_s)
            self._pending_truth.extend(chunk.truth)
            for frame in chunk.frames:
                sim_t_s = float(frame.meta["sim_t_s"])
                if self._realtime:
                    delay = wall_start + (sim_t_s - sim_start) - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self._release_truth(sim_t_s)
                yield dataclasses.replace(frame, host_ts=time.time())
            self._release_truth(self._simulator.t_s)
