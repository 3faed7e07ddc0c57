"""``MqttSink``: the hub's messages to an MQTT broker, Home Assistant discovery, and commands back.

While it runs, a feeder moves every hub message into the ``Outbox`` (bounded: see ``outbox``), connected
or not, and a connection loop keeps one session with the broker:

1. find the broker (``mqtt.host``, else the ``locate_broker`` given, which browses mDNS);
2. connect with a last will of ``offline`` (retained, qos 1) on ``<base>/availability``;
3. read the discovery document the broker retained (to remove components that are gone), publish the
   current one, then every retained reading (controls, status, zones, the room), then ``online``;
4. send what the outbox holds and answer commands, until the connection fails; then wait (``Backoff``,
   with jitter) and start again at 1. A broker that comes back gets availability and states anew.

With ``camera`` on (the video's snapshots are, see ``appliance.app``) discovery lists Home Assistant's MQTT
camera, and the sink takes the hub's ``$video/snapshot`` only while a session is up: the video sink renders
snapshots only while someone takes them, so none is made for a broker that is away.

When Home Assistant announces itself (``online`` on ``<discovery_prefix>/status``) the discovery document
and the readings are sent again after a short random delay, so many devices do not answer at once. On a
clean stop, events still waiting are sent (briefly) and availability turns ``offline``.

``stats()`` reports the broker (and how it was found), whether the session is up, the last error in words
a user can act on (a wrong password, an untrusted certificate), the queue, drops and deliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, Self

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from appliance.contracts import SNAPSHOT_TOPIC, Controls, SystemStatus, ZoneLayout, ZoneShape
from appliance.hub import Hub, Message, Subscription
from appliance.integrations.base import Backoff, Sink, SinkStats
from appliance.integrations.mqtt.commands import CommandHandler
from appliance.integrations.mqtt.discovery import DeviceInfo, Discovery
from appliance.integrations.mqtt.outbox import Outbox
from appliance.integrations.mqtt.retained import payload_bytes, read_retained
from appliance.integrations.mqtt.settings import MqttSettings, MqttTlsSettings
from appliance.integrations.mqtt.topics import (
    AVAILABLE,
    HA_ONLINE,
    HUB_TOPICS,
    RETAINED_HUB_TOPICS,
    UNAVAILABLE,
    Publication,
    Topics,
)

log = logging.getLogger(__name__)

BrokerLocator = Callable[[], Awaitable[tuple[str, int] | None]]
BrokerSource = Literal["configuration", "mdns"]
# Home Assistant asks devices to wait a random moment after its birth message before rediscovery.
HA_BIRTH_DELAY_S = (0.2, 2.0)
# Hub messages waiting for the feeder (it only sorts them into the outbox, so it keeps up).
_HUB_QUEUE = 1024
# Commands waiting to be handled; a flood beyond this is dropped by the client, not held in memory.
_INCOMING_QUEUE = 256
# On a clean stop, how long waiting events and the "offline" may take to leave.
_GOODBYE_S = 2.0
# Broker CONNACK codes (MQTT 3.1.1 and their MQTT 5 reason codes) for a refused login.
_BAD_LOGIN = frozenset({4, 134})
_NOT_AUTHORISED = frozenset({5, 135})


class MqttSink(Sink):
    name = "mqtt"

    def __init__(
        self,
        hub: Hub,
        settings: MqttSettings,
        device: DeviceInfo,
        device_id: str,
        controls: Controls,
        locate_broker: BrokerLocator | None = None,
        *,
        camera: bool = False,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.discovery_prefix, device_id)
        self.discovery = Discovery(self.topics, device, settings.fall_hold_s, camera=camera)
        self.commands = CommandHandler(controls, self.topics)
        self.outbox = Outbox(settings.queue_messages, max_readings=settings.queue_messages)
        self.locate_broker = locate_broker
        self.client_id = settings.client_id or f"invispose-{device_id}"
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._tls: ssl.SSLContext | None = None
        self._subscription: Subscription | None = None
        self._zones: tuple[ZoneShape, ...] = ()
        self._links: tuple[str, ...] = ()
        self._rediscovery: asyncio.TimerHandle | None = None
        self.broker: tuple[str, int] | None = None
        self.broker_source: BrokerSource | None = None
        self.connected = False
        self.last_error: str | None = None
        self.last_connected_at: float | None = None
        self.attempts = 0
        self.connections = 0
        self.sent = 0
        self.discovery_sent = 0

    async def __aenter__(self) -> Self:
        if self.settings.tls is not None:
            try:
                self._tls = await asyncio.to_thread(tls_context, self.settings.tls)
            except (OSError, ValueError) as exc:
                self.last_error = f"mqtt.tls: cannot load the certificates: {exc}"
                raise
        self._subscription = self.hub.subscribe("mqtt", HUB_TOPICS, maxsize=_HUB_QUEUE)
        # Zones and links in force now, for the first discovery document.
        for message in (*self.hub.retained("config/zones"), *self.hub.retained("status")):
            self._follow(message)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._subscription is not None:
            self.hub.unsubscribe(self._subscription)
            self._subscription = None

    async def run(self) -> None:
        feeder = asyncio.create_task(self._feed(), name="mqtt:feed")
        try:
            while True:
                await self._session()
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder

    # -- the hub side ----------------------------------------------------------------------------------

    async def _feed(self) -> None:
        if self._subscription is None:
            raise RuntimeError("the MQTT sink runs only inside its context")
        async for message in self._subscription:
            if self._follow(message):
                # Queued whether connected or not: a change that lands while a connection is being set up
                # must not be lost between the welcome's document and the first send.
                self.outbox.put(self._discovery_publication())
            publication = self.topics.route(message)
            if publication is not None:
                self.outbox.put(publication)

    def _follow(self, message: Message) -> bool:
        """Keep the zones and links discovery describes; True when they changed."""
        item = message.item
        if isinstance(item, ZoneLayout):
            changed = [(z.id, z.name) for z in item.zones] != [(z.id, z.name) for z in self._zones]
            self._zones = item.zones
            return changed
        if isinstance(item, SystemStatus):
            links = tuple(sorted(link.link for link in item.links))
            changed, self._links = links != self._links, links
            return changed
        return False

    def _discovery_publication(self) -> Publication:
        document = self.discovery.document(self._zones, self._links)
        return Publication(self.topics.discovery, json.dumps(document), 1, True, reading=True)

    def _queue_retained_readings(self) -> None:
        for pattern in RETAINED_HUB_TOPICS:
            for message in self.hub.retained(pattern):
                publication = self.topics.route(message)
                if publication is not None:
                    self.outbox.put(publication)

    # -- the broker side -------------------------------------------------------------------------------

    async def _session(self) -> None:
        """One connection, from finding the broker to losing it (then the backoff wait)."""
        broker = await self._find_broker()
        if broker is None:
            if self.locate_broker is None:
                await asyncio.Event().wait()  # nothing will ever be configured while this runs
            await asyncio.sleep(self._backoff.next())
            return
        client = self._client(*broker)
        self.attempts += 1
        try:
            async with client:
                await self._welcome(client)
                _stop_if_cancelled()
                await self._serve(client)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            self._lost(exc)
        await asyncio.sleep(self._backoff.next())

    async def _find_broker(self) -> tuple[str, int] | None:
        settings = self.settings
        if settings.host is not None:
            self.broker, self.broker_source = (settings.host, settings.broker_port), "configuration"
            return self.broker
        if self.locate_broker is None:
            self._failed("no broker configured: set mqtt.host (or turn on mDNS to find one on the network)")
            return None
        found = await self.locate_broker()
        if found is None:
            self._failed("no MQTT broker found over mDNS (_mqtt._tcp); set mqtt.host to name one")
            return None
        if found != self.broker:
            log.info("MQTT broker found over mDNS", extra={"fields": {"broker": f"{found[0]}:{found[1]}"}})
        self.broker, self.broker_source = found, "mdns"
        return found

    def _client(self, host: str, port: int) -> aiomqtt.Client:
        settings = self.settings
        password = settings.password.get_secret_value() if settings.password is not None else None
        return aiomqtt.Client(
            host,
            port,
            username=settings.username,
            password=password,
            identifier=self.client_id,
            will=aiomqtt.Will(self.topics.availability, UNAVAILABLE, qos=1, retain=True),
            keepalive=settings.keepalive,
            timeout=settings.timeout_s,
            tls_context=self._tls,
            max_queued_incoming_messages=_INCOMING_QUEUE,
        )

    async def _welcome(self, client: aiomqtt.Client) -> None:
        """Discovery, then every retained reading, then ``online``: in this order on every connect."""
        topics = self.topics
        retained = await read_retained(client, [topics.discovery], topics.sync, self.settings.timeout_s)
        if topics.discovery in retained:
            self.discovery.remember(retained[topics.discovery])
        await self._publish(client, self._discovery_publication())
        self._queue_retained_readings()
        for publication in self.outbox.take_readings():
            await self._publish(client, publication)
        await client.subscribe(topics.commands, qos=1)
        await client.subscribe(topics.ha_status, qos=1)
        await self._publish(client, Publication(topics.availability, AVAILABLE, 1, True, reading=False))
        self._take_snapshots(True)
        self.connected = True
        self.connections += 1
        self.last_error = None
        self.last_connected_at = time.time()
        self._backoff.reset()
        host, port = self.broker or ("?", 0)
        log.info(
            "connected to the MQTT broker",
            extra={
                "fields": {
                    "broker": f"{host}:{port}",
                    "found_by": self.broker_source,
                    "device": topics.device_id,
                }
            },
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Send and receive until either fails (the connection is gone) or the sink is stopped. Two plain
        tasks rather than a TaskGroup: on Python 3.11 a TaskGroup whose child fails leaves its parent
        counted as cancelled (``Task.cancelling()``), which ``_stop_if_cancelled`` must be able to trust."""
        tasks = [
            asyncio.create_task(self._send(client), name="mqtt:send"),
            asyncio.create_task(self._receive(client), name="mqtt:receive"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            await _cancel(tasks)
            await self._goodbye(client)
            raise
        finally:
            self.connected = False
            self._take_snapshots(False)
            if self._rediscovery is not None:
                self._rediscovery.cancel()
        await _cancel(tasks)
        for task in done:
            task.result()

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            publication = await self.outbox.take()
            try:
                await self._publish(client, publication)
            except aiomqtt.MqttError:
                self.outbox.put_back(publication)
                raise
            _stop_if_cancelled()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = payload_bytes(message)
            if topic == self.topics.ha_status:
                if payload.decode(errors="replace").strip() == HA_ONLINE:
                    self._rediscover_soon()
                continue
            name = self.topics.command_name(topic)
            if name is None:
                continue
            if message.retain:
                log.warning("a retained MQTT command was not run", extra={"fields": {"topic": topic}})
                self.outbox.put(self.commands.refuse_retained(name))
                continue
            self.outbox.put(await self.commands.handle(name, payload))

    def _take_snapshots(self, wanted: bool) -> None:
        """Subscribe to the video's snapshots (which makes them rendered) while the camera can show them."""
        if self._subscription is None or not self.discovery.camera:
            return
        if wanted:
            self._subscription.topics.add(SNAPSHOT_TOPIC)
        else:
            self._subscription.topics.discard(SNAPSHOT_TOPIC)

    def _rediscover_soon(self) -> None:
        """Home Assistant (re)started: discovery and the readings again, after a random short delay."""
        if self._rediscovery is not None:
            self._rediscovery.cancel()

        def rediscover() -> None:
            self.outbox.put(self._discovery_publication())
            self._queue_retained_readings()

        delay = random.uniform(*HA_BIRTH_DELAY_S)
        self._rediscovery = asyncio.get_running_loop().call_later(delay, rediscover)

    async def _publish(self, client: aiomqtt.Client, publication: Publication) -> None:
        await client.publish(
            publication.topic, publication.payload, qos=publication.qos, retain=publication.retain
        )
        self.sent += 1
        if publication.topic == self.topics.discovery:
            self.discovery_sent += 1

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """On a clean stop: the events still owed (briefly), then ``offline``."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(_GOODBYE_S):
                while self.outbox.events:
                    publication = self.outbox.take_nowait()
                    if publication is not None:
                        await self._publish(client, publication)
                await client.publish(self.topics.availability, UNAVAILABLE, qos=1, retain=True)
        log.info("left the MQTT broker", extra={"fields": {"device": self.topics.device_id}})

    def _lost(self, exc: BaseException) -> None:
        was_connected = self.connected
        self.connected = False
        error = describe_failure(exc, self.settings.timeout_s)
        if was_connected:
            log.warning("lost the MQTT broker; reconnecting", extra={"fields": {"error": error}})
        self._failed(error)

    def _failed(self, error: str) -> None:
        """Record why there is no session; log it once per distinct error (retries repeat it)."""
        if error != self.last_error:
            host, port = self.broker or ("-", 0)
            log.error("MQTT: " + error, extra={"fields": {"broker": f"{host}:{port}"}})
        self.last_error = error

    def stats(self) -> SinkStats:
        subscription = self._subscription
        outbox = self.outbox
        host, port = self.broker or (None, None)
        details: dict[str, Any] = {
            "broker": None if host is None else f"{host}:{port}",
            "broker_found_by": self.broker_source,
            "device_id": self.topics.device_id,
            "attempts": self.attempts,
            "connections": self.connections,
            "last_connected_at": self.last_connected_at,
            "queued_events": outbox.events,
            "queued_readings": outbox.readings,
            "queue_high_water": outbox.high_water,
            "events_dropped": outbox.dropped,
            "readings_superseded": outbox.superseded,
            "commands": self.commands.handled,
            "commands_refused": self.commands.refused,
            "discovery_sent": self.discovery_sent,
        }
        return SinkStats(
            connected=self.connected,
            pending=len(outbox) + (subscription.pending if subscription else 0),
            dropped=outbox.dropped + outbox.superseded + (subscription.dropped if subscription else 0),
            delivered=self.sent,
            last_error=self.last_error,
            details=details,
        )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _stop_if_cancelled() -> None:
    """Raise the cancellation an awaited publish swallowed. aiomqtt waits with ``asyncio.wait_for``, which on
    Python 3.11 drops a cancellation that arrives as the awaited message completes (CPython gh-86296); the
    task still counts the request, so a stop can never be lost for good."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def tls_context(tls: MqttTlsSettings) -> ssl.SSLContext:
    """The TLS context of ``mqtt.tls`` (reads the files: call it off the event loop)."""
    context = ssl.create_default_context(cafile=None if tls.ca is None else str(tls.ca))
    if tls.cert is not None and tls.key is not None:
        context.load_cert_chain(tls.cert, tls.key)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_failure(exc: BaseException, timeout_s: float) -> str:
    """Why a session failed, in words that say what to check. No host names: health shows this."""
    if isinstance(exc, MqttConnectError):
        code = exc.rc.value if isinstance(exc.rc, ReasonCode) else exc.rc
        if code in _BAD_LOGIN:
            return (
                "the broker refused the login: bad user name or password (check mqtt.username and "
                "mqtt.password)"
            )
        if code in _NOT_AUTHORISED:
            return (
                "the broker refused the login: not authorised (check mqtt.username and mqtt.password, "
                "and that the broker's ACL lets this account in)"
            )
        return f"the broker refused the connection: {exc}"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"the broker's TLS certificate is not trusted ({cause.verify_message}): set mqtt.tls.ca to the "
            "CA that signed it"
        )
    if isinstance(cause, ssl.SSLError):
        return f"TLS with the broker failed ({cause.reason or cause}): is mqtt.port its TLS port?"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused: is the broker running, and is mqtt.port the port it listens on?"
    if isinstance(cause, socket.gaierror):
        return "cannot resolve the broker's host name (mqtt.host)"
    # Before OSError, which TimeoutError is.
    if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError) or str(exc) == "Operation timed out":
        return (
            f"the broker did not answer within {timeout_s:g} s (a TLS port without mqtt.tls, a firewall, "
            "or an overloaded broker?)"
        )
    if isinstance(cause, OSError):
        return f"cannot reach the broker: {cause.strerror or type(cause).__name__}"
    return f"connection to the broker lost: {exc}"
