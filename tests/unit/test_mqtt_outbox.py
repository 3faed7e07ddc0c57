"""The MQTT outbox: readings keep only their latest, events wait in order up to a limit, drops counted."""

from __future__ import annotations

import asyncio

import pytest

from appliance.integrations.mqtt.outbox import Outbox
from appliance.integrations.mqtt.topics import Publication


def reading(topic: str, payload: str = "{}") -> Publication:
    return Publication(topic, payload, 0, True, reading=True)


def event(n: int) -> Publication:
    return Publication("events/person.detected", f'{{"n": {n}}}', 1, False, reading=False)


def drain(outbox: Outbox) -> list[Publication]:
    taken = []
    while (publication := outbox.take_nowait()) is not None:
        taken.append(publication)
    return taken


def test_a_newer_reading_replaces_the_waiting_one_of_its_topic() -> None:
    outbox = Outbox(max_events=10, max_readings=10)
    for i in range(50):
        outbox.put(reading("pose/current", str(i)))
        outbox.put(reading("system/status", str(i)))
    assert len(outbox) == 2
    assert [p.payload for p in drain(outbox)] == ["49", "49"]
    assert outbox.superseded == 98 and outbox.dropped == 0


def test_events_wait_in_order_and_beyond_the_limit_the_oldest_go_and_are_counted() -> None:
    outbox = Outbox(max_events=5, max_readings=10)
    for n in range(12):
        outbox.put(event(n))
    assert outbox.events == 5 and outbox.dropped == 7
    assert [p.payload for p in drain(outbox)] == [f'{{"n": {n}}}' for n in range(7, 12)]


def test_events_leave_before_readings() -> None:
    outbox = Outbox(max_events=5, max_readings=5)
    outbox.put(reading("pose/current"))
    outbox.put(event(1))
    assert [p.reading for p in drain(outbox)] == [False, True]


def test_more_reading_topics_than_room_drop_the_stalest() -> None:
    outbox = Outbox(max_events=5, max_readings=3)
    for person in range(5):
        outbox.put(reading(f"pose/person/{person}/update"))
    assert [p.topic for p in drain(outbox)] == [f"pose/person/{p}/update" for p in (2, 3, 4)]
    assert outbox.superseded == 2


def test_a_failed_send_goes_back_to_the_front_unless_a_newer_reading_replaced_it() -> None:
    outbox = Outbox(max_events=3, max_readings=5)
    outbox.put(event(1))
    outbox.put(event(2))
    first = outbox.take_nowait()
    assert first is not None
    outbox.put_back(first)
    assert [p.payload for p in drain(outbox)] == ['{"n": 1}', '{"n": 2}']

    outbox.put(reading("pose/current", "old"))
    old = outbox.take_nowait()
    assert old is not None
    outbox.put(reading("pose/current", "new"))
    outbox.put_back(old)
    assert [p.payload for p in drain(outbox)] == ["new"]


def test_putting_back_into_a_full_event_queue_drops_the_newest() -> None:
    outbox = Outbox(max_events=2, max_readings=2)
    outbox.put(event(1))
    failed = outbox.take_nowait()
    assert failed is not None
    outbox.put(event(2))
    outbox.put(event(3))
    outbox.put_back(failed)
    assert [p.payload for p in drain(outbox)] == ['{"n": 1}', '{"n": 2}']
    assert outbox.dropped == 1


def test_high_water_is_the_most_that_waited_at_once() -> None:
    outbox = Outbox(max_events=100, max_readings=100)
    for n in range(7):
        outbox.put(event(n))
    drain(outbox)
    outbox.put(event(8))
    assert outbox.high_water == 7


async def test_take_waits_for_the_next_message() -> None:
    outbox = Outbox(max_events=2, max_readings=2)
    waiting = asyncio.create_task(outbox.take())
    await asyncio.sleep(0)
    assert not waiting.done()
    outbox.put(event(1))
    assert (await asyncio.wait_for(waiting, 1)).payload == '{"n": 1}'


def test_an_outbox_needs_room() -> None:
    with pytest.raises(ValueError, match="room"):
        Outbox(max_events=0, max_readings=1)


def test_the_smallest_outbox_holds_one_event_and_one_reading() -> None:
    outbox = Outbox(max_events=1, max_readings=1)
    assert outbox.high_water == 0
    outbox.put(event(1))
    outbox.put(reading("pose/current"))
    assert (outbox.events, outbox.readings, outbox.dropped, outbox.superseded) == (1, 1, 0, 0)
    for events, readings in ((1, 0), (0, 1)):
        with pytest.raises(
            ValueError, match=r"^the outbox needs room for at least one event and one reading$"
        ):
            Outbox(max_events=events, max_readings=readings)


def test_a_reading_put_back_goes_before_the_readings_that_came_after_it() -> None:
    outbox = Outbox(max_events=2, max_readings=5)
    outbox.put(reading("pose/current", "sent"))
    failed = outbox.take_nowait()
    assert failed is not None
    outbox.put(reading("system/status"))
    outbox.put_back(failed)
    assert [(p.topic, p.payload) for p in drain(outbox)] == [
        ("pose/current", "sent"),
        ("system/status", "{}"),
    ]


def test_putting_back_into_a_queue_with_room_drops_nothing_and_each_overflow_counts() -> None:
    outbox = Outbox(max_events=2, max_readings=2)
    outbox.put(event(1))
    failed = outbox.take_nowait()
    assert failed is not None
    outbox.put(event(2))
    outbox.put_back(failed)  # two waiting, two allowed
    assert (outbox.events, outbox.dropped) == (2, 0)
    taken = [outbox.take_nowait(), outbox.take_nowait()]
    outbox.put(event(3))
    outbox.put(event(4))
    for publication in reversed(taken):
        assert publication is not None
        outbox.put_back(publication)
    assert outbox.dropped == 2
    assert [p.payload for p in drain(outbox)] == ['{"n": 1}', '{"n": 2}']


def test_take_readings_gives_every_waiting_reading_oldest_first_and_leaves_the_events() -> None:
    outbox = Outbox(max_events=5, max_readings=5)
    outbox.put(reading("pose/current"))
    outbox.put(event(1))
    outbox.put(reading("system/status"))
    assert [p.topic for p in outbox.take_readings()] == ["pose/current", "system/status"]
    assert (outbox.readings, outbox.events) == (0, 1)
    assert outbox.take_readings() == []
