"""One ``ffmpeg`` process fed raw BGR frames on a pipe, and the command lines of the encoded outputs.

Frames go through a mailbox of one: a writer thread writes the newest frame to ffmpeg's stdin, and a frame
offered while the previous one is still waiting replaces it (counted in ``dropped``). So when encoding
falls behind, frames are dropped and memory stays at two frames per encoder, whatever happens downstream.
ffmpeg takes each frame's time from the wall clock and emits a constant rate (``-fps_mode cfr``), so
dropped frames become repeated ones and the stream's clock stays true.

ffmpeg reports its progress (frames, bytes) on stdout (``-progress pipe:1``), from which the measured
frame rate and bit rate come; its errors (``-loglevel error``) are kept, scrubbed of secrets, as the reason
given when it fails. It runs in its own session, so a Ctrl-C meant for the appliance does not kill it from
under its supervisor; with its stdin closed (the appliance gone, even by SIGKILL) it finishes and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]
# Seconds between ffmpeg's progress reports.
PROGRESS_PERIOD_S = 0.5
# Error lines kept from ffmpeg's stderr.
_ERROR_LINES = 8
# How long ffmpeg may take to finish after its input ends (a DASH muxer writes its last segment) before
# it is terminated, then killed.
_FINISH_S = 3.0
_TERMINATE_S = 1.0


def _input_args(width: int, height: int, fps: int) -> list[str]:
    return [
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-progress",
        "pipe:1",
        "-stats_period",
        str(PROGRESS_PERIOD_S),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-video_size",
        f"{width}x{height}",
        "-framerate",
        str(fps),
        "-use_wallclock_as_timestamps",
        "1",
        "-i",
        "pipe:0",
    ]


def _h264_args(fps: int, keyframe_frames: int, bitrate_kbps: int, preset: str) -> list[str]:
    """libx264 tuned for live: no B-frames or lookahead (zerolatency), a keyframe exactly every
    ``keyframe_frames`` (segments and late joiners start on one), constant frame rate, 4:2:0 for every
    player."""
    return [
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        preset,
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(keyframe_frames),
        "-keyint_min",
        str(keyframe_frames),
        "-sc_threshold",
        "0",
        "-b:v",
        f"{bitrate_kbps}k",
        "-maxrate",
        f"{bitrate_kbps}k",
        "-bufsize",
        f"{2 * bitrate_kbps}k",
        "-fps_mode",
        "cfr",
        "-r",
        str(fps),
    ]


@dataclass(frozen=True, slots=True)
class EncodeSettings:
    program: str
    width: int
    height: int
    fps: int
    keyframe_frames: int
    bitrate_kbps: int
    preset: str

    def _head(self) -> list[str]:
        return [
            self.program,
            *_input_args(self.width, self.height, self.fps),
            *_h264_args(self.fps, self.keyframe_frames, self.bitrate_kbps, self.preset),
        ]

    def rtmp(self, url: str) -> list[str]:
        """Push to an RTMP(S) ingest as FLV."""
        return [*self._head(), "-f", "flv", url]

    def segments(self, directory: Path, manifest: str, master: str, playlist_segments: int) -> list[str]:
        """HLS and DASH from one encode: the DASH muxer writes fMP4 segments, the MPD and HLS playlists
        of the same segments, and deletes segments that left the playlists (and all of them at exit)."""
        return [
            *self._head(),
            "-f",
            "dash",
            "-seg_duration",
            f"{self.keyframe_frames / self.fps:g}",
            "-window_size",
            str(playlist_segments),
            "-extra_window_size",
            "2",
            "-remove_at_exit",
            "1",
            "-use_template",
            "1",
            "-use_timeline",
            "1",
            "-hls_playlist",
            "1",
            "-hls_master_name",
            master,
            "-init_seg_name",
            "init-$RepresentationID$.m4s",
            "-media_seg_name",
            "chunk-$RepresentationID$-$Number%05d$.m4s",
            "-adaptation_sets",
            "id=0,streams=v",
            str(directory / manifest),
        ]


@dataclass(frozen=True, slots=True)
class Progress:
    """ffmpeg's latest report: frames encoded and bytes written so far, and when it said so."""

    frames: int
    bytes: int | None  # None where the output has no size (DASH writes many files)
    at: float  # monotonic


