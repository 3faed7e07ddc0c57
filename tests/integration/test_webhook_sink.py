"""The webhook sink on its own (no app around it): a real SQLite outbox, a real hub, and real HTTP receivers
on loopback whose signature checks are written from the scheme's definition (tests/webhook_support.py).

What users see of it: which events reach which webhook, in order and in the documented envelope; retries,
dead letters and replays; webhooks created, replaced and deleted while it runs and after a restart; the
status the API and /metrics show.

An integration test, not a unit test: real receivers, retries that wait a real second. In tests/unit it
would be run for every mutant of each module it reaches (the outbox, the hub, delivery, the guard), and a
mutant that breaks delivery costs its full wait, which made ``make mutate`` on the outbox take an hour.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from appliance.contracts import Event, EventType
from appliance.hub import Hub
from appliance.integrations.webhooks.settings import WebhookConfig, WebhookSettings
from appliance.integrations.webhooks.sink import (
    WebhookExistsError,
    WebhookNotFoundError,
    WebhookSink,
    WebhooksUnavailableError,
)
from appliance.store.database import Database
from appliance.store.settings import SettingsStore
from appliance.store.webhooks import WebhookOutbox
from tests.factories import event
from tests.webhook_support import SECRET, Received, Receiver, until

# Loopback deliveries take milliseconds; a condition not met within this is a failure.
WITHIN_S = 5.0


def endpoint(receiver: Receiver, hook_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": hook_id, "url": receiver.url(f"/{hook_id}"), "secret": SECRET, **fields}


class Box:
    """The sink's parts on one database file, as the app wires them."""

    def __init__(self, database: Database, hub: Hub, settings: WebhookSettings) -> None:
        self.database = database
        self.hub = hub
        self.outbox = WebhookOutbox(database)
        self.sink = WebhookSink(self.outbox, SettingsStore(database), hub, settings)

    def publish(self, *events: Event) -> None:
        for item in events:
            self.hub.publish(item)


@asynccontextmanager
async def running(path: Path, *endpoints: dict[str, Any], **settings: Any) -> AsyncIterator[Box]:
    database = await Database.open(path / "invispose.sqlite3")
    box = Box(
        database,
        Hub(),
        WebhookSettings.model_validate({"allow_loopback": True, "endpoints": list(endpoints), **settings}),
    )
    try:
        async with box.sink:
            task = asyncio.create_task(box.sink.run())
            try:
                yield box
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    finally:
        await database.close()


@asynccontextmanager
async def receiving(answer: Any = None) -> AsyncIterator[Receiver]:
    receiver = await (Receiver() if answer is None else Receiver(answer=answer)).start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def test_each_webhook_gets_the_events_it_asked_for_in_order_in_the_documented_envelope(
    tmp_path: Path,
) -> None:
    async with (
        receiving() as receiver,
        running(
            tmp_path,
            endpoint(receiver, "people", events=["person.*"]),
            endpoint(receiver, "alerts", events=["alert.*"]),
            endpoint(receiver, "off", events=["*"], active=False),
        ) as box,
    ):
        sent = [event(EventType.PERSON_DETECTED, person_id=i) for i in range(3)]
        alert = event(EventType.ALERT_SYSTEM_ERROR, message="disk full")
        box.publish(sent[0], alert, sent[1], event(EventType.ROUTER_CONNECTED), sent[2])
        await until(lambda: len(receiver.received) == 4, "four deliveries", WITHIN_S)
        await until(lambda: box.sink.stats().details["backlog"] == 0, "the backlog written down", WITHIN_S)
        stats = box.sink.stats()
    assert receiver.bad_signatures == []
    people = [r for r in receiver.received if r.path == "/people"]
    assert [r.payload["id"] for r in people] == [e.id for e in sent]
    [alerted] = [r for r in receiver.received if r.path == "/alerts"]
    body = alerted.payload
    # README, Webhooks: {"id", "delivery_id", "event_type", "timestamp", "data"}; data is the Event schema.
    assert list(body) == ["id", "delivery_id", "event_type", "timestamp", "data"]
    assert (body["id"], body["event_type"], body["timestamp"]) == (alert.id, "alert.system_error", alert.time)
    assert body["data"]["data"] == {"message": "disk full"}
    assert alerted.headers["X-Event-Type"] == "alert.system_error"
    assert alerted.headers["X-Delivery-ID"] == body["delivery_id"]
    assert stats.connected and stats.last_error is None and stats.pending == 0 and stats.delivered == 4
    details = stats.details
    assert (details["webhooks"], details["active"], details["events_taken"]) == (3, 2, 5)
    assert (details["backlog"], details["dead_letters"], details["failed_attempts"]) == (0, 0, 0)
    people_status = details["endpoints"]["people"]
    assert (people_status["delivered"], people_status["last_status"], people_status["last_error"]) == (
        3,
        204,
        None,
    )
    assert people_status["next_attempt_at"] is None and people_status["backlog"] == 0
    assert isinstance(people_status["last_attempt_at"], float)
    assert people_status["last_latency_ms"] == round(people_status["last_latency_ms"], 3) > 0
    assert details["endpoints"]["off"] == {
        "backlog": 0, "dead_letters": 0, "delivered": 0, "failed_attempts": 0, "last_status": None,
        "last_error": None, "last_attempt_at": None, "last_latency_ms": None, "next_attempt_at": None,
    }  # fmt: skip


