"""The WebSocket stream on the real application, with a real aiohttp client (and a raw socket where a
client must misbehave): authentication and its close codes, Origin, subscriptions and filters, max_fps,
ping, every error reply, lagged notices for a stalled client while another keeps its full rate, limits,
heartbeats, and every message checked against the shipped JSON Schema (validated with ``jsonschema``,
not with the models that produced the files)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from referencing import Registry, Resource

from appliance.api.keys import HUB
from appliance.api.resource_keys import RESOURCES
from appliance.contracts import SNAPSHOT_TOPIC, Event, EventType, OverlaySnapshot, PersonUpdate
from appliance.hub import Hub
from appliance.integrations.websocket import WebSocketStream
from tests.app_support import Client, start
from tests.conftest import REPO
from tests.factories import Person, frame_at, person_pose

SCHEMAS = REPO / "docs" / "schemas"
PATH = "/ws/v1/stream"
TWO: list[Person] = [(1, 1.0, 3.0, "sofa", "sitting"), (2, 4.0, 1.0, None, "walking")]


def _registry() -> Registry:
    resources = [
        (p.name, Resource.from_contents(json.loads(p.read_text()))) for p in SCHEMAS.glob("*.schema.json")
    ]
    return Registry().with_resources(resources)


REGISTRY = _registry()
SERVER_SCHEMA = {
    "connection": "ws-connection",
    "authenticated": "ws-ack",
    "subscribed": "ws-ack",
    "unsubscribed": "ws-ack",
    "configured": "ws-ack",
    "pong": "ws-pong",
    "lagged": "ws-lagged",
    "error": "ws-error",
    "pose_update": "ws-pose-update",
    "person_update": "ws-person-update",
    "zone_update": "ws-zone-update",
    "zone_event": "ws-zone-event",
    "event": "ws-event",
    "system_alert": "ws-system-alert",
    "system_status": "ws-system-status",
    "zone_layout": "ws-zone-layout",
    "control_state": "ws-control-state",
    "overlay_snapshot": "ws-overlay-snapshot",
}


def checked(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` after validating it against its shipped schema file."""
    schema = json.loads((SCHEMAS / f"{SERVER_SCHEMA[message['type']]}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(message)
    return message


async def receive(
    ws: aiohttp.ClientWebSocketResponse, within: float = 5.0, *, validate: bool = True
) -> dict[str, Any]:
    """The next message, validated against its schema unless ``validate`` is false (bulk tests, where
    validating thousands of large frames would take most of the test's time)."""
    message = await ws.receive(timeout=within)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    body: dict[str, Any] = json.loads(message.data)
    return checked(body) if validate else body


async def receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str, within: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        message = await receive(ws, deadline - time.monotonic())
        if message["type"] == kind:
            return message


async def created_token(client: Client, admin: dict[str, str], *scopes: str) -> dict[str, Any]:
    body = {"name": "ws", "scopes": list(scopes)}
    response = await client.post("/api/v1/auth/tokens", json=body, headers=admin)
    assert response.status == 201
    created: dict[str, Any] = await response.json()
    return created


async def token(client: Client, admin: dict[str, str], *scopes: str) -> str:
    return str((await created_token(client, admin, *scopes))["token"])


async def drain(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """Every message received before the answer to a ping sent now."""
    await ws.send_json({"type": "ping", "id": "drain"})
    messages = []
    while (message := await receive(ws))["type"] != "pong":
        messages.append(message)
    return messages


@pytest.fixture
async def app(aiohttp_client: Any, tmp_path: Path) -> tuple[Client, dict[str, str]]:
    """A silent application (nothing publishes unless the test does), with quick protocol timers."""
    return await start(
        aiohttp_client,
        tmp_path,
        silent=True,
        **{"websocket.auth_timeout_s": 0.5, "websocket.reauth_interval_s": 0.3},
    )


@pytest.fixture
async def stream(app: tuple[Client, dict[str, str]]) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    client, admin = app
    ws = await client.ws_connect(f"{PATH}?token={await token(client, admin, 'stream:subscribe')}")
    hello = await receive(ws)
    assert hello["type"] == "connection" and hello["authenticated"] is True
    yield ws
    await ws.close()


def hub_of(client: Client) -> Hub:
    return client.app[HUB]


def stream_sink(client: Client) -> WebSocketStream:
    sinks = client.app[RESOURCES].sinks
    sink = sinks.sink("websocket") if sinks is not None else None
    assert isinstance(sink, WebSocketStream)
    return sink


async def subscribe(ws: aiohttp.ClientWebSocketResponse, topic: str, **filters: Any) -> None:
    await ws.send_json({"type": "subscribe", "topic": topic, "filters": filters, "id": topic})
    ack = await receive_type(ws, "subscribed")
    assert ack["topic"] == topic and ack["id"] == topic


# --------------------------------------------------------------------------------------------------------
# Authentication


async def test_no_token_is_closed_4001_after_the_auth_timeout(app: tuple[Client, dict[str, str]]) -> None:
    client, _ = app
    ws = await client.ws_connect(PATH)
    hello = await receive(ws)
    assert hello["authenticated"] is False and hello["auth_timeout_s"] == 0.5
    began = time.monotonic()
    closing = await ws.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4001
    assert 0.4 <= time.monotonic() - began < 3.0
    assert "timed out" in closing.extra


async def test_a_bad_token_is_closed_4001_and_a_wrong_scope_4003(app: tuple[Client, dict[str, str]]) -> None:
    client, admin = app
    bad = await client.ws_connect(f"{PATH}?token=ivp_not-a-token")
    closing = await bad.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE and bad.close_code == 4001
    reader = await client.ws_connect(f"{PATH}?token={await token(client, admin, 'pose:read')}")
    closing = await reader.receive(timeout=5)
    assert reader.close_code == 4003 and "stream:subscribe" in closing.extra


async def test_auth_in_the_first_message_keeps_the_token_out_of_the_url(
    app: tuple[Client, dict[str, str]],
) -> None:
    client, admin = app
    ws = await client.ws_connect(PATH)
    assert (await receive(ws))["authenticated"] is False
    await ws.send_json({"type": "subscribe", "topic": "pose"})
    refused = await receive(ws)
    assert (refused["type"], refused["code"]) == ("error", "not_authenticated")
    await ws.send_json({"type": "auth", "token": await token(client, admin, "admin:all"), "id": 7})
    assert await receive(ws) == {
        "type": "authenticated",
        "id": 7,
        "topic": None,
        "filters": None,
        "max_fps": None,
    }
    await subscribe(ws, "pose")
    await ws.close()


async def test_a_revoked_token_loses_the_stream(app: tuple[Client, dict[str, str]]) -> None:
    client, admin = app
    created = await (
        await client.post(
            "/api/v1/auth/tokens", json={"name": "ws", "scopes": ["stream:subscribe"]}, headers=admin
        )
    ).json()
    ws = await client.ws_connect(f"{PATH}?token={created['token']}")
    await receive(ws)
    assert (await client.delete(f"/api/v1/auth/tokens/{created['id']}", headers=admin)).status == 204
    closing = await ws.receive(timeout=5)  # the token is checked again every reauth_interval_s (0.3 s)
    assert closing.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4001


async def test_a_cross_site_page_cannot_open_the_stream(app: tuple[Client, dict[str, str]]) -> None:
    client, admin = app
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(
            f"{PATH}?token={await token(client, admin, 'stream:subscribe')}",
            headers={"Origin": "https://evil.example"},
        )
    assert refused.value.status == 403


async def test_a_plain_get_is_told_to_upgrade(app: tuple[Client, dict[str, str]]) -> None:
    client, _ = app
    response = await client.get(PATH)
    assert response.status == 426 and response.headers["Upgrade"] == "websocket"
    assert (await response.json())["error"]["code"] == "upgrade_required"


# --------------------------------------------------------------------------------------------------------
# Subscriptions, filters, rates


async def test_subscribe_gets_the_current_reading_then_updates(
    app: tuple[Client, dict[str, str]], stream: aiohttp.ClientWebSocketResponse
) -> None:
    client, _ = app
    first = frame_at(people=TWO, frame_id=1)
    hub_of(client).publish(first)
    await subscribe(stream, "pose")
    current = await receive(stream)
    assert current["type"] == "pose_update" and current["data"] == json.loads(json.dumps(first.to_dict()))
    hub_of(client).publish(frame_at(people=TWO, frame_id=2))
    assert (await receive(stream))["data"]["frame_id"] == 2


async def test_every_topic_arrives_in_its_message_type(
    app: tuple[Client, dict[str, str]], stream: aiohttp.ClientWebSocketResponse
) -> None:
    client, _ = app
    await subscribe(stream, "#")
    retained = await drain(stream)
    assert {m["type"] for m in retained} <= {"zone_layout", "system_status", "control_state"}
    hub = hub_of(client)
    frame = frame_at(people=TWO, frame_id=3)
    hub.publish(PersonUpdate(frame, frame.persons[0]))
    hub.publish(Event(EventType.PERSON_ENTERED_ZONE, {"person_id": 1, "zone_id": "sofa"}))
    hub.publish(Event(EventType.PERSON_DETECTED, {"person_id": 1}))
    hub.publish(Event(EventType.ALERT_HIGH_OCCUPANCY, {"count": 5}))
    kinds = [(await receive(stream))["type"] for _ in range(4)]
    assert kinds == ["person_update", "zone_event", "event", "system_alert"]


async def test_the_overlay_snapshot_reaches_only_a_subscription_that_names_it(
    app: tuple[Client, dict[str, str]], stream: aiohttp.ClientWebSocketResponse
) -> None:
    client, admin = app
    everything = await client.ws_connect(f"{PATH}?token={await token(client, admin, 'stream:subscribe')}")
    await receive(everything)
    await subscribe(everything, "#")
    await drain(everything)
    await subscribe(stream, SNAPSHOT_TOPIC)
    hub = hub_of(client)
    hub.publish(OverlaySnapshot(time.time(), 2, 2, None, None, base64.b64encode(b"a jpeg").decode()))
    hub.publish(Event(EventType.PERSON_DETECTED, {"person_id": 1}))
    # The appliance's own video sink may publish a real one meanwhile: ours is the 2x2 one.
    while (snapshot := await receive_type(stream, "overlay_snapshot"))["data"]["width"] != 2:
        pass
    assert snapshot["topic"] == SNAPSHOT_TOPIC
    assert base64.b64decode(snapshot["data"]["jpeg_base64"]) == b"a jpeg"
    assert [m["type"] for m in await drain(everything)] == ["event"]
    await everything.close()


async def test_filters_by_zone_person_and_confidence(
    app: tuple[Client, dict[str, str]], stream: aiohttp.ClientWebSocketResponse
) -> None:
    client, _ = app
    hub = hub_of(client)
    await subscribe(stream, "pose", zone_id="sofa")
    hub.publish(frame_at(people=TWO, frame_id=4))
    sofa = (await receive(stream))["data"]
    assert [p["id"] for p in sofa["persons"]] == [1] and sofa["person_count"] == 1
    await stream.send_json({"type": "unsubscribe", "topic": "pose"})
    assert (await receive(stream))["type"] == "unsubscribed"

    await subscribe(stream, "person/+", person_id=2)
    frame = frame_at(people=TWO, frame_id=5)
    for person in frame.persons:
        hub.publish(PersonUpdate(frame, person))
    assert (await receive(stream))["data"]["person"]["id"] == 2
    await stream.send_json({"type": "unsubscribe", "topic": "person/+"})
    await receive_type(stream, "unsubscribed")

    await subscribe(stream, "person/+", min_confidence=0.9)  # the factory's persons have 0.8
    for person in frame.persons:
        hub.publish(PersonUpdate(frame, person))
    hub.publish(PersonUpdate(frame, person_pose(9, 1.0, 1.0)))
    assert await drain(stream) == [], "a filtered-out person was delivered"


async def test_max_fps_caps_a_topic(
    app: tuple[Client, dict[str, str]], stream: aiohttp.ClientWebSocketResponse
) -> None:
    client, _ = app
    await subscribe(stream, "pose")
    await stream.send_json({"type": "configure", "topic": "pose", "max_fps": 4})
    assert (await receive(stream))["max_fps"] == 4
    began = time.monotonic()
    for i in range(40):  # 20 per second for 2 s
        hub_of(client).publish(frame_at(frame_id=i))
        await asyncio.sleep(0.05)
    got = len(await drain(stream))
    elapsed = time.monotonic() - began
    assert 2 <= got <= 4 * elapsed + 1, got


async def test_every_bad_message_is_answered_and_the_socket_stays_open(
    stream: aiohttp.ClientWebSocketResponse,
) -> None:
    cases: list[tuple[str | bytes, str]] = [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"no": "type"}', "bad_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "subscribe", "topic": "weather"}', "unknown_topic"),
        ('{"type": "subscribe", "topic": "zone/#/x"}', "unknown_topic"),
        ('{"type": "subscribe", "topic": "pose", "filters": {"min_confidence": 2}}', "bad_message"),
        ('{"type": "subscribe", "topic": "pose", "filters": {"colour": "red"}}', "bad_message"),
        ('{"type": "unsubscribe", "topic": "pose"}', "not_subscribed"),
        ('{"type": "configure", "topic": "pose", "max_fps": 2}', "not_subscribed"),
        (b"\x00\x01", "bad_message"),
    ]
    for text, code in cases:
        if isinstance(text, bytes):
            await stream.send_bytes(text)
        else:
            await stream.send_str(text)
        answer = await receive(stream)
        assert (answer["type"], answer["code"]) == ("error", code), text
    await stream.send_json({"type": "ping", "id": 1})
    pong = await receive(stream)
    assert pong["type"] == "pong" and pong["id"] == 1


# --------------------------------------------------------------------------------------------------------
# Backpressure and limits


class StalledClient:
    """A WebSocket client that completes the handshake, authenticates, subscribes, then never reads, with a
    tiny receive buffer, so the server's writes soon block on it."""

    def __init__(self, port: int, token_value: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {PATH}?token={token_value} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def read_for(self, seconds: float) -> bytes:
        """What the server sent, read at last (without parsing the frames: they are not masked)."""
        self.sock.setblocking(False)
        loop = asyncio.get_running_loop()
        data = bytearray()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), deadline - time.monotonic())
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()


