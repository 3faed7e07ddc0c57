"""CPU and latency of the overlay video, pushed over RTMP as the appliance does it.

CPU: the video sink renders two moving people at each size and pushes them over RTMP to a receiving
ffmpeg on loopback (``-listen 1``, which copies the stream to nowhere). Measured over ``--seconds``: the
appliance process (render thread, pipe writer, event loop) and the encoding ffmpeg, each as a share of
one core. Baseline, in the same run: the same ffmpeg command fed frames rendered beforehand from a plain
loop, i.e. what encoding alone costs; the ratio says what rendering and the sink add.

Latency: from a PoseFrame published on the hub to the decoded frame of the RTMP stream that shows it.
The reading's publish time is burnt into the picture as the skeleton's position (a figure sweeping
across the view every ``SWEEP_S``), so every frame read back says when its reading was published. The
reader is an ffmpeg listening for the push (low-delay flags) and decoding to raw frames.

Each figure is the median over ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from processes import cpu_seconds, free_port

from appliance.contracts import Keypoint, PersonPose, PoseFrame
from appliance.contracts.coco import KEYPOINT_NAMES
from appliance.hub import Hub
from appliance.integrations.runner import SinkRunner
from appliance.integrations.video.ffmpeg import EncodeSettings, FfmpegProcess
from appliance.integrations.video.render import OverlayRenderer, OverlayScene, RoomPlan
from appliance.integrations.video.settings import VideoSettings
from appliance.integrations.video.sink import VideoSink

SIZES = ((640, 360, 10), (1280, 720, 15), (1920, 1080, 30))
SWEEP_S = 4.0  # the latency figure crosses the view in this time
SWEEP_FROM, SWEEP_SPAN = 0.1, 0.8  # ... from x = 0.1 to x = 0.9
PUBLISH_HZ = 20.0
ROOM = RoomPlan(5.0, 4.0)


def _listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:``port`` (read from /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(row.split()[1] == wanted and row.split()[3] == "0A" for row in rows)


def _person(person_id: int, joints: list[tuple[float, float]]) -> PersonPose:
    keypoints = tuple(
        Keypoint(name, x, y, (2.5, 2.0, 1.0), 0.9)
        for name, (x, y) in zip(KEYPOINT_NAMES, joints, strict=True)
    )
    return PersonPose(person_id, keypoints, (0.4, 0.3, 0.2, 0.4), None, None, 0.9)


def _frame(persons: tuple[PersonPose, ...], frame_id: int, timestamp: float) -> PoseFrame:
    return PoseFrame(
        timestamp,
        frame_id,
        "simulated",
        "model",
        "bench",
        True,
        True,
        1.0,
        len(persons),
        persons,
        0.9,
        1.0,
        (),
    )


def _walkers(t: float) -> tuple[PersonPose, ...]:
    """Two people walking to and fro, limbs swinging: a busy picture for the encoder."""
    people = []
    for person_id, phase in ((1, 0.0), (2, 1.7)):
        cx = 0.5 + 0.3 * math.sin(0.4 * t + phase)
        swing = 0.03 * math.sin(4.0 * t + phase)
        joints = [
            (cx + 0.02 * ((i % 3) - 1) + (swing if i >= 7 else 0.0), 0.3 + 0.028 * i) for i in range(17)
        ]
        people.append(_person(person_id, joints))
    return tuple(people)


def _sweeper(t: float) -> tuple[PersonPose, ...]:
    """A vertical line of joints whose x says when it was published (modulo ``SWEEP_S``)."""
    x = SWEEP_FROM + SWEEP_SPAN * ((t % SWEEP_S) / SWEEP_S)
    return (_person(1, [(x, 0.3 + 0.025 * i) for i in range(17)]),)


People = Callable[[float], tuple[PersonPose, ...]]


async def _publish(hub: Hub, people: People) -> None:
    frame_id = 0
    while True:
        frame_id += 1
        now = time.time()
        hub.publish(_frame(people(now), frame_id, now))
        await asyncio.sleep(1.0 / PUBLISH_HZ)


def _settings(width: int, height: int, fps: int, url: str) -> VideoSettings:
    return VideoSettings.model_validate({"width": width, "height": height, "fps": fps, "rtmp_urls": [url]})


@contextlib.asynccontextmanager
async def _receiver(argv_tail: list[str]) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """An ffmpeg listening for one RTMP push on a free loopback port."""
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/bench"
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-listen", "1", "-fflags", "nobuffer", "-flags", "low_delay",
        "-probesize", "32", "-analyzeduration", "0", "-f", "flv", "-i", url, *argv_tail,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    # Not by connecting: the receiver takes one connection only.
    while not _listening(port):  # noqa: ASYNC110 - /proc/net/tcp offers nothing to wait on
        await asyncio.sleep(0.05)
    try:
        yield url, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.communicate()  # wait() alone would wait for a full stdout pipe to be read


@contextlib.asynccontextmanager
async def _sink(settings: VideoSettings, people: People) -> AsyncIterator[VideoSink]:
    hub = Hub()
    with tempfile.TemporaryDirectory() as directory:
        sink = VideoSink(hub, settings, ROOM, Path(directory))
        publisher = asyncio.create_task(_publish(hub, people))
        try:
            async with SinkRunner([sink], hub):
                yield sink
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher


async def _running(sink: VideoSink, timeout_s: float = 20.0) -> int:
    """The push's ffmpeg pid once it encodes."""
    output = sink.pushes["rtmp-1"][1]
    deadline = time.monotonic() + timeout_s
    while output.state != "running" or output.process is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the push did not start: {output.last_error}")
        await asyncio.sleep(0.1)
    return output.process.process.pid


