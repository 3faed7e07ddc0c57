"""mDNS services announced on loopback by a test itself (../shared/NOTES.md: loopback only)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

LOOPBACK = ["127.0.0.1"]
MQTT_SERVICE = "_mqtt._tcp.local."


@asynccontextmanager
async def registered(
    service_type: str, name: str, port: int, properties: dict[str, str]
) -> AsyncIterator[None]:
    """A service announced on loopback by the test itself (a node, a broker), withdrawn at the end."""
    aiozc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(
        service_type, f"{name}.{service_type}", port=port, properties=properties,
        addresses=[socket.inet_aton("127.0.0.1")], server=f"{name}.local.",
    )  # fmt: skip
    await (await aiozc.async_register_service(info))
    try:
        yield
    finally:
        await (await aiozc.async_unregister_service(info))
        await aiozc.async_close()