async def test_a_failed_attempt_waits_its_retry_after_and_is_logged(tmp_path: Path) -> None:
    answers = [web.Response(status=503, headers={"Retry-After": "1"}), web.Response(status=204)]

    async def busy_then_fine(received: Received) -> web.StreamResponse:
        return answers.pop(0)

    async with receiving(busy_then_fine) as receiver, running(tmp_path, endpoint(receiver, "r")) as box:
        box.publish(event(EventType.PERSON_DETECTED))
        await until(
            lambda: box.sink.stats().details["endpoints"]["r"]["next_attempt_at"] is not None,
            "a retry",
            WITHIN_S,
        )
        waiting = box.sink.stats().details["endpoints"]["r"]
        assert (waiting["failed_attempts"], waiting["last_status"], waiting["backlog"]) == (1, 503, 1)
        assert waiting["last_error"] == "HTTP 503 Service Unavailable"
        assert waiting["next_attempt_at"] - waiting["last_attempt_at"] == pytest.approx(1.0, abs=0.5)
        await until(lambda: box.sink.stats().delivered == 1, "the retry delivered", WITHIN_S)
        log = await box.outbox.attempts("r")
        final = box.sink.stats().details["endpoints"]["r"]
    assert [(a.record.attempt, a.record.status, a.record.outcome) for a in log] == [
        (2, 204, "delivered"), (1, 503, "retry"),
    ]  # fmt: skip
    assert len({r.delivery_id for r in receiver.received}) == 1 and len(receiver.received) == 2
    assert (final["failed_attempts"], final["delivered"], final["backlog"], final["next_attempt_at"]) == (
        1,
        1,
        0,
        None,
    )


async def test_without_retry_after_the_backoff_decides_and_the_last_attempt_makes_a_dead_letter(
    tmp_path: Path,
) -> None:
    async def down(received: Received) -> web.StreamResponse:
        return web.Response(status=500)

    async with (
        receiving(down) as receiver,
        running(
            tmp_path, endpoint(receiver, "r", retry_policy={"max_attempts": 3, "max_backoff_s": 0.05})
        ) as box,
    ):
        box.publish(event(EventType.PERSON_DETECTED))
        await until(lambda: box.sink.stats().details["dead_letters"] == 1, "a dead letter", WITHIN_S)
        [dead] = await box.outbox.dead_letters("r")
        status = box.sink.stats().details["endpoints"]["r"]
    assert len(receiver.received) == 3 and dead.attempts == 3
    assert (status["failed_attempts"], status["backlog"], status["dead_letters"]) == (3, 0, 1)
    assert status["last_error"] == "HTTP 500 Internal Server Error"


