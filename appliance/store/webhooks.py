"""The webhook outbox: every event owed to a webhook, its deliveries, their attempts and the dead letters.

An event that matches at least one webhook is written here (``enqueue``), in one transaction with one
delivery row per matching webhook, before anything is sent; delivery works from these rows only, so an
event survives a restart or a SIGKILL and is delivered at least once. A delivery is ``pending`` until
an attempt succeeds (``delivered``) or it has failed for good (``dead``: a final answer, or its last
attempt); a dead letter is ``replay``ed by making it pending again, with the same delivery id so that a
receiver can tell it has seen it. Deliveries of one webhook go out in ``seq`` order (the order the
events were written).

Every attempt is kept (``webhook_attempts``: the delivery log, with status, latency and error) until
``apply_retention`` deletes the log and delivered events past their age, and dead letters past theirs.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from appliance.store.database import Database, register_schema

DeliveryState = Literal["pending", "delivered", "dead"]
AttemptOutcome = Literal["delivered", "retry", "dead"]
# Most rows one listing returns.
MAX_PAGE_ROWS = 1000

SCHEMA = [
    """
    CREATE TABLE webhook_events (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        time REAL NOT NULL,
        message TEXT NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        webhook_id TEXT NOT NULL,
        event_seq INTEGER NOT NULL REFERENCES webhook_events (seq),
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        last_status INTEGER,
        last_error TEXT
    );
    CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, state, seq);
    CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq);
    CREATE INDEX webhook_deliveries_updated ON webhook_deliveries (state, updated);
    CREATE TABLE webhook_attempts (
        seq INTEGER PRIMARY KEY,
        delivery_seq INTEGER NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
        webhook_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at REAL NOT NULL,
        status INTEGER,
        latency_ms REAL NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
        error TEXT
    );
    CREATE INDEX webhook_attempts_log ON webhook_attempts (webhook_id, seq);
    CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq);
    CREATE INDEX webhook_attempts_at ON webhook_attempts (at)
    """,
]
register_schema("webhooks", SCHEMA)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """An event to write, with the webhooks it is owed to. ``message`` is the hub's JSON of the event,
    stored and later sent exactly as it is."""

    event_id: str
    type: str
    time: float
    message: str
    webhook_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event owed to one webhook, with the event it carries."""

    seq: int
    id: str
    webhook_id: str
    state: DeliveryState
    attempts: int
    created: float
    updated: float
    last_status: int | None
    last_error: str | None
    event_id: str
    event_type: str
    event_time: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The delivery as the API lists it (its webhook and state are those of the listing)."""
        return {
            "seq": self.seq,
            "delivery_id": self.id,
            "attempts": self.attempts,
            "created": self.created,
            "updated": self.updated,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_time": self.event_time,
        }


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What one attempt did, as the delivery log keeps it."""

    attempt: int
    at: float
    status: int | None
    latency_ms: float
    outcome: AttemptOutcome
    error: str | None


@dataclass(frozen=True, slots=True)
class LoggedAttempt:
    seq: int
    delivery_id: str
    event_id: str
    event_type: str
    record: AttemptRecord

    def to_dict(self) -> dict[str, Any]:
        record = self.record
        return {
            "seq": self.seq,
            "delivery_id": self.delivery_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "attempt": record.attempt,
            "at": record.at,
            "status": record.status,
            "latency_ms": round(record.latency_ms, 3),
            "outcome": record.outcome,
            "error": record.error,
        }


_DELIVERY_COLUMNS = """
    d.seq, d.id, d.webhook_id, d.state, d.attempts, d.created, d.updated, d.last_status, d.last_error,
    e.event_id, e.type, e.time, e.message
"""


