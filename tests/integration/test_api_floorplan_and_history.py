"""The read-only routes the web UI draws from: the room, the simulation's ground truth with positions,
stored events and occupancy over time. Expected values come from the shipped config file and from the
visits the tests record, never from the code under test."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from appliance.api.keys import HUB, PIPELINE
from appliance.contracts import EventType
from appliance.csi.simulator import PersonTruth, SceneTruth
from tests.app_support import error_fields, history_recorder, record_visit, scoped, start
from tests.conftest import DEFAULT_CONFIG
from tests.factories import event, frame_at


async def test_room_is_the_configured_floor_plan_and_follows_node_changes(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    shipped = yaml.safe_load(DEFAULT_CONFIG.read_text())
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "system:read")
    room = await (await client.get("/api/v1/system/room", headers=reader)).json()

    expected_room = shipped["room"]
    assert (room["name"], room["width_m"], room["depth_m"]) == (
        expected_room["name"],
        expected_room["width_m"],
        expected_room["depth_m"],
    )
    assert [[d["x"], d["y"]] for d in room["doors"]] == expected_room["doors"]
    assert [(n["id"], n["role"]) for n in room["nodes"]] == [
        (n["id"], n["role"]) for n in expected_room["nodes"]
    ]
    receivers = [n["id"] for n in expected_room["nodes"] if n["role"] == "rx"]
    assert [link["id"] for link in room["links"]] == [f"ap-{rx}" for rx in receivers]
    rules = room["link_rules"]
    # prep.max_gap_s 0.1 s (the default): fewer than 10 packets/s leave gaps that are marked missing.
    assert rules == {
        "timeout_s": shipped["pipeline"]["link_timeout_s"],
        "min_packets_per_s": 10.0,
        "calibration_s": shipped["detector"]["calibration_s"],
    }
    assert len(room["keypoint_names"]) == 17 and room["keypoint_names"][5] == "left_shoulder"
    assert [5, 6] in room["skeleton_edges"]
    assert room["overlay_aspect"] == pytest.approx(16 / 9)

    node = {"id": "rx7", "kind": "esp32", "role": "rx", "position": [2.0, 2.0, 1.0]}
    assert (await client.post("/api/v1/config/routers", json=node, headers=admin)).status == 201
    room = await (await client.get("/api/v1/system/room", headers=reader)).json()
    assert room["nodes"][-1]["position_m"] == {"x": 2.0, "y": 2.0, "z": 1.0}
    assert room["links"][-1] == {"id": "ap-rx7", "tx": "ap", "rx": "rx7"}
    assert (await client.get("/api/v1/system/room")).status == 401


async def test_ground_truth_gives_each_person_a_position_and_joints(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, admin = await start(aiohttp_client, tmp_path)
    joints = np.zeros((17, 3))
    joints[:, :] = (9.0, 9.0, 0.1)  # head and limbs far off: the centre must come from the torso alone
    joints[[5, 6, 11, 12]] = [(1.0, 2.0, 1.4), (1.4, 2.0, 1.4), (1.0, 2.2, 0.9), (1.4, 2.2, 0.9)]
    truth = SceneTruth(12.5, (PersonTruth(4, joints, "standing"),))
    monkeypatch.setattr(client.app[PIPELINE], "ground_truth", lambda: truth)

    status = await (await client.get("/api/v1/system/status", headers=admin)).json()
    (person,) = status["simulation"]["ground_truth"]["persons"]
    assert person["id"] == 4 and person["activity"] == "standing"
    # COCO's torso (both shoulders, both hips), equally weighted: the mean of those four joints.
    assert person["position_m"] == {"x": 1.2, "y": 2.1, "z": 1.15}
    assert len(person["keypoints_m"]) == 17 and person["keypoints_m"][5] == {"x": 1.0, "y": 2.0, "z": 1.4}


async def test_stored_events_newest_first_by_type_and_paged(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "analytics:read")
    hub = client.app[HUB]
    t0 = time.time() - 300
    kinds = [EventType.PERSON_DETECTED, EventType.ROUTER_DISCONNECTED, EventType.PERSON_LOST]
    for i, kind in enumerate(kinds):
        hub.publish(event(kind, t0 + i, link="ap-rx1"))
    hub.publish(event(EventType.ALERT_HIGH_OCCUPANCY, t0 + 3, occupancy=4))
    window = f"start_time={t0 - 1}&end_time={t0 + 10}"
    deadline = time.monotonic() + 5
    while True:  # the recorder takes the events off its queue in its own task
        await history_recorder(client).flush()
        page = await (await client.get(f"/api/v1/events?{window}", headers=reader)).json()
        if len(page["items"]) == 4 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [e["type"] for e in page["items"]] == [
        "alert.high_occupancy",
        "person.lost",
        "router.disconnected",
        "person.detected",
    ]
    assert page["has_more"] is False and page["items"][0]["data"] == {"occupancy": 4}
    only = await client.get(
        f"/api/v1/events?{window}&type=person.detected&type=person.lost&limit=1", headers=reader
    )
    body = await only.json()
    assert [e["type"] for e in body["items"]] == ["person.lost"] and body["has_more"] is True
    second = await client.get(
        f"/api/v1/events?{window}&type=person.detected&type=person.lost&limit=1&skip=1", headers=reader
    )
    assert [e["type"] for e in (await second.json())["items"]] == ["person.detected"]
    bad = await client.get("/api/v1/events?type=person.teleported", headers=reader)
    assert bad.status == 400 and error_fields(await bad.json()) == {"type.0"}
    no_scope = await scoped(client, admin, "pose:read")
    assert (await client.get("/api/v1/events", headers=no_scope)).status == 403


async def test_occupancy_over_time_per_zone(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "analytics:read")
    t0 = float(int(time.time()) - 3600)
    # 20 s on the sofa in the first minute; in the second minute only the motion detector's readings.
    await record_visit(client, t0 + 1, [(3, 1.0, 3.0, "sofa", "sitting")])
    hub = client.app[HUB]
    for i in range(10):
        hub.publish(frame_at(t0 + 70 + i, None, frame_id=30_000 + i))
    url = f"/api/v1/analytics/occupancy?start_time={t0}&end_time={t0 + 180}&bucket_s=60"
    deadline = time.monotonic() + 5
    while True:  # the recorder takes the frames off its queue in its own task
        await history_recorder(client).flush()
        series = await (await client.get(url, headers=reader)).json()
        if series["presence"][1] is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert series["times"] == [t0, t0 + 60, t0 + 120]
    sofa, doorway = series["zones"]["sofa"], series["zones"]["doorway"]
    # One person for about 20 of 60 s: a mean of about a third of a person; nobody in the doorway.
    assert 15 / 60 <= sofa[0] <= 21 / 60, sofa
    assert doorway[0] == 0.0
    # The motion detector cannot say who is where: unknown, not zero; nothing stored: unknown too.
    assert sofa[1] is None and doorway[1] is None and sofa[2] is None
    presence = series["presence"]
    assert presence[0] is not None and presence[0] > 0.8
    assert presence[1] == 0.0 and presence[2] is None

    short = await client.get("/api/v1/analytics/occupancy?bucket_s=10", headers=reader)
    assert short.status == 400 and error_fields(await short.json()) == {"bucket_s"}