async def test_a_stalled_client_is_told_it_lagged_while_another_keeps_its_full_rate(
    app: tuple[Client, dict[str, str]], stream: aiohttp.ClientWebSocketResponse
) -> None:
    client, admin = app
    assert client.port is not None
    stalled = StalledClient(client.port, await token(client, admin, "stream:subscribe"))
    sink = stream_sink(client)
    deadline = time.monotonic() + 5
    while len(sink.clients) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    stalled.send_text('{"type":"subscribe","topic":"pose"}')
    await subscribe(stream, "pose")
    crowd: list[Person] = [(i, 1.0, 1.0, "sofa", "standing") for i in range(1, 9)]  # ~13 kB a frame
    received = 0
    published = 600
    for i in range(published):
        hub_of(client).publish(frame_at(people=crowd, frame_id=i))
        if i % 5 == 0:
            await asyncio.sleep(0.005)
        while True:
            try:
                message = await receive(stream, within=0.001, validate=False)
            except TimeoutError:
                break
            received += message["type"] == "pose_update"
    while received < published:
        message = await receive(stream, within=5, validate=False)
        assert message["type"] == "pose_update", "the reading client was told it lagged"
        received += 1
    (stalled_one,) = [c for c in sink.clients.values() if c.sent < published]
    assert stalled_one.subscription.dropped > 0, "the stalled client never fell behind"
    assert received == published
    # Reading at last, the stalled client finds the notice before its next messages.
    assert b'"type":"lagged"' in await stalled.read_for(2.0)
    stalled.close()


