"""``ReplaySource``: a recording, or any capture file the format registry reads, played back as a source.

Timing. Each item gets a place on a media clock: recordings by the host time they were received at,
other files by the device timestamp of their frames. The step between two items is the difference of
those times, unless it is negative or longer than ``MAX_GAP_S`` (a device reboot, a wrapped 32-bit ESP32
clock, two appended recording sessions hours apart) or the file has no clock at all (ADR-018 and
Micro-ESPectre datagrams carry none): then it is ``1 / FALLBACK_RATE_HZ``. ``speed`` plays the media clock
that many times faster than real time; ``speed=None`` plays as fast as the consumer takes frames.

Every frame is stamped with ``host_ts`` at emission, as a live source would. Ground truth in a recording
becomes ``latest_truth`` when the replay reaches it.

Files are read and parsed in a worker thread, a batch at a time, so the event loop never waits on the
disk or on a parser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.contracts import SourceKind
from appliance.csi.formats.errors import CsiFormatError
from appliance.csi.formats.registry import AUTO, iter_file
from appliance.csi.frame import CsiFrame
from appliance.csi.recording import (
    RECORD_HEAD,
    RecordedTruth,
    RecordingHeader,
    RecordingItem,
    is_recording,
    read_recording,
)
from appliance.csi.simulator import SceneTruth

log = logging.getLogger(__name__)

MAX_GAP_S: Final = 5.0
FALLBACK_RATE_HZ: Final = 100.0
# Items read per worker-thread call: large enough that the thread hop is cheap per frame, small enough
# that a paced replay starts at once and holds little memory.
BATCH_ITEMS: Final = 256
_US: Final = 1e-6


@dataclass(slots=True)
class ReplayStats:
    frames: int = 0
    errors: int = 0
    loops: int = 0
    last_error: str | None = None


class _MediaClock:
    """Seconds of media time from item timestamps (see the module docstring)."""

    def __init__(self) -> None:
        self.position_s = 0.0
        self._last: float | None = None

    def restart(self) -> None:
        """A new pass over the file: keep counting from where the last one ended."""
        self._last = None

    def advance(self, stamp_s: float) -> float:
        last, self._last = self._last, stamp_s
        if last is None:
            return self.position_s
        step = stamp_s - last
        if stamp_s == 0.0 or not 0.0 <= step <= MAX_GAP_S:
            step = 1.0 / FALLBACK_RATE_HZ
        self.position_s += step
        return self.position_s


def _items(path: Path, fmt: str) -> Generator[RecordingItem, None, None]:
    """The file's items: a recording read as one (ground truth included), anything else via the registry."""
    if fmt in (AUTO, "recording"):
        with path.open("rb") as f:
            head = f.read(RECORD_HEAD.size + 1)
        if is_recording(head):
            yield from read_recording(path)
            return
    yield from iter_file(path, fmt)


def _next_batch(items: Generator[RecordingItem, None, None]) -> list[RecordingItem]:
    return list(itertools.islice(items, BATCH_ITEMS))


class ReplaySource:
    """Plays ``path`` at ``speed`` x real time (None: as fast as possible), once or in a ``loop``."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        speed: float | None = 1.0,
        loop: bool = False,
        fmt: str = AUTO,
    ) -> None:
        if speed is not None and not speed > 0.0:
            raise ValueError(f"speed must be positive (or None for as fast as possible), got {speed}")
        self.path = Path(path)
        self._name = name or f"replay:{self.path.name}"
        self.speed = speed
        self.loop = loop
        self.fmt = fmt
        self.stats = ReplayStats()
        self.header: RecordingHeader | None = None
        self.latest_truth: SceneTruth | None = None
        self._clock = _MediaClock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SourceKind:
        return "replay"

    @property
    def position_s(self) -> float:
        """Media time of the latest item played, seconds from the start of the first pass."""
        return self._clock.position_s

    async def frames(self) -> AsyncIterator[CsiFrame]:
        loop = asyncio.get_running_loop()
        # One worker thread per replay, so that closing the file's generator queues behind a batch still
        # being read when the replay is cancelled instead of racing it.
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"replay:{self.path.name}")
        wall_start = time.monotonic()
        try:
            while True:
                items = _items(self.path, self.fmt)
                played = self.stats.frames
                try:
                    while batch := await loop.run_in_executor(reader, _next_batch, items):
                        for item in batch:
                            frame = await self._play(item, wall_start)
                            if frame is not None:
                                yield frame
                finally:
                    reader.submit(items.close)
                if not self.loop:
                    return
                if self.stats.frames == played:
                    # Looping a file without a single frame would reread it forever without a pause.
                    raise ValueError(f"{self.path} has no CSI frames to replay")
                self.stats.loops += 1
                self._clock.restart()
        finally:
            reader.shutdown(wait=False)

    async def _play(self, item: RecordingItem, wall_start: float) -> CsiFrame | None:
        """Wait until ``item`` is due; the frame to emit, if it is one."""
        if isinstance(item, CsiFormatError):
            self.stats.errors += 1
            self.stats.last_error = str(item)
            log.debug("%s: %s", self.path, item)
            return None
        if isinstance(item, RecordingHeader):
            self.header = item
            return None
        if isinstance(item, RecordedTruth):
            await self._wait(self._clock.advance(item.host_ts), wall_start)
            self.latest_truth = item.truth
            return None
        stamp = item.host_ts if item.host_ts else item.device_ts_us * _US
        await self._wait(self._clock.advance(stamp), wall_start)
        self.stats.frames += 1
        return dataclasses.replace(item, host_ts=time.time())

    async def _wait(self, media_s: float, wall_start: float) -> None:
        if self.speed is None:
            return
        delay = wall_start + media_s / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
