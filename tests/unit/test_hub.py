"""The hub: topic-named messages encoded once, MQTT-style filters, retained topics, bounded queues that drop
the oldest, lossless queues that never do, and no backpressure."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from appliance.contracts import (
    SNAPSHOT_TOPIC,
    Event,
    EventType,
    OverlaySnapshot,
    PersonUpdate,
    PoseFrame,
    SystemStatus,
    ZoneOccupancy,
)
from appliance.hub import Hub, topic_matches, valid_filter
from appliance.integrations.history import TOPICS as HISTORY_TOPICS
from appliance.integrations.webhooks.sink import TOPICS as WEBHOOK_TOPICS
from tests.factories import T0, event, frame_at, person_pose


def frame_ids(messages: list[object]) -> list[int]:
    return [m.item.frame_id for m in messages if isinstance(m.item, PoseFrame)]  # type: ignore[attr-defined]


async def test_every_subscriber_gets_every_message_in_order() -> None:
    hub = Hub()
    a, b = hub.subscribe("a"), hub.subscribe("b")
    for i in range(5):
        hub.publish(frame_at(T0, frame_id=i))
    for sub in (a, b):
        got = [await sub.get() for _ in range(5)]
        assert frame_ids(got) == [0, 1, 2, 3, 4]
        assert sub.dropped == 0


def test_each_message_is_encoded_once_as_its_serializer_says() -> None:
    hub = Hub()
    frame = frame_at(T0, [(3, 1.0, 2.0, "sofa", "sitting")], frame_id=7)
    message = hub.publish(frame)
    assert message is not None and message.topic == "pose"
    # The exact text REST's "current" has always answered: json.dumps of the serializer's dict.
    assert message.text == json.dumps(frame.to_dict())
    assert hub.latest("pose") is message


@pytest.mark.parametrize(
    ("item", "topic"),
    [
        (frame_at(T0), "pose"),
        (PersonUpdate(frame_at(T0), person_pose(4, 1.0, 1.0)), "person/4"),
        (ZoneOccupancy(T0, "kitchen", "Kitchen", 1, (4,), "esp32", "model"), "zone/kitchen"),
        (Event(EventType.PERSON_ENTERED_ZONE), "event/person.entered_zone"),
        (Event(EventType.ALERT_HIGH_OCCUPANCY), "alert/high_occupancy"),
        (SystemStatus(T0, "1", 1.0, "simulated", None, 0, (), ()), "status"),
    ],
    ids=["pose", "person", "zone", "event", "alert", "status"],
)
def test_topics_follow_the_contract(item: object, topic: str) -> None:
    assert item.topic == topic  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("#", "pose", True),
        ("#", "event/person.detected", True),
        ("event/#", "event/person.detected", True),
        ("event/#", "event", True),  # MQTT: "a/#" matches "a" as well
        ("event/#", "alert/high_occupancy", False),
        ("zone/+", "zone/kitchen", True),
        ("zone/+", "zone", False),
        ("zone/+", "zone/kitchen/extra", False),
        ("pose", "pose", True),
        ("pose", "person/1", False),
        ("person/+", "person/12", True),
        ("+/+", "zone/kitchen", True),
        # MQTT 3.1.1, 4.7.2: a filter starting with a wildcard never matches a topic starting with $.
        ("#", "$video/snapshot", False),
        ("+/snapshot", "$video/snapshot", False),
        ("+/#", "$video/snapshot", False),
        ("$video/#", "$video/snapshot", True),
        ("$video/+", "$video/snapshot", True),
        ("$video/snapshot", "$video/snapshot", True),
    ],
)
def test_topic_filters_have_mqtt_semantics(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [("pose", True), ("zone/+", True), ("#", True), ("event/#", True), ("#/x", False), ("zo+ne", False),
     ("", False), ("zone//x", False), ("a/b#", False)],
)  # fmt: skip
def test_filters_from_clients_are_checked(pattern: str, valid: bool) -> None:
    assert valid_filter(pattern) is valid


async def test_subscribers_choose_topics() -> None:
    hub = Hub()
    events_only = hub.subscribe("webhooks", ("event/#", "alert/#"))
    frames_only = hub.subscribe("video", ("pose",))
    hub.publish(frame_at(T0, frame_id=1))
    hub.publish(Event(EventType.SYSTEM_STARTED))
    hub.publish(Event(EventType.ALERT_SYSTEM_ERROR))
    assert events_only.pending == 2
    assert [m.topic for m in events_only.drain()] == ["event/system.started", "alert/system_error"]
    assert frames_only.pending == 1 and isinstance((await frames_only.get()).item, PoseFrame)


def test_the_snapshot_reaches_only_those_who_name_it_never_history_webhooks_or_everything() -> None:
    hub = Hub()
    history = hub.subscribe("history", HISTORY_TOPICS)
    webhooks = hub.subscribe("webhooks", WEBHOOK_TOPICS, maxsize=None)
    everything = hub.subscribe("everything")
    assert not hub.wanted(SNAPSHOT_TOPIC)  # so the video sink renders none
    camera = hub.subscribe("mqtt", ("pose", SNAPSHOT_TOPIC))
    assert hub.wanted(SNAPSHOT_TOPIC)
    snapshot = OverlaySnapshot(T0, 2, 2, None, None, "anBlZw==")
    message = hub.publish(snapshot)
    assert message is not None and message.topic == SNAPSHOT_TOPIC
    assert json.loads(message.text)["jpeg_base64"] == "anBlZw=="
    assert hub.latest(SNAPSHOT_TOPIC) is None  # not retained: no stale picture for late subscribers
    assert [m.item for m in camera.drain()] == [snapshot]
    assert history.pending == webhooks.pending == everything.pending == 0
    hub.unsubscribe(camera)
    assert not hub.wanted(SNAPSHOT_TOPIC)


def test_only_retained_topics_are_kept_and_a_forgotten_one_is_gone() -> None:
    hub = Hub()
    hub.publish(frame_at(T0, frame_id=1))
    hub.publish(ZoneOccupancy(T0, "kitchen", "Kitchen", None, (), "esp32", "motion"))
    hub.publish(PersonUpdate(frame_at(T0), person_pose(4, 1.0, 1.0)))
    hub.publish(event())
    assert sorted(m.topic for m in hub.retained()) == ["pose", "zone/kitchen"]
    assert [m.topic for m in hub.retained("zone/+")] == ["zone/kitchen"]
    assert hub.latest("person/4") is None
    hub.forget("zone/kitchen")
    assert hub.latest("zone/kitchen") is None
    hub.forget("zone/never-published")  # deleting a zone that never had a reading is no error
    assert sorted(m.topic for m in hub.retained()) == ["pose"]


async def test_full_queue_drops_oldest_and_counts_it() -> None:
    hub = Hub()
    sub = hub.subscribe("slow", maxsize=3)
    for i in range(10):
        hub.publish(frame_at(T0, frame_id=i))
    assert sub.dropped == 7
    assert sub.pending == 3
    assert frame_ids([await sub.get() for _ in range(3)]) == [7, 8, 9]


def test_a_lossless_queue_never_drops() -> None:
    hub = Hub()
    outbox = hub.subscribe("webhooks", ("event/#",), maxsize=None)
    for _ in range(10_000):
        hub.publish(event())
    assert outbox.pending == 10_000 and outbox.dropped == 0


async def test_stalled_subscriber_does_not_slow_another() -> None:
    """One subscriber never reads; the other still gets all 5000 messages, in order, and loses none.

    ``publish`` is synchronous, so it cannot wait for a subscriber by construction; what can go wrong is
    one queue's state leaking into another's, which the counts below would show."""
    hub = Hub()
    stalled = hub.subscribe("stalled", maxsize=8)
    live = hub.subscribe("live", maxsize=10_000)
    received: list[int] = []

    async def consume() -> None:
        async for message in live:
            assert isinstance(message.item, PoseFrame)
            received.append(message.item.frame_id)
            if len(received) == 5000:
                return

    consumer = asyncio.create_task(consume())
    for i in range(5000):
        hub.publish(frame_at(T0, frame_id=i))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(consumer, timeout=5)
    assert received == list(range(5000))
    assert stalled.dropped == 5000 - 8
    assert live.dropped == 0


async def test_close_ends_iteration_and_unsubscribe_stops_delivery() -> None:
    hub = Hub()
    sub = hub.subscribe("a")
    other = hub.subscribe("b")
    hub.publish(frame_at(T0, frame_id=1))
    hub.unsubscribe(other)
    hub.publish(frame_at(T0, frame_id=2))
    assert other.pending == 1
    hub.close()
    items = [item async for item in sub]
    assert len(items) == 2
    with pytest.raises(EOFError, match="subscription 'a' is closed"):
        await sub.get()


def test_a_bounded_queue_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Hub().subscribe("x", maxsize=0)


async def test_counters_report_what_was_published_and_delivered() -> None:
    """What /metrics and system/performance show for the hub and each subscriber."""
    hub = Hub()
    frames_only = hub.subscribe("video", ("pose",), maxsize=2)
    everything = hub.subscribe("history")
    assert hub.subscriptions == (frames_only, everything)
    assert [sub.name for sub in hub.subscriptions] == ["video", "history"]  # how /metrics labels them
    for i in range(3):
        hub.publish(frame_at(T0, frame_id=i))
    hub.publish(Event(EventType.SYSTEM_STARTED))
    assert hub.published == 4
    assert (frames_only.pending, frames_only.dropped, frames_only.delivered) == (2, 1, 0)
    await frames_only.get()
    assert (frames_only.pending, frames_only.delivered) == (1, 1)
    assert [everything.wants("pose"), frames_only.wants("event/system.stopped")] == [True, False]
    hub.unsubscribe(frames_only)
    hub.unsubscribe(frames_only)  # twice is harmless
    assert hub.subscriptions == (everything,)
    assert everything.maxsize == 64  # the default room of a subscriber
    hub.close()
    assert hub.subscriptions == ()


def test_a_queue_of_one_is_allowed() -> None:
    sub = Hub().subscribe("latest-only", maxsize=1)
    assert sub.maxsize == 1


async def test_delivered_counts_every_message_handed_out_by_get_and_by_drain() -> None:
    """A sink's "delivered" figure is the sum of what it took, one at a time or all at once."""
    hub = Hub()
    sub = hub.subscribe("history")
    for i in range(5):
        hub.publish(frame_at(T0, frame_id=i))
    await sub.get()
    await sub.get()
    assert sub.delivered == 2
    assert frame_ids(sub.drain()) == [2, 3, 4]
    assert sub.delivered == 5
    hub.publish(frame_at(T0, frame_id=5))
    assert frame_ids(sub.drain()) == [5]
    assert (sub.delivered, sub.pending) == (6, 0)


def test_an_unencodable_item_is_counted_and_logged_with_its_topic(caplog: pytest.LogCaptureFixture) -> None:
    """A producer's bug reaches nobody, and the log (appliance/logs.py: fields as data) says which topic."""
    hub = Hub()
    sub = hub.subscribe("all")
    with caplog.at_level(logging.ERROR, logger="appliance.hub"):
        for _ in range(2):
            assert hub.publish(Event(EventType.SYSTEM_STARTED, {"not json": object()})) is None
    assert (hub.unencodable, hub.published, sub.pending) == (2, 0, 0)
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.getMessage().startswith("hub: cannot encode")
        assert record.exc_info is not None
        assert getattr(record, "fields", None) == {"topic": "event/system.started"}
