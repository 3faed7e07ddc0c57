"""In-process publish/subscribe of topic-named messages between the pipeline and its sinks.

Everything published is a contract message (``appliance.contracts``) with a topic: ``pose``,
``person/<id>``, ``zone/<id>``, ``status``, ``controls``, ``config/zones``, ``event/<dotted type>`` and
``alert/<category>``. The hub wraps it in a ``Message`` whose JSON is encoded once, here, and shared by
every sink (REST's "current", WebSocket, MQTT, webhooks). The latest message of each *retained* topic
(``pose``, ``zone/<id>``, ``status``, ``controls``, ``config/zones``) is kept: ``latest(topic)`` serves
"current" to REST and to a sink that has just connected.

Subscribers choose topics with MQTT-style filters (``+`` one level, ``#`` the rest: ``event/#``,
``zone/+``). As in MQTT, a filter that starts with a wildcard does not match a topic that starts with
``$``: ``$video/snapshot`` (a JPEG every few seconds) reaches only subscribers that name it, and a producer
can ask ``wanted(topic)`` to make such a message only while somebody takes it. Each subscriber owns a
queue, and publishing never blocks or waits for one:

- a *bounded* queue (the default) drops its oldest message when full and counts it in ``dropped``: a slow
  sink loses old frames (and can tell its clients so) instead of slowing the pipeline or another sink;
- a *lossless* queue (``maxsize=None``) never drops. It is for sinks that owe every event (webhooks),
  which subscribe to events only - a few per second at most - and move each message into their durable
  outbox as soon as they take it, so the queue stays short; its length is reported as the sink's lag.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from appliance.contracts import (
    ControlState,
    Event,
    OverlaySnapshot,
    PersonUpdate,
    PoseFrame,
    SystemStatus,
    ZoneLayout,
    ZoneOccupancy,
)

log = logging.getLogger(__name__)

HubItem = (
    PoseFrame
    | PersonUpdate
    | ZoneOccupancy
    | Event
    | SystemStatus
    | ZoneLayout
    | ControlState
    | OverlaySnapshot
)
EVERYTHING = "#"


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter semantics: ``+`` matches one level, a trailing ``#`` this level and all below; a
    wildcard first level never matches a ``$`` topic (MQTT 3.1.1, 4.7.2)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    wanted = pattern.split("/")
    levels = topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


def valid_filter(pattern: str) -> bool:
    """A filter a client may send: no empty level, wildcards only as whole levels, ``#`` only last."""
    parts = pattern.split("/")
    for index, part in enumerate(parts):
        if not part:
            return False
        if part == "#":
            if index != len(parts) - 1:
                return False
        elif part != "+" and ("+" in part or "#" in part):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Message:
    """A published item, its topic, and its JSON encoded once for every sink."""

    topic: str
    item: HubItem
    text: str

    @classmethod
    def of(cls, item: HubItem) -> Message:
        return cls(item.topic, item, json.dumps(item.to_dict()))

    @property
    def retained(self) -> bool:
        return self.item.retained


@dataclass(eq=False)
class Subscription:
    """One subscriber's view of the hub: iterate it; ``dropped`` says how many messages it lost."""

    name: str
    topics: set[str]
    maxsize: int | None  # None: lossless
    dropped: int = 0
    delivered: int = 0
    _items: deque[Message] = field(default_factory=deque, repr=False)
    _ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _closed: bool = False

    def wants(self, topic: str) -> bool:
        return any(topic_matches(pattern, topic) for pattern in self.topics)

    def offer(self, message: Message) -> None:
        if self.maxsize is not None and len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(message)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    async def get(self) -> Message:
        """The oldest message not yet taken, waiting for one if needed; raises ``EOFError`` once closed
        and empty."""
        while not self._items:
            if self._closed:
                raise EOFError(f"subscription {self.name!r} is closed")
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        return self._items.popleft()

    def drain(self) -> list[Message]:
        """Take every message still queued at once (a sink writing what it owes as it stops)."""
        items = list(self._items)
        self.delivered += len(items)
        self._items.clear()
        return items

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return


class Hub:
    """Fan-out of topic-named messages to any number of subscribers, keeping retained topics' latest."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._latest: dict[str, Message] = {}
        self.published = 0
        self.unencodable = 0

    def subscribe(
        self, name: str, topics: Iterable[str] = (EVERYTHING,), *, maxsize: int | None = 64
    ) -> Subscription:
        """A new subscriber to ``topics`` (filters); ``maxsize=None`` makes its queue lossless."""
        if maxsize is not None and maxsize < 1:
            raise ValueError("a subscription needs room for at least one item")
        sub = Subscription(name=name, topics=set(topics), maxsize=maxsize)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def publish(self, item: HubItem) -> Message | None:
        """Encode ``item`` once and hand it to every interested subscriber; never blocks, never raises.
        An item whose data JSON cannot encode (a bug in its producer) reaches nobody: it is logged and
        counted in ``unencodable``, and the publisher goes on."""
        try:
            message = Message.of(item)
        except (TypeError, ValueError):
            self.unencodable += 1
            log.exception("hub: cannot encode a message; dropped", extra={"fields": {"topic": item.topic}})
            return None
        self.published += 1
        if message.retained:
            self._latest[message.topic] = message
        for sub in self._subscriptions:
            if sub.wants(message.topic):
                sub.offer(message)
        return message

    def wanted(self, topic: str) -> bool:
        """Whether any subscriber takes ``topic`` now (a producer skips costly messages nobody reads)."""
        return any(sub.wants(topic) for sub in self._subscriptions)

    def latest(self, topic: str) -> Message | None:
        """The last message of a retained topic, or None if there has been none (or it was forgotten)."""
        return self._latest.get(topic)

    def retained(self, pattern: str = EVERYTHING) -> list[Message]:
        """Every kept message whose topic matches ``pattern``, for a sink that has just connected."""
        return [m for topic, m in self._latest.items() if topic_matches(pattern, topic)]

    def forget(self, topic: str) -> None:
        """Drop a retained topic that no longer exists (a deleted zone)."""
        self._latest.pop(topic, None)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.close()
        self._subscriptions.clear()