@dataclass(frozen=True, slots=True)
class PipelineRun:
    own: float  # the appliance process, share of one core
    encoder: float  # the encoding ffmpeg, share of one core
    rendered_fps: float
    dropped: float  # share of rendered frames dropped before ffmpeg took them


async def cpu_pipeline(width: int, height: int, fps: int, seconds: float) -> PipelineRun:
    """CPU of the appliance process and of the encoding ffmpeg while the sink pushes, and the frame rate
    actually delivered (a share of a core means little if the frames were not all made)."""
    async with (
        _receiver(["-c", "copy", "-f", "null", "-"]) as (url, _),
        _sink(_settings(width, height, fps, url), _walkers) as sink,
    ):
        encoder = await _running(sink)
        push = sink.pushes["rtmp-1"][1]
        await asyncio.sleep(1.0)  # past the encoder's start
        own0, enc0, wall0 = time.process_time(), cpu_seconds(encoder), time.monotonic()
        frames0, dropped0 = sink.frames, push.status().dropped_frames
        await asyncio.sleep(seconds)
        own1, enc1, wall1 = time.process_time(), cpu_seconds(encoder), time.monotonic()
        frames1, dropped1 = sink.frames, push.status().dropped_frames
    wall = wall1 - wall0
    rendered = frames1 - frames0
    return PipelineRun(
        (own1 - own0) / wall, (enc1 - enc0) / wall, rendered / wall, (dropped1 - dropped0) / max(rendered, 1)
    )


