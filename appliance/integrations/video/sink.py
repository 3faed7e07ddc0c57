"""``VideoSink``: renders the overlay while an output needs it and hands each frame to the outputs.

Outputs: RTMP(S) pushes (``video.rtmp_urls`` from start, more through the API), HLS and DASH while HTTP
viewers ask for them, MJPEG and WebRTC viewers while they are connected, the snapshot on request, and an
``OverlaySnapshot`` on the hub every ``video.snapshot_interval_s`` while a sink subscribes to it (the MQTT
camera); each snapshot is rendered and encoded on the render thread, on its own, without the video.
While none of them needs frames nothing is rendered or encoded; the first one starts the render loop and
the last one to leave stops it. The loop renders at ``video.fps`` on its own thread, reading the room
from the hub's retained topics (``pose``, ``config/zones``, ``zone/+``, ``controls``) at each tick, so it
never queues readings: a tick that finds the thread still busy is skipped and counted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import statistics
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
from pydantic import BaseModel, Field

from appliance.contracts import (
    SNAPSHOT_TOPIC,
    ControlState,
    Event,
    EventType,
    OverlaySnapshot,
    PoseFrame,
    ZoneLayout,
    ZoneOccupancy,
)
from appliance.hub import Hub
from appliance.integrations.base import Sink, SinkStats
from appliance.integrations.video.ffmpeg import EncodeSettings, Frame
from appliance.integrations.video.outputs import EncodedOutput, OutputKind, OutputStatus
from appliance.integrations.video.render import OverlayRenderer, OverlayScene, RoomPlan
from appliance.integrations.video.segments import DASH_MANIFEST, MASTER_PLAYLIST, SegmentFiles
from appliance.integrations.video.settings import PushUrl, VideoSettings
from appliance.integrations.video.webrtc import WebRtcPeers

MJPEG_PATH = "/api/v1/stream/mjpeg"
WEBRTC_PATH = "/api/v1/stream/webrtc"
HLS_PATH = f"/api/v1/stream/hls/{MASTER_PLAYLIST}"
DASH_PATH = f"/api/v1/stream/dash/{DASH_MANIFEST}"
# Pushes at most (configured and added through the API): each is an encoder of its own.
MAX_PUSHES = 8
# How often the idle render loop looks at its viewers again.
_IDLE_CHECK_S = 1.0
# Window of the measured rates, seconds.
_RATE_WINDOW_S = 3.0


class TooManyViewersError(Exception):
    """Every viewer slot of an output is taken."""


class PushLimitError(Exception):
    """No more pushes can be added."""


class RateMeter:
    """Events (and their sizes) per second over the last few seconds."""

    def __init__(self, window_s: float = _RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()

    def add(self, size: int = 0) -> None:
        now = time.monotonic()
        self._events.append((now, size))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self.window_s:
            self._events.popleft()

    def rate(self) -> tuple[float, float]:
        """(events per second, size units per second); zeros when idle."""
        self._trim(time.monotonic())
        if len(self._events) < 2:
            return 0.0, 0.0
        span = self._events[-1][0] - self._events[0][0]
        if span <= 0:
            return 0.0, 0.0
        sizes = sum(size for _, size in list(self._events)[1:])
        return (len(self._events) - 1) / span, sizes / span


class RenderStatus(BaseModel):
    active: bool = Field(description="frames are being rendered (some output needs them)")
    fps: float = Field(description="frames rendered per second lately")
    frames: int = Field(description="frames rendered since the appliance started")
    missed_ticks: int = Field(description="frame times skipped because rendering fell behind")
    render_ms: float | None = Field(description="median time to render one frame, lately")


class VideoStatus(BaseModel):
    """The overlay video: its format, the render loop, and each output."""

    width: int
    height: int
    fps: int = Field(description="configured frames per second")
    render: RenderStatus
    outputs: list[OutputStatus]


class VideoSink(Sink):
    name = "video"

    def __init__(self, hub: Hub, settings: VideoSettings, room: RoomPlan, directory: Path) -> None:
        self.hub = hub
        self.settings = settings
        self.encode = EncodeSettings(
            program=settings.ffmpeg,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            keyframe_frames=settings.keyframe_frames,
            bitrate_kbps=settings.bitrate_kbps,
            preset=settings.preset,
        )
        self.renderer = OverlayRenderer(settings.width, settings.height, room)
        self._group: asyncio.TaskGroup | None = None
        self.pushes: dict[str, tuple[PushUrl, EncodedOutput]] = {}
        for url in settings.push_urls:
            self._add_push(url).want(True)
        self.segment_files: SegmentFiles | None = None
        self.segments: EncodedOutput | None = None
        if settings.hls or settings.dash:
            files = SegmentFiles(directory, settings.viewer_timeout_s)
            self.segment_files = files
            self.segments = self._output(
                "segments",
                "segments",
                HLS_PATH if settings.hls else DASH_PATH,
                self.encode.segments(directory, DASH_MANIFEST, MASTER_PLAYLIST, settings.playlist_segments),
                prepare=files.clear,
            )
        self.webrtc = (
            WebRtcPeers(settings.webrtc, self, self._demand_changed) if settings.webrtc.enabled else None
        )
        self.mjpeg_viewers = 0
        self.mjpeg_dropped = 0
        self._mjpeg_meter = RateMeter()
        self._render_meter = RateMeter()
        self._render_times: deque[float] = deque(maxlen=50)
        self.frames = 0
        self.snapshots = 0
        self._snapshot_cpu: deque[float] = deque(maxlen=50)  # render-thread CPU seconds per snapshot
        self.missed_ticks = 0
        self.rendering = False
        self._version = 0
        self._frame: Frame | None = None
        self._jpeg: bytes | None = None
        self._frame_ready = asyncio.Condition()
        self._demand = asyncio.Event()
        self._closing = False
        self._executor: ThreadPoolExecutor | None = None

    # -- outputs ------------------------------------------------------------------------------------------

    def _output(
        self,
        output_id: str,
        kind: OutputKind,
        target: str,
        command: list[str],
        *,
        prepare: Callable[[], None] | None = None,
        scrub: Callable[[str], str] = str,
    ) -> EncodedOutput:
        settings = self.settings
        return EncodedOutput(
            output_id,
            kind,
            target,
            command,
            scrub=scrub,
            on_failure=self._output_failed,
            on_start=self._demand_changed,
            restart_first_s=settings.restart_first_s,
            restart_max_s=settings.restart_max_s,
            stall_timeout_s=settings.stall_timeout_s,
            prepare=prepare,
        )

    def _add_push(self, url: PushUrl) -> EncodedOutput:
        output_id = f"rtmp-{len(self.pushes) + 1}"
        output = self._output(output_id, "rtmp", url.redacted, self.encode.rtmp(url.url), scrub=url.scrub)
        self.pushes[output_id] = (url, output)
        if self._group is not None:
            self._group.create_task(output.run(), name=f"video:{output_id}")
        return output

    def _encoded_outputs(self) -> list[EncodedOutput]:
        outputs = [output for _, output in self.pushes.values()]
        return outputs + ([self.segments] if self.segments is not None else [])

    def _output_failed(self, output: EncodedOutput, error: str) -> None:
        self.hub.publish(
            Event(
                EventType.ALERT_SYSTEM_ERROR,
                {"component": f"sink:video:{output.id}", "target": output.target, "error": error},
            )
        )

    def start_push(self, url: PushUrl | None) -> list[OutputStatus]:
        """Push to ``url`` (a known one starts again), or start every configured push when None."""
        if url is None:
            started = [output for _, output in self.pushes.values()]
        else:
            known = next((o for u, o in self.pushes.values() if u.url == url.url), None)
            if known is None and len(self.pushes) >= MAX_PUSHES:
                raise PushLimitError(f"at most {MAX_PUSHES} pushes; stop one with DELETE first")
            started = [known or self._add_push(url)]
        for output in started:
            output.want(True)
        self._demand_changed()
        return [output.status() for output in started]

    def stop_push(self, output_id: str | None) -> list[OutputStatus] | None:
        """Stop one push (None when there is no such push) or, with no id, every push."""
        if output_id is not None and output_id not in self.pushes:
            return None
        chosen = [self.pushes[output_id][1]] if output_id else [o for _, o in self.pushes.values()]
        for output in chosen:
            output.want(False)
        return [output.status() for output in chosen]

    # -- the sink -----------------------------------------------------------------------------------------

    async def __aenter__(self) -> VideoSink:
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="video-render")
        if self.segment_files is not None:
            await asyncio.to_thread(self.segment_files.clear)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close_viewers()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self.segment_files is not None:
            await asyncio.to_thread(self.segment_files.clear)

    async def close_viewers(self) -> None:
        """End every MJPEG and WebRTC viewer (the appliance is stopping)."""
        self._closing = True
        async with self._frame_ready:
            self._frame_ready.notify_all()
        if self.webrtc is not None:
            await self.webrtc.close_all()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for output in self._encoded_outputs():
                    group.create_task(output.run(), name=f"video:{output.id}")
                group.create_task(self._render_loop(), name="video:render")
                if self.settings.snapshot_interval_s > 0:
                    group.create_task(self._snapshot_loop(), name="video:snapshots")
        except ExceptionGroup as failures:
            # The runner reports the first failure; the rest are what the group cancelled with it.
            raise failures.exceptions[0] from failures
        finally:
            self._group = None

    def _demand_changed(self) -> None:
        self._demand.set()

    def _frames_wanted(self) -> bool:
        if self.segments is not None and self.segment_files is not None:
            self.segments.want(self.segment_files.viewers() > 0)
        return (
            any(output.needs_frames for output in self._encoded_outputs())
            or self.mjpeg_viewers > 0
            or (self.webrtc is not None and self.webrtc.count > 0)
        )

    async def _render_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.settings.fps
        while True:
            if not self._frames_wanted():
                self.rendering = False
                self._demand.clear()
                # Woken by a new viewer or push; and now and then to forget HLS viewers who left.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._demand.wait(), _IDLE_CHECK_S)
                continue
            self.rendering = True
            tick = time.monotonic()
            while self._frames_wanted():
                want_jpeg = self.mjpeg_viewers > 0
                started = time.monotonic()
                frame, jpeg = await loop.run_in_executor(self._executor, self._draw, self._scene(), want_jpeg)
                self._render_times.append(time.monotonic() - started)
                await self._publish(frame, jpeg)
                tick += period
                late = time.monotonic() - tick
                if late > 0:
                    missed = int(late / period) + 1
                    self.missed_ticks += missed
                    tick += missed * period
                await asyncio.sleep(max(0.0, tick - time.monotonic()))

    def _scene(self) -> OverlayScene:
        """The room now, from the hub's retained topics."""
        pose = self.hub.latest("pose")
        layout = self.hub.latest("config/zones")
        controls = self.hub.latest("controls")
        occupancy = {
            m.item.zone_id: m.item.occupancy
            for m in self.hub.retained("zone/+")
            if isinstance(m.item, ZoneOccupancy)
        }
        fps, _ = self._render_meter.rate()
        return OverlayScene(
            pose=pose.item if pose is not None and isinstance(pose.item, PoseFrame) else None,
            zones=layout.item.zones if layout is not None and isinstance(layout.item, ZoneLayout) else (),
            occupancy=occupancy,
            detection_enabled=not (
                controls is not None
                and isinstance(controls.item, ControlState)
                and not controls.item.detection_enabled
            ),
            now=time.time(),
            fps=fps,
        )

    async def _snapshot_loop(self) -> None:
        """An ``OverlaySnapshot`` now and every interval after, while some subscriber takes them."""
        loop = asyncio.get_running_loop()
        while True:
            if self.hub.wanted(SNAPSHOT_TOPIC):
                snapshot = await loop.run_in_executor(self._executor, self._snapshot_of, self._scene())
                self.hub.publish(snapshot)
                self.snapshots += 1
            await asyncio.sleep(self.settings.snapshot_interval_s)

    def _snapshot_of(self, scene: OverlayScene) -> OverlaySnapshot:
        """On the render thread: the scene as a JPEG, base64-encoded here too (off the event loop)."""
        started = time.thread_time()
        jpeg = self._render_jpeg(scene)
        pose = scene.pose
        snapshot = OverlaySnapshot(
            timestamp=scene.now,
            width=self.settings.width,
            height=self.settings.height,
            frame_id=None if pose is None else pose.frame_id,
            source=None if pose is None else pose.source,
            jpeg_base64=base64.b64encode(jpeg).decode("ascii"),
        )
        self._snapshot_cpu.append(time.thread_time() - started)
        return snapshot

    def _render_jpeg(self, scene: OverlayScene) -> bytes:
        return self._encode_jpeg(self.renderer.render(scene))

    def _draw(self, scene: OverlayScene, want_jpeg: bool) -> tuple[Frame, bytes | None]:
        """On the render thread: the frame, and its JPEG when someone watches MJPEG."""
        frame = self.renderer.render(scene)
        return frame, self._encode_jpeg(frame) if want_jpeg else None

    def _encode_jpeg(self, frame: Frame) -> bytes:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        return bytes(data)

    async def _publish(self, frame: Frame, jpeg: bytes | None) -> None:
        self.frames += 1
        self._render_meter.add()
        for output in self._encoded_outputs():
            output.offer(frame)
        async with self._frame_ready:
            self._version += 1
            self._frame, self._jpeg = frame, jpeg
            self._frame_ready.notify_all()

    # -- viewers ------------------------------------------------------------------------------------------

    async def next_frame(self, after: int) -> tuple[int, Frame] | None:
        """The first frame newer than version ``after``; None once the video stops (WebRTC tracks)."""
        async with self._frame_ready:
            await self._frame_ready.wait_for(lambda: self._closing or self._version > after)
            if self._closing or self._frame is None:
                return None
            return self._version, self._frame

    def mjpeg(self) -> AsyncGenerator[bytes, None]:
        """JPEG frames for one MJPEG viewer, newest first: a slow viewer skips frames, never queues them.
        Raises ``TooManyViewersError`` when every slot is taken."""
        if self.mjpeg_viewers >= self.settings.max_mjpeg_viewers:
            raise TooManyViewersError(f"{self.settings.max_mjpeg_viewers} MJPEG viewers already watch")
        return self._mjpeg_frames()

    def _jpeg_after(self, seen: int) -> bool:
        return self._closing or (self._jpeg is not None and self._version > seen)

    async def _mjpeg_frames(self) -> AsyncGenerator[bytes, None]:
        self.mjpeg_viewers += 1
        self._demand_changed()
        try:
            seen = -1
            while True:
                async with self._frame_ready:
                    await self._frame_ready.wait_for(functools.partial(self._jpeg_after, seen))
                    if self._closing or self._jpeg is None:
                        return
                    if seen >= 0:
                        self.mjpeg_dropped += self._version - seen - 1
                    seen, jpeg = self._version, self._jpeg
                self._mjpeg_meter.add(len(jpeg))
                yield jpeg
        finally:
            self.mjpeg_viewers -= 1

    def hls_viewer(self, viewer: str) -> None:
        """An HLS or DASH request from ``viewer``: keeps (or starts) the segments' encoder."""
        if self.segment_files is None or self.segments is None:
            return
        self.segment_files.seen(viewer)
        self.segments.want(True)
        self._demand_changed()

    async def snapshot(self) -> bytes:
        """A JPEG of the room now (Home Assistant's camera image); rendered afresh on the render thread."""
        if self._executor is None:
            raise RuntimeError("the video sink is not running")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._render_jpeg, self._scene()
        )

    # -- reports ------------------------------------------------------------------------------------------

    def status(self) -> VideoStatus:
        render_fps, _ = self._render_meter.rate()
        mjpeg_fps, mjpeg_bytes = self._mjpeg_meter.rate()
        outputs = [output.status() for _, output in self.pushes.values()]
        if self.segments is not None and self.segment_files is not None:
            outputs.append(self.segments.status(viewers=self.segment_files.viewers()))
        outputs.append(
            OutputStatus(
                id="mjpeg",
                kind="mjpeg",
                target=MJPEG_PATH,
                state="running" if self.mjpeg_viewers else "idle",
                fps=round(mjpeg_fps, 2) if self.mjpeg_viewers else None,
                bitrate_kbps=round(mjpeg_bytes * 8 / 1000, 1) if self.mjpeg_viewers else None,
                restarts=0,
                last_error=None,
                last_error_at=None,
                dropped_frames=self.mjpeg_dropped,
                viewers=self.mjpeg_viewers,
            )
        )
        if self.webrtc is not None:
            peers = self.webrtc.count
            outputs.append(
                OutputStatus(
                    id="webrtc",
                    kind="webrtc",
                    target=WEBRTC_PATH,
                    state="running" if peers else "idle",
                    fps=round(render_fps, 2) if peers else None,
                    bitrate_kbps=None,
                    restarts=0,
                    last_error=None,
                    last_error_at=None,
                    dropped_frames=0,
                    viewers=peers,
                )
            )
        return VideoStatus(
            width=self.settings.width,
            height=self.settings.height,
            fps=self.settings.fps,
            render=RenderStatus(
                active=self.rendering,
                fps=round(render_fps, 2),
                frames=self.frames,
                missed_ticks=self.missed_ticks,
                render_ms=round(statistics.median(self._render_times) * 1000, 2)
                if self._render_times
                else None,
            ),
            outputs=outputs,
        )

    def stats(self) -> SinkStats:
        failing = [o for o in self._encoded_outputs() if o.wanted and o.state == "restarting"]
        encoded = self._encoded_outputs()
        return SinkStats(
            connected=not failing,
            dropped=self.missed_ticks + self.mjpeg_dropped + sum(o.status().dropped_frames for o in encoded),
            delivered=self.frames,
            last_error=failing[0].last_error if failing else None,
            details={
                "rendering": self.rendering,
                "snapshots": self.snapshots,
                "snapshot_cpu_ms": round(statistics.median(self._snapshot_cpu) * 1000, 2)
                if self._snapshot_cpu
                else None,
                "viewers": {
                    "mjpeg": self.mjpeg_viewers,
                    "segments": self.segment_files.viewers() if self.segment_files else 0,
                    "webrtc": self.webrtc.count if self.webrtc else 0,
                },
                "outputs": {o.id: o.state for o in encoded},
                "restarts": {o.id: o.restarts for o in encoded},
            },
        )
