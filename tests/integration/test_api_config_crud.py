"""Zones, nodes, alerts and templates through ``/api/v1/config``: CRUD round trips, validation errors that
name the field, changes applied to the running scene, and changes that survive a restart on the same data
directory (a zone from the YAML file deleted through the API stays deleted)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from appliance.api.keys import PIPELINE
from appliance.app import build_app
from appliance.pose.estimator import SensingEstimator
from appliance.pose.scene import Scene
from appliance.store import settings
from tests.app_support import GENEROUS_LIMITS, Client, error_fields, scoped, start
from tests.auth_support import ADMIN, bearer, config_in, onboard

KITCHEN = {"id": "kitchen", "name": "Kitchen", "polygon": [[3.0, 0.5], [4.5, 0.5], [4.5, 2.0], [3.0, 2.0]]}
ZONES = "/api/v1/config/zones"
NODES = "/api/v1/config/routers"
ALERTS = "/api/v1/config/alerts"
TEMPLATES = "/api/v1/config/templates"


async def start_with_scene(
    aiohttp_client: Any, data_dir: Path, *, restart: bool = False
) -> tuple[Client, dict[str, str], Scene]:
    """The application with its sensing path's scene to watch (the shipped model and likelihood); ``restart``:
    on a data directory already set up (log in)."""
    app = build_app(config_in(data_dir, **GENEROUS_LIMITS, **{"sensing.enabled": True}))
    estimator = app[PIPELINE].estimator
    assert estimator is not None
    client: Client = await aiohttp_client(app)
    if not restart:
        return client, await onboard(client), estimator.scene
    login = await client.post("/api/v1/auth/token", json=ADMIN)
    assert login.status == 200, await login.text()
    return client, bearer((await login.json())["access_token"]), estimator.scene


def estimator_of(client: Client) -> SensingEstimator:
    estimator = client.app[PIPELINE].estimator
    assert estimator is not None
    return estimator


async def ids(client: Client, path: str, headers: dict[str, str]) -> list[str]:
    response = await client.get(path, headers=headers)
    assert response.status == 200
    return [item["id"] for item in (await response.json())["items"]]


async def test_zone_crud_round_trip_and_errors(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    writer = await scoped(client, admin, "zone:write")
    reader = await scoped(client, admin, "system:read")
    assert await ids(client, ZONES, reader) == ["sofa", "doorway"]

    created = await client.post(ZONES, json=KITCHEN, headers=writer)
    assert created.status == 201 and created.headers["Location"] == f"{ZONES}/kitchen"
    assert (await created.json())["restricted"] is False
    assert (await (await client.get(f"{ZONES}/kitchen", headers=reader)).json())["name"] == "Kitchen"
    renamed = await client.put(f"{ZONES}/kitchen", json={**KITCHEN, "name": "Galley"}, headers=writer)
    assert renamed.status == 200 and (await renamed.json())["name"] == "Galley"
    assert await ids(client, ZONES, reader) == ["sofa", "doorway", "kitchen"]
    assert (await client.delete(f"{ZONES}/kitchen", headers=writer)).status == 204
    assert (await client.get(f"{ZONES}/kitchen", headers=reader)).status == 404
    assert (await client.delete(f"{ZONES}/kitchen", headers=writer)).status == 404
    assert (await client.put(f"{ZONES}/kitchen", json=KITCHEN, headers=writer)).status == 404

    duplicate = await client.post(ZONES, json={**KITCHEN, "id": "sofa"}, headers=writer)
    assert duplicate.status == 409 and error_fields(await duplicate.json()) == {"id"}
    outside = {**KITCHEN, "polygon": [[3.0, 0.5], [9.0, 0.5], [4.5, 2.0]]}
    response = await client.post(ZONES, json=outside, headers=writer)
    assert response.status == 400 and error_fields(await response.json()) == {"polygon.1"}
    response = await client.post(
        ZONES, json={k: v for k, v in KITCHEN.items() if k != "name"}, headers=writer
    )
    assert response.status == 400 and error_fields(await response.json()) == {"name"}
    response = await client.post(ZONES, json={**KITCHEN, "colour": "red"}, headers=writer)
    assert response.status == 400 and error_fields(await response.json()) == {"colour"}
    response = await client.put(f"{ZONES}/sofa", json=KITCHEN, headers=writer)
    assert response.status == 400 and error_fields(await response.json()) == {"id"}

    assert (await client.post(ZONES, json=KITCHEN, headers=reader)).status == 403
    assert (await client.put(ALERTS, json={"max_occupancy": 3}, headers=writer)).status == 403


async def test_nodes_are_checked_against_the_room(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    writer = await scoped(client, admin, "config:write")
    reader = await scoped(client, admin, "system:read")
    node = {"id": "rx7", "kind": "esp32", "role": "rx", "position": [2.0, 2.0, 0.5]}
    assert (await client.post(NODES, json=node, headers=writer)).status == 201
    assert (await ids(client, NODES, reader))[-1] == "rx7"
    response = await client.put(f"{NODES}/rx7", json={**node, "position": [2.0, 2.0, 9.0]}, headers=writer)
    assert response.status == 400 and error_fields(await response.json()) == {"position"}
    response = await client.put(f"{NODES}/rx7", json={**node, "role": "antenna"}, headers=writer)
    assert response.status == 400 and error_fields(await response.json()) == {"role"}
    only_transmitter = await client.delete(f"{NODES}/ap", headers=writer)
    assert only_transmitter.status == 409
    assert "tx" in (await only_transmitter.json())["error"]["message"]
    assert (await client.delete(f"{NODES}/rx7", headers=writer)).status == 204


async def test_zones_and_alerts_apply_live_and_survive_a_restart(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin, scene = await start_with_scene(aiohttp_client, tmp_path)
    assert (await client.post(ZONES, json=KITCHEN, headers=admin)).status == 201
    assert [z.id for z in scene.zones] == ["sofa", "doorway", "kitchen"]
    live = await (await client.get("/api/v1/pose/zones", headers=admin)).json()
    assert [z["id"] for z in live["zones"]] == ["sofa", "doorway", "kitchen"]

    alerts = {"max_occupancy": 2, "restricted_zone_ids": ["kitchen"]}
    response = await client.put(ALERTS, json=alerts, headers=admin)
    assert response.status == 200 and await response.json() == alerts
    assert scene.settings.max_occupancy == 2
    assert {z.id for z in scene.zones if z.restricted} == {"kitchen"}
    assert (await (await client.get(f"{ZONES}/kitchen", headers=admin)).json())["restricted"] is True
    unknown = await client.put(ALERTS, json={"restricted_zone_ids": ["sofa", "attic"]}, headers=admin)
    assert unknown.status == 400 and error_fields(await unknown.json()) == {"restricted_zone_ids.1"}

    assert (await client.delete(f"{ZONES}/doorway", headers=admin)).status == 204
    assert [z.id for z in scene.zones] == ["sofa", "kitchen"]
    node = {"id": "rx7", "kind": "esp32", "role": "rx", "position": [2.0, 2.0, 0.5]}
    assert (await client.post(NODES, json=node, headers=admin)).status == 201
    geometry = estimator_of(client).geometry
    assert "ap-rx7" in geometry.links
    await client.close()

    client, admin, scene = await start_with_scene(aiohttp_client, tmp_path, restart=True)
    assert await ids(client, ZONES, admin) == ["sofa", "kitchen"]
    assert [z.id for z in scene.zones] == ["sofa", "kitchen"]
    assert await (await client.get(ALERTS, headers=admin)).json() == alerts
    assert scene.settings.max_occupancy == 2 and [z.restricted for z in scene.zones] == [False, True]
    assert (await ids(client, NODES, admin))[-1] == "rx7"


async def test_templates_save_and_apply(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin, scene = await start_with_scene(aiohttp_client, tmp_path)
    writer = await scoped(client, admin, "zone:write", "system:read")
    template = {
        "id": "night",
        "name": "Night",
        "zones": [KITCHEN, {**KITCHEN, "id": "bed", "name": "Bed", "restricted": True}],
        "alerts": {"max_occupancy": 1, "restricted_zone_ids": ["kitchen"]},
    }
    created = await client.post(TEMPLATES, json=template, headers=writer)
    assert created.status == 201 and created.headers["Location"] == f"{TEMPLATES}/night"
    saved = await created.json()
    assert saved["alerts"]["restricted_zone_ids"] == ["kitchen", "bed"]
    assert await ids(client, TEMPLATES, writer) == ["night"]
    bad = {**template, "id": "bad", "alerts": {"restricted_zone_ids": ["attic"]}}
    response = await client.post(TEMPLATES, json=bad, headers=writer)
    assert response.status == 400 and error_fields(await response.json()) == {"alerts.restricted_zone_ids.0"}
    response = await client.put(
        f"{TEMPLATES}/night", json={**template, "zones": [KITCHEN, KITCHEN]}, headers=writer
    )
    assert response.status == 400 and error_fields(await response.json()) == {"zones.1.id"}

    applied = await client.post(f"{TEMPLATES}/night/apply", headers=writer)
    assert applied.status == 200 and [z["id"] for z in (await applied.json())["items"]] == ["kitchen", "bed"]
    assert [(z.id, z.restricted) for z in scene.zones] == [("kitchen", True), ("bed", True)]
    assert scene.settings.max_occupancy == 1
    assert (await client.post(f"{TEMPLATES}/nope/apply", headers=writer)).status == 404
    assert (await client.delete(f"{TEMPLATES}/night", headers=writer)).status == 204
    assert await ids(client, TEMPLATES, writer) == []
    await client.close()

    client, admin, scene = await start_with_scene(aiohttp_client, tmp_path, restart=True)
    assert await ids(client, ZONES, admin) == ["kitchen", "bed"]
    assert await ids(client, TEMPLATES, admin) == []


def fail_alert_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store fail while saving the alert settings, after it wrote any zones in the same call."""
    real_upsert = settings._upsert

    def upsert(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        real_upsert(connection, rows)
        if any(row[0] == "alerts" for row in rows):
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(settings, "_upsert", upsert)


async def test_a_failed_template_apply_changes_neither_zones_nor_alerts(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, admin, scene = await start_with_scene(aiohttp_client, tmp_path)
    alerts = {"max_occupancy": 4, "restricted_zone_ids": ["doorway"]}
    assert (await client.put(ALERTS, json=alerts, headers=admin)).status == 200
    template = {"id": "night", "name": "Night", "zones": [KITCHEN], "alerts": {"max_occupancy": 1}}
    assert (await client.post(TEMPLATES, json=template, headers=admin)).status == 201

    fail_alert_writes(monkeypatch)
    failed = await client.post(f"{TEMPLATES}/night/apply", headers=admin)
    assert failed.status == 500 and (await failed.json())["error"]["code"] == "internal_error"
    refused = await client.put(ALERTS, json={"max_occupancy": 9, "restricted_zone_ids": []}, headers=admin)
    assert refused.status == 500
    assert await ids(client, ZONES, admin) == ["sofa", "doorway"]
    assert await (await client.get(ALERTS, headers=admin)).json() == alerts
    assert [(z.id, z.restricted) for z in scene.zones] == [("sofa", False), ("doorway", True)]
    assert scene.settings.max_occupancy == 4
    await client.close()

    # What was saved is what was in force: no zone of the template, no zone flag of the refused alerts.
    monkeypatch.undo()
    client, admin, scene = await start_with_scene(aiohttp_client, tmp_path, restart=True)
    assert await ids(client, ZONES, admin) == ["sofa", "doorway"]
    assert await (await client.get(ALERTS, headers=admin)).json() == alerts
    applied = await client.post(f"{TEMPLATES}/night/apply", headers=admin)
    assert applied.status == 200 and [z["id"] for z in (await applied.json())["items"]] == ["kitchen"]
    assert await (await client.get(ALERTS, headers=admin)).json() == {
        "max_occupancy": 1,
        "restricted_zone_ids": [],
    }


async def test_moving_a_node_moves_it_in_the_model_geometry(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin, _ = await start_with_scene(aiohttp_client, tmp_path)
    moved = {"id": "rx1", "kind": "esp32", "role": "rx", "position": [0.05, 2.0, 1.0]}
    response = await client.put(f"{NODES}/rx1", json=moved, headers=admin)
    assert response.status == 200, await response.text()
    geometry = estimator_of(client).geometry
    assert geometry.links["ap-rx1"].rx == (0.05, 2.0, 1.0)
