"""Link health: router.connected on a link's first frame, router.disconnected within 5 s of its silence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from appliance.app import build_app
from appliance.contracts import SourceKind
from appliance.contracts.events import Event, EventType
from appliance.csi.frame import CsiFrame
from appliance.csi.simulator import Impairments, RoomSimulator, Scenario, default_room
from appliance.hub import Hub
from appliance.pipeline import Pipeline, stop_task
from appliance.pose.motion import MotionSettings, RoomMotion
from tests.app_support import wait_for_health
from tests.auth_support import config_in, onboard


class GoesSilentSource:
    """Simulated nodes that send for ``send_s`` seconds and then fall silent (a router losing power)."""

    def __init__(self, send_s: float) -> None:
        room = default_room()
        self._simulator = RoomSimulator(room, Scenario(room), seed=3, impairments=Impairments.none())
        self._send_s = send_s
        self.last_frame_at = 0.0

    @property
    def name(self) -> str:
        return "flaky"

    @property
    def kind(self) -> SourceKind:
        return "esp32"

    async def frames(self) -> AsyncIterator[CsiFrame]:
        chunk = self._simulator.advance(self._send_s)
        started = time.time()
        for frame in chunk.frames:
            await asyncio.sleep(max(0.0, started + frame.host_ts - time.time()))
            self.last_frame_at = time.time()
            yield frame
        await asyncio.Event().wait()


async def test_router_events_follow_link_state() -> None:
    hub = Hub()
    events = hub.subscribe("test", ("event/#",), maxsize=1000)
    source = GoesSilentSource(send_s=1.0)
    pipeline = Pipeline([source], RoomMotion(MotionSettings()), hub, rate_hz=10, link_timeout_s=3.0)
    task = asyncio.create_task(pipeline.run())
    seen: dict[tuple[EventType, str], float] = {}
    try:
        deadline = time.time() + 10
        while time.time() < deadline and len(seen) < 12:
            item = (await asyncio.wait_for(events.get(), timeout=deadline - time.time())).item
            assert isinstance(item, Event)
            if item.type in (EventType.ROUTER_CONNECTED, EventType.ROUTER_DISCONNECTED):
                key = (item.type, item.data["link"])
                assert key not in seen, f"{key} fired twice"
                seen[key] = time.time()
    finally:
        await stop_task(task)
    links = [f"ap-rx{i}" for i in range(1, 7)]
    assert {link for (kind, link) in seen if kind is EventType.ROUTER_CONNECTED} == set(links)
    for link in links:
        silent_for = seen[(EventType.ROUTER_DISCONNECTED, link)] - source.last_frame_at
        assert silent_for <= 5.0, f"{link}: disconnected reported {silent_for:.1f} s after its last frame"
    assert all(not c.connected for c in pipeline.links.values())


async def test_routers_endpoint_reports_each_link(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(build_app(config_in(tmp_path)))
    headers = await onboard(client)
    await wait_for_health(client)
    await asyncio.sleep(1.0)
    response = await client.get("/api/v1/system/routers", headers=headers)
    assert response.status == 200
    body = await response.json()
    assert body["link_timeout_s"] == 3.0
    routers = body["routers"]
    assert [r["link"] for r in routers] == [f"ap-rx{i}" for i in range(1, 7)]
    for router in routers:
        assert router["connected"] is True
        assert router["wire_format"] == "simulated"
        assert router["csi_shape"] == [1, 1, 62]
        assert router["samples"] > 0
        assert 0 <= router["loss_ratio"] < 0.2
