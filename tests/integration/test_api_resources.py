"""The resource routes on the real application (simulated room): pose, persons, zones, analytics, export,
performance and metrics, each called with a token holding exactly the scope it declares, on its happy path
and on an error path."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from appliance.api.keys import HUB
from appliance.api.pose import PersonModel, PoseFrameModel
from tests.app_support import PNG_SIGNATURE, error_fields, first_frame, record_visit, scoped, start
from tests.factories import Person, frame_at


def visit_start(now: float | None = None) -> float:
    """About ten minutes ago, moved back when needed so that a minute from then does not cross the local
    midnight: the daily report counts a visit on the day it happened, and the test checks one day."""
    t0 = (time.time() if now is None else now) - 600
    next_midnight = datetime.combine(date.fromtimestamp(t0) + timedelta(days=1), datetime.min.time())
    return min(t0, next_midnight.timestamp() - 120)


def test_visit_start_keeps_a_visit_within_one_day() -> None:
    late = datetime(2026, 3, 1, 0, 5).timestamp()  # ten minutes earlier is 23:55, a minute later 23:56
    assert date.fromtimestamp(visit_start(late)) == date.fromtimestamp(visit_start(late) + 60)
    edge = datetime(2026, 3, 1, 0, 9, 30).timestamp()  # ten minutes earlier the visit would cross midnight
    assert date.fromtimestamp(visit_start(edge)) == date.fromtimestamp(visit_start(edge) + 60)
    noon = datetime(2026, 3, 1, 12, 0).timestamp()
    assert visit_start(noon) == noon - 600


# --------------------------------------------------------------------------------------------------------
# The PoseFrame shape


@pytest.mark.parametrize(
    "people",
    [None, [], [(1, 2.0, 1.5, "sofa", "sitting"), (2, 4.0, 3.0, None, None)]],
    ids=["motion", "model-empty", "model-two"],
)
def test_pose_frame_model_is_exactly_the_serializer(people: list[Person] | None) -> None:
    data = frame_at(1_700_000_000.0, people).to_dict()
    assert PoseFrameModel.model_validate(data).model_dump(mode="json") == json.loads(json.dumps(data))


# --------------------------------------------------------------------------------------------------------
# Pose


async def test_current_is_503_before_the_first_reading(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "pose:read")
    response = await client.get("/api/v1/pose/current", headers=reader)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "no_reading_yet"
    zones = await (await client.get("/api/v1/pose/zones", headers=reader)).json()
    assert zones["timestamp"] is None and [z["occupancy"] for z in zones["zones"]] == [None, None]


async def test_current_filters_and_validates(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "pose:read")
    people: list[Person] = [(1, 1.0, 3.0, "sofa", "sitting"), (2, 4.0, 1.0, None, "walking")]
    client.app[HUB].publish(frame_at(time.time(), people))
    whole = await client.get("/api/v1/pose/current", headers=reader)
    assert whole.status == 200 and len((await whole.json())["persons"]) == 2
    sofa = await (await client.get("/api/v1/pose/current?zone_id=sofa", headers=reader)).json()
    assert [p["id"] for p in sofa["persons"]] == [1] and sofa["person_count"] == 1
    assert (await (await client.get("/api/v1/pose/current?min_confidence=0.9", headers=reader)).json())[
        "persons"
    ] == []
    zones = await (await client.get("/api/v1/pose/zones", headers=reader)).json()
    assert {z["id"]: (z["occupancy"], z["person_ids"]) for z in zones["zones"]} == {
        "sofa": (1, [1]),
        "doorway": (0, []),
    }

    bad = await client.get("/api/v1/pose/current?min_confidence=2", headers=reader)
    assert bad.status == 400 and error_fields(await bad.json()) == {"min_confidence"}


async def test_history_and_persons(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    reader = await scoped(client, admin, "pose:read")
    t0 = time.time() - 3600
    await record_visit(client, t0, [(7, 1.0, 3.0, "sofa", "sitting")])

    page = await client.get(
        f"/api/v1/pose/history?start_time={t0}&end_time={t0 + 30}&limit=5", headers=reader
    )
    assert page.status == 200
    body = await page.json()
    assert len(body["items"]) == 5 and body["has_more"] is True
    assert all(PoseFrameModel.model_validate(item) for item in body["items"])
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0 - 1))
    assert (await client.get(f"/api/v1/pose/history?start_time={iso}&limit=1", headers=reader)).status == 200

    listed = await (await client.get("/api/v1/pose/persons", headers=reader)).json()
    (visit,) = [p for p in listed["items"] if p["live_id"] == 7]
    person = PersonModel.model_validate(visit)
    assert person.zones_visited == ["sofa"] and not person.active and person.zone is None
    detail = await client.get(f"/api/v1/pose/persons/{person.id}?trajectory=true", headers=reader)
    trajectory = (await detail.json())["trajectory"]
    assert len(trajectory) >= 10 and trajectory[0]["zone"] == "sofa"
    frames = await client.get(f"/api/v1/pose/history?person_id={person.id}&limit=1000", headers=reader)
    assert all(any(p["id"] == 7 for p in f["persons"]) for f in (await frames.json())["items"])

    for missing in ("999999", "abc", "1e3", "99999999999999999999999"):
        response = await client.get(f"/api/v1/pose/persons/{missing}", headers=reader)
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
    backwards = await client.get(f"/api/v1/pose/history?start_time={t0}&end_time={t0 - 1}", headers=reader)
    assert backwards.status == 400
    for query, field in [
        ("start_time=yesterday", "start_time"),
        ("limit=1001", "limit"),
        ("skip=-1", "skip"),
    ]:
        response = await client.get(f"/api/v1/pose/history?{query}", headers=reader)
        assert response.status == 400 and error_fields(await response.json()) == {field}, query


# --------------------------------------------------------------------------------------------------------
# Analytics


async def test_activity_heatmap_report_and_export(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    analyst = await scoped(client, admin, "analytics:read")
    t0 = visit_start()
    await record_visit(client, t0, [(3, 1.0, 3.0, "sofa", "sitting")])
    window = f"start_time={t0 - 1}&end_time={t0 + 60}"

    timeline = await (
        await client.get(f"/api/v1/analytics/activity?{window}&by=zone", headers=analyst)
    ).json()
    assert [(i["subject"], i["activity"]) for i in timeline["intervals"]] == [("sofa", "sitting")]
    bad = await client.get("/api/v1/analytics/activity?by=room", headers=analyst)
    assert bad.status == 400 and error_fields(await bad.json()) == {"by"}
    too_long = await client.get(f"/api/v1/analytics/activity?start_time={t0 - 40 * 86_400}", headers=analyst)
    assert too_long.status == 400

    grid = await (
        await client.get(f"/api/v1/analytics/heatmaps?{window}&columns=5&rows=4", headers=analyst)
    ).json()
    seconds = np.array(grid["seconds"])
    assert seconds.shape == (4, 5) and seconds[3, 1] == pytest.approx(seconds.sum()) and seconds.sum() > 15
    for png in (
        await client.get(f"/api/v1/analytics/heatmaps?{window}&format=png", headers=analyst),
        await client.get(f"/api/v1/analytics/heatmaps?{window}", headers={**analyst, "Accept": "image/png"}),
    ):
        assert png.content_type == "image/png" and (await png.read()).startswith(PNG_SIGNATURE)
    assert (await client.get("/api/v1/analytics/heatmaps?columns=0", headers=analyst)).status == 400

    reports = client.app[HUB].subscribe("test-reports", ("event/analytics.report_generated",))
    day = time.strftime("%Y-%m-%d", time.localtime(t0))
    report = await (await client.get(f"/api/v1/analytics/reports?date={day}", headers=analyst)).json()
    (sofa,) = [z for z in report["zones"] if z["zone_id"] == "sofa"]
    assert sofa["occupied_s"] > 15 and sofa["visits"] == 1
    week = await (
        await client.get(f"/api/v1/analytics/reports?date={day}&period=week", headers=analyst)
    ).json()
    assert week["period"] == "week" and len(week["days"]) == 7
    # Reading a report announces nothing (a dashboard refresh must not turn into webhook deliveries).
    assert reports.pending == 0
    assert (await client.get("/api/v1/analytics/reports?date=2024-02-30", headers=analyst)).status == 400

    export = await client.get(f"/api/v1/analytics/export?dataset=tracks&format=csv&{window}", headers=analyst)
    assert export.status == 200 and export.headers["Content-Type"].startswith("text/csv")
    assert export.headers["Content-Disposition"].startswith('attachment; filename="invispose-tracks-')
    assert export.headers.get("Transfer-Encoding") == "chunked"
    rows = list(csv.DictReader(io.StringIO(await export.text())))
    assert len(rows) >= 15 and {r["zone"] for r in rows} == {"sofa"}
    lines = await client.get(
        f"/api/v1/analytics/export?dataset=events&format=jsonl&{window}", headers=analyst
    )
    assert lines.content_type == "application/x-ndjson"
    assert all(json.loads(line)["type"] for line in (await lines.text()).splitlines())
    missing = await client.get("/api/v1/analytics/export?format=csv", headers=analyst)
    assert missing.status == 400 and error_fields(await missing.json()) == {"dataset"}


# --------------------------------------------------------------------------------------------------------
# Performance and metrics


async def test_performance_is_measured(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path)
    operator = await scoped(client, admin, "system:read")
    reader = await scoped(client, admin, "pose:read")
    await first_frame(client)
    current = await client.get("/api/v1/pose/current", headers=reader)
    assert PoseFrameModel.model_validate(await current.json()).simulated
    await asyncio.sleep(1.5)
    body = await (await client.get("/api/v1/system/performance", headers=operator)).json()
    assert 5 <= body["pose_fps"] <= 15, body
    assert body["cpu_percent"] is not None and body["cpu_percent"] > 0
    assert len(body["links"]) == 6 and body["csi_packets_per_s"] > 300
    assert body["latency_ms"]["p50"] is not None and body["memory_rss_mb"] > 10
    assert [s["name"] for s in body["sinks"]] == ["history", "webhooks", "reports", "websocket", "mdns"]
    history = body["sinks"][0]
    assert (history["name"], history["state"], history["connected"]) == ("history", "running", True)
    assert history["delivered"] > 0 and history["details"]["received"] == history["delivered"]
    assert {"history", "metrics"} <= {s["name"] for s in body["subscriptions"]}
    wrong_scope = await scoped(client, admin, "pose:read")
    assert (await client.get("/api/v1/system/performance", headers=wrong_scope)).status == 403


async def test_metrics_are_labelled_by_route_template(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path)
    operator = await scoped(client, admin, "system:read", "pose:read")
    await first_frame(client)
    for person_id in range(3):
        assert (await client.get(f"/api/v1/pose/persons/{person_id}", headers=operator)).status == 404
    assert (await client.get("/api/v1/no/such/route", headers=operator)).status == 404
    await asyncio.sleep(0.3)
    response = await client.get("/metrics", headers=operator)
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    assert (
        'invispose_http_requests_total{method="GET",route="/api/v1/pose/persons/{id}",status="404"} 3.0'
        in text
    )
    assert 'route="unmatched",status="404"' in text and "/api/v1/pose/persons/1" not in text
    assert 'invispose_csi_frames_total{link="ap-rx1",source="simulated-room"}' in text
    assert 'invispose_pose_frames_total{estimator="motion"}' in text
    assert 'invispose_hub_dropped_total{subscriber="history"} 0.0' in text
    for name in ("websocket_connections", "mqtt_connected", "inference_duration_seconds_count"):
        assert f"invispose_{name} 0.0" in text, name  # no viewer, no broker, no model: zero, and said so
    assert 'invispose_webhook_deliveries_total{outcome="delivered"} 0.0' in text
    assert "invispose_process_resident_memory_bytes" in text
    assert (await client.get("/metrics")).status == 401