async def test_a_dead_letter_replayed_goes_out_again_with_its_delivery_id(tmp_path: Path) -> None:
    answers = [410, 204]

    async def gone_then_back(received: Received) -> web.StreamResponse:
        return web.Response(status=answers.pop(0))

    async with receiving(gone_then_back) as receiver, running(tmp_path, endpoint(receiver, "r")) as box:
        box.publish(event(EventType.PERSON_DETECTED))
        await until(lambda: box.sink.stats().details["dead_letters"] == 1, "a dead letter", WITHIN_S)
        [dead] = await box.outbox.dead_letters("r")
        assert await box.sink.replay("r", ["some-other-id"]) == []
        assert await box.sink.replay("r") == [dead.id]
        await until(lambda: box.sink.stats().delivered == 1, "the replay delivered", WITHIN_S)
        status = box.sink.stats().details["endpoints"]["r"]
        with pytest.raises(WebhookNotFoundError):
            await box.sink.replay("nobody")
    assert [r.delivery_id for r in receiver.received] == [dead.id, dead.id]
    assert (status["dead_letters"], status["backlog"], status["delivered"]) == (0, 0, 1)


async def test_webhooks_created_replaced_and_deleted_while_running(tmp_path: Path) -> None:
    async with receiving() as receiver, running(tmp_path, endpoint(receiver, "seed")) as box:
        sink = box.sink
        assert [(h.id, origin) for h, origin, _ in sink.hooks()] == [("seed", "config")]
        new = WebhookConfig.model_validate(endpoint(receiver, "new", events=["alert.*"]))
        await sink.put(new, create=True)
        with pytest.raises(WebhookExistsError, match=r"^a webhook 'new' exists already$"):
            await sink.put(new, create=True)
        with pytest.raises(WebhookNotFoundError):
            await sink.put(WebhookConfig.model_validate(endpoint(receiver, "ghost")), create=False)
        box.publish(event(EventType.ALERT_SYSTEM_ERROR, message="x"))
        await until(lambda: len(receiver.received) == 2, "both webhooks", WITHIN_S)
        assert sorted(r.path for r in receiver.received) == ["/new", "/seed"]

        # Replacing the seed webhook moves it to the API, and its next deliveries to its new URL.
        moved = WebhookConfig.model_validate({**endpoint(receiver, "seed"), "url": receiver.url("/moved")})
        await sink.put(moved, create=False)
        assert sink.hook("seed")[:2] == (moved, "api")
        box.publish(event(EventType.PERSON_DETECTED))
        await until(lambda: [r.path for r in receiver.received][2:] == ["/moved"], "the new URL", WITHIN_S)

        # Deleting one takes its deliveries with it; the other's stay.
        paused = WebhookConfig.model_validate({**endpoint(receiver, "new"), "active": False})
        await sink.put(paused, create=False)
        assert await sink.delete("seed") == 2
        with pytest.raises(WebhookNotFoundError):
            sink.hook("seed")
        with pytest.raises(WebhookNotFoundError):
            await sink.delete("seed")
        assert [h.id for h, _, _ in sink.hooks()] == ["new"]
        assert await box.outbox.counts() == {"new": {"delivered": 1}}


async def test_a_restart_keeps_the_apis_webhooks_and_drops_deliveries_owed_to_none(tmp_path: Path) -> None:
    async def unreachable(received: Received) -> web.StreamResponse:
        return web.Response(status=503)

    async with receiving(unreachable) as receiver:
        slow = {"retry_policy": {"max_backoff_s": 3600}}
        async with running(
            tmp_path, endpoint(receiver, "seed", **slow), endpoint(receiver, "gone", **slow)
        ) as box:
            await box.sink.put(WebhookConfig.model_validate(endpoint(receiver, "api", **slow)), create=True)
            box.publish(event(EventType.PERSON_DETECTED), event(EventType.PERSON_LOST))
            await until(
                lambda: box.sink.stats().details["failed_attempts"] == 3, "one attempt each", WITHIN_S
            )
        # Restarted with "gone" removed from the seed: its deliveries go; the others' wait, counted.
        async with running(tmp_path, endpoint(receiver, "seed", **slow)) as box:
            hooks = {h.id: origin for h, origin, _ in box.sink.hooks()}
            backlog = {hook_id: s["backlog"] for hook_id, s in box.sink.stats().details["endpoints"].items()}
            counts = await box.outbox.counts()
    assert hooks == {"seed": "config", "api": "api"}
    assert backlog == {"seed": 2, "api": 2}
    assert set(counts) == {"seed", "api"}