class WebhookOutbox:
    """The outbox tables of one open ``Database``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def enqueue(self, events: Sequence[OutboxEvent]) -> list[Delivery]:
        """Write ``events`` and one pending delivery per webhook each is owed to, in one transaction;
        the new deliveries in order. Events owed to nobody are not written."""
        owed = [e for e in events if e.webhook_ids]
        if not owed:
            return []
        now = time.time()

        def write(connection: sqlite3.Connection) -> list[Delivery]:
            made = []
            for event in owed:
                cursor = connection.execute(
                    "INSERT INTO webhook_events (event_id, type, time, message) VALUES (?, ?, ?, ?)",
                    (event.event_id, event.type, event.time, event.message),
                )
                event_seq = cursor.lastrowid
                for webhook_id in event.webhook_ids:
                    delivery_id = uuid.uuid4().hex
                    cursor = connection.execute(
                        "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, state, created, updated) "
                        "VALUES (?, ?, ?, 'pending', ?, ?)",
                        (delivery_id, webhook_id, event_seq, now, now),
                    )
                    made.append(
                        Delivery(
                            seq=int(cursor.lastrowid or 0),
                            id=delivery_id,
                            webhook_id=webhook_id,
                            state="pending",
                            attempts=0,
                            created=now,
                            updated=now,
                            last_status=None,
                            last_error=None,
                            event_id=event.event_id,
                            event_type=event.type,
                            event_time=event.time,
                            message=event.message,
                        )
                    )
            return made

        return await self.database.run(write)

    async def pending(self, webhook_id: str, limit: int = 100) -> list[Delivery]:
        """The oldest ``limit`` deliveries still owed to ``webhook_id``, oldest first."""
        rows = await self.database.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e "
            "ON e.seq = d.event_seq WHERE d.webhook_id = ? AND d.state = 'pending' ORDER BY d.seq LIMIT ?",
            (webhook_id, limit),
        )
        return [_delivery(row) for row in rows]

    async def record(self, delivery: Delivery, attempt: AttemptRecord) -> None:
        """Log one attempt and move the delivery to the state it leads to, in one transaction."""
        state = "pending" if attempt.outcome == "retry" else attempt.outcome

        def write(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, updated = ?, last_status = ?, "
                "last_error = ? WHERE seq = ?",
                (state, attempt.attempt, attempt.at, attempt.status, attempt.error, delivery.seq),
            )
            connection.execute(
                "INSERT INTO webhook_attempts (delivery_seq, webhook_id, attempt, at, status, latency_ms, "
                "outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery.seq,
                    delivery.webhook_id,
                    attempt.attempt,
                    attempt.at,
                    attempt.status,
                    attempt.latency_ms,
                    attempt.outcome,
                    attempt.error,
                ),
            )

        await self.database.run(write)

    async def replay(self, webhook_id: str, delivery_ids: Iterable[str] | None = None) -> list[str]:
        """Make dead letters of ``webhook_id`` pending again (all of them, or those named), with a fresh
        count of attempts; the ids replayed, in delivery order."""
        wanted = None if delivery_ids is None else list(delivery_ids)

        def write(connection: sqlite3.Connection) -> list[str]:
            sql = "SELECT seq, id FROM webhook_deliveries WHERE webhook_id = ? AND state = 'dead'"
            params: list[Any] = [webhook_id]
            if wanted is not None:
                sql += f" AND id IN ({', '.join('?' * len(wanted))})"
                params += wanted
            rows = connection.execute(sql + " ORDER BY seq", params).fetchall()
            connection.executemany(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, updated = ? WHERE seq = ?",
                [(time.time(), row["seq"]) for row in rows],
            )
            return [str(row["id"]) for row in rows]

        if wanted == []:
            return []
        return await self.database.run(write)

    async def counts(self) -> dict[str, dict[DeliveryState, int]]:
        """Deliveries per webhook and state."""
        rows = await self.database.fetchall(
            "SELECT webhook_id, state, COUNT(*) AS n FROM webhook_deliveries GROUP BY webhook_id, state"
        )
        counts: dict[str, dict[DeliveryState, int]] = {}
        for row in rows:
            counts.setdefault(str(row["webhook_id"]), {})[row["state"]] = int(row["n"])
        return counts

    async def attempts(
        self, webhook_id: str, *, limit: int = 100, before: int | None = None, delivery_id: str | None = None
    ) -> list[LoggedAttempt]:
        """The delivery log of ``webhook_id``, newest first; ``before`` pages on (an attempt's seq)."""
        sql = (
            "SELECT a.seq, d.id AS delivery_id, e.event_id, e.type, a.attempt, a.at, a.status, "
            "a.latency_ms, a.outcome, a.error FROM webhook_attempts a "
            "JOIN webhook_deliveries d ON d.seq = a.delivery_seq "
            "JOIN webhook_events e ON e.seq = d.event_seq WHERE a.webhook_id = ?"
        )
        params: list[Any] = [webhook_id]
        if before is not None:
            sql += " AND a.seq < ?"
            params.append(before)
        if delivery_id is not None:
            sql += " AND d.id = ?"
            params.append(delivery_id)
        rows = await self.database.fetchall(sql + " ORDER BY a.seq DESC LIMIT ?", (*params, limit))
        return [
            LoggedAttempt(
                int(row["seq"]),
                str(row["delivery_id"]),
                str(row["event_id"]),
                str(row["type"]),
                AttemptRecord(
                    int(row["attempt"]),
                    float(row["at"]),
                    row["status"],
                    float(row["latency_ms"]),
                    row["outcome"],
                    row["error"],
                ),
            )
            for row in rows
        ]

    async def dead_letters(
        self, webhook_id: str, *, limit: int = 100, before: int | None = None
    ) -> list[Delivery]:
        """Dead letters of ``webhook_id``, newest first; ``before`` pages on (a delivery's seq)."""
        sql = (
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e "
            "ON e.seq = d.event_seq WHERE d.webhook_id = ? AND d.state = 'dead'"
        )
        params: list[Any] = [webhook_id]
        if before is not None:
            sql += " AND d.seq < ?"
            params.append(before)
        rows = await self.database.fetchall(sql + " ORDER BY d.seq DESC LIMIT ?", (*params, limit))
        return [_delivery(row) for row in rows]

    async def discard(self, keep: Iterable[str]) -> int:
        """Delete the deliveries (and their log) of every webhook not in ``keep``: webhooks that no longer
        exist. Returns how many deliveries went."""
        kept = list(keep)

        def write(connection: sqlite3.Connection) -> int:
            # With nothing kept, SQLite's empty "NOT IN ()" holds for every row.
            marks = ", ".join("?" * len(kept))
            deleted = connection.execute(
                f"DELETE FROM webhook_deliveries WHERE webhook_id NOT IN ({marks})", kept
            ).rowcount
            _delete_unowed_events(connection)
            return int(deleted)

        return await self.database.run(write)

    async def apply_retention(self, log_before: float, dead_before: float) -> int:
        """Delete attempts and delivered deliveries last changed before ``log_before``, dead letters
        before ``dead_before``, and events no delivery needs any more; the rows deleted."""

        def write(connection: sqlite3.Connection) -> int:
            deleted = connection.execute("DELETE FROM webhook_attempts WHERE at < ?", (log_before,)).rowcount
            deleted += connection.execute(
                "DELETE FROM webhook_deliveries WHERE (state = 'delivered' AND updated < ?) "
                "OR (state = 'dead' AND updated < ?)",
                (log_before, dead_before),
            ).rowcount
            return int(deleted + _delete_unowed_events(connection))

        return await self.database.run(write)


def _delete_unowed_events(connection: sqlite3.Connection) -> int:
    return int(
        connection.execute(
            "DELETE FROM webhook_events WHERE NOT EXISTS "
            "(SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = webhook_events.seq)"
        ).rowcount
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        int(row["seq"]),
        str(row["id"]),
        str(row["webhook_id"]),
        row["state"],
        int(row["attempts"]),
        float(row["created"]),
        float(row["updated"]),
        row["last_status"],
        row["last_error"],
        str(row["event_id"]),
        str(row["type"]),
        float(row["time"]),
        str(row["message"]),
    )
