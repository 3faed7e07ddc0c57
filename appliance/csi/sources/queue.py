"""The queue between a live source's producer (a socket callback, a serial thread) and the pipeline."""

from __future__ import annotations

import asyncio

from appliance.csi.frame import CsiFrame


class BoundedFrameQueue:
    """A frame queue between a producer and the pipeline that drops its *oldest* frame when full.

    Live CSI loses value with age, so a consumer that falls behind should see the newest packets; the
    producer (a socket, a serial thread) must never block. ``dropped`` counts what was thrown away.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._queue: asyncio.Queue[CsiFrame] = asyncio.Queue(maxsize)
        self.dropped = 0

    def put(self, frame: CsiFrame) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(frame)

    async def get(self) -> CsiFrame:
        return await self._queue.get()

    def qsize(self) -> int:
        return self._queue.qsize()
