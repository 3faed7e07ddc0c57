"""``WebSocketStream`` over a real loopback WebSocket, in a small app of its own (no service around it).

The token check is a plain function here (the service's is the API authenticator, tested in
tests/integration/test_websocket.py with the whole app); everything else is the real sink and hub. The
oracles are the protocol's documented messages (docs/schemas/ws-*.schema.json) and the settings below.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.contracts import ZoneOccupancy
from appliance.hub import Hub
from appliance.integrations import websocket
from appliance.integrations.websocket import AccessDeniedError, WebSocketSettings, WebSocketStream
from tests.factories import T0, frame_at

QUEUE = 4
# The topics the unknown_topic error offers, as the protocol documents them.
DOCUMENTED_TOPICS = ["pose", "person/+", "zone/+", "status", "config/zones", "event/#", "alert/#"]


async def authorize(token: str) -> str:
    if token != "good":
        raise AccessDeniedError(4001, "bad token")
    return "tester"


@pytest.fixture
async def stream_app(aiohttp_client: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Hub, WebSocketStream]]:
    hub = Hub()
    stream = WebSocketStream(hub, WebSocketSettings(queue_messages=QUEUE))

    async def handler(request: web.Request) -> web.WebSocketResponse:
        return await stream.serve(request, authorize, request.query.get("token"))

    app = web.Application()
    app.router.add_get("/ws", handler)
    async with stream:
        yield await aiohttp_client(app), hub, stream


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await ws.receive_str(timeout=5))
    return message


async def connected(client: TestClient[Any, Any]) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect("/ws?token=good")
    assert (await receive(ws))["type"] == "connection"
    return ws


async def test_an_unknown_topic_is_refused_with_the_request_id_and_the_topics_there_are(
    stream_app: tuple[TestClient[Any, Any], Hub, WebSocketStream],
) -> None:
    client, _, _ = stream_app
    ws = await connected(client)
    await ws.send_json({"type": "subscribe", "topic": "weather/today", "id": "q1"})
    assert await receive(ws) == {
        "type": "error",
        "id": "q1",
        "code": "unknown_topic",
        "message": "'weather/today' is not a topic or filter",
        "details": {"topics": DOCUMENTED_TOPICS},
    }
    await ws.close()


async def test_a_filter_may_start_with_a_wildcard(
    stream_app: tuple[TestClient[Any, Any], Hub, WebSocketStream],
) -> None:
    client, hub, _ = stream_app
    ws = await connected(client)
    await ws.send_json({"type": "subscribe", "topic": "+/kitchen", "id": 5})
    ack = await receive(ws)
    assert (ack["type"], ack["id"], ack["topic"]) == ("subscribed", 5, "+/kitchen")
    hub.publish(ZoneOccupancy(T0, "kitchen", "Kitchen", 1, (1,), "esp32", "model"))
    update = await receive(ws)
    assert (update["type"], update["topic"], update["data"]["zone_id"]) == (
        "zone_update",
        "zone/kitchen",
        "kitchen",
    )
    await ws.close()


async def test_a_client_that_fell_behind_is_told_how_much_it_lost_each_time(
    stream_app: tuple[TestClient[Any, Any], Hub, WebSocketStream],
) -> None:
    """Published in one go, faster than anything is sent, 10 frames overflow a queue of 4: the client is
    told it lost 6 (6 in all) before the 4 newest; the next burst, 6 more (12 in all)."""
    client, hub, stream = stream_app
    ws = await connected(client)
    await ws.send_json({"type": "subscribe", "topic": "pose"})
    assert (await receive(ws))["type"] == "subscribed"
    for burst, total in ((0, 6), (1, 12)):
        for i in range(10):
            hub.publish(frame_at(T0, [], frame_id=10 * burst + i))
        assert await receive(ws) == {"type": "lagged", "dropped": 6, "total_dropped": total}
        frame_ids = [(await receive(ws))["data"]["frame_id"] for _ in range(QUEUE)]
        assert frame_ids == [10 * burst + i for i in range(6, 10)]
    assert stream.stats().details["lagged_notices"] == 2
    assert stream.stats().dropped == 12
    await ws.close()


def test_a_clients_messages_are_limited_to_its_rate_with_a_burst_of_twice_that(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``messages_per_second``: "a burst of twice that"; then one per 1/rate s. Past five times the rate
    in one second, the client is abusive (closed with 1008). The clock is set by the test."""
    now = [100.0]
    monkeypatch.setattr(websocket.time, "monotonic", lambda: now[0])
    bucket = websocket._TokenBucket(2.0)
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    now[0] += 0.5  # one message's worth at 2 a second
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60.0  # idle for long: the burst again, no more
    assert [bucket.take() for _ in range(5)] == [True, True, True, True, False]
    assert not bucket.abused
    for _ in range(9):  # 10 refusals in this second: at the limit of five times the rate
        bucket.take()
    assert bucket.refused_in_second == 10 and not bucket.abused
    bucket.take()
    assert bucket.abused
    now[0] += 0.4  # 0.8 of a message refilled, in the same second: refused too
    assert not bucket.take() and bucket.refused_in_second == 12
    now[0] += 0.1  # a whole message refilled, in a new second, which forgives the refusals
    assert bucket.take() and bucket.refused_in_second == 0 and not bucket.abused


