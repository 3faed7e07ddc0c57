"""``Outbox``: what waits for the broker, bounded whether the broker is fast, slow or gone.

Readings (the room now, a zone's occupancy, the status) are worth sending only while they are the latest:
one waits per topic, and a newer one replaces it (``superseded``). Events (a fall, a zone entered, an
alert) are each owed: they wait in order, up to ``max_events``; beyond that the oldest is dropped and
counted (``dropped``). So while the broker is away the outbox holds at most one reading per topic and
``max_events`` events, however long it stays away; events go out first when it is back.
"""

from __future__ import annotations

import asyncio
from collections import deque

from appliance.integrations.mqtt.topics import Publication


class Outbox:
    def __init__(self, max_events: int, max_readings: int) -> None:
        if max_events < 1 or max_readings < 1:
            raise ValueError("the outbox needs room for at least one event and one reading")
        self.max_events = max_events
        self.max_readings = max_readings
        self._events: deque[Publication] = deque()
        self._readings: dict[str, Publication] = {}
        self._ready = asyncio.Event()
        self.superseded = 0  # readings replaced by a newer one of the same topic before they were sent
        self.dropped = 0  # events lost because ``max_events`` were already waiting
        self.high_water = 0  # the most messages that have waited at once

    def __len__(self) -> int:
        return len(self._events) + len(self._readings)

    @property
    def events(self) -> int:
        return len(self._events)

    @property
    def readings(self) -> int:
        return len(self._readings)

    def put(self, publication: Publication) -> None:
        if publication.reading:
            replaced = self._readings.pop(publication.topic, None)
            if replaced is not None:
                self.superseded += 1
            elif len(self._readings) >= self.max_readings:
                # More distinct topics than room (people come and go while the broker is away): the
                # reading waiting longest is the stalest.
                del self._readings[next(iter(self._readings))]
                self.superseded += 1
            self._readings[publication.topic] = publication
        else:
            if len(self._events) >= self.max_events:
                self._events.popleft()
                self.dropped += 1
            self._events.append(publication)
        self.high_water = max(self.high_water, len(self))
        self._ready.set()

    def put_back(self, publication: Publication) -> None:
        """Return a message whose sending failed, to be sent first once the broker is back. A reading
        that a newer one has replaced meanwhile stays replaced."""
        if publication.reading:
            if publication.topic not in self._readings:
                self._readings = {publication.topic: publication, **self._readings}
        else:
            self._events.appendleft(publication)
            if len(self._events) > self.max_events:
                self._events.pop()
                self.dropped += 1
        self._ready.set()

    def take_nowait(self) -> Publication | None:
        """The next message to send (events first), or None when nothing waits."""
        if self._events:
            return self._events.popleft()
        if self._readings:
            topic = next(iter(self._readings))
            return self._readings.pop(topic)
        return None

    def take_readings(self) -> list[Publication]:
        """Every waiting reading at once, oldest first (sent before ``online`` on a reconnect)."""
        readings = list(self._readings.values())
        self._readings.clear()
        return readings

    async def take(self) -> Publication:
        while True:
            publication = self.take_nowait()
            if publication is not None:
                return publication
            self._ready.clear()
            await self._ready.wait()