async def test_a_stored_webhook_that_is_no_longer_valid_is_skipped(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "invispose.sqlite3")
    definitions = SettingsStore(database)
    await definitions.put("webhook", "broken", {"id": "broken", "url": "ftp://x/", "secret": SECRET})
    await definitions.put("webhook", "fine", {"id": "fine", "url": "http://127.0.0.1:9/", "secret": SECRET})
    settings = WebhookSettings.model_validate({"allow_loopback": True})
    sink = WebhookSink(WebhookOutbox(database), definitions, Hub(), settings)
    async with sink:
        assert [(h.id, origin) for h, origin, _ in sink.hooks()] == [("fine", "api")]
    await database.close()


async def test_a_test_delivery_is_signed_and_never_queued(tmp_path: Path) -> None:
    async with receiving() as receiver, running(tmp_path, endpoint(receiver, "r")) as box:
        sent = await box.sink.send_test("r")
        counts = await box.outbox.counts()
    assert counts == {}
    assert sent.attempt.status == 204
    [got] = receiver.received
    assert receiver.bad_signatures == []
    assert got.headers["X-Event-Type"] == "webhook.test"
    assert got.payload["delivery_id"] == sent.delivery_id == got.headers["X-Delivery-ID"]
    assert got.payload["event_type"] == "webhook.test"
    assert got.payload["data"] == {"webhook_id": "r", "message": "a test delivery from InvisPose"}
    assert got.payload["id"] != sent.delivery_id


async def test_before_it_starts_the_sink_says_it_is_unavailable(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "invispose.sqlite3")
    settings = WebhookSettings.model_validate(
        {"allow_loopback": True, "endpoints": [{"id": "r", "url": "http://127.0.0.1:9/", "secret": SECRET}]}
    )
    sink = WebhookSink(WebhookOutbox(database), SettingsStore(database), Hub(), settings)
    with pytest.raises(
        WebhooksUnavailableError, match=r"^the webhooks have not been loaded yet; the sink is starting$"
    ):
        sink.hooks()
    with pytest.raises(RuntimeError, match=r"^enter the webhook sink \(async with\) before running it$"):
        await sink.run()
    assert not sink.stats().connected and sink.stats().details["webhooks"] == 0
    async with sink:
        assert sink.stats().connected
    with pytest.raises(
        WebhooksUnavailableError,
        match=r"^the webhook sink is not running \(starting, or restarting after a failure\)$",
    ):
        await sink.send_test("r")
    await database.close()


async def test_events_published_while_it_is_away_are_written_when_it_leaves(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "invispose.sqlite3")
    hub = Hub()
    settings = WebhookSettings.model_validate(
        {"allow_loopback": True, "endpoints": [{"id": "r", "url": "http://127.0.0.1:9/", "secret": SECRET}]}
    )
    outbox = WebhookOutbox(database)
    sink = WebhookSink(outbox, SettingsStore(database), hub, settings)
    async with sink:
        sent = [event(EventType.PERSON_DETECTED, n=n) for n in range(3)]
        for item in sent:
            hub.publish(item)
        assert sink.stats().pending == 3
    pending = await outbox.pending("r")
    await database.close()
    assert [json.loads(d.message)["data"]["n"] for d in pending] == [0, 1, 2]
    assert [d.event_id for d in pending] == [e.id for e in sent]
