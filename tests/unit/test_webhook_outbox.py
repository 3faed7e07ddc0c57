"""The webhook outbox repository on a real SQLite file: order, state changes, replay, retention, reopen."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.store.database import Database
from appliance.store.webhooks import AttemptRecord, OutboxEvent, WebhookOutbox

DAY = 86_400.0


def item(n: int, *webhooks: str) -> OutboxEvent:
    return OutboxEvent(f"e{n}", "person.detected", 1000.0 + n, f'{{"n": {n}}}', webhooks)


def attempt(number: int, outcome: str, at: float | None = None, status: int | None = 500) -> AttemptRecord:
    return AttemptRecord(number, time.time() if at is None else at, status, 12.5, outcome, None)  # type: ignore[arg-type]


async def test_deliveries_come_out_in_order_per_webhook_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    database = await Database.open(path)
    outbox = WebhookOutbox(database)
    made = await outbox.enqueue([item(1, "a", "b"), item(2), item(3, "b"), item(4, "a")])
    assert [(d.webhook_id, d.event_id) for d in made] == [("a", "e1"), ("b", "e1"), ("b", "e3"), ("a", "e4")]
    assert len({d.id for d in made}) == 4
    await database.close()

    database = await Database.open(path)
    outbox = WebhookOutbox(database)
    assert [d.event_id for d in await outbox.pending("a")] == ["e1", "e4"]
    pending_b = await outbox.pending("b")
    assert [(d.event_id, d.message) for d in pending_b] == [("e1", '{"n": 1}'), ("e3", '{"n": 3}')]
    # Event 2 was owed to nobody, so it was not written at all.
    assert await database.fetchone("SELECT 1 FROM webhook_events WHERE event_id = 'e2'") is None
    await database.close()


async def test_attempts_move_deliveries_and_replay_brings_dead_ones_back(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    first, second = await outbox.enqueue([item(1, "a"), item(2, "a")])
    await outbox.record(first, attempt(1, "retry"))
    assert [(d.event_id, d.attempts, d.last_status) for d in await outbox.pending("a")] == [
        ("e1", 1, 500),
        ("e2", 0, None),
    ]
    await outbox.record(first, attempt(2, "dead", status=410))
    await outbox.record(second, attempt(1, "delivered", status=204))
    assert await outbox.pending("a") == []
    assert await outbox.counts() == {"a": {"dead": 1, "delivered": 1}}
    dead = await outbox.dead_letters("a")
    assert [(d.id, d.attempts, d.last_status) for d in dead] == [(first.id, 2, 410)]
    log = await outbox.attempts("a")
    assert [(a.delivery_id, a.record.attempt, a.record.outcome) for a in log] == [
        (second.id, 1, "delivered"),
        (first.id, 2, "dead"),
        (first.id, 1, "retry"),
    ]
    assert await outbox.replay("a", ["not-a-delivery"]) == []
    assert await outbox.replay("a") == [first.id]
    (again,) = await outbox.pending("a")
    assert (again.id, again.attempts) == (first.id, 0)
    await database.close()


async def test_retention_and_discard(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    now = time.time()
    old, recent, dead, waiting = await outbox.enqueue(
        [item(1, "a"), item(2, "a"), item(3, "a"), item(4, "a")]
    )
    await outbox.record(old, attempt(1, "delivered", at=now - 10 * DAY, status=200))
    await outbox.record(recent, attempt(1, "delivered", at=now - DAY, status=200))
    await outbox.record(dead, attempt(1, "dead", at=now - 10 * DAY, status=400))
    await outbox.apply_retention(log_before=now - 7 * DAY, dead_before=now - 30 * DAY)
    assert await outbox.counts() == {"a": {"delivered": 1, "dead": 1, "pending": 1}}
    assert [a.delivery_id for a in await outbox.attempts("a")] == [recent.id]
    await outbox.apply_retention(log_before=now - 7 * DAY, dead_before=now)
    assert await outbox.counts() == {"a": {"delivered": 1, "pending": 1}}
    # A pending delivery is never deleted by age: it is still owed.
    await outbox.apply_retention(log_before=now + DAY, dead_before=now + DAY)
    assert [d.id for d in await outbox.pending("a")] == [waiting.id]
    await outbox.enqueue([item(5, "b")])
    assert await outbox.discard(["b"]) == 1
    assert await outbox.counts() == {"b": {"pending": 1}}
    events = await database.fetchall("SELECT event_id FROM webhook_events")
    assert [row["event_id"] for row in events] == ["e5"]
    await database.close()
