"""The controls through REST on the real application: detection on/off, sensitivity and profile (applied to
the running detector, announced, kept across a restart), recalibration, and restart refused in-process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.api.keys import HUB, PIPELINE
from appliance.contracts import ControlState, PoseFrame
from tests.app_support import Client, scoped, start, wait_for_health

CONTROLS = "/api/v1/system/controls"


async def latest_frame_id(client: Client) -> int:
    message = client.app[HUB].latest("pose")
    assert message is not None and isinstance(message.item, PoseFrame)
    return message.item.frame_id


async def test_sensitivity_and_profile_reach_the_detector_and_survive_a_restart(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "system:read")
    state = await (await client.get(CONTROLS, headers=reader)).json()
    assert (state["detection_enabled"], state["sensitivity"], state["profile"]) == (True, 50.0, "balanced")
    assert (await client.put(CONTROLS, json={"sensitivity": 75}, headers=reader)).status == 403
    changed = await client.put(CONTROLS, json={"sensitivity": 75, "profile": "steady"}, headers=admin)
    assert changed.status == 200 and (await changed.json())["sensitivity"] == 75
    settings = client.app[PIPELINE].detector.settings
    # The shipped threshold_factor is 12; sensitivity 75 halves it; steady doubles window and hold.
    assert settings.threshold_factor == pytest.approx(6.0)
    assert (settings.window_s, settings.presence_hold_s) == (2.0, 60.0)
    announced = client.app[HUB].latest("controls")
    assert announced is not None and isinstance(announced.item, ControlState)
    assert announced.item.profile == "steady"
    await client.close()

    again, admin = await start(aiohttp_client, tmp_path, silent=True, onboarded=True)
    state = await (await again.get(CONTROLS, headers=admin)).json()
    assert (state["sensitivity"], state["profile"]) == (75.0, "steady")
    assert again.app[PIPELINE].detector.settings.threshold_factor == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"sensitivity": 150}, "sensitivity"), ({"profile": "loud"}, "profile"), ({"colour": "red"}, "colour")],
)
async def test_bad_changes_are_refused_precisely(
    aiohttp_client: Any, tmp_path: Path, body: dict[str, Any], field: str
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    response = await client.put(CONTROLS, json=body, headers=admin)
    assert response.status == 400
    assert [d["field"] for d in (await response.json())["error"]["details"]] == [field]


async def test_detection_off_stops_readings_and_health_says_why(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path)
    await wait_for_health(client)
    await client.put(CONTROLS, json={"detection_enabled": False}, headers=admin)
    stopped_at = await latest_frame_id(client)
    await asyncio.sleep(0.5)
    assert await latest_frame_id(client) == stopped_at
    health = await (await client.get("/api/v1/system/health")).json()
    assert health["components"]["pipeline"] == {
        "status": "ok",
        "detail": "detection switched off: no readings",
    }
    await client.put(CONTROLS, json={"detection_enabled": True}, headers=admin)
    deadline = time.monotonic() + 5
    while await latest_frame_id(client) == stopped_at:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_recalibration_runs_and_is_announced_until_done(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, **{"detector.calibration_s": 1.0})
    await wait_for_health(client)
    deadline = time.monotonic() + 10
    # First the start-up calibration ends, so that the answer below cannot be a leftover of it.
    while (state := await (await client.get(CONTROLS, headers=admin)).json())["calibrated_links"] < 6:
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    controls = client.app[HUB].subscribe("test", ("controls",), maxsize=None)
    response = await client.post("/api/v1/system/calibrate", headers=admin)
    assert response.status == 202
    # The answer already says it runs: every link starts learning again (not "6 of 6" until the next packet).
    answer = await response.json()
    assert (answer["calibrating"], answer["calibrated_links"], answer["links"]) == (True, 0, 6)
    deadline = time.monotonic() + 10
    while True:
        states = [m.item for m in controls.drain() if isinstance(m.item, ControlState)]
        if states and not states[-1].calibrating:
            break
        assert time.monotonic() < deadline, "the calibration never ended"
        await asyncio.sleep(0.1)
    assert states[-1].calibrated_links == states[-1].links == 6


async def test_restart_is_refused_when_not_running_as_the_service(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    response = await client.post("/api/v1/system/restart", headers=admin)
    assert response.status == 409 and (await response.json())["error"]["code"] == "cannot_restart"