async def test_a_subscription_starts_with_what_is_true_now(
    stream_app: tuple[TestClient[Any, Any], Hub, WebSocketStream],
) -> None:
    """The retained readings the filter covers arrive right after the ack, which repeats the filters."""
    client, hub, _ = stream_app
    hub.publish(ZoneOccupancy(T0, "kitchen", "Kitchen", 2, (1, 2), "esp32", "model"))
    ws = await connected(client)
    await ws.send_json({"type": "subscribe", "topic": "#", "filters": {"zone_id": "kitchen"}})
    ack = await receive(ws)
    assert (ack["type"], ack["topic"]) == ("subscribed", "#")
    assert ack["filters"] == {"zone_id": "kitchen", "person_id": None, "min_confidence": 0.0}
    current = await receive(ws)
    assert (current["type"], current["topic"], current["data"]["occupancy"]) == (
        "zone_update",
        "zone/kitchen",
        2,
    )
    await ws.close()


async def test_a_filtered_subscription_sends_only_what_passes(
    stream_app: tuple[TestClient[Any, Any], Hub, WebSocketStream],
) -> None:
    client, hub, _ = stream_app
    ws = await connected(client)
    await ws.send_json({"type": "subscribe", "topic": "pose", "filters": {"zone_id": "sofa"}})
    assert (await receive(ws))["type"] == "subscribed"
    hub.publish(frame_at(T0, [(1, 1.0, 3.0, "sofa", "sitting"), (2, 4.0, 1.0, None, "walking")]))
    data = (await receive(ws))["data"]
    assert ([p["id"] for p in data["persons"]], data["person_count"]) == ([1], 1)
    await ws.close()


async def test_max_fps_caps_a_topic_and_leaves_the_others_alone(
    stream_app: tuple[TestClient[Any, Any], Hub, WebSocketStream],
) -> None:
    """At one frame a second, of three frames published at once only the first is sent; a zone reading
    published after them (another topic, uncapped) comes next."""
    client, hub, _ = stream_app
    ws = await connected(client)
    for topic in ("pose", "zone/+"):
        await ws.send_json({"type": "subscribe", "topic": topic})
        assert (await receive(ws))["type"] == "subscribed"
    await ws.send_json({"type": "configure", "topic": "pose", "max_fps": 1, "id": 9})
    assert await receive(ws) == {
        "type": "configured",
        "id": 9,
        "topic": "pose",
        "max_fps": 1.0,
        "filters": None,
    }
    for i in range(3):
        hub.publish(frame_at(T0, [], frame_id=i))
    hub.publish(ZoneOccupancy(T0, "kitchen", "Kitchen", 0, (), "esp32", "model"))
    first, second = await receive(ws), await receive(ws)
    assert (first["type"], first["data"]["frame_id"]) == ("pose_update", 0)
    assert second["type"] == "zone_update"
    await ws.close()
