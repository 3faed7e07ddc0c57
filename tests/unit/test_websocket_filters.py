"""What a WebSocket subscriber receives for each hub message: its filters, its message type and envelope.

The oracles are the protocol's documentation (``Filters``' field descriptions: each given filter must pass)
and the shipped JSON Schemas in docs/schemas, which every envelope is validated against. The socket side
of the stream is tested end to end in tests/integration/test_websocket.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from appliance.contracts import Event, EventType, PersonUpdate, SystemStatus, ZoneOccupancy
from appliance.hub import HubItem, Message
from appliance.integrations.websocket import Filters, _id, data_kind, envelope, filtered_text
from tests.conftest import REPO
from tests.factories import T0, frame_at, person_pose

SCHEMAS = REPO / "docs" / "schemas"
REGISTRY = Registry().with_resources(
    (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in SCHEMAS.glob("*.schema.json")
)
# Ann is on the sofa (confidence 0.8, the factory's), Bob in no zone and less sure of.
ANN = person_pose(1, 1.0, 3.0, "sofa", "sitting")
BOB = dataclasses.replace(person_pose(2, 4.0, 1.0, None, "walking"), confidence=0.5)
FRAME = dataclasses.replace(frame_at(T0, frame_id=3, people=[]), persons=(ANN, BOB), person_count=2)


def message(item: HubItem) -> Message:
    return Message.of(item)


def persons_of(text: str | None) -> tuple[list[int], int | None]:
    assert text is not None
    data = json.loads(text)
    return [p["id"] for p in data["persons"]], data["person_count"]


def test_without_filters_every_message_is_the_hubs_text_unchanged() -> None:
    for item in (FRAME, PersonUpdate(FRAME, BOB), event(EventType.PERSON_DETECTED)):
        hub_message = message(item)
        assert filtered_text(hub_message, Filters()) is hub_message.text


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        (Filters(zone_id="sofa"), [1]),
        (Filters(zone_id="desk"), []),
        (Filters(person_id=2), [2]),
        (Filters(min_confidence=0.5), [1, 2]),  # at least: 0.5 passes
        (Filters(min_confidence=0.51), [1]),
        (Filters(zone_id="sofa", person_id=2), []),  # each given filter must pass
        (Filters(zone_id="sofa", person_id=1, min_confidence=0.8), [1]),
    ],
)
def test_a_filtered_pose_keeps_the_persons_that_pass_and_counts_them_again(
    filters: Filters, ids: list[int]
) -> None:
    text = filtered_text(message(FRAME), filters)
    assert persons_of(text) == (ids, len(ids))
    data, original = json.loads(text or ""), json.loads(message(FRAME).text)
    assert {k: v for k, v in data.items() if k not in ("persons", "person_count")} == {
        k: v for k, v in original.items() if k not in ("persons", "person_count")
    }


def test_a_motion_frame_still_cannot_count_people_after_filtering() -> None:
    """The motion detector's frames have no count (null, "unknown"); a filter must not make it 0."""
    text = filtered_text(message(frame_at(T0)), Filters(zone_id="sofa"))
    assert persons_of(text) == ([], None)


def test_a_person_update_passes_only_if_the_person_does() -> None:
    update = message(PersonUpdate(FRAME, BOB))
    assert filtered_text(update, Filters(person_id=2)) == update.text
    assert filtered_text(update, Filters(person_id=1)) is None
    assert filtered_text(update, Filters(zone_id="sofa")) is None
    assert filtered_text(update, Filters(min_confidence=0.6)) is None


def test_a_zone_passes_a_zone_filter_of_its_own_and_any_person_filter() -> None:
    zone = message(ZoneOccupancy(T0, "sofa", "Sofa", 1, (1,), "esp32", "model"))
    assert filtered_text(zone, Filters(zone_id="sofa")) == zone.text
    assert filtered_text(zone, Filters(zone_id="desk")) is None
    assert filtered_text(zone, Filters(person_id=7)) == zone.text


def event(kind: EventType, **data: Any) -> Event:
    return Event(kind, data, id="e1", time=T0)


def test_events_pass_the_zone_and_person_filters_by_their_data() -> None:
    entered = message(event(EventType.PERSON_ENTERED_ZONE, zone_id="sofa", person_id=1))
    assert filtered_text(entered, Filters(zone_id="sofa", person_id=1)) == entered.text
    assert filtered_text(entered, Filters(zone_id="desk")) is None
    assert filtered_text(entered, Filters(person_id=2)) is None
    started = message(event(EventType.SYSTEM_STARTED))
    assert filtered_text(started, Filters(zone_id="sofa")) is None  # in no zone
    assert filtered_text(started, Filters(person_id=1)) is None  # about nobody
    assert filtered_text(started, Filters(min_confidence=0.9)) == started.text  # confidence is for persons


STATUS = SystemStatus(T0, "1.0", 1.0, "simulated", None, 0, (), ())


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        (FRAME, "pose_update"),
        (PersonUpdate(FRAME, ANN), "person_update"),
        (ZoneOccupancy(T0, "sofa", "Sofa", 1, (1,), "esp32", "model"), "zone_update"),
        (event(EventType.PERSON_ENTERED_ZONE, zone_id="sofa", person_id=1), "zone_event"),
        (event(EventType.PERSON_LEFT_ZONE, zone_id="sofa", person_id=1), "zone_event"),
        (event(EventType.PERSON_DETECTED, person_id=1), "event"),
        (event(EventType.ALERT_SYSTEM_ERROR, component="x", error="y"), "system_alert"),
        (STATUS, "system_status"),
    ],
)
def test_each_message_arrives_in_its_documented_type(item: HubItem, kind: str) -> None:
    hub_message = message(item)
    assert data_kind(hub_message) == kind
    sent = json.loads(envelope(kind, hub_message.topic, hub_message.text))
    assert sent == {"type": kind, "topic": hub_message.topic, "data": json.loads(hub_message.text)}
    schema = json.loads((SCHEMAS / f"ws-{kind.replace('_', '-')}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(sent)


def test_the_envelope_escapes_the_topic() -> None:
    sent = json.loads(envelope("zone_update", 'zone/a"b\\c', "{}"))
    assert sent["topic"] == 'zone/a"b\\c'


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("sub-1", "sub-1"), (7, 7), (0, 0), (True, None), (1.5, None), (None, None), ({"a": 1}, None)],
)
def test_a_request_id_is_echoed_only_when_the_protocol_allows_it(sent: object, echoed: object) -> None:
    """ws-client-message.schema.json: ``id`` is a string or an integer; JSON's true is neither."""
    assert _id(sent) == echoed and type(_id(sent)) is type(echoed)
