"""The WebSocket stream (``/ws/v1/stream``): live hub messages to browsers and scripts, on their terms.

A client authenticates (a token with ``stream:subscribe``, as ``?token=`` or in a first ``auth`` message
within ``auth_timeout_s``), subscribes to hub topics with MQTT-style filters (``pose``, ``person/+``,
``zone/kitchen``, ``event/#``, ``alert/#``, ``status``, ``controls``, ``config/zones``, and the overlay's
JPEG ``$video/snapshot``, which only a subscription naming it receives: never ``#``), optionally
filtered by zone, person or confidence, and may cap a topic's rate (``configure``/``max_fps``). Data
messages carry the hub's JSON untouched (encoded once) in an envelope:
``{"type": "pose_update", "topic": "pose", "data": {...}}``.
The message shapes are the models below, shipped as JSON Schemas (``docs/schemas/ws-*.schema.json``).

Backpressure: each client owns a bounded hub subscription and one sender task. A client that reads too
slowly makes its own queue drop the oldest messages and is told so (``lagged`` with the count) before its
next message; it never slows the pipeline or another client. aiohttp's heartbeat closes dead peers; the
token is checked again every ``reauth_interval_s``, so a revoked token or a deleted user loses the stream.
Bad client messages are answered with an ``error`` naming the problem, and the socket stays open.

Close codes: 4001 authentication missing, invalid or timed out; 4003 the token lacks ``stream:subscribe``;
1001 the appliance is stopping; 1009 a client message over ``max_message_bytes``; 1008 a client far over
its message rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from appliance import __version__
from appliance.contracts import Event, PersonUpdate, PoseFrame, ZoneOccupancy
from appliance.contracts.schemas import (
    ControlStateModel,
    EventModel,
    OverlaySnapshotModel,
    PersonUpdateModel,
    PoseFrameModel,
    SystemStatusModel,
    ZoneLayoutModel,
    ZoneOccupancyModel,
)
from appliance.hub import Hub, Message, Subscription, topic_matches, valid_filter
from appliance.integrations.base import Sink, SinkStats

log = logging.getLogger(__name__)

# First levels of the hub's topics; a subscription must start with one of them or a wildcard.
TOPIC_ROOTS = ("pose", "person", "zone", "status", "controls", "config", "event", "alert", "$video")
ZONE_EVENTS = frozenset({"person.entered_zone", "person.left_zone"})
CLOSE_AUTH_FAILED = 4001
CLOSE_FORBIDDEN = 4003
# A client sending more than this many times its allowed rate in one second is disconnected (1008).
_ABUSE_FACTOR = 5.0


class WebSocketSettings(BaseModel):
    """The ``websocket:`` section: limits of the live stream at ``/ws/v1/stream``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Serve the WebSocket stream.")
    max_clients: int = Field(
        100, ge=1, le=10_000, description="Open streams at most; more are refused with 503 and Retry-After."
    )
    queue_messages: int = Field(
        64,
        ge=4,
        le=10_000,
        description="Messages held for a slow client before its oldest are dropped (it is told: lagged).",
    )
    max_message_bytes: int = Field(
        16_384, ge=256, le=1_048_576, description="Largest message a client may send (else closed, 1009)."
    )
    messages_per_second: float = Field(
        20.0, gt=0, le=1000, description="Client messages allowed per second (a burst of twice that)."
    )
    heartbeat_s: float = Field(
        30.0, ge=1, le=600, description="Ping interval; a client that does not answer is closed."
    )
    auth_timeout_s: float = Field(
        5.0, gt=0, le=60, description="Time a client has to authenticate before it is closed (4001)."
    )
    reauth_interval_s: float = Field(
        60.0, gt=0, le=3600, description="How often an open stream's token is checked again."
    )


# --------------------------------------------------------------------------------------------------------
# The protocol: what clients send


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | int | None = Field(None, description="echoed in the answer, to match it to the request")