async def cpu_encode_only(width: int, height: int, fps: int, seconds: float) -> float:
    """The same ffmpeg, fed through the same pipe, frames rendered beforehand: encoding alone, per core."""
    renderer = OverlayRenderer(width, height, ROOM)
    frames = [
        renderer.render(OverlayScene(_frame(_walkers(i / fps), i, time.time()), now=time.time(), fps=fps))
        for i in range(2 * fps)
    ]
    async with _receiver(["-c", "copy", "-f", "null", "-"]) as (url, _):
        settings = _settings(width, height, fps, url)
        encode = EncodeSettings("ffmpeg", width, height, fps, settings.keyframe_frames, settings.bitrate_kbps,
                                settings.preset)  # fmt: skip
        process = await FfmpegProcess.start(encode.rtmp(url), name="baseline", scrub=str)
        pid = process.process.pid
        started = time.monotonic()
        measured: tuple[float, float, float] | None = None
        for index in itertools.count():
            tick = started + index / fps
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            process.offer(frames[index % len(frames)])
            elapsed = time.monotonic() - started
            if measured is None and elapsed >= 1.0:  # past the encoder's start
                measured = (time.process_time(), cpu_seconds(pid), time.monotonic())
            if measured is not None and elapsed >= 1.0 + seconds:
                break
        own1, enc1, wall1 = time.process_time(), cpu_seconds(pid), time.monotonic()
        await process.stop()
    assert measured is not None
    own0, enc0, wall0 = measured
    return ((own1 - own0) + (enc1 - enc0)) / (wall1 - wall0)


async def latency(width: int, height: int, fps: int, seconds: float) -> list[float]:
    """Seconds from publishing a PoseFrame to reading back the RTMP frame that shows it."""
    frame_bytes = width * height * 3
    band = slice(round(0.36 * height), round(0.55 * height))  # clear of text and the floor plan
    samples: list[float] = []
    async with (
        _receiver(["-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"]) as (url, reader),
        _sink(_settings(width, height, fps, url), _sweeper) as sink,
    ):
        await _running(sink)
        assert reader.stdout is not None
        deadline = time.monotonic() + 1.0 + seconds
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(reader.stdout.readexactly(frame_bytes), 10.0)
            read_at = time.time()
            image = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)[band].astype(np.int16)
            coloured = np.nonzero((image.max(axis=2) - image.min(axis=2)) > 80)[1]
            if len(coloured) == 0:
                continue
            x = (coloured.mean() + 0.5) / width
            published = (x - SWEEP_FROM) / SWEEP_SPAN * SWEEP_S
            samples.append((read_at - published) % SWEEP_S)
    return samples[fps:]  # the first second includes the reader's start


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU as a share of one core, median of {args.runs} runs of {args.seconds:g} s:")
    print(
        f"{'size':>16}  {'rendered':>8}  {'dropped':>7}  {'render+feed':>11}  {'ffmpeg':>6}  {'total':>6}"
        f"  {'encode only':>11}  {'ratio':>5}"
    )
    for width, height, fps in SIZES:
        runs = [await cpu_pipeline(width, height, fps, args.seconds) for _ in range(args.runs)]
        baseline = _median(
            [await cpu_encode_only(width, height, fps, args.seconds) for _ in range(args.runs)]
        )
        total = _median([r.own + r.encoder for r in runs])
        print(
            f"{width:>5}x{height:<5}@{fps:<3}  {_median([r.rendered_fps for r in runs]):>5.1f}/s"
            f"  {_median([r.dropped for r in runs]):>7.1%}  {_median([r.own for r in runs]):>11.1%}"
            f"  {_median([r.encoder for r in runs]):>6.1%}  {total:>6.1%}  {baseline:>11.1%}"
            f"  {total / baseline:>5.2f}"
        )
    print(f"PoseFrame -> RTMP readback latency, median of {args.runs} runs of {args.seconds:g} s:")
    for width, height, fps in SIZES:
        samples = [await latency(width, height, fps, args.seconds) for _ in range(args.runs)]
        medians = [_median(r) for r in samples if r]
        p90 = [sorted(r)[int(0.9 * len(r))] for r in samples if r]
        read_fps = sum(len(r) for r in samples) / (args.runs * args.seconds)
        print(
            f"{width:>5}x{height:<5}@{fps:<3}  median {_median(medians) * 1000:6.0f} ms"
            f"  p90 {_median(p90) * 1000:6.0f} ms  (frames read back {read_fps:.1f}/s)"
        )


if __name__ == "__main__":
    asyncio.run(main())