async def test_too_many_clients_are_refused_with_retry_after(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **{"websocket.max_clients": 1})
    ws = await client.ws_connect(f"{PATH}?token={await token(client, admin, 'stream:subscribe')}")
    await receive(ws)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(PATH)
    assert refused.value.status == 503 and refused.value.headers is not None
    assert refused.value.headers["Retry-After"] == "5"
    await ws.close()


async def test_oversized_and_flooding_clients_are_closed(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(
        aiohttp_client, tmp_path, silent=True,
        **{"websocket.max_message_bytes": 1024, "websocket.messages_per_second": 5},
    )  # fmt: skip
    value = await token(client, admin, "stream:subscribe")
    big = await client.ws_connect(f"{PATH}?token={value}")
    await receive(big)
    await big.send_str(json.dumps({"type": "ping", "id": "x" * 2000}))
    closing = await big.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE and big.close_code == 1009

    flood = await client.ws_connect(f"{PATH}?token={value}")
    await receive(flood)
    for _ in range(80):
        await flood.send_json({"type": "ping"})
    codes = []
    while True:
        message = await flood.receive(timeout=5)
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        body = json.loads(message.data)
        codes.append(body.get("code", body["type"]))
    assert codes.count("pong") == 10  # the burst (twice the rate); then refusals, then the door
    assert "rate_limited" in codes and flood.close_code == 1008


async def test_a_dead_peer_is_closed_by_the_heartbeat(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True, **{"websocket.heartbeat_s": 1.0})
    assert client.port is not None
    silent = StalledClient(client.port, await token(client, admin, "stream:subscribe"))
    sink = stream_sink(client)
    deadline = time.monotonic() + 5
    while not sink.clients:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    while sink.clients:  # heartbeat 1 s: no pong within half of it closes the stream
        assert time.monotonic() < deadline, "the dead peer is still open"
        await asyncio.sleep(0.05)
    silent.close()


async def test_stopping_closes_streams_with_going_away(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)
    ws = await client.ws_connect(f"{PATH}?token={await token(client, admin, 'stream:subscribe')}")
    await receive(ws)
    began = time.monotonic()
    stopping = asyncio.create_task(client.server.close())  # the appliance stops; the client stays
    closing = await ws.receive(timeout=5)
    assert closing.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
    await stopping
    assert time.monotonic() - began < 3, "shutdown waited for the open stream"
