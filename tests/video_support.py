"""Real parts for the overlay video's tests and bench: an RTMP server (Debian's nginx with
libnginx-mod-rtmp, on loopback, started and stopped by the test), ffprobe and ffmpeg reading streams back,
and PoseFrames whose skeletons sit where a test wants them."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from appliance.api.keys import HUB
from appliance.api.resource_keys import RESOURCES
from appliance.contracts import Keypoint, PersonPose, PoseFrame
from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.integrations.video.sink import VideoSink
from tests.app_support import Client
from tests.conftest import pick_free_port

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
Image = npt.NDArray[np.uint8]
# A figure standing in the middle of the overlay view: (x, y) of each COCO joint, 0..1 in the view.
STANDING = (
    (0.50, 0.30),  # nose
    (0.49, 0.29),
    (0.51, 0.29),
    (0.48, 0.30),
    (0.52, 0.30),
    (0.46, 0.37),  # shoulders
    (0.54, 0.37),
    (0.44, 0.46),  # elbows
    (0.56, 0.46),
    (0.43, 0.54),  # wrists
    (0.57, 0.54),
    (0.47, 0.55),  # hips
    (0.53, 0.55),
    (0.47, 0.66),  # knees
    (0.53, 0.66),
    (0.47, 0.77),  # ankles
    (0.53, 0.77),
)


def require(*programs: str) -> None:
    """Skip (naming what `make test` installs) when a program the test drives is missing."""
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed; `make test` installs ffmpeg, nginx, libnginx-mod-rtmp"
        )


def person_at(person_id: int, joints: tuple[tuple[float, float], ...] = STANDING, *, confidence: float = 0.9,
              activity: str | None = "standing") -> PersonPose:  # fmt: skip
    keypoints = tuple(
        Keypoint(name, x, y, (2.5, 2.0, 1.0), confidence)
        for name, (x, y) in zip(KEYPOINT_NAMES, joints, strict=True)
    )
    xs = [x for x, _ in joints]
    ys = [y for _, y in joints]
    bbox = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    return PersonPose(person_id, keypoints, bbox, None, activity, 0.8)


def pose_frame(persons: tuple[PersonPose, ...] = (), *, source: str = "simulated", ts: float | None = None,
               frame_id: int = 1) -> PoseFrame:  # fmt: skip
    return PoseFrame(
        timestamp=time.time() if ts is None else ts,
        frame_id=frame_id,
        source=source,  # type: ignore[arg-type]
        estimator="model",
        model_version="test",
        presence=bool(persons),
        motion=bool(persons),
        motion_score=1.5 if persons else 0.0,
        person_count=len(persons),
        persons=persons,
        confidence=0.9,
        processing_ms=1.0,
        links=(),
    )


def saturation(image: Image, x: float, y: float, radius: int = 1) -> float:
    """How coloured the pixels around overlay point (x, y) are (max - min channel, 0..255): the scene is
    grey, skeletons are drawn in saturated colours."""
    height, width = image.shape[:2]
    cx, cy = min(round(x * width), width - 1), min(round(y * height), height - 1)
    patch = image[max(cy - radius, 0) : cy + radius + 1, max(cx - radius, 0) : cx + radius + 1].astype(int)
    return float((patch.max(axis=2) - patch.min(axis=2)).mean())


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


class RtmpServer:
    """nginx with the RTMP module on a loopback port; ``stop`` and ``start`` keep the port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or pick_free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.config = directory / "nginx.conf"
        self.config.write_text(
            f"load_module {RTMP_MODULE};\n"
            "daemon off;\nmaster_process off;\nworker_processes 1;\n"
            f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log;\n"
            "events { worker_connections 64; }\n"
            "rtmp { access_log off; server { listen 127.0.0.1:%d;\n"
            "  application live { live on; record off; } } }\n" % self.port
        )

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "nginx",
                "-c",
                str(self.config),
                "-p",
                str(self.directory),
                "-e",
                str(self.directory / "error.log"),
            ],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
            self.process = None


async def _run(argv: list[str], timeout_s: float) -> tuple[int, bytes, bytes]:
    """Run a reader without blocking the event loop the application under test runs on."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, b"", b"timed out"
    return process.returncode or 0, stdout, stderr


async def probe(url: str, timeout_s: float = 8.0) -> str | None:
    """ffprobe's ``codec,width,height,rate`` of the stream's video, or None when it cannot be read."""
    code, stdout, _ = await _run(
        ["ffprobe", "-v", "error", "-rw_timeout", "3000000", "-analyzeduration", "500000", "-probesize",
         "32768", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height,avg_frame_rate",
         "-of", "csv=p=0", url],
        timeout_s,
    )  # fmt: skip
    lines = [line for line in stdout.decode().splitlines() if line.strip()]
    return lines[0] if code == 0 and lines else None


async def grab_frame(url: str, width: int, height: int, timeout_s: float = 10.0) -> Image:
    """One decoded frame of the stream (the first a reader joining now can decode)."""
    code, stdout, stderr = await _run(
        ["ffmpeg", "-v", "error", "-rw_timeout", "3000000", "-analyzeduration", "500000", "-probesize",
         "32768", "-i", url, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"],
        timeout_s,
    )  # fmt: skip
    assert code == 0, stderr.decode(errors="replace")
    assert len(stdout) == width * height * 3, f"{len(stdout)} bytes for {width}x{height}"
    return np.frombuffer(stdout, dtype=np.uint8).reshape(height, width, 3)


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a process (a zombie counts: it has not been reaped)."""
    return Path(f"/proc/{pid}").exists()


def ffmpeg_children(parent: int) -> list[int]:
    """Process ids of the ffmpeg processes that ``parent`` started (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == parent and name == "ffmpeg":
            found.append(int(entry.name))
    return found


# --------------------------------------------------------------------------------------------------------
# The application's side


def video_sink(client: Client) -> VideoSink:
    runner = client.app[RESOURCES].sinks
    assert runner is not None
    sink = runner.sink("video")
    assert isinstance(sink, VideoSink)
    return sink


async def until(condition: Callable[[], object], timeout_s: float, what: str) -> float:
    """Poll ``condition`` (a function, or one returning an awaitable) until it is true; the seconds it
    took. Fails naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.1)


async def stream_status(client: Client, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/stream/status", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def output(body: dict[str, Any], output_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in body["outputs"] if o["id"] == output_id)
    return found


class Publisher:
    """Publishes PoseFrames with ``persons`` ten times a second, freshly timed, as the pipeline would
    (the overlay says a reading older than 2 s is stale)."""

    def __init__(
        self, client: Client, persons: tuple[PersonPose, ...] = (), source: str = "simulated"
    ) -> None:
        self.hub = client.app[HUB]
        self.persons = persons
        self.source = source
        self.published = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Publisher:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def publish(self) -> None:
        self.published += 1
        self.hub.publish(pose_frame(self.persons, source=self.source, frame_id=self.published))

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(0.1)
