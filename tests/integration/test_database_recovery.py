"""A damaged or failing database on the real application and service: it keeps sensing, says so in health
until an admin acknowledges, and a file it cannot open at all stops it with one line that says why."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from appliance.api.onboarding import read_setup_code
from appliance.app import build_app
from appliance.store.database import DATABASE_FILE
from tests.app_support import GENEROUS_LIMITS, wait_for_health
from tests.auth_support import ADMIN, bearer, config_in, onboard
from tests.conftest import DEFAULT_CONFIG, REPO, pick_free_port
from tests.service_support import get_json, start_service

Client = TestClient[Any, Any]


async def _health(client: Client) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/v1/system/health")
    body: dict[str, Any] = await response.json()
    return response.status, body


def _overwrite_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(b"\x00" * 100)


async def test_a_damaged_database_is_set_aside_and_health_is_degraded_until_acknowledged(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    first: Client = await aiohttp_client(build_app(config_in(tmp_path, **GENEROUS_LIMITS)))
    await onboard(first)
    await first.close()
    _overwrite_header(tmp_path / DATABASE_FILE)

    client: Client = await aiohttp_client(build_app(config_in(tmp_path, **GENEROUS_LIMITS)))
    await wait_for_health(client)  # 200: sensing goes on
    status, health = await _health(client)
    assert (status, health["status"]) == (200, "degraded")
    assert health["components"]["database"]["status"] == "degraded"
    assert "moved aside" in health["components"]["database"]["detail"]
    assert str(tmp_path) not in str(health)  # health is public: no paths

    # The fresh database has no users, and this box was set up before: the first admin needs the code.
    code = read_setup_code(tmp_path)
    assert code is not None
    created = await client.post("/api/v1/auth/setup", json={**ADMIN, "setup_code": code})
    admin = bearer((await created.json())["access_token"])
    state = await (await client.get("/api/v1/system/database", headers=admin)).json()
    [recovery] = state["recoveries"]
    kept = await asyncio.to_thread(Path(recovery["moved_to"]).read_bytes)
    assert kept[:100] == b"\x00" * 100  # the damaged file, as found
    assert "not a database" in recovery["problem"]

    viewer = {"username": "viewer", "password": "viewer-password"}
    await client.post("/api/v1/auth/users", json=viewer, headers=admin)
    login = await (await client.post("/api/v1/auth/token", json=viewer)).json()
    refused = await client.post("/api/v1/system/database/acknowledge", headers=bearer(login["access_token"]))
    assert refused.status == 403  # only an admin acknowledges
    acknowledged = await client.post("/api/v1/system/database/acknowledge", headers=admin)
    assert (await acknowledged.json())["status"] == "ok"
    status, health = await _health(client)
    assert (status, health["status"], health["components"]["database"]["status"]) == (200, "healthy", "ok")


async def test_history_errors_degrade_health_instead_of_hiding(aiohttp_client: Any, tmp_path: Path) -> None:
    client: Client = await aiohttp_client(build_app(config_in(tmp_path, **GENEROUS_LIMITS)))
    admin = await onboard(client)
    await wait_for_health(client)
    with sqlite3.connect(tmp_path / DATABASE_FILE) as other:  # the history's table goes under it
        other.execute("DROP TABLE history_pose")
    response = await client.get("/api/v1/pose/history", headers=admin)
    assert response.status == 500
    status, health = await _health(client)
    assert (status, health["status"]) == (200, "degraded")
    assert "database errors" in health["components"]["database"]["detail"]
    state = await (await client.get("/api/v1/system/database", headers=admin)).json()
    assert state["errors"] >= 1 and "no such table" in state["last_error"]


def test_the_service_starts_on_a_damaged_database(tmp_path: Path) -> None:
    """As a user runs it: no traceback and no crash loop; the log names the file kept and what to do."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "jwt_secret").write_bytes(os.urandom(64))
    (data / "jwt_secret").chmod(0o600)
    (data / DATABASE_FILE).write_bytes(b"this was a database once" * 100)
    service = start_service(tmp_path)
    try:
        service.wait_healthy(timeout_s=60)
        status, health = get_json(f"{service.base}/api/v1/system/health")
        assert (status, health["status"]) == (200, "degraded")
    finally:
        _, log = service.stop()
    assert "Traceback" not in log
    assert "the database file is damaged" in log and "moved_to=" in log
    assert log.index("moved_to=") < log.index("listening")
    assert "HAS NO USER ACCOUNTS" in log


def test_a_database_that_cannot_be_opened_stops_the_service_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / DATABASE_FILE).mkdir(parents=True)
    command = ["run", "--config", str(DEFAULT_CONFIG), "--data-dir", str(data), "--host", "127.0.0.1"]
    result = subprocess.run(
        [sys.executable, "-m", "appliance", *command, "--port", str(pick_free_port())],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"invispose: cannot open the database {data / DATABASE_FILE}" in result.stderr
    assert "listening" not in result.stderr
