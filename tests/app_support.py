"""Helpers shared by the tests that run the whole application in process (aiohttp's test client)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from appliance.api.keys import HUB
from appliance.api.resource_keys import RESOURCES
from appliance.app import build_app
from appliance.contracts import PoseFrame
from appliance.integrations.history import HistoryRecorder
from tests.auth_support import ADMIN, bearer, config_in, onboard
from tests.factories import Person, frame_at
from tests.history_support import recorded

Client = TestClient[Any, Any]
GENEROUS_LIMITS: dict[str, Any] = {
    "auth.rate_limits.anonymous": {"per_minute": 100_000, "burst": 10_000},
    "auth.rate_limits.authenticated": {"per_minute": 100_000, "burst": 10_000},
    "history.flush_interval_s": 0.05,
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def scoped(client: Client, admin: dict[str, str], *scopes: str) -> dict[str, str]:
    """The Authorization header of a new API token holding exactly ``scopes``."""
    response = await client.post(
        "/api/v1/auth/tokens", json={"name": "t", "scopes": list(scopes)}, headers=admin
    )
    assert response.status == 201, await response.text()
    return bearer((await response.json())["token"])


async def start(
    aiohttp_client: Any, data_dir: Path, *, silent: bool = False, onboarded: bool = False, **overrides: Any
) -> tuple[Client, dict[str, str]]:
    """The application on ``data_dir``, and an admin's Authorization header. ``silent``: its only source is
    pyserial's loopback port, which nobody writes to, so the pipeline never publishes and a test controls
    every frame. ``onboarded``: the data directory has its admin already (a restart); log in instead."""
    if silent:
        overrides["sources"] = [{"type": "esp32_serial", "url": "loop://"}]
    client: Client = await aiohttp_client(build_app(config_in(data_dir, **GENEROUS_LIMITS, **overrides)))
    if not onboarded:
        return client, await onboard(client)
    login = await client.post("/api/v1/auth/token", json=ADMIN)
    assert login.status == 200, await login.text()
    return client, bearer((await login.json())["access_token"])


async def first_frame(client: Client, timeout_s: float = 10.0) -> PoseFrame:
    hub = client.app[HUB]
    deadline = time.monotonic() + timeout_s
    while True:
        message = hub.latest("pose")
        if message is not None:
            assert isinstance(message.item, PoseFrame)
            return message.item
        assert time.monotonic() < deadline, "no PoseFrame published"
        await asyncio.sleep(0.05)


async def record_visit(client: Client, t0: float, people: Sequence[Person], seconds: int = 20) -> None:
    """Publish a visit on the hub (as the model would) and wait until the history has written it."""
    hub = client.app[HUB]
    for i in range(seconds * 2):
        hub.publish(frame_at(t0 + i * 0.5, list(people), frame_id=10_000 + i))
        await asyncio.sleep(0)
    hub.publish(frame_at(t0 + seconds, [], frame_id=20_000))
    await recorded(history_recorder(client))


def history_recorder(client: Client) -> HistoryRecorder:
    sinks = client.app[RESOURCES].sinks
    recorder = sinks.sink("history") if sinks is not None else None
    assert isinstance(recorder, HistoryRecorder), "the history sink is not running"
    return recorder


def error_fields(body: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in body["error"]["details"]}


async def wait_for_health(client: TestClient[Any, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await client.get("/api/v1/system/health")
        body: dict[str, Any] = await response.json()
        if response.status == 200:
            return body
        assert response.status == 503
        assert body["status"] in {"starting", "unhealthy"}
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)
