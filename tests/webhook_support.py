"""A real HTTP receiver on loopback for webhook tests, which checks every signature as a user's would, and
the app with webhooks to such receivers.

The signature check here is written from the specification (README: Webhooks, and the issue): HMAC-SHA256
with the webhook's secret over ``<t>.<body>`` in ``X-InvisPose-Signature: t=<unix>,v1=<hex>``, and over
the body alone in ``X-Signature: sha256=<hex>``. It never calls the appliance's signing code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from appliance.api.keys import HUB
from appliance.api.resource_keys import RESOURCES
from appliance.contracts import Event, EventType
from appliance.integrations.webhooks.sink import WebhookSink
from tests.app_support import Client, start
from tests.factories import event

SECRET = "a-receiver-secret-of-some-length"
# What a receiver accepts as fresh: the README tells receivers to refuse older signatures.
FRESH_S = 300


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]
    at: float  # monotonic
    path: str

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def delivery_id(self) -> str:
        return str(self.payload["delivery_id"])

    @property
    def event_type(self) -> str:
        return str(self.payload["event_type"])


def signature_problem(secret: str, body: bytes, headers: dict[str, str], now: float) -> str | None:
    """Why a delivery's signatures do not hold, or None."""
    try:
        fields = dict(part.split("=", 1) for part in headers["X-InvisPose-Signature"].split(","))
        t = int(fields["t"])
    except (KeyError, ValueError):
        return f"malformed X-InvisPose-Signature: {headers.get('X-InvisPose-Signature')!r}"
    expected = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("v1", "")):
        return "X-InvisPose-Signature v1 does not match"
    plain = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if headers.get("X-Signature") != f"sha256={plain}":
        return "X-Signature does not match"
    if headers.get("X-Timestamp") != str(t):
        return "X-Timestamp differs from the signed t"
    if abs(now - t) > FRESH_S:
        return f"signed {now - t:.0f} s ago"
    return None


Answer = Callable[[Received], Awaitable[web.StreamResponse]]


async def accept(received: Received) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass(eq=False)
class Receiver:
    """An aiohttp server on 127.0.0.1 that records every request and answers with ``answer``."""

    secret: str = SECRET
    answer: Answer = accept
    port: int = 0
    received: list[Received] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(body, dict(request.headers), time.monotonic(), request.path)
        problem = signature_problem(self.secret, body, received.headers, time.time())
        if problem is not None:
            self.bad_signatures.append(problem)
        self.received.append(received)
        return await self.answer(received)

    def delivered_ids(self) -> list[str]:
        """Delivery ids in the order they first arrived (a redelivery is not counted twice)."""
        seen: list[str] = []
        for received in self.received:
            if received.delivery_id not in seen:
                seen.append(received.delivery_id)
        return seen


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def sink_of(client: Client) -> WebhookSink:
    runner = client.app[RESOURCES].sinks
    sink = runner.sink("webhooks") if runner is not None else None
    assert isinstance(sink, WebhookSink)
    return sink


def publish(client: Client, count: int, kind: EventType = EventType.PERSON_DETECTED) -> list[Event]:
    events = [event(kind, person_id=i, n=i) for i in range(count)]
    for item in events:
        client.app[HUB].publish(item)
    return events


async def started(
    aiohttp_client: Any, tmp_path: Path, *hooks: dict[str, Any], **settings: Any
) -> tuple[Client, dict[str, str]]:
    """The app with ``hooks`` as its seed webhooks, and an admin's Authorization header."""
    return await start(aiohttp_client, tmp_path, silent=True, **webhook_overrides(*hooks, **settings))


def event_ids(receiver: Receiver, *, skip_system: bool = True) -> list[str]:
    """The events in the order their deliveries first arrived (the app's own system.started left out)."""
    ids: list[str] = []
    seen: set[str] = set()
    for received in receiver.received:
        if received.delivery_id in seen or (skip_system and received.event_type.startswith("system.")):
            continue
        seen.add(received.delivery_id)
        ids.append(received.payload["id"])
    return ids


def hook(receiver: Receiver, hook_id: str = "recv", **fields: Any) -> dict[str, Any]:
    """A seed webhook (``webhooks.endpoints`` item) delivering to ``receiver``."""
    return {
        "id": hook_id,
        "url": receiver.url(f"/{hook_id}"),
        "events": ["*"],
        "secret": receiver.secret,
        **fields,
    }


def webhook_overrides(*hooks: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """Config overrides for an app whose webhooks reach loopback receivers; mDNS off."""
    return {
        "webhooks.allow_loopback": True,
        "webhooks.endpoints": list(hooks),
        "mdns.enabled": False,
        **{f"webhooks.{key}": value for key, value in settings.items()},
    }
