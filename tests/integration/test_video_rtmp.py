"""The overlay pushed over RTMP to a real server (Debian's nginx with libnginx-mod-rtmp on loopback) and
read back with ffprobe and ffmpeg: codec, size and rate; skeleton pixels where the PoseFrame put them;
recovery when the server or ffmpeg dies; frames dropped, not queued, when ffmpeg stops taking them;
pushes started and stopped through the API; and the stream key never shown."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.api.keys import HUB
from appliance.contracts import Event
from appliance.hub import Hub
from appliance.integrations.runner import SinkRunner
from appliance.integrations.video.render import RoomPlan
from appliance.integrations.video.settings import VideoSettings
from appliance.integrations.video.sink import VideoSink
from tests.app_support import scoped, start
from tests.conftest import pick_free_port
from tests.video_support import (
    RTMP_MODULE,
    STANDING,
    Publisher,
    RtmpServer,
    ffmpeg_children,
    grab_frame,
    output,
    person_at,
    probe,
    process_exists,
    require,
    saturation,
    stream_status,
    until,
    video_sink,
)

pytestmark = pytest.mark.slow
WIDTH, HEIGHT, FPS = 320, 180, 10
KEY = "s3cr3t-K3Y-x9"
# Small frames and a keyframe every second, so a reader joining mid-stream decodes within a second.
VIDEO = {"video.width": WIDTH, "video.height": HEIGHT, "video.fps": FPS, "video.keyframe_interval_s": 1.0}
EXPECTED_PROBE = f"h264,{WIDTH},{HEIGHT},{FPS}/1"
# A figure standing left of centre (so that a mirrored or shifted drawing would miss it), its body joints
# (shoulders to ankles: the face's joints are closer together than a dot), and where a figure mirrored
# left to right would be: nothing must be drawn there.
FIGURE = tuple((x - 0.2, y) for x, y in STANDING)
BODY = FIGURE[5:]
MIRRORED = tuple((1 - x, y) for x, y in BODY)


@pytest.fixture
def rtmp_server(tmp_path: Path) -> Iterator[RtmpServer]:
    require("nginx", "ffmpeg", "ffprobe")
    if not RTMP_MODULE.exists():
        pytest.skip("libnginx-mod-rtmp is not installed; `make test` installs it")
    directory = tmp_path / "nginx"
    directory.mkdir()
    server = RtmpServer(directory)
    server.start()
    yield server
    server.stop()


async def test_push_reads_back_as_h264_with_the_skeleton_where_the_pose_put_it(
    rtmp_server: RtmpServer, aiohttp_client: Any, tmp_path: Path
) -> None:
    url = rtmp_server.url(KEY)
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **VIDEO, **{"video.rtmp_urls": [url]})
    async with Publisher(client, (person_at(1, FIGURE),)) as publisher:
        await until(lambda: _probed(url), 15, f"ffprobe reads {EXPECTED_PROBE}")
        with_person = await grab_frame(url, WIDTH, HEIGHT)
        publisher.persons = ()
        await until(lambda: _joint_gone(url), 10, "the skeleton leaves the stream")
        without = await grab_frame(url, WIDTH, HEIGHT)
    assert all(saturation(with_person, x, y) > 60 for x, y in BODY), [
        round(saturation(with_person, x, y)) for x, y in BODY
    ]
    assert all(saturation(without, x, y) < 20 for x, y in BODY)
    assert all(saturation(with_person, x, y) < 20 for x, y in MIRRORED)
    body = await stream_status(client, admin)
    push = output(body, "rtmp-1")
    assert push["state"] == "running" and push["fps"] > 0 and push["bitrate_kbps"] > 0
    assert push["target"] == f"rtmp://127.0.0.1:{rtmp_server.port}/live/***"


async def test_a_restarted_server_and_a_killed_ffmpeg_are_recovered_without_showing_the_key(
    rtmp_server: RtmpServer, aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = rtmp_server.url(KEY)
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **VIDEO, **{"video.rtmp_urls": [url]})
    alerts = client.app[HUB].subscribe("test-alerts", ["alert/#"], maxsize=None)
    async with Publisher(client):
        await until(lambda: _probed(url), 15, "the push is readable")

        rtmp_server.stop()
        await until(
            lambda: _push(client, admin, lambda p: p["restarts"] >= 1 and p["state"] != "running"),
            10, "the push's failure is reported",
        )  # fmt: skip
        rtmp_server.start()
        resumed_s = await until(lambda: _probed(url), 10, "the stream resumes")

        (first,) = ffmpeg_children(os.getpid())
        restarts = output(await stream_status(client, admin), "rtmp-1")["restarts"]
        os.kill(first, signal.SIGKILL)
        await until(
            lambda: _push(client, admin, lambda p: p["restarts"] > restarts and p["state"] == "running"),
            15, "the killed ffmpeg is replaced",
        )  # fmt: skip
        assert ffmpeg_children(os.getpid()) != [first]
        assert not process_exists(first), "the killed ffmpeg was reaped"
        await until(lambda: _probed(url), 10, "the stream resumes after the kill")
        body = await stream_status(client, admin)

    print(f"stream readable again {resumed_s:.1f} s after the RTMP server came back")
    events = [m.item for m in alerts.drain() if isinstance(m.item, Event)]
    push = output(body, "rtmp-1")
    assert push["last_error"], push
    assert any(e.data.get("component") == "sink:video:rtmp-1" for e in events), events
    shown = json.dumps(body) + json.dumps([e.to_dict() for e in events]) + caplog.text
    assert KEY not in shown
    assert f"127.0.0.1:{rtmp_server.port}/live/***" in shown


async def _probed(url: str) -> bool:
    return await probe(url) == EXPECTED_PROBE


async def _joint_gone(url: str) -> bool:
    return saturation(await grab_frame(url, WIDTH, HEIGHT), *BODY[6]) < 20


async def _push(client: Any, admin: dict[str, str], check: Any) -> bool:
    return bool(check(output(await stream_status(client, admin), "rtmp-1")))


async def test_frames_are_dropped_not_queued_while_ffmpeg_takes_none_and_a_stall_restarts_it(
    rtmp_server: RtmpServer, aiohttp_client: Any, tmp_path: Path
) -> None:
    url = rtmp_server.url(KEY)
    client, admin = await start(
        aiohttp_client, tmp_path, silent=True, **VIDEO,
        **{"video.rtmp_urls": [url], "video.stall_timeout_s": 3.0},
    )  # fmt: skip
    async with Publisher(client):
        await until(lambda: _push(client, admin, lambda p: p["state"] == "running"), 15, "the push runs")
        (frozen,) = ffmpeg_children(os.getpid())
        before = await stream_status(client, admin)
        dropped_before = output(before, "rtmp-1")["dropped_frames"]
        os.kill(frozen, signal.SIGSTOP)  # ffmpeg takes nothing more: the pipe fills, the writer blocks
        try:
            await until(
                lambda: _push(client, admin, lambda p: p["dropped_frames"] >= dropped_before + 2 * FPS),
                10, "frames rendered while ffmpeg is frozen are dropped",
            )  # fmt: skip
            during = await stream_status(client, admin)
            rendered = during["render"]["frames"] - before["render"]["frames"]
            dropped = output(during, "rtmp-1")["dropped_frames"] - dropped_before
            # Every frame rendered since the pipe filled was dropped; at most a few went into the pipe.
            assert dropped >= rendered - 5, (rendered, dropped)
            await until(
                lambda: _push(client, admin, lambda p: (p["last_error"] or "").startswith("stalled")),
                15, "the stall is noticed",
            )  # fmt: skip
        finally:
            if process_exists(frozen):
                os.kill(frozen, signal.SIGCONT)
        await until(lambda: _push(client, admin, lambda p: p["state"] == "running"), 15, "a new ffmpeg runs")
        assert not process_exists(frozen), "the frozen ffmpeg was killed and reaped"
        await until(lambda: _probed(url), 10, "the stream resumes")


async def test_a_push_started_again_waits_until_the_old_encoder_is_gone(
    rtmp_server: RtmpServer, aiohttp_client: Any, tmp_path: Path
) -> None:
    """nginx refuses a second publisher of a stream while the first is connected: the old ffmpeg (here
    frozen, so it holds its connection and ignores the end of its input) must be gone first."""
    url = rtmp_server.url(KEY)
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **VIDEO, **{"video.rtmp_urls": [url]})
    async with Publisher(client):
        await until(lambda: _push(client, admin, lambda p: p["state"] == "running"), 15, "the push runs")
        (frozen,) = ffmpeg_children(os.getpid())
        os.kill(frozen, signal.SIGSTOP)
        assert (await client.delete("/api/v1/stream/rtmp", headers=admin)).status == 200
        await until(lambda: _push(client, admin, lambda p: p["state"] == "idle"), 10, "the push stops")
        assert (await client.post("/api/v1/stream/rtmp", json={}, headers=admin)).status == 200
        await until(lambda: _push(client, admin, lambda p: p["state"] == "running"), 20, "it runs again")
        assert not process_exists(frozen)
        assert output(await stream_status(client, admin), "rtmp-1")["restarts"] == 0, "no refused start"
        await until(lambda: _probed(url), 10, "the stream is readable")


async def test_pushes_start_and_stop_through_the_api_with_stream_publish(
    rtmp_server: RtmpServer, aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **VIDEO)
    publisher = await scoped(client, admin, "stream:publish")
    viewer = await scoped(client, admin, "stream:subscribe", "system:read")
    url = rtmp_server.url(KEY)
    refused = await client.post("/api/v1/stream/rtmp", json={"url": url}, headers=viewer)
    assert refused.status == 403
    bad = await client.post(
        "/api/v1/stream/rtmp", json={"url": f"http://127.0.0.1/live/{KEY}"}, headers=publisher
    )
    assert bad.status == 400
    assert "rtmp://" in await bad.text() and KEY not in await bad.text()
    async with Publisher(client):
        started = await client.post("/api/v1/stream/rtmp", json={"url": url}, headers=publisher)
        assert started.status == 200, await started.text()
        text = await started.text()
        assert KEY not in text
        (push,) = json.loads(text)["pushes"]
        assert push["id"] == "rtmp-1" and push["target"].endswith("/live/***")
        await until(lambda: _probed(url), 15, "the added push is readable")

        assert (await client.delete("/api/v1/stream/rtmp?id=rtmp-7", headers=publisher)).status == 404
        stopped = await client.delete("/api/v1/stream/rtmp?id=rtmp-1", headers=publisher)
        assert stopped.status == 200
        await until(lambda: _push(client, viewer, lambda p: p["state"] == "idle"), 10, "the push stops")
        assert await probe(url) is None
        body = await stream_status(client, viewer)
        assert not body["render"]["active"], "nothing renders once no output needs frames"
        assert ffmpeg_children(os.getpid()) == []


def _missing_ffmpeg(url: str) -> dict[str, Any]:
    return {
        "video.rtmp_urls": [url],
        "video.ffmpeg": "/nonexistent/ffmpeg",
        "video.restart_first_s": 0.05,
        "video.restart_max_s": 0.2,
    }


async def test_a_missing_ffmpeg_is_reported_degrades_health_and_renders_nothing(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    url = f"rtmp://127.0.0.1:{pick_free_port()}/live/{KEY}"
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **VIDEO, **_missing_ffmpeg(url))
    await until(lambda: _push(client, admin, lambda p: p["restarts"] >= 4), 10, "restarts with backoff")
    push = output(await stream_status(client, admin), "rtmp-1")
    assert push["last_error"] == (
        "cannot start /nonexistent/ffmpeg: No such file or directory (is ffmpeg installed?)"
    )
    health = await (await client.get("/api/v1/system/health")).json()
    assert health["components"]["sink:video"]["status"] == "degraded"
    metrics = await (await client.get("/metrics", headers=admin)).text()
    assert 'invispose_video_encoder_restarts_total{output="rtmp-1"}' in metrics
    assert video_sink(client).frames == 0, "no frame is rendered for an encoder that cannot start"


async def test_a_failure_is_announced_once_however_often_it_repeats(tmp_path: Path) -> None:
    hub = Hub()
    alerts = hub.subscribe("alerts", ["alert/#"], maxsize=None)
    url = f"rtmp://127.0.0.1:{pick_free_port()}/live/{KEY}"
    overrides = {
        key.removeprefix("video."): value for key, value in {**VIDEO, **_missing_ffmpeg(url)}.items()
    }
    sink = VideoSink(hub, VideoSettings.model_validate(overrides), RoomPlan(5.0, 4.0), tmp_path / "video")
    async with SinkRunner([sink], hub):
        push = sink.pushes["rtmp-1"][1]
        await until(lambda: push.restarts >= 4, 10, "four failed starts")
    events = [m.item for m in alerts.drain() if isinstance(m.item, Event)]
    assert [e.data for e in events] == [
        {
            "component": "sink:video:rtmp-1",
            "target": f"{url.rsplit('/', 1)[0]}/***",
            "error": "cannot start /nonexistent/ffmpeg: No such file or directory (is ffmpeg installed?)",
        }
    ]