class Filters(BaseModel):
    """Which messages of a subscription to deliver; each given filter must pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone_id: str | None = Field(None, max_length=64, description="persons (and events) in this zone only")
    person_id: int | None = Field(None, ge=0, description="this person only")
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="persons at least this confident")

    @property
    def empty(self) -> bool:
        return self.zone_id is None and self.person_id is None and self.min_confidence <= 0


class AuthRequest(_ClientMessage):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096, description="a login JWT or an ivp_ API token")


class SubscribeRequest(_ClientMessage):
    type: Literal["subscribe"]
    topic: str = Field(min_length=1, max_length=128, description="a hub topic or MQTT-style filter")
    filters: Filters = Field(default_factory=Filters)


class UnsubscribeRequest(_ClientMessage):
    type: Literal["unsubscribe"]
    topic: str = Field(min_length=1, max_length=128)


class PingRequest(_ClientMessage):
    type: Literal["ping"]


class ConfigureRequest(_ClientMessage):
    type: Literal["configure"]
    topic: str = Field(min_length=1, max_length=128, description="the subscription to configure")
    max_fps: float | None = Field(
        None, gt=0, le=100, description="at most this many messages per second per topic; null: no cap"
    )


ClientMessage = Annotated[
    AuthRequest | SubscribeRequest | UnsubscribeRequest | PingRequest | ConfigureRequest,
    Field(discriminator="type"),
]
_CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --------------------------------------------------------------------------------------------------------
# The protocol: what the server sends


class _ServerMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionMessage(_ServerMessage):
    type: Literal["connection"]
    client_id: str
    server_time: float
    version: str
    authenticated: bool = Field(description="false: send an auth message within auth_timeout_s")
    auth_timeout_s: float
    topics: list[str] = Field(description="the first levels of the topics one can subscribe to")


class AckMessage(_ServerMessage):
    type: Literal["authenticated", "subscribed", "unsubscribed", "configured"]
    id: str | int | None = None
    topic: str | None = None
    filters: Filters | None = None
    max_fps: float | None = None


class PongMessage(_ServerMessage):
    type: Literal["pong"]
    id: str | int | None = None
    server_time: float


class LaggedMessage(_ServerMessage):
    type: Literal["lagged"]
    dropped: int = Field(description="messages this client lost since the last lagged notice")
    total_dropped: int


class ErrorMessage(_ServerMessage):
    type: Literal["error"]
    id: str | int | None = None
    code: str = Field(
        description="bad_json, bad_message, unknown_type, not_authenticated, unknown_topic, "
        "not_subscribed, rate_limited"
    )
    message: str
    details: Any = None


def _data_message(kind: str, model: type[BaseModel]) -> type[BaseModel]:
    """``{"type": kind, "topic": ..., "data": <model>}``: one model per data message type."""
    name = "".join(part.title() for part in kind.split("_")) + "Message"
    kind_type: Any = Literal[kind]
    return create_model(
        name, __base__=_ServerMessage, type=(kind_type, ...), topic=(str, ...), data=(model, ...)
    )


# Data messages by the first level of their topic; zone enter/leave events are zone_event.
DATA_MESSAGES: dict[str, type[BaseModel]] = {
    "pose_update": _data_message("pose_update", PoseFrameModel),
    "person_update": _data_message("person_update", PersonUpdateModel),
    "zone_update": _data_message("zone_update", ZoneOccupancyModel),
    "zone_event": _data_message("zone_event", EventModel),
    "event": _data_message("event", EventModel),
    "system_alert": _data_message("system_alert", EventModel),
    "system_status": _data_message("system_status", SystemStatusModel),
    "zone_layout": _data_message("zone_layout", ZoneLayoutModel),
    "control_state": _data_message("control_state", ControlStateModel),
    "overlay_snapshot": _data_message("overlay_snapshot", OverlaySnapshotModel),
}
_KIND_OF_ROOT = {
    "pose": "pose_update",
    "person": "person_update",
    "zone": "zone_update",
    "event": "event",
    "alert": "system_alert",
    "status": "system_status",
    "config": "zone_layout",
    "controls": "control_state",
    "$video": "overlay_snapshot",
}

# The shipped schemas of the protocol (docs/schemas/ws-<name>.schema.json).
PROTOCOL_SCHEMAS: dict[str, type[BaseModel] | TypeAdapter[Any]] = {
    "ws-client-message": _CLIENT_MESSAGE,
    "ws-connection": ConnectionMessage,
    "ws-ack": AckMessage,
    "ws-pong": PongMessage,
    "ws-lagged": LaggedMessage,
    "ws-error": ErrorMessage,
    **{f"ws-{kind.replace('_', '-')}": model for kind, model in DATA_MESSAGES.items()},
}


def data_kind(message: Message) -> str:
    """The ``type`` of the data message that carries ``message``."""
    root = message.topic.split("/", 1)[0]
    if root == "event" and isinstance(message.item, Event) and message.item.type.value in ZONE_EVENTS:
        return "zone_event"
    return _KIND_OF_ROOT[root]


def envelope(kind: str, topic: str, data_json: str) -> str:
    """A data message around JSON encoded once by the hub (no decode, no re-encode)."""
    return f'{{"type":"{kind}","topic":{json.dumps(topic)},"data":{data_json}}}'


# --------------------------------------------------------------------------------------------------------
# Filters and rate caps


def _person_passes(person: dict[str, Any], filters: Filters) -> bool:
    return (
        (filters.zone_id is None or person.get("zone") == filters.zone_id)
        and (filters.person_id is None or person.get("id") == filters.person_id)
        and float(person.get("confidence", 0.0)) >= filters.min_confidence
    )


def filtered_text(message: Message, filters: Filters) -> str | None:
    """The message's data JSON after ``filters`` (None: nothing to send). Unfiltered messages keep the
    hub's text; a filtered pose is re-encoded with only the persons that pass, counted again."""
    if filters.empty:
        return message.text
    item = message.item
    if isinstance(item, PoseFrame):
        data = json.loads(message.text)
        data["persons"] = [p for p in data["persons"] if _person_passes(p, filters)]
        if data["person_count"] is not None:
            data["person_count"] = len(data["persons"])
        return json.dumps(data)
    if isinstance(item, PersonUpdate):
        return message.text if _person_passes(item.person.to_dict(), filters) else None
    if isinstance(item, ZoneOccupancy):
        return message.text if filters.zone_id in (None, item.zone_id) else None
    if isinstance(item, Event):
        zone, person = item.data.get("zone_id"), item.data.get("person_id")
        if filters.zone_id is not None and zone != filters.zone_id:
            return None
        if filters.person_id is not None and person != filters.person_id:
            return None
    return message.text


