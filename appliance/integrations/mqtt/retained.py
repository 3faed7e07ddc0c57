"""What the broker retains on some topics, read without guessing how long to wait for it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import aiomqtt


def payload_bytes(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()


async def read_retained(
    client: aiomqtt.Client, filters: Sequence[str], sync_topic: str, timeout_s: float
) -> dict[str, bytes]:
    """Topic -> payload of every message the broker retains on ``filters`` (none of the client's other
    subscriptions may be active).

    A broker sends a subscription's retained messages right after acknowledging it, before anything
    published later; so after subscribing, the client sends itself a token on ``sync_topic``, and when the
    token comes back every retained message has arrived. The subscriptions end before this returns.
    """
    token = uuid.uuid4().hex.encode()
    found: dict[str, bytes] = {}
    async with asyncio.timeout(timeout_s):
        for pattern in filters:
            await client.subscribe(pattern, qos=1)
        await client.subscribe(sync_topic, qos=1)
        await client.publish(sync_topic, token, qos=1)
        async for message in client.messages:
            payload = payload_bytes(message)
            topic = str(message.topic)
            if topic == sync_topic:
                if payload == token:
                    break
                continue
            if message.retain and payload:
                found[topic] = payload
        await client.unsubscribe([*filters, sync_topic])
    return found