class FfmpegProcess:
    """A started ffmpeg; ``offer`` frames, ``wait`` for it to end, ``stop`` it (always reaped)."""

    def __init__(
        self, process: asyncio.subprocess.Process, pipe: int, scrub: Callable[[str], str], name: str
    ) -> None:
        self.process = process
        self.name = name
        self.scrub = scrub
        self.started = time.monotonic()
        self.written = 0
        self.dropped = 0
        self.last_offered_at = self.started
        self.progress: Progress | None = None
        self.fps: float | None = None
        self.bitrate_kbps: float | None = None
        self.errors: deque[str] = deque(maxlen=_ERROR_LINES)
        self._pipe = pipe
        self._pending: Frame | None = None
        self._closing = False
        self._broken: str | None = None
        self._lock = threading.Condition()
        self._writer = threading.Thread(target=self._write_loop, name=f"ffmpeg-pipe:{name}", daemon=True)
        self._writer.start()
        self._readers = [
            asyncio.create_task(self._read_progress(), name=f"ffmpeg-progress:{name}"),
            asyncio.create_task(self._read_errors(), name=f"ffmpeg-errors:{name}"),
        ]

    @classmethod
    async def start(cls, argv: Sequence[str], *, name: str, scrub: Callable[[str], str]) -> FfmpegProcess:
        """Start ``argv``; raises ``OSError`` when the program cannot be started (not installed)."""
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=read_end,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return cls(process, write_end, scrub, name)

    # -- frames in ----------------------------------------------------------------------------------------

    def offer(self, frame: Frame) -> None:
        """Hand a frame to the writer; one still waiting is dropped for it. Never blocks."""
        with self._lock:
            if self._closing or self._broken is not None:
                return
            if self._pending is not None:
                self.dropped += 1
            self._pending = frame
            self.last_offered_at = time.monotonic()
            self._lock.notify()

    def _write_loop(self) -> None:
        try:
            while True:
                with self._lock:
                    while self._pending is None and not self._closing:
                        self._lock.wait()
                    frame, self._pending = self._pending, None
                if frame is None:
                    return
                view = frame.data.cast("B")
                while view:
                    written = os.write(self._pipe, view)
                    view = view[written:]
                self.written += 1
        except OSError as exc:  # BrokenPipeError: ffmpeg is gone; it says why on stderr
            self._broken = f"{type(exc).__name__}: {exc.strerror or exc}"
        finally:
            os.close(self._pipe)

    # -- reports out --------------------------------------------------------------------------------------

    async def _read_progress(self) -> None:
        stream = self.process.stdout
        if stream is None:
            return
        block: dict[str, str] = {}
        async for raw in stream:
            key, _, value = raw.decode(errors="replace").strip().partition("=")
            block[key] = value.strip()
            if key == "progress":
                self._progressed(block)
                block = {}

    def _progressed(self, block: dict[str, str]) -> None:
        """One progress report: frames always; bytes only where the output has a size (not DASH)."""
        try:
            frames = int(block.get("frame", ""))
        except ValueError:
            return
        size = int(block["total_size"]) if block.get("total_size", "").isdigit() else None
        now = time.monotonic()
        previous = self.progress
        if previous is not None and now > previous.at:
            elapsed = now - previous.at
            self.fps = (frames - previous.frames) / elapsed
            if size is not None and previous.bytes is not None:
                self.bitrate_kbps = (size - previous.bytes) * 8 / 1000 / elapsed
        self.progress = Progress(frames, size, now)

    async def _read_errors(self) -> None:
        stream = self.process.stderr
        if stream is None:
            return
        async for raw in stream:
            line = raw.decode(errors="replace").strip()
            if line:
                self.errors.append(self.scrub(line))

    @property
    def encoded(self) -> int:
        return 0 if self.progress is None else self.progress.frames

    @property
    def reason(self) -> str:
        """Why it ended, in ffmpeg's own words when it gave any."""
        code = self.process.returncode
        said = self.errors[-1] if self.errors else None
        if said is not None:
            return said
        if self._broken is not None:
            return f"the pipe to ffmpeg broke ({self._broken})"
        return f"ffmpeg exited with code {code}"

    def stalled(self, timeout_s: float) -> bool:
        """Fed frames but reported no progress for ``timeout_s``: a frozen server or a hung encoder."""
        now = time.monotonic()
        last_report = self.progress.at if self.progress is not None else self.started
        return now - last_report > timeout_s and now - self.last_offered_at < timeout_s

    # -- ending -------------------------------------------------------------------------------------------

    async def wait(self) -> int:
        code = await self.process.wait()
        # Let the readers take what ffmpeg said last (its reason for failing).
        await asyncio.gather(*self._readers, return_exceptions=True)
        return code

    async def stop(self, *, kill: bool = False) -> int:
        """End it: close its input so it finishes its output; terminate, then kill, one that does not.
        Returns once the process is reaped and the writer thread has ended."""
        with self._lock:
            self._closing = True
            self._pending = None
            self._lock.notify()
        if kill:
            self._signal_kill()
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), _FINISH_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), _TERMINATE_S)
            except TimeoutError:
                self._signal_kill()
        code = await self.wait()
        await asyncio.to_thread(self._writer.join)
        return code

    def _signal_kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