@dataclass(slots=True)
class _Wanted:
    """One subscribe request: the filter pattern, its filters and its rate cap."""

    filters: Filters
    max_fps: float | None = None


class _TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = 2.0 * rate
        self.tokens = self.capacity
        self.at = time.monotonic()
        self.refused_in_second = 0
        self.second = int(self.at)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if int(now) != self.second:
            self.second, self.refused_in_second = int(now), 0
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.refused_in_second += 1
        return False

    @property
    def abused(self) -> bool:
        return self.refused_in_second > _ABUSE_FACTOR * self.rate


# --------------------------------------------------------------------------------------------------------
# Sessions


class AccessDeniedError(Exception):
    """A token that may not open the stream; ``close_code`` is 4001 (who are you) or 4003 (not allowed)."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


# Checks a token: returns who it is (for logs) or raises AccessDeniedError. Given by the API layer.
Authorize = Callable[[str], Awaitable[str]]


@dataclass(eq=False)
class StreamClient:
    """One open WebSocket: its subscription, filters, rate caps and counters."""

    id: str
    ws: web.WebSocketResponse
    subscription: Subscription
    subject: str | None = None  # who the token says it is; None until authenticated
    token: str = ""
    wanted: dict[str, _Wanted] = field(default_factory=dict)
    last_sent: dict[str, float] = field(default_factory=dict)
    reported_dropped: int = 0
    sent: int = 0
    # The receive loop (answers) and the send loop (data) both write; one frame at a time.
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class WebSocketStream(Sink):
    """The sink behind ``/ws/v1/stream``: every open client, and their figures."""

    name = "websocket"

    def __init__(self, hub: Hub, settings: WebSocketSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.clients: dict[str, StreamClient] = {}
        self._closing = False
        self.opened = 0
        self.refused = 0
        self.lagged_notices = 0
        self._sent_by_closed = 0
        self._dropped_by_closed = 0

    async def __aenter__(self) -> WebSocketStream:
        self._closing = False
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close_all()

    async def run(self) -> None:
        # The clients run in their own request handlers; the sink only has to stay up.
        await asyncio.Event().wait()

    async def close_all(self) -> None:
        """Close every client with 1001 (going away): called when the appliance stops."""
        self._closing = True
        await asyncio.gather(
            *(
                c.ws.close(code=1001, message=b"the appliance is stopping")
                for c in list(self.clients.values())
            ),
            return_exceptions=True,
        )

    @property
    def full(self) -> bool:
        return self._closing or len(self.clients) >= self.settings.max_clients

    def stats(self) -> SinkStats:
        subscriptions = [c.subscription for c in self.clients.values()]
        return SinkStats(
            connected=not self._closing,
            pending=sum(s.pending for s in subscriptions),
            dropped=self._dropped_by_closed + sum(s.dropped for s in subscriptions),
            delivered=self._sent_by_closed + sum(c.sent for c in self.clients.values()),
            details={
                "clients": len(self.clients),
                "opened": self.opened,
                "refused": self.refused,
                "lagged_notices": self.lagged_notices,
            },
        )

    # -- one client ---------------------------------------------------------------------------------------

    async def serve(
        self, request: web.Request, authorize: Authorize, token: str | None
    ) -> web.WebSocketResponse:
        """Run one client's stream until it closes; ``token`` is the one from the URL, if any."""
        settings = self.settings
        ws = web.WebSocketResponse(
            heartbeat=settings.heartbeat_s, max_msg_size=settings.max_message_bytes, compress=False
        )
        await ws.prepare(request)
        client_id = uuid.uuid4().hex[:12]
        # Subscribed to nothing until the client asks (and is authenticated).
        subscription = self.hub.subscribe(f"websocket:{client_id}", (), maxsize=settings.queue_messages)
        client = StreamClient(client_id, ws, subscription)
        self.clients[client.id] = client
        self.opened += 1
        sender: asyncio.Task[None] | None = None
        try:
            if token is not None and not await self._authenticate(client, authorize, token):
                return ws
            await self._send(client, self._connection(client))
            sender = asyncio.create_task(self._send_loop(client), name=f"ws-send:{client.id}")
            await self._receive_loop(client, authorize)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            self._forget(client)
            await ws.close()
        return ws

    def _connection(self, client: StreamClient) -> str:
        return ConnectionMessage(
            type="connection",
            client_id=client.id,
            server_time=time.time(),
            version=__version__,
            authenticated=client.subject is not None,
            auth_timeout_s=self.settings.auth_timeout_s,
            topics=list(TOPIC_ROOTS),
        ).model_dump_json()

    async def _authenticate(self, client: StreamClient, authorize: Authorize, token: str) -> bool:
        """Check ``token``; a refused one closes the socket with the code and reason it was refused for."""
        try:
            client.subject = await authorize(token)
        except AccessDeniedError as exc:
            # A close reason is at most 123 bytes.
            await client.ws.close(code=exc.close_code, message=exc.reason.encode()[:120])
            return False
        client.token = token
        return True

    def _forget(self, client: StreamClient) -> None:
        self.clients.pop(client.id, None)
        self._sent_by_closed += client.sent
        self._dropped_by_closed += client.subscription.dropped
        self.hub.unsubscribe(client.subscription)

    async def _receive_loop(self, client: StreamClient, authorize: Authorize) -> None:
        ws, settings = client.ws, self.settings
        bucket = _TokenBucket(settings.messages_per_second)
        auth_deadline = time.monotonic() + settings.auth_timeout_s
        next_check = time.monotonic() + settings.reauth_interval_s
        while not ws.closed:
            if client.subject is None:
                timeout = auth_deadline - time.monotonic()
                if timeout <= 0:
                    await ws.close(code=CLOSE_AUTH_FAILED, message=b"authentication timed out")
                    return
            else:
                timeout = next_check - time.monotonic()
                if timeout <= 0:
                    if not await self._authenticate(client, authorize, client.token):
                        return
                    next_check = time.monotonic() + settings.reauth_interval_s
                    continue
            try:
                msg = await ws.receive(timeout=timeout)
            except TimeoutError:
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if not bucket.take():
                if bucket.abused:
                    await ws.close(code=1008, message=b"too many messages")
                    return
                await self._error(client, None, "rate_limited", "too many messages; slow down")
                continue
            if msg.type is not WSMsgType.TEXT:
                await self._error(client, None, "bad_message", "send JSON text messages")
                continue
            await self._handle(client, msg.data, authorize)

    async def _handle(self, client: StreamClient, text: str, authorize: Authorize) -> None:
        try:
            raw = json.loads(text)
        except ValueError as exc:
            await self._error(client, None, "bad_json", f"not JSON: {exc}")
            return
        request_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(raw, dict) or "type" not in raw:
            await self._error(client, None, "bad_message", 'a message is a JSON object with a "type"')
            return
        try:
            request = _CLIENT_MESSAGE.validate_python(raw)
        except ValidationError as exc:
            kinds = ("auth", "subscribe", "unsubscribe", "ping", "configure")
            if raw.get("type") not in kinds:
                await self._error(
                    client, _id(request_id), "unknown_type", f"unknown type {raw.get('type')!r}",
                    {"known": list(kinds)},
                )  # fmt: skip
            else:
                details = [
                    {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
                    for e in exc.errors()
                ]
                await self._error(client, _id(request_id), "bad_message", "invalid fields", details)
            return
        await self._dispatch(client, request, authorize)

    async def _dispatch(self, client: StreamClient, request: ClientMessage, authorize: Authorize) -> None:
        if isinstance(request, PingRequest):
            await self._send(
                client, PongMessage(type="pong", id=request.id, server_time=time.time()).model_dump_json()
            )
            return
        if isinstance(request, AuthRequest):
            if await self._authenticate(client, authorize, request.token):
                await self._send(client, AckMessage(type="authenticated", id=request.id).model_dump_json())
            return
        if client.subject is None:
            await self._error(client, request.id, "not_authenticated", "send an auth message first")
            return
        if isinstance(request, SubscribeRequest):
            await self._subscribe(client, request)
        elif isinstance(request, UnsubscribeRequest):
            if request.topic not in client.wanted:
                await self._error(
                    client, request.id, "not_subscribed", f"not subscribed to {request.topic!r}"
                )
                return
            del client.wanted[request.topic]
            client.subscription.topics.discard(request.topic)
            await self._send(
                client, AckMessage(type="unsubscribed", id=request.id, topic=request.topic).model_dump_json()
            )
        else:
            wanted = client.wanted.get(request.topic)
            if wanted is None:
                await self._error(
                    client, request.id, "not_subscribed", f"subscribe to {request.topic!r} first"
                )
                return
            wanted.max_fps = request.max_fps
            await self._send(
                client,
                AckMessage(
                    type="configured", id=request.id, topic=request.topic, max_fps=request.max_fps
                ).model_dump_json(),
            )

    async def _subscribe(self, client: StreamClient, request: SubscribeRequest) -> None:
        topic = request.topic
        root = topic.split("/", 1)[0]
        if not valid_filter(topic) or root not in (*TOPIC_ROOTS, "+", "#"):
            await self._error(
                client, request.id, "unknown_topic", f"{topic!r} is not a topic or filter",
                {"topics": ["pose", "person/+", "zone/+", "status", "config/zones", "event/#", "alert/#"]},
            )  # fmt: skip
            return
        client.wanted[topic] = _Wanted(request.filters)
        client.subscription.topics.add(topic)
        await self._send(
            client,
            AckMessage(
                type="subscribed", id=request.id, topic=topic, filters=request.filters
            ).model_dump_json(),
        )
        # What is true now, for the retained topics it covers (the current reading, zones, status).
        for message in self.hub.retained(topic):
            await self._deliver(client, message)

    async def _send_loop(self, client: StreamClient) -> None:
        async for message in client.subscription:
            await self._deliver(client, message)

    async def _deliver(self, client: StreamClient, message: Message) -> None:
        subscription = client.subscription
        if subscription.dropped > client.reported_dropped:
            dropped = subscription.dropped - client.reported_dropped
            client.reported_dropped = subscription.dropped
            self.lagged_notices += 1
            await self._send(
                client,
                LaggedMessage(
                    type="lagged", dropped=dropped, total_dropped=subscription.dropped
                ).model_dump_json(),
            )
        matching = [w for pattern, w in client.wanted.items() if topic_matches(pattern, message.topic)]
        if not matching:
            return
        cap = max((w.max_fps for w in matching if w.max_fps is not None), default=None)
        if cap is not None:
            now = time.monotonic()
            if now - client.last_sent.get(message.topic, -1e9) < 1.0 / cap:
                return
            client.last_sent[message.topic] = now
        filters = next((w.filters for w in matching if w.filters.empty), matching[0].filters)
        text = filtered_text(message, filters)
        if text is not None:
            await self._send(client, envelope(data_kind(message), message.topic, text))

    async def _send(self, client: StreamClient, text: str) -> None:
        async with client.send_lock:
            if client.ws.closed:
                return
            with contextlib.suppress(ConnectionResetError):
                await client.ws.send_str(text)
                client.sent += 1

    async def _error(
        self, client: StreamClient, request_id: str | int | None, code: str, message: str, details: Any = None
    ) -> None:
        error = ErrorMessage(type="error", id=request_id, code=code, message=message, details=details)
        await self._send(client, error.model_dump_json())


def _id(value: object) -> str | int | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None
