"""In-process publish/subscribe between the pipeline and its sinks.

Each subscriber owns a bounded queue. Publishing never blocks and never waits for a subscriber: when a
queue is full its oldest item is dropped and the subscriber's ``dropped`` counter grows, so a slow sink
loses old frames (and can report that) instead of slowing the pipeline or any other sink.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from appliance.events import Event
from appliance.pose.frame import PoseFrame

HubItem = PoseFrame | Event


@dataclass(eq=False)
class Subscription:
    """One subscriber's view of the hub: iterate it, read ``dropped`` to learn how far behind it fell."""

    name: str
    maxsize: int
    frames: bool = True
    events: bool = True
    dropped: int = 0
    delivered: int = 0
    _items: deque[HubItem] = field(default_factory=deque, repr=False)
    _ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _closed: bool = False

    def wants(self, item: HubItem) -> bool:
        return self.events if isinstance(item, Event) else self.frames

    def offer(self, item: HubItem) -> None:
        if len(self._items) >= self.maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._items)

    async def get(self) -> HubItem:
        """The oldest item not yet taken, waiting for one if needed; raises ``EOFError`` once closed."""
        while not self._items:
            if self._closed:
                raise EOFError(f"subscription {self.name!r} is closed")
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        return self._items.popleft()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[HubItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[HubItem]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return


class Hub:
    """Fan-out of ``PoseFrame``s and ``Event``s to any number of subscribers."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self.published = 0

    def subscribe(
        self, name: str, *, maxsize: int = 64, frames: bool = True, events: bool = True
    ) -> Subscription:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one item")
        sub = Subscription(name=name, maxsize=maxsize, frames=frames, events=events)
        self._subscriptions.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def publish(self, item: HubItem) -> None:
        """Hand ``item`` to every interested subscriber; never blocks."""
        self.published += 1
        for sub in self._subscriptions:
            if sub.wants(item):
                sub.offer(item)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def close(self) -> None:
        for sub in self._subscriptions:
            sub.close()
        self._subscriptions.clear()
