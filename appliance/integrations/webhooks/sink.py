"""``WebhookSink``: takes every event from the hub into the durable outbox, and delivers it to each webhook.

Intake: the sink's hub queue is lossless (events and alerts only, a few per second at most). Each event
taken from it is written to the outbox at once, with one delivery per active webhook whose ``events``
match it, before anything is sent; what could not be written yet (a failing disk) is kept in memory and
written first when the sink starts again, and the hub queue itself outlives such a restart, so no event
is missed meanwhile. Leaving the sink writes whatever is still queued.

Delivery: one task per active webhook works through that webhook's pending deliveries in order, one at
a time, so a slow or dead endpoint only ever delays its own deliveries. A failed attempt is retried
after an exponential backoff with jitter (or the answer's ``Retry-After``), up to the webhook's
``retry_policy.max_attempts``; then, or at once on a final answer, the delivery becomes a dead letter and
the next one goes. Every attempt is logged in the outbox (status, latency, error).

The webhooks themselves are the ``webhooks.endpoints`` seed overlaid with what the API changed
(``appliance.store.settings``, kind ``webhook``); ``put`` and ``delete`` change them while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Self, TypeVar

import aiohttp
from pydantic import ValidationError

from appliance import __version__
from appliance.contracts import Event
from appliance.hub import Hub, Message, Subscription
from appliance.integrations.base import Backoff, Sink, SinkStats
from appliance.integrations.webhooks.delivery import Attempt, WebhookSender, verdict
from appliance.integrations.webhooks.guard import GuardedResolver
from appliance.integrations.webhooks.settings import WebhookConfig, WebhookSettings, event_matches
from appliance.integrations.webhooks.signing import envelope
from appliance.store.settings import SettingsStore, overlay
from appliance.store.webhooks import AttemptRecord, Delivery, OutboxEvent, WebhookOutbox

log = logging.getLogger(__name__)

T = TypeVar("T")
TOPICS = ("event/#", "alert/#")
SETTINGS_KIND = "webhook"
TEST_EVENT_TYPE = "webhook.test"
USER_AGENT = f"InvisPose/{__version__}"
# Deliveries read from the outbox at a time by a webhook's task.
_BATCH = 100
RETENTION_PERIOD_S = 3600.0
_SECONDS_PER_DAY = 86_400.0
Origin = Literal["config", "api"]


class WebhookNotFoundError(LookupError):
    pass


class WebhookExistsError(ValueError):
    pass


class WebhooksUnavailableError(RuntimeError):
    """The sink has not started (or is restarting after a failure): nothing can be sent or changed."""


@dataclass(slots=True)
class EndpointStatus:
    """How one webhook is doing, kept in memory and shown by the API and /metrics."""

    backlog: int = 0  # deliveries pending
    dead_letters: int = 0
    delivered: int = 0  # since the appliance started
    failed_attempts: int = 0  # since the appliance started
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: float | None = None
    last_latency_ms: float | None = None
    next_attempt_at: float | None = None  # while a failed delivery waits for its retry

    def to_dict(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "dead_letters": self.dead_letters,
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "last_attempt_at": self.last_attempt_at,
            "last_latency_ms": None if self.last_latency_ms is None else round(self.last_latency_ms, 3),
            "next_attempt_at": self.next_attempt_at,
        }


@dataclass(eq=False, slots=True)
class _Endpoint:
    hook: WebhookConfig
    origin: Origin
    status: EndpointStatus = field(default_factory=EndpointStatus)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class TestDelivery:
    delivery_id: str
    attempt: Attempt


async def _complete(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the caller is cancelled meanwhile (then cancel the caller), so a
    write that has begun is always finished and accounted for."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class WebhookSink(Sink):
    name = "webhooks"

    def __init__(
        self, outbox: WebhookOutbox, definitions: SettingsStore, hub: Hub, settings: WebhookSettings
    ) -> None:
        self.outbox = outbox
        self.definitions = definitions
        self.hub = hub
        self.settings = settings
        self.sender: WebhookSender | None = None
        self._endpoints: dict[str, _Endpoint] | None = None
        self._subscription: Subscription | None = None
        self._unwritten: list[Message] = []
        # Held while events are matched and written, and while webhooks change: a delivery is never
        # written for a webhook that is being deleted.
        self._changing = asyncio.Lock()
        self._group: asyncio.TaskGroup | None = None
        self._events_taken = 0
        self._last_error: str | None = None

    # -- life ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._endpoints is None:
            await self._load()
        if self._subscription is None:
            self._subscription = self.hub.subscribe(self.name, TOPICS, maxsize=None)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.settings.policy), limit=0)
        session = aiohttp.ClientSession(connector=connector, trust_env=False)
        self.sender = WebhookSender(
            session,
            self.settings.policy,
            timeout_s=self.settings.timeout_s,
            max_redirects=self.settings.max_redirects,
            user_agent=USER_AGENT,
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        subscription = self._subscription
        if subscription is not None:
            self._unwritten.extend(subscription.drain())
            if exc is None:
                # Stopping: the hub queue goes. After a failure it stays, so that no event is missed
                # before the sink is entered again.
                self.hub.unsubscribe(subscription)
                self._subscription = None
        try:
            await self._write_unwritten()
        except sqlite3.Error:
            log.exception(
                "webhooks: events not written to the outbox yet",
                extra={"fields": {"unwritten": len(self._unwritten)}},
            )
        if self.sender is not None:
            await self.sender.session.close()
            self.sender = None

    async def run(self) -> None:
        if self._subscription is None or self._endpoints is None:
            raise RuntimeError("enter the webhook sink (async with) before running it")
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self._write_unwritten()
                for endpoint in self._endpoints.values():
                    self._start(endpoint)
                group.create_task(self._intake(self._subscription), name="webhooks-intake")
                group.create_task(self._retain_periodically(), name="webhooks-retention")
        finally:
            self._group = None
            for endpoint in self._endpoints.values():
                endpoint.task = None

    def stats(self) -> SinkStats:
        endpoints = self._endpoints or {}
        statuses = [e.status for e in endpoints.values()]
        queued = self._subscription.pending if self._subscription is not None else 0
        return SinkStats(
            connected=self.sender is not None and self._last_error is None,
            pending=queued + len(self._unwritten),
            delivered=sum(s.delivered for s in statuses),
            last_error=self._last_error,
            details={
                "webhooks": len(endpoints),
                "active": sum(e.hook.active for e in endpoints.values()),
                "events_taken": self._events_taken,
                "backlog": sum(s.backlog for s in statuses),
                "dead_letters": sum(s.dead_letters for s in statuses),
                "failed_attempts": sum(s.failed_attempts for s in statuses),
                "endpoints": {hook_id: e.status.to_dict() for hook_id, e in endpoints.items()},
            },
        )

    # -- the webhooks ----------------------------------------------------------------------------------------

    def hooks(self) -> list[tuple[WebhookConfig, Origin, EndpointStatus]]:
        return [(e.hook, e.origin, e.status) for e in self._loaded().values()]

    def hook(self, webhook_id: str) -> tuple[WebhookConfig, Origin, EndpointStatus]:
        endpoint = self._endpoint(webhook_id)
        return endpoint.hook, endpoint.origin, endpoint.status

    async def put(self, hook: WebhookConfig, *, create: bool) -> None:
        """Create or replace a webhook (saved, so it survives restarts); deliveries waiting for it go to
        its new URL with its new secret."""
        endpoints = self._loaded()
        async with self._changing:
            existing = endpoints.get(hook.id)
            if create and existing is not None:
                raise WebhookExistsError(f"a webhook {hook.id!r} exists already")
            if not create and existing is None:
                raise WebhookNotFoundError(hook.id)
            await self.definitions.put(SETTINGS_KIND, hook.id, hook.stored())
            if existing is not None:
                await self._stop(existing)
                existing.hook, existing.origin = hook, "api"
                endpoint = existing
            else:
                endpoint = endpoints[hook.id] = _Endpoint(hook, "api")
            self._start(endpoint)

    async def delete(self, webhook_id: str) -> int:
        """Delete a webhook with its pending deliveries, dead letters and log; returns how many
        deliveries went."""
        endpoints = self._loaded()
        async with self._changing:
            endpoint = self._endpoint(webhook_id)
            await self.definitions.delete(SETTINGS_KIND, webhook_id)
            await self._stop(endpoint)
            del endpoints[webhook_id]
            return await self.outbox.discard(endpoints)

    async def replay(self, webhook_id: str, delivery_ids: Iterable[str] | None = None) -> list[str]:
        """Dead letters of ``webhook_id`` made pending again (all, or those named); their ids."""
        endpoint = self._endpoint(webhook_id)
        replayed = await self.outbox.replay(webhook_id, delivery_ids)
        endpoint.status.dead_letters -= len(replayed)
        endpoint.status.backlog += len(replayed)
        endpoint.wake.set()
        return replayed

    async def send_test(self, webhook_id: str) -> TestDelivery:
        """Send a ``webhook.test`` delivery now, signed like any other, outside the outbox (it is neither
        retried nor logged); what the endpoint answered."""
        hook = self._endpoint(webhook_id).hook
        sender = self._sender()
        delivery_id = uuid.uuid4().hex
        data = json.dumps({"webhook_id": hook.id, "message": "a test delivery from InvisPose"})
        body = envelope(uuid.uuid4().hex, TEST_EVENT_TYPE, time.time(), delivery_id, data)
        attempt = await sender.send(hook, body, event_type=TEST_EVENT_TYPE, delivery_id=delivery_id)
        return TestDelivery(delivery_id, attempt)

    # -- intake ----------------------------------------------------------------------------------------------

    async def _intake(self, subscription: Subscription) -> None:
        while True:
            try:
                message = await subscription.get()
            except EOFError:
                return
            self._unwritten.append(message)
            self._unwritten.extend(subscription.drain())
            await self._write_unwritten()

    async def _write_unwritten(self) -> None:
        if self._unwritten:
            await _complete(self._write(list(self._unwritten)))

    async def _write(self, batch: list[Message]) -> None:
        endpoints = self._loaded()
        async with self._changing:
            owed = []
            for message in batch:
                if not isinstance(message.item, Event):
                    continue
                event = message.item
                webhook_ids = tuple(
                    hook_id
                    for hook_id, e in endpoints.items()
                    if e.hook.active and event_matches(e.hook.events, event.type.value)
                )
                owed.append(OutboxEvent(event.id, event.type.value, event.time, message.text, webhook_ids))
            try:
                made = await self.outbox.enqueue(owed)
            except sqlite3.Error as exc:
                self._last_error = f"outbox write failed: {type(exc).__name__}: {exc}"
                raise
            del self._unwritten[: len(batch)]
            self._last_error = None
            self._events_taken += len(batch)
            for delivery in made:
                endpoint = endpoints[delivery.webhook_id]
                endpoint.status.backlog += 1
                endpoint.wake.set()

    # -- delivery --------------------------------------------------------------------------------------------

    def _start(self, endpoint: _Endpoint) -> None:
        if self._group is None or not endpoint.hook.active or endpoint.task is not None:
            return
        endpoint.task = self._group.create_task(self._deliver(endpoint), name=f"webhook:{endpoint.hook.id}")

    async def _stop(self, endpoint: _Endpoint) -> None:
        task, endpoint.task = endpoint.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        endpoint.status.next_attempt_at = None

    async def _deliver(self, endpoint: _Endpoint) -> None:
        policy = endpoint.hook.retry_policy
        backoff = Backoff(min(1.0, policy.max_backoff_s), policy.max_backoff_s)
        while True:
            endpoint.wake.clear()
            batch = await self.outbox.pending(endpoint.hook.id, _BATCH)
            if not batch:
                await endpoint.wake.wait()
                continue
            for delivery in batch:
                await self._settle(endpoint, delivery, backoff)

    async def _settle(self, endpoint: _Endpoint, delivery: Delivery, backoff: Backoff) -> None:
        """Attempt ``delivery`` until it is delivered or dead."""
        hook = endpoint.hook
        body = envelope(
            delivery.event_id, delivery.event_type, delivery.event_time, delivery.id, delivery.message
        )
        number = delivery.attempts
        while True:
            number += 1
            attempt = await self._sender().send(
                hook, body, event_type=delivery.event_type, delivery_id=delivery.id
            )
            outcome = verdict(attempt, hook.retry_policy, number)
            record = AttemptRecord(
                number, time.time(), attempt.status, attempt.latency_ms, outcome, attempt.error
            )
            await _complete(self._record(endpoint, delivery, record))
            if outcome != "retry":
                backoff.reset()
                return
            delay = attempt.retry_after_s if attempt.retry_after_s is not None else backoff.next()
            endpoint.status.next_attempt_at = time.time() + delay
            await asyncio.sleep(delay)
            endpoint.status.next_attempt_at = None

    async def _record(self, endpoint: _Endpoint, delivery: Delivery, record: AttemptRecord) -> None:
        await self.outbox.record(delivery, record)
        status = endpoint.status
        status.last_status, status.last_error = record.status, record.error
        status.last_attempt_at, status.last_latency_ms = record.at, record.latency_ms
        if record.outcome == "delivered":
            status.delivered += 1
        else:
            status.failed_attempts += 1
        if record.outcome != "retry":
            status.backlog -= 1
        if record.outcome == "dead":
            status.dead_letters += 1
            log.warning(
                "webhook delivery failed for good; it is in the dead letters",
                extra={
                    "fields": {"webhook": endpoint.hook.id, "delivery": delivery.id, "error": record.error}
                },
            )

    # -- housekeeping ----------------------------------------------------------------------------------------

    async def _retain_periodically(self) -> None:
        while True:
            now = time.time()
            try:
                deleted = await self.outbox.apply_retention(
                    now - self.settings.log_retention_days * _SECONDS_PER_DAY,
                    now - self.settings.dead_letter_retention_days * _SECONDS_PER_DAY,
                )
                if deleted:
                    await self._count(backlog=False)
            except sqlite3.Error:
                log.exception("webhook outbox retention failed")
            await asyncio.sleep(RETENTION_PERIOD_S)

    async def _load(self) -> None:
        """The seed overlaid with the API's changes; deliveries owed to webhooks that no longer exist are
        discarded."""
        stored = await self.definitions.load(SETTINGS_KIND)
        changed = {row.id for row in stored}
        effective = overlay(((h.id, h.stored()) for h in self.settings.endpoints), stored)
        endpoints: dict[str, _Endpoint] = {}
        for hook_id, item in effective.items():
            try:
                hook = WebhookConfig.model_validate(item)
            except ValidationError as exc:
                log.error(
                    "webhook %s is no longer valid and is skipped; replace it through the API: %s",
                    hook_id,
                    exc,
                )
                continue
            endpoints[hook_id] = _Endpoint(hook, "api" if hook_id in changed else "config")
        discarded = await self.outbox.discard(endpoints)
        if discarded:
            log.warning(
                "webhooks: deliveries of webhooks that no longer exist were discarded",
                extra={"fields": {"deliveries": discarded}},
            )
        self._endpoints = endpoints
        await self._count(backlog=True)

    async def _count(self, *, backlog: bool) -> None:
        """Read the dead letters (and the backlog, which only the sink changes once it runs) from the
        outbox."""
        counts = await self.outbox.counts()
        for hook_id, endpoint in self._loaded().items():
            states = counts.get(hook_id, {})
            if backlog:
                endpoint.status.backlog = states.get("pending", 0)
            endpoint.status.dead_letters = states.get("dead", 0)

    def _loaded(self) -> dict[str, _Endpoint]:
        if self._endpoints is None:
            raise WebhooksUnavailableError("the webhooks have not been loaded yet; the sink is starting")
        return self._endpoints

    def _endpoint(self, webhook_id: str) -> _Endpoint:
        endpoint = self._loaded().get(webhook_id)
        if endpoint is None:
            raise WebhookNotFoundError(webhook_id)
        return endpoint

    def _sender(self) -> WebhookSender:
        if self.sender is None:
            raise WebhooksUnavailableError(
                "the webhook sink is not running (starting, or restarting after a failure)"
            )
        return self.sender
