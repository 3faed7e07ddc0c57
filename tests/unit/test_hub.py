"""The hub: fan-out to every subscriber, bounded queues that drop the oldest, and no backpressure."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.events import Event, EventType
from appliance.hub import Hub
from appliance.pose.frame import PoseFrame


def pose_frame(frame_id: int) -> PoseFrame:
    return PoseFrame(
        timestamp=time.time(),
        frame_id=frame_id,
        source="simulated",
        estimator="motion",
        model_version=None,
        presence=False,
        motion=False,
        motion_score=0.0,
        person_count=None,
        persons=(),
        confidence=1.0,
        processing_ms=0.1,
        links=(),
    )


async def test_every_subscriber_gets_every_item_in_order() -> None:
    hub = Hub()
    a, b = hub.subscribe("a"), hub.subscribe("b")
    for i in range(5):
        hub.publish(pose_frame(i))
    for sub in (a, b):
        got = [await sub.get() for _ in range(5)]
        assert [f.frame_id for f in got if isinstance(f, PoseFrame)] == [0, 1, 2, 3, 4]
        assert sub.dropped == 0


async def test_full_queue_drops_oldest_and_counts_it() -> None:
    hub = Hub()
    sub = hub.subscribe("slow", maxsize=3)
    for i in range(10):
        hub.publish(pose_frame(i))
    assert sub.dropped == 7
    assert sub.pending == 3
    got = [await sub.get() for _ in range(3)]
    assert [f.frame_id for f in got if isinstance(f, PoseFrame)] == [7, 8, 9]


async def test_stalled_subscriber_does_not_slow_another() -> None:
    """One subscriber never reads; the other still gets all 5000 items, in order, and loses none.

    ``publish`` is synchronous, so it cannot wait for a subscriber by construction; what can go wrong is
    one queue's state leaking into another's, which the counts below would show."""
    hub = Hub()
    stalled = hub.subscribe("stalled", maxsize=8)
    live = hub.subscribe("live", maxsize=10_000)
    received: list[int] = []

    async def consume() -> None:
        async for item in live:
            assert isinstance(item, PoseFrame)
            received.append(item.frame_id)
            if len(received) == 5000:
                return

    consumer = asyncio.create_task(consume())
    for i in range(5000):
        hub.publish(pose_frame(i))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(consumer, timeout=5)
    assert received == list(range(5000))
    assert stalled.dropped == 5000 - 8
    assert live.dropped == 0


async def test_subscribers_choose_frames_or_events() -> None:
    hub = Hub()
    events_only = hub.subscribe("webhooks", frames=False)
    frames_only = hub.subscribe("video", events=False)
    hub.publish(pose_frame(1))
    hub.publish(Event(EventType.SYSTEM_STARTED))
    assert events_only.pending == 1 and isinstance(await events_only.get(), Event)
    assert frames_only.pending == 1 and isinstance(await frames_only.get(), PoseFrame)


async def test_close_ends_iteration_and_unsubscribe_stops_delivery() -> None:
    hub = Hub()
    sub = hub.subscribe("a")
    other = hub.subscribe("b")
    hub.publish(pose_frame(1))
    hub.unsubscribe(other)
    hub.publish(pose_frame(2))
    assert other.pending == 1
    hub.close()
    items = [item async for item in sub]
    assert len(items) == 2
    with pytest.raises(EOFError):
        await sub.get()


def test_a_queue_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Hub().subscribe("x", maxsize=0)


async def test_counters_report_what_was_published_and_delivered() -> None:
    """What /metrics and system/performance show for the hub and each subscriber."""
    hub = Hub()
    frames_only = hub.subscribe("video", maxsize=2, events=False)
    everything = hub.subscribe("history")
    assert hub.subscriptions == (frames_only, everything)
    for i in range(3):
        hub.publish(pose_frame(i))
    hub.publish(Event(EventType.SYSTEM_STARTED))
    assert hub.published == 4
    assert (frames_only.pending, frames_only.dropped, frames_only.delivered) == (2, 1, 0)
    await frames_only.get()
    assert (frames_only.pending, frames_only.delivered) == (1, 1)
    assert [everything.wants(pose_frame(9)), frames_only.wants(Event(EventType.SYSTEM_STOPPED))] == [
        True,
        False,
    ]
    hub.unsubscribe(frames_only)
    hub.unsubscribe(frames_only)  # twice is harmless
    assert hub.subscriptions == (everything,)
    assert everything.maxsize == 64  # the default room of a subscriber
    hub.close()
    assert hub.subscriptions == ()


def test_a_queue_of_one_is_allowed() -> None:
    sub = Hub().subscribe("latest-only", maxsize=1)
    assert sub.maxsize == 1
