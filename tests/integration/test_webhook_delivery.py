"""Webhook delivery against real HTTP receivers on loopback: signatures, order, retries, dead letters,
isolation between endpoints and the guard against forbidden targets.

The appliance runs in process (aiohttp's test client) on a silent source, so the test publishes every
event itself on the hub, exactly as the pipeline would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.api.keys import HUB
from appliance.contracts import EventType
from appliance.hub import Hub, Message
from appliance.integrations.runner import SinkRunner
from appliance.integrations.webhooks.settings import WebhookSettings
from appliance.integrations.webhooks.sink import WebhookSink
from appliance.store.database import Database
from appliance.store.settings import SettingsStore
from appliance.store.webhooks import WebhookOutbox
from tests.app_support import start
from tests.factories import event
from tests.webhook_support import (
    Received,
    Receiver,
    event_ids,
    hook,
    publish,
    sink_of,
    started,
    until,
    webhook_overrides,
)

FAST_RETRIES = {"max_backoff_s": 0.05, "max_attempts": 1000}


async def test_every_delivery_is_signed_and_carries_the_hubs_event_json(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    receiver = await Receiver().start()
    try:
        client, _ = await started(aiohttp_client, tmp_path, hook(receiver))
        sent = publish(client, 5)
        await until(lambda: len(event_ids(receiver)) == 5, "five deliveries")
    finally:
        await receiver.stop()
    assert receiver.bad_signatures == []
    assert event_ids(receiver) == [e.id for e in sent]
    first = next(r for r in receiver.received if r.payload["id"] == sent[0].id)
    # data is the hub's encoding of the event, byte for byte; the envelope adds its own four keys.
    assert first.body.endswith(b', "data": ' + Message.of(sent[0]).text.encode() + b"}")
    assert set(first.payload) == {"id", "delivery_id", "event_type", "timestamp", "data"}
    assert first.payload["event_type"] == "person.detected" == first.headers["X-Event-Type"]
    assert first.payload["timestamp"] == sent[0].time
    assert first.payload["data"] == {"type": "person.detected", "id": sent[0].id, "time": sent[0].time,
                                     "data": {"person_id": 0, "n": 0}}  # fmt: skip
    assert first.headers["X-Delivery-ID"] == first.payload["delivery_id"]
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"].startswith("InvisPose/")
    assert len({r.delivery_id for r in receiver.received}) == len(receiver.received)


async def test_only_matching_events_are_delivered_and_custom_headers_are_sent(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    receiver = await Receiver().start()
    try:
        client, _ = await started(
            aiohttp_client,
            tmp_path,
            hook(
                receiver, events=["person.*", "alert.high_occupancy"], headers={"Authorization": "Bearer r"}
            ),
        )
        hub = client.app[HUB]
        hub.publish(event(EventType.ROUTER_CONNECTED, link="a"))
        hub.publish(event(EventType.PERSON_LOST, person_id=1))
        hub.publish(event(EventType.ALERT_SYSTEM_ERROR, component="x"))
        hub.publish(event(EventType.ALERT_HIGH_OCCUPANCY, count=5))
        await until(lambda: len(receiver.received) == 2, "two deliveries")
        await asyncio.sleep(0.3)  # nothing else arrives
    finally:
        await receiver.stop()
    assert [r.event_type for r in receiver.received] == ["person.lost", "alert.high_occupancy"]
    assert all(r.headers["Authorization"] == "Bearer r" for r in receiver.received)


async def test_400_and_410_are_final_and_the_next_event_goes_on(aiohttp_client: Any, tmp_path: Path) -> None:
    answers = {0: 400, 1: 410}

    async def answer(received: Received) -> web.StreamResponse:
        n = received.payload["data"]["data"].get("n")
        return web.Response(status=answers.get(n, 200), text="nope" if n in answers else "")

    receiver = await Receiver(answer=answer).start()
    try:
        client, headers = await started(aiohttp_client, tmp_path, hook(receiver, events=["person.*"],
                                                                retry_policy=FAST_RETRIES))  # fmt: skip
        sent = publish(client, 3)
        await until(lambda: len(receiver.received) >= 3, "three requests")
        await asyncio.sleep(0.5)  # room for a retry, which must not come
        response = await client.get("/api/v1/webhooks/recv/dead-letters", headers=headers)
        dead = (await response.json())["items"]
    finally:
        await receiver.stop()
    assert [r.payload["id"] for r in receiver.received] == [e.id for e in sent]
    assert [(d["event_id"], d["attempts"], d["last_status"]) for d in reversed(dead)] == [
        (sent[0].id, 1, 400),
        (sent[1].id, 1, 410),
    ]
    assert "nope" in dead[0]["last_error"]


async def test_429_waits_for_retry_after(aiohttp_client: Any, tmp_path: Path) -> None:
    async def answer(received: Received) -> web.StreamResponse:
        first = sum(r.delivery_id == received.delivery_id for r in receiver.received) == 1
        if first and received.event_type == "person.detected":
            return web.Response(status=429, headers={"Retry-After": "2"})
        return web.Response(status=200)

    receiver = await Receiver(answer=answer).start()
    try:
        client, _ = await started(aiohttp_client, tmp_path, hook(receiver, events=["person.*"],
                                                                retry_policy=FAST_RETRIES))  # fmt: skip
        publish(client, 1)
        await until(lambda: len(receiver.received) == 2, "the retry", timeout_s=10)
    finally:
        await receiver.stop()
    first, retry = receiver.received
    assert first.delivery_id == retry.delivery_id
    # Without Retry-After the backoff (at most 0.05 s here) would have tried again at once.
    assert retry.at - first.at >= 2.0


async def test_dead_letters_replay_with_their_delivery_ids(aiohttp_client: Any, tmp_path: Path) -> None:
    failing = True

    async def answer(received: Received) -> web.StreamResponse:
        n = received.payload["data"]["data"].get("n")
        return web.Response(status=503 if failing and n == 1 else 200)

    receiver = await Receiver(answer=answer).start()
    try:
        client, headers = await started(
            aiohttp_client,
            tmp_path,
            hook(receiver, events=["person.*"], retry_policy={"max_attempts": 3, "max_backoff_s": 0.05}),
        )
        sent = publish(client, 3)
        await until(lambda: {sent[0].id, sent[2].id} <= set(event_ids(receiver)), "the others delivered")
        dead = (await (await client.get("/api/v1/webhooks/recv/dead-letters", headers=headers)).json())[
            "items"
        ]
        assert [(d["event_id"], d["attempts"], d["last_status"]) for d in dead] == [(sent[1].id, 3, 503)]
        log = await (await client.get("/api/v1/webhooks/recv/deliveries", headers=headers,
                                      params={"delivery_id": dead[0]["delivery_id"]})).json()  # fmt: skip
        assert [(a["attempt"], a["status"], a["outcome"]) for a in reversed(log["items"])] == [
            (1, 503, "retry"), (2, 503, "retry"), (3, 503, "dead"),
        ]  # fmt: skip
        failing = False
        replay = await client.post("/api/v1/webhooks/recv/dead-letters/replay", json={}, headers=headers)
        assert (await replay.json()) == {"replayed": [dead[0]["delivery_id"]]}
        await until(lambda: receiver.received[-1].payload["id"] == sent[1].id, "the replay")
        status = await (await client.get("/api/v1/webhooks/recv", headers=headers)).json()
    finally:
        await receiver.stop()
    assert receiver.received[-1].delivery_id == dead[0]["delivery_id"]
    assert receiver.received[-1].headers["X-Delivery-ID"] == dead[0]["delivery_id"]
    assert receiver.bad_signatures == []
    assert (status["status"]["backlog"], status["status"]["dead_letters"]) == (0, 0)


async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(aiohttp_client: Any, tmp_path: Path) -> None:
    release = asyncio.Event()

    async def hang(received: Received) -> web.StreamResponse:
        await release.wait()
        return web.Response(status=200)

    hanging = await Receiver(answer=hang).start()
    healthy = await Receiver().start()
    try:
        client, _ = await started(
            aiohttp_client, tmp_path, hook(hanging, "hanging", events=["person.*"]),
            hook(healthy, "healthy", events=["person.*"]), timeout_s=60,
        )  # fmt: skip
        sent = publish(client, 10)
        await until(lambda: len(event_ids(healthy)) == 10, "the healthy endpoint's deliveries")
        # Meanwhile the hanging endpoint still holds the first delivery, unanswered.
        assert len(hanging.received) == 1
        assert event_ids(healthy) == [e.id for e in sent]
    finally:
        release.set()
        await healthy.stop()
        await hanging.stop()


async def test_a_name_that_resolves_to_a_forbidden_address_is_never_contacted(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    receiver = await Receiver().start()
    named = {**hook(receiver, events=["person.*"]), "url": f"http://localhost:{receiver.port}/hook"}
    try:
        client, headers = await start(
            aiohttp_client, tmp_path, silent=True, **webhook_overrides(named, allow_loopback=False)
        )
        (sent,) = publish(client, 1)
        await until(lambda: sink_of(client).stats().details["dead_letters"] == 1, "the refusal")
        dead = (await (await client.get("/api/v1/webhooks/recv/dead-letters", headers=headers)).json())[
            "items"
        ]
        created = await client.post(
            "/api/v1/webhooks",
            json={"url": f"http://localhost:{receiver.port}/x", "secret": "0123456789abcdef"},
            headers=headers,
        )
        body = await created.json()
    finally:
        await receiver.stop()
    assert receiver.received == []
    assert [(d["event_id"], d["attempts"]) for d in dead] == [(sent.id, 1)]
    assert "target refused: localhost (" in dead[0]["last_error"] and "is loopback" in dead[0]["last_error"]
    assert created.status == 400
    assert body["error"]["details"][0]["field"] == "url"
    assert "allow_loopback" in body["error"]["details"][0]["message"]


async def test_redirects_are_followed_only_to_allowed_targets(aiohttp_client: Any, tmp_path: Path) -> None:
    async def redirect(received: Received) -> web.StreamResponse:
        n = received.payload["data"]["data"]["n"]
        targets = {
            0: (307, f"http://0.0.0.0:{other.port}/unspecified"),  # Linux would connect that to this machine
            1: (308, f"http://127.0.0.1:{other.port}/moved"),
            2: (302, f"http://127.0.0.1:{other.port}/get"),
        }
        status, location = targets[n]
        return web.Response(status=status, headers={"Location": location})

    other = await Receiver().start()
    receiver = await Receiver(answer=redirect).start()
    try:
        client, headers = await started(
            aiohttp_client, tmp_path,
            hook(receiver, events=["person.*"], headers={"Authorization": "Bearer for-the-first-origin"}),
        )  # fmt: skip
        sent = publish(client, 3)
        await until(lambda: len(other.received) == 1 and sink_of(client).stats().details["dead_letters"] == 2,
                    "all three settled")  # fmt: skip
        dead = (await (await client.get("/api/v1/webhooks/recv/dead-letters", headers=headers)).json())[
            "items"
        ]
    finally:
        await receiver.stop()
        await other.stop()
    assert [r.path for r in other.received] == ["/moved"]
    moved = other.received[0]
    assert moved.payload["id"] == sent[1].id
    assert "Authorization" not in moved.headers  # the webhook's own headers stay with its own origin
    assert other.bad_signatures == []
    reasons = {d["event_id"]: d["last_error"] for d in dead}
    assert set(reasons) == {sent[0].id, sent[2].id}
    assert "target refused: 0.0.0.0 is the unspecified address" in reasons[sent[0].id]
    assert "HTTP 302" in reasons[sent[2].id] and "a POST would become a GET" in reasons[sent[2].id]


async def test_events_still_queued_when_the_sink_stops_are_written_first(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "invispose.sqlite3")
    hub = Hub()
    settings = WebhookSettings.model_validate(
        {
            "allow_loopback": True,
            "endpoints": [{"id": "recv", "url": "http://127.0.0.1:9/", "secret": "s" * 16}],
        }
    )
    outbox = WebhookOutbox(database)
    async with SinkRunner([WebhookSink(outbox, SettingsStore(database), hub, settings)], hub):
        sent = [event(EventType.PERSON_DETECTED, person_id=i) for i in range(5)]
        for item in sent:
            hub.publish(item)
        # Leaving at once: the sink's intake has not run yet; the events are only in its hub queue.
    pending = await outbox.pending("recv")
    await database.close()
    assert [d.event_id for d in pending] == [e.id for e in sent]
