"""``/api/v1/webhooks``: create, list, get, replace, delete, test, the write-only secret, scopes, validation,
persistence across a restart, and the OpenAPI document's description of the outgoing call."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from appliance.api.keys import HUB
from tests.app_support import scoped, start
from tests.auth_support import database_bytes
from tests.factories import event
from tests.webhook_support import Receiver, hook, until, webhook_overrides

OTHER_SECRET = "another-secret-0123456789"


async def test_create_list_get_replace_delete_and_the_secret_is_never_shown(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    receiver = await Receiver().start()
    try:
        client, admin = await start(aiohttp_client, tmp_path, silent=True, **webhook_overrides())
        created = await client.post(
            "/api/v1/webhooks",
            json={"url": receiver.url(), "events": ["person.*"], "secret": receiver.secret},
            headers=admin,
        )
        assert created.status == 201, await created.text()
        body = await created.json()
        webhook_id = body["id"]
        assert created.headers["Location"] == f"/api/v1/webhooks/{webhook_id}"
        assert body["origin"] == "api" and body["events"] == ["person.*"] and body["active"] is True
        assert body["retry_policy"] == {"max_attempts": 12, "retry_on_status": [408, 429, "5xx"],
                                        "max_backoff_s": 300.0}  # fmt: skip
        texts = [await created.text()]
        for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{webhook_id}"):
            response = await client.get(path, headers=admin)
            assert response.status == 200
            texts.append(await response.text())
        # Replace without a secret: the saved one stays, as the test delivery's signature shows.
        replaced = await client.put(
            f"/api/v1/webhooks/{webhook_id}",
            json={"url": receiver.url("/v2"), "events": ["*"], "headers": {"X-Home": "1"}},
            headers=admin,
        )
        assert replaced.status == 200, await replaced.text()
        texts.append(await replaced.text())
        tested = await client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=admin)
        result = await tested.json()
        texts.append(json.dumps(result))
        assert (result["delivered"], result["status"], result["error"]) == (True, 204, None)
        (test_delivery,) = receiver.received
        assert test_delivery.path == "/v2" and test_delivery.headers["X-Home"] == "1"
        assert test_delivery.event_type == "webhook.test" == test_delivery.headers["X-Event-Type"]
        assert test_delivery.payload["data"]["webhook_id"] == webhook_id
        assert test_delivery.delivery_id == result["delivery_id"]
        assert receiver.bad_signatures == []
        # A new secret signs from then on.
        await client.put(
            f"/api/v1/webhooks/{webhook_id}",
            json={"url": receiver.url("/v2"), "secret": OTHER_SECRET},
            headers=admin,
        )
        await client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=admin)
        assert receiver.bad_signatures == ["X-InvisPose-Signature v1 does not match"]
        deleted = await client.delete(f"/api/v1/webhooks/{webhook_id}", headers=admin)
        assert deleted.status == 204
        missing = await client.get(f"/api/v1/webhooks/{webhook_id}", headers=admin)
        assert missing.status == 404
        assert (await missing.json())["error"]["code"] == "not_found"
    finally:
        await receiver.stop()
    assert all(receiver.secret not in text and OTHER_SECRET not in text for text in texts)


async def test_scopes_read_with_system_read_change_with_config_write(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **webhook_overrides())
    reader = await scoped(client, admin, "system:read")
    writer = await scoped(client, admin, "config:write")
    new = {"url": "http://127.0.0.1:9/x", "secret": "0123456789abcdef", "id": "w1"}
    assert (await client.get("/api/v1/webhooks")).status == 401
    assert (await client.get("/api/v1/webhooks", headers=reader)).status == 200
    assert (await client.post("/api/v1/webhooks", json=new, headers=reader)).status == 403
    assert (await client.post("/api/v1/webhooks", json=new, headers=writer)).status == 201
    assert (await client.post("/api/v1/webhooks", json=new, headers=writer)).status == 409
    for method, path in [
        ("POST", "/api/v1/webhooks/w1/test"),
        ("POST", "/api/v1/webhooks/w1/dead-letters/replay"),
        ("DELETE", "/api/v1/webhooks/w1"),
    ]:
        refused = await client.request(method, path, json={}, headers=reader)
        assert refused.status == 403, (method, path)
    for path in ("/api/v1/webhooks/w1/deliveries", "/api/v1/webhooks/w1/dead-letters"):
        assert (await client.get(path, headers=reader)).status == 200


async def test_bad_webhooks_are_refused_with_the_field_and_why(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)  # loopback not allowed here
    cases = [
        ({"url": "http://127.0.0.1:1880/x", "secret": "0123456789abcdef"}, "url", "allow_loopback"),
        ({"url": "http://169.254.169.254/latest", "secret": "0123456789abcdef"}, "url", "cloud metadata"),
        ({"url": "https://hooks.example/x", "secret": "short"}, "secret", "at least 16 characters"),
        ({"url": "https://hooks.example/x", "secret": "0123456789abcdef", "events": ["person"]}, "events",
         "is not an event"),
    ]  # fmt: skip
    for body, field, message in cases:
        response = await client.post("/api/v1/webhooks", json=body, headers=admin)
        assert response.status == 400, body
        (detail,) = (await response.json())["error"]["details"]
        assert detail["field"] == field and message in detail["message"], detail
    listed = await (await client.get("/api/v1/webhooks", headers=admin)).json()
    assert listed == {"items": []}


async def test_api_changes_survive_a_restart_and_a_deleted_seed_stays_deleted(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    seed = {"id": "seed", "url": "http://127.0.0.1:9/seed", "secret": "0123456789abcdef"}
    overrides = webhook_overrides(seed)
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **overrides)
    assert [
        w["origin"] for w in (await (await client.get("/api/v1/webhooks", headers=admin)).json())["items"]
    ] == ["config"]
    await client.post(
        "/api/v1/webhooks",
        json={"id": "mine", "url": "http://127.0.0.1:9/mine", "secret": OTHER_SECRET},
        headers=admin,
    )
    assert (await client.delete("/api/v1/webhooks/seed", headers=admin)).status == 204
    await client.close()
    assert OTHER_SECRET.encode() in database_bytes(tmp_path)  # kept to sign with; never shown

    client, admin = await start(aiohttp_client, tmp_path, silent=True, onboarded=True, **overrides)
    items = (await (await client.get("/api/v1/webhooks", headers=admin)).json())["items"]
    assert [(w["id"], w["origin"]) for w in items] == [("mine", "api")]


async def test_switched_off_webhooks_answer_409(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **{"webhooks.enabled": False})
    response = await client.get("/api/v1/webhooks", headers=admin)
    assert response.status == 409
    assert "webhooks.enabled: true" in (await response.json())["error"]["message"]


async def test_metrics_count_attempts_backlog_and_dead_letters(aiohttp_client: Any, tmp_path: Path) -> None:
    receiver = await Receiver().start()
    try:
        client, admin = await start(
            aiohttp_client, tmp_path, silent=True,
            **webhook_overrides(hook(receiver, events=["person.*"]), hook(receiver, "gone", url="http://127.0.0.1:9/x",
                                events=["person.*"], retry_policy={"max_attempts": 1})),
        )  # fmt: skip
        client.app[HUB].publish(event())
        await until(lambda: len(receiver.received) == 1, "the delivery")
        metrics = await scoped(client, admin, "system:read")

        deadline = time.monotonic() + 20
        while True:
            text = await (await client.get("/metrics", headers=metrics)).text()
            if 'invispose_webhook_dead_letters{webhook="gone"} 1.0' in text:
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.05)
    finally:
        await receiver.stop()
    assert 'invispose_webhook_deliveries_total{outcome="delivered"} 1.0' in text
    assert 'invispose_webhook_deliveries_total{outcome="failed"} 1.0' in text
    assert 'invispose_webhook_backlog{webhook="recv"} 0.0' in text


async def test_the_openapi_document_describes_the_outgoing_call(aiohttp_client: Any, tmp_path: Path) -> None:
    client, _ = await start(aiohttp_client, tmp_path, silent=True)
    document = await (await client.get("/api/v1/openapi.json")).json()
    call = document["webhooks"]["event"]["post"]
    headers = {p["name"] for p in call["parameters"] if p["in"] == "header"}
    assert {"X-InvisPose-Signature", "X-Signature", "X-Timestamp", "X-Event-Type", "X-Delivery-ID"} <= headers
    body = call["requestBody"]["content"]["application/json"]["schema"]
    delivery = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    assert set(delivery["required"]) == {"id", "delivery_id", "event_type", "timestamp", "data"}
    assert delivery["properties"]["data"]["$ref"].endswith("/EventModel")
    secret = document["components"]["schemas"]["WebhookCreate"]["properties"]["secret"]
    assert secret.get("writeOnly") is True
    assert "secret" not in document["components"]["schemas"]["Webhook"]["properties"]
