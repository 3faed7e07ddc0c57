"""The overlay video served by the app: MJPEG and the snapshot decoded with OpenCV, HLS and DASH read back
with ffprobe through the app (the token in the URL, as Safari or Home Assistant pass it), segments pruned,
and rendering and encoding that run only while somebody watches."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.app import VIDEO_DIR
from tests.app_support import Client, scoped, start
from tests.video_support import (
    STANDING,
    Image,
    Publisher,
    ffmpeg_children,
    output,
    person_at,
    probe,
    require,
    saturation,
    stream_status,
    until,
)

pytestmark = pytest.mark.slow
WIDTH, HEIGHT, FPS = 320, 180, 10
VIDEO = {"video.width": WIDTH, "video.height": HEIGHT, "video.fps": FPS}
BODY_JOINTS = STANDING[5:]


def decode(jpeg: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG OpenCV can decode"
    return np.asarray(image, dtype=np.uint8)


async def read_part(stream: Any) -> bytes:
    """One part of a multipart/x-mixed-replace body: boundary, headers, then Content-Length bytes."""
    assert (await stream.readline()).strip() == b"--frame"
    headers = {}
    while (line := (await stream.readline()).strip()) != b"":
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    jpeg: bytes = await stream.readexactly(int(headers["content-length"]))
    assert await stream.readexactly(2) == b"\r\n"
    return jpeg


async def test_snapshot_and_mjpeg_decode_and_nothing_renders_once_the_viewer_leaves(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(
        aiohttp_client, tmp_path, silent=True, **VIDEO, **{"video.max_mjpeg_viewers": 1}
    )
    viewer = await scoped(client, admin, "stream:subscribe", "pose:read", "system:read")
    token = viewer["Authorization"].removeprefix("Bearer ")
    async with Publisher(client, (person_at(1),)):
        assert not (await stream_status(client, viewer))["render"]["active"], "nobody watches yet"
        # Home Assistant's camera and <img> pass the token in the URL.
        snapshot = await client.get(f"/api/v1/pose/snapshot.jpg?access_token={token}")
        assert snapshot.status == 200 and snapshot.content_type == "image/jpeg"
        image = decode(await snapshot.read())
        assert image.shape == (HEIGHT, WIDTH, 3)
        assert all(saturation(image, x, y) > 60 for x, y in BODY_JOINTS)
        assert not (await stream_status(client, viewer))["render"]["active"], "a snapshot starts no loop"

        async with client.get("/api/v1/stream/mjpeg", headers=viewer) as mjpeg:
            assert mjpeg.status == 200
            assert mjpeg.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
            frames = [decode(await read_part(mjpeg.content)) for _ in range(3)]
            assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
            assert all(saturation(frames[-1], x, y) > 60 for x, y in BODY_JOINTS)
            body = await stream_status(client, viewer)
            assert body["render"]["active"] and output(body, "mjpeg")["viewers"] == 1
            second = await client.get("/api/v1/stream/mjpeg", headers=viewer)
            assert second.status == 503 and "Retry-After" in second.headers
            assert ffmpeg_children(os.getpid()) == [], "MJPEG needs no ffmpeg"
        await until(lambda: _idle(client, viewer), 5, "rendering stops when the MJPEG viewer leaves")
        health = await (await client.get("/api/v1/system/health")).json()
        assert health["components"]["sink:video"]["status"] == "ok"


async def _idle(client: Client, headers: dict[str, str]) -> bool:
    body = await stream_status(client, headers)
    return not body["render"]["active"] and all(o["state"] == "idle" for o in body["outputs"])


async def test_hls_and_dash_play_through_the_app_are_pruned_and_stop_when_nobody_watches(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    require("ffmpeg", "ffprobe")
    client, admin = await start(
        aiohttp_client, tmp_path, silent=True, **VIDEO,
        **{"video.keyframe_interval_s": 0.5, "video.playlist_segments": 2, "video.viewer_timeout_s": 2.0},
    )  # fmt: skip
    viewer = await scoped(client, admin, "stream:subscribe", "system:read")
    token = viewer["Authorization"].removeprefix("Bearer ")
    segments = tmp_path / VIDEO_DIR
    async with Publisher(client, (person_at(1),)):
        master = await client.get("/api/v1/stream/hls/index.m3u8", headers=viewer)
        assert master.status == 200, await master.text()
        assert master.content_type == "application/vnd.apple.mpegurl"
        text = await master.text()
        assert text.startswith("#EXTM3U") and "media_0.m3u8" in text and "access_token" not in text

        expected = f"h264,{WIDTH},{HEIGHT},{FPS}/1"
        hls = str(client.make_url(f"/api/v1/stream/hls/index.m3u8?access_token={token}"))
        dash = str(client.make_url(f"/api/v1/stream/dash/manifest.mpd?access_token={token}"))
        assert await probe(hls) == expected
        assert await probe(dash) == expected

        async def pruned() -> bool:
            media = await client.get("/api/v1/stream/hls/media_0.m3u8", headers=viewer)
            sequence = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", await media.text())
            return sequence is not None and int(sequence.group(1)) >= 5

        await until(pruned, 15, "the playlist moves past its first segments")
        first = await client.get("/api/v1/stream/dash/chunk-0-00001.m4s", headers=viewer)
        assert first.status == 404, "a segment that left the playlists is deleted"
        on_disk = [p.name for p in segments.iterdir() if p.suffix == ".m4s" and p.name.startswith("chunk")]
        assert len(on_disk) <= 2 + 2, on_disk  # listed, plus ffmpeg's two kept past the window
        unauthenticated = await client.get("/api/v1/stream/hls/media_0.m3u8")
        assert unauthenticated.status == 401

        body = await stream_status(client, viewer)
        assert output(body, "segments")["state"] == "running" and output(body, "segments")["viewers"] >= 1
        await until(lambda: _idle(client, viewer), 10, "encoding stops once no viewer asks for anything")
        assert ffmpeg_children(os.getpid()) == []
        assert not [p for p in segments.iterdir() if p.suffix == ".m4s"], "segments removed with the encoder"


async def test_a_viewer_waiting_for_the_first_segment_is_still_watching(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """The first segment takes a keyframe interval (3 s here) to appear, longer than a silent viewer is
    kept (2 s): the viewer waiting for it must not be taken for gone, or the encoder would stop."""
    require("ffmpeg")
    client, admin = await start(
        aiohttp_client, tmp_path, silent=True, **VIDEO,
        **{"video.keyframe_interval_s": 3.0, "video.viewer_timeout_s": 2.0},
    )  # fmt: skip
    async with Publisher(client):
        master = await client.get("/api/v1/stream/hls/index.m3u8", headers=admin)
        assert master.status == 200, await master.text()


async def test_a_disabled_video_answers_404_everywhere(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **{"video.enabled": False})
    for path in (
        "/api/v1/stream/status",
        "/api/v1/stream/mjpeg",
        "/api/v1/pose/snapshot.jpg",
        "/api/v1/stream/hls/index.m3u8",
        "/api/v1/stream/dash/manifest.mpd",
    ):
        response = await client.get(path, headers=admin)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "video_disabled"
