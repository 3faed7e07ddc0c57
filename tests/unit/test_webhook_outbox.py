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


async def test_a_pending_delivery_reads_back_exactly_as_it_was_written(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    before = time.time()
    event = OutboxEvent("evt-9", "person.fall_detected", 1_700_000_123.25, '{"data": {"n": 9}}', ("nr", "ha"))
    made = await outbox.enqueue([event])
    after = time.time()
    assert [(d.webhook_id, d.state, d.attempts, d.last_status, d.last_error) for d in made] == [
        ("nr", "pending", 0, None, None),
        ("ha", "pending", 0, None, None),
    ]
    assert all(before <= d.created == d.updated <= after for d in made)
    assert all((d.event_id, d.event_type, d.event_time, d.message) == (
        "evt-9", "person.fall_detected", 1_700_000_123.25, '{"data": {"n": 9}}') for d in made)  # fmt: skip
    assert made[0].seq < made[1].seq and len(made[0].id) == 32 and int(made[0].id, 16) >= 0
    assert await outbox.pending("nr") == [made[0]]
    assert await outbox.pending("ha") == [made[1]]
    assert await outbox.enqueue([]) == []
    await database.close()


async def test_pending_gives_the_oldest_first_up_to_the_limit(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    await outbox.enqueue([item(n, "a") for n in range(150)])
    assert [d.event_id for d in await outbox.pending("a")] == [f"e{n}" for n in range(100)]
    assert [d.event_id for d in await outbox.pending("a", limit=2)] == ["e0", "e1"]
    await database.close()


async def test_an_attempt_updates_its_delivery_and_reads_back_in_the_log(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    first, other = await outbox.enqueue([item(1, "a"), item(2, "b")])
    failed = AttemptRecord(1, 1_700_000_000.5, 503, 42.123456, "retry", "HTTP 503 Service Unavailable")
    await outbox.record(first, failed)
    (waiting,) = await outbox.pending("a")
    assert (waiting.state, waiting.attempts, waiting.updated, waiting.last_status, waiting.last_error) == (
        "pending", 1, 1_700_000_000.5, 503, "HTTP 503 Service Unavailable",
    )  # fmt: skip
    assert waiting.created == first.created
    (logged,) = await outbox.attempts("a")
    assert (logged.delivery_id, logged.event_id, logged.event_type, logged.record) == (
        first.id, "e1", "person.detected", failed,
    )  # fmt: skip
    # What GET /api/v1/webhooks/{id}/deliveries shows of it: latency to the microsecond.
    assert logged.to_dict() == {
        "seq": logged.seq, "delivery_id": first.id, "event_id": "e1", "event_type": "person.detected",
        "attempt": 1, "at": 1_700_000_000.5, "status": 503, "latency_ms": 42.123, "outcome": "retry",
        "error": "HTTP 503 Service Unavailable",
    }  # fmt: skip
    assert await outbox.attempts("b") == [] and await outbox.pending("b") == [other]
    await database.close()


async def test_the_delivery_log_pages_newest_first_and_filters_by_delivery(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    one, two = await outbox.enqueue([item(1, "a"), item(2, "a")])
    for number in (1, 2, 3):
        await outbox.record(one, attempt(number, "retry", at=1000.0 + number))
    await outbox.record(two, attempt(1, "delivered", at=2000.0, status=200))
    log = await outbox.attempts("a")
    assert [(a.delivery_id, a.record.attempt) for a in log] == [
        (two.id, 1),
        (one.id, 3),
        (one.id, 2),
        (one.id, 1),
    ]
    page = await outbox.attempts("a", limit=2)
    assert page == log[:2]
    assert await outbox.attempts("a", limit=2, before=page[-1].seq) == log[2:]
    assert [a.record.attempt for a in await outbox.attempts("a", delivery_id=one.id)] == [3, 2, 1]
    assert await outbox.attempts("a", delivery_id=one.id, before=log[2].seq) == log[3:]
    await database.close()


async def test_dead_letters_page_newest_first_and_read_back_as_the_api_lists_them(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    made = await outbox.enqueue([item(n, "a") for n in range(4)] + [item(9, "b")])
    for delivery in made:
        await outbox.record(delivery, attempt(1, "dead", at=5000.0, status=410))
    dead = await outbox.dead_letters("a")
    assert [d.event_id for d in dead] == ["e3", "e2", "e1", "e0"]
    assert await outbox.dead_letters("a", limit=2) == dead[:2]
    assert await outbox.dead_letters("a", before=dead[1].seq) == dead[2:]
    assert dead[0].to_dict() == {
        "seq": made[3].seq, "delivery_id": made[3].id, "attempts": 1, "created": made[3].created,
        "updated": 5000.0, "last_status": 410, "last_error": None, "event_id": "e3",
        "event_type": "person.detected", "event_time": 1003.0,
    }  # fmt: skip
    await database.close()


async def test_replay_brings_back_the_named_dead_letters_of_one_webhook_only(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    made = await outbox.enqueue([item(1, "a"), item(2, "a"), item(3, "a"), item(4, "b")])
    for delivery in made:
        await outbox.record(delivery, attempt(3, "dead", at=5000.0, status=400))
    started = time.time()
    assert await outbox.replay("a", [made[2].id, made[0].id, made[3].id]) == [made[0].id, made[2].id]
    replayed = await outbox.pending("a")
    assert [(d.id, d.attempts) for d in replayed] == [(made[0].id, 0), (made[2].id, 0)]
    assert all(d.updated >= started for d in replayed)
    assert await outbox.replay("a", []) == []
    assert await outbox.counts() == {"a": {"pending": 2, "dead": 1}, "b": {"dead": 1}}
    await database.close()


async def test_retention_keeps_what_is_exactly_at_its_cutoff_and_counts_what_it_deletes(
    tmp_path: Path,
) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    gone, kept, dead_gone, dead_kept = await outbox.enqueue(
        [item(1, "a"), item(2, "a"), item(3, "a"), item(4, "a")]
    )
    await outbox.record(gone, attempt(1, "delivered", at=99.0, status=200))
    await outbox.record(kept, attempt(1, "delivered", at=100.0, status=200))
    await outbox.record(dead_gone, attempt(1, "dead", at=199.0, status=400))
    await outbox.record(dead_kept, attempt(1, "dead", at=200.0, status=400))
    # Deleted: the attempt at 99 (the log's cutoff is 100), the delivered delivery last changed at 99,
    # the dead letter of 199 (its cutoff is 200), and those two deliveries' events.
    assert await outbox.apply_retention(log_before=100.0, dead_before=200.0) == 1 + 2 + 2
    assert await outbox.counts() == {"a": {"delivered": 1, "dead": 1}}
    events = await database.fetchall("SELECT event_id FROM webhook_events ORDER BY seq")
    assert [row["event_id"] for row in events] == ["e2", "e4"]
    await database.close()


async def test_discarding_every_webhook_empties_the_outbox(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "db.sqlite3")
    outbox = WebhookOutbox(database)
    await outbox.enqueue([item(1, "a", "b"), item(2, "c"), item(3, "d")])
    assert await outbox.discard(["a", "b"]) == 2
    assert await outbox.counts() == {"a": {"pending": 1}, "b": {"pending": 1}}
    assert await outbox.discard(["a"]) == 1
    assert await outbox.counts() == {"a": {"pending": 1}}
    assert await outbox.discard([]) == 1
    assert await outbox.counts() == {}
    assert await database.fetchall("SELECT event_id FROM webhook_events") == []
    await database.close()
