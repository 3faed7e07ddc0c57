"""An encoded output kept alive: ffmpeg started while the output is wanted, restarted after a failure with
backoff (the old process reaped first, since an RTMP server refuses a second publisher of a stream while
the first is connected), stopped when it is no longer wanted; and its status.

A failure is an exit of ffmpeg (it exits within a fraction of a second when the RTMP server goes away, and
cannot start while it is down) or a stall (fed frames, no progress for ``stall_timeout_s``: a frozen
server). Each failure is counted, kept as ``last_error`` and announced through ``on_failure`` once per
distinct error until the output runs again, so an outage is one alert, not one per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from appliance.integrations.base import Backoff
from appliance.integrations.video.ffmpeg import FfmpegProcess, Frame

log = logging.getLogger(__name__)

OutputKind = Literal["rtmp", "segments", "mjpeg", "webrtc"]
OutputState = Literal["idle", "starting", "running", "restarting"]
# An output that ran this long before failing starts again from the shortest backoff.
STABLE_S = 30.0
# How often a running output checks for a stall and whether it is still wanted.
_WATCH_S = 0.5


class OutputStatus(BaseModel):
    """One output of the overlay video, as ``GET /api/v1/stream/status`` shows it."""

    id: str = Field(description="rtmp-<n>, segments (HLS and DASH), mjpeg or webrtc")
    kind: OutputKind
    target: str = Field(description="where it goes: the push URL with its key hidden, or the route")
    state: OutputState = Field(
        description="idle: nobody needs it; starting; running; restarting: waiting to start again"
    )
    fps: float | None = Field(description="frames per second it encoded or sent lately; null when idle")
    bitrate_kbps: float | None = Field(description="kilobits per second it wrote lately; null when unknown")
    restarts: int = Field(description="times its encoder failed and was started again")
    last_error: str | None = Field(description="the latest failure, in ffmpeg's words (keys hidden)")
    last_error_at: float | None = Field(description="when it failed last, seconds since the epoch")
    dropped_frames: int = Field(description="frames dropped because encoding or the viewer fell behind")
    viewers: int | None = Field(description="people watching (HLS/DASH: seen lately); null for pushes")


class EncodedOutput:
    """One ffmpeg-encoded output (an RTMP push, or the HLS/DASH segments) and its supervision."""

    def __init__(
        self,
        output_id: str,
        kind: OutputKind,
        target: str,
        command: Sequence[str],
        *,
        scrub: Callable[[str], str],
        on_failure: Callable[[EncodedOutput, str], None],
        on_start: Callable[[], None],
        restart_first_s: float,
        restart_max_s: float,
        stall_timeout_s: float,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.id = output_id
        self.kind = kind
        self.target = target
        self.command = list(command)
        self.scrub = scrub
        self.on_failure = on_failure
        self.on_start = on_start
        self.stall_timeout_s = stall_timeout_s
        self.prepare = prepare
        self.backoff = Backoff(restart_first_s, restart_max_s)
        self.state: OutputState = "idle"
        self.process: FfmpegProcess | None = None
        self.restarts = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.dropped_before = 0  # by processes that have ended
        self._announced: str | None = None
        self._wanted = False
        self._changed = asyncio.Event()

    @property
    def wanted(self) -> bool:
        return self._wanted

    def want(self, wanted: bool) -> None:
        if wanted != self._wanted:
            self._wanted = wanted
            self._changed.set()

    @property
    def needs_frames(self) -> bool:
        """Wanted, and an encoder is (being) started: not while it waits to be started again."""
        return self._wanted and self.state in ("starting", "running")

    def offer(self, frame: Frame) -> None:
        if self.process is not None:
            self.process.offer(frame)

    async def run(self) -> None:
        """Supervise until cancelled; the process is always reaped before this returns."""
        try:
            while True:
                if not self._wanted:
                    self.state = "idle"
                await self._until(lambda: self._wanted)
                await self._run_once()
        finally:
            await self._reap()
            self.state = "idle"

    async def _run_once(self) -> None:
        self.state = "starting"
        self.on_start()
        if self.prepare is not None:
            await asyncio.to_thread(self.prepare)
        started = time.monotonic()
        error: str | None
        try:
            self.process = await FfmpegProcess.start(self.command, name=self.id, scrub=self.scrub)
        except OSError as exc:
            error = f"cannot start {self.command[0]}: {exc.strerror or exc} (is ffmpeg installed?)"
        else:
            error = await self._watch(self.process)
        await self._reap()
        if error is None:  # no longer wanted: stopped on purpose
            self.state = "idle"
            self.backoff.reset()
            return
        if time.monotonic() - started > STABLE_S:
            self.backoff.reset()
        self._failed(error)
        self.state = "restarting"
        await self._until(lambda: not self._wanted, timeout_s=self.backoff.next())

    async def _watch(self, process: FfmpegProcess) -> str | None:
        """Until the process ends (its reason), stalls, or is no longer wanted (None)."""
        ended = asyncio.ensure_future(process.wait())
        try:
            while self._wanted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ended), _WATCH_S)
                if ended.done():
                    return process.reason
                if process.encoded > 0 and self.state == "starting":
                    self.state = "running"
                    self._announced = None
                if process.stalled(self.stall_timeout_s):
                    await process.stop(kill=True)
                    return f"stalled: no progress for {self.stall_timeout_s:g} s (server frozen?)"
            return None
        finally:
            ended.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ended

    async def _reap(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            await process.stop()
            self.dropped_before += process.dropped

    def _failed(self, error: str) -> None:
        self.restarts += 1
        self.last_error = error
        self.last_error_at = time.time()
        log.warning(
            "video output failed; restarting it",
            extra={"fields": {"output": self.id, "target": self.target, "error": error}},
        )
        if error != self._announced:
            self._announced = error
            self.on_failure(self, error)

    async def _until(self, condition: Callable[[], bool], timeout_s: float | None = None) -> None:
        """Wait until ``condition`` holds after a change of ``wanted`` (or the timeout passes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not condition():
            self._changed.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def status(self, viewers: int | None = None) -> OutputStatus:
        process = self.process
        running = process is not None and self.state == "running"
        return OutputStatus(
            id=self.id,
            kind=self.kind,
            target=self.target,
            state=self.state,
            fps=None if not running or process is None or process.fps is None else round(process.fps, 2),
            bitrate_kbps=None
            if not running or process is None or process.bitrate_kbps is None
            else round(process.bitrate_kbps, 1),
            restarts=self.restarts,
            last_error=self.last_error,
            last_error_at=self.last_error_at,
            dropped_frames=self.dropped_before + (process.dropped if process is not None else 0),
            viewers=viewers,
        )
