"""Health and status served in-process by the real application on the simulated room."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from appliance.app import build_app
from appliance.store import history
from tests.app_support import Client, start, wait_for_health
from tests.auth_support import config_in, onboard


async def test_health_turns_healthy_and_lists_components(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(build_app(config_in(tmp_path)))
    body = await wait_for_health(client)
    assert body["status"] == "healthy"
    assert set(body["components"]) == {
        "source:simulated-room",
        "pipeline",
        "database",
        "sink:history",
        "sink:webhooks",
        "sink:reports",
        "sink:websocket",
        "sink:mdns",
    }
    assert body["components"]["database"] == {"status": "ok", "detail": "no errors"}


async def test_status_reports_links_latency_and_simulation(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(build_app(config_in(tmp_path)))
    headers = await onboard(client)
    await wait_for_health(client)
    await asyncio.sleep(1.0)
    response = await client.get("/api/v1/system/status", headers=headers)
    status = await response.json()
    assert status["simulated"] is True
    rates = [link["packets_per_s"] for link in status["links"]]
    assert len(rates) == 6 and all(50 <= r <= 130 for r in rates), rates
    assert status["latency_ms"]["p50"] is not None
    assert status["frames_published"] >= 5


async def test_unknown_api_route_uses_the_error_shape(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(build_app(config_in(tmp_path)))
    response = await client.get("/api/v1/nope")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "not_found"
    assert set(body["error"]) == {"code", "message", "details"}


async def test_public_health_does_not_disclose_why_a_source_failed(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """Health is anonymous: it says a source is down, while the reason (here a file path) needs a token."""
    empty = tmp_path / "secret-name" / "empty.ipr"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    config = config_in(tmp_path, sources=[{"type": "replay", "path": str(empty)}])
    client = await aiohttp_client(build_app(config))
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        response = await client.get("/api/v1/system/health")
        body = await response.json()
        component = next(c for name, c in body["components"].items() if name.startswith("source:"))
        if component["status"] == "down" or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    assert response.status == 503
    assert component == {"status": "down", "detail": "source failed; see /api/v1/system/status"}
    assert "secret-name" not in await response.text()
    status = await (await client.get("/api/v1/system/status", headers=await onboard(client))).json()
    assert "secret-name" in status["sources"][0]["error"]


async def test_a_failing_sink_degrades_health_without_failing_it(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History writes fail (a full or broken disk): sensing goes on, health says degraded with 200, and
    performance names the error; once writes succeed again the sink is ok, and once an admin has
    acknowledged the database's errors, health is healthy."""
    failing = True

    def write_batch(connection: sqlite3.Connection, batch: history.HistoryBatch) -> None:
        if failing:
            raise sqlite3.OperationalError("database or disk is full")
        real_write(connection, batch)

    real_write = history._write_batch
    monkeypatch.setattr(history, "_write_batch", write_batch)
    client, admin = await start(aiohttp_client, tmp_path)
    response, body = await health_becomes(client, "degraded")
    assert response.status == 200
    assert body["components"]["sink:history"]["status"] == "degraded"
    assert body["components"]["pipeline"]["status"] == "ok"
    performance = await (await client.get("/api/v1/system/performance", headers=admin)).json()
    (sink,) = [s for s in performance["sinks"] if s["name"] == "history"]
    assert "disk is full" in sink["last_error"] and sink["connected"] is False
    failing = False
    # The sink recovers by itself; the database's errors stay on record until an admin acknowledges them.
    deadline = asyncio.get_running_loop().time() + 10
    while (await (await client.get("/api/v1/system/health")).json())["components"]["sink:history"][
        "status"
    ] != "ok":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    _, body = await health_becomes(client, "degraded")
    assert body["components"]["database"]["status"] == "degraded"
    assert (await client.post("/api/v1/system/database/acknowledge", headers=admin)).status == 200
    _, body = await health_becomes(client, "healthy")
    assert body["components"]["sink:history"]["status"] == "ok"


async def health_becomes(client: Client, status: str) -> tuple[ClientResponse, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        response = await client.get("/api/v1/system/health")
        body: dict[str, Any] = await response.json()
        if body["status"] == status:
            return response, body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)
