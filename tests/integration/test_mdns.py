"""mDNS on loopback only (../shared/NOTES.md): a zeroconf browser in the test finds the appliance with its TXT
record and loses it after stop; a new address is advertised; CSI nodes and an MQTT broker registered by
the test are found.

Service names carry a random suffix: other test runs on this machine may advertise on loopback too.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance.hub import Hub
from appliance.integrations.mdns import (
    Advertisement,
    BrokerNotFoundError,
    MdnsAdvertiser,
    MdnsSettings,
    locate_broker,
)
from appliance.integrations.runner import SinkRunner
from tests.app_support import scoped, start
from tests.mdns_support import LOOPBACK, registered

APPLIANCE = "_invispose._tcp.local."
HTTP = "_http._tcp.local."


def advertisement(**fields: Any) -> Advertisement:
    values: dict[str, Any] = {
        "appliance_id": "abc123",
        "port": 8123,
        "version": "9.9.9",
        "name": "InvisPose Test",
        "mqtt_prefix": "invispose",
        "model": "Raspberry Pi 5 Model B Rev 1.0",
        "csi_udp_port": 5566,
    }
    return Advertisement(**{**values, **fields})


class Watcher:
    """A browser on loopback recording, per full service name, whether it is there now."""

    def __init__(self, aiozc: AsyncZeroconf) -> None:
        self.aiozc = aiozc
        self.present: dict[str, bool] = {}

    def on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        self.present[name] = state_change is not ServiceStateChange.Removed

    async def info(self, service_type: str, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(service_type, name)
        assert await info.async_request(self.aiozc.zeroconf, 3000), f"{name} did not answer"
        return info


@asynccontextmanager
async def watching(*service_types: str) -> AsyncIterator[Watcher]:
    aiozc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    watcher = Watcher(aiozc)
    browser = AsyncServiceBrowser(aiozc.zeroconf, list(service_types), handlers=[watcher.on_change])
    try:
        yield watcher
    finally:
        await browser.async_cancel()
        await aiozc.async_close()


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def decoded(info: AsyncServiceInfo) -> dict[str, str]:
    return {k.decode(): (v or b"").decode() for k, v in info.properties.items()}


async def test_found_with_its_txt_record_and_gone_at_once_after_stop() -> None:
    name = f"InvisPose {uuid.uuid4().hex[:8]}"
    advertiser = MdnsAdvertiser(MdnsSettings(interfaces=LOOPBACK, name=name), advertisement())
    full = {APPLIANCE: f"{name}.{APPLIANCE}", HTTP: f"{name}.{HTTP}"}
    async with watching(APPLIANCE, HTTP) as watcher:
        async with SinkRunner([advertiser], Hub()):
            await until(lambda: all(watcher.present.get(n) for n in full.values()), "both services")
            appliance = await watcher.info(APPLIANCE, full[APPLIANCE])
            http = await watcher.info(HTTP, full[HTTP])
            assert advertiser.stats().connected
        stopped = time.monotonic()
        # The records live 120 s in a cache: only the goodbye packets make browsers drop them this soon.
        await until(lambda: not any(watcher.present[n] for n in full.values()), "the goodbye", timeout_s=5)
        assert time.monotonic() - stopped < 5
    # The keys the issue lists, lowercase, plus csi_udp for `invispose-node provision --sink auto`.
    assert decoded(appliance) == {
        "txtvers": "1",
        "id": "abc123",
        "version": "9.9.9",
        "path": "/api/v1",
        "ws": "/ws/v1/stream",
        "mqtt_prefix": "invispose",
        "model": "Raspberry Pi 5 Model B Rev 1.0",
        "friendly_name": "InvisPose Test",
        "csi_udp": "5566",
    }
    assert decoded(http)["path"] == "/"  # DNS-SD: the page a browser opens
    assert (appliance.port, appliance.parsed_addresses()) == (8123, ["127.0.0.1"])
    assert appliance.server == "invispose-abc123.local."


async def test_a_changed_address_is_advertised_again() -> None:
    name = f"InvisPose {uuid.uuid4().hex[:8]}"
    # The machine's addresses cannot change in a test; the advertiser reads them through this instead.
    addresses = ["127.0.0.1"]
    advertiser = MdnsAdvertiser(
        MdnsSettings(interfaces=LOOPBACK, name=name), advertisement(), addresses=lambda: list(addresses),
        address_check_s=0.1,
    )  # fmt: skip
    full = f"{name}.{APPLIANCE}"
    async with watching(APPLIANCE) as watcher, SinkRunner([advertiser], Hub()):
        await until(lambda: advertiser.advertised_addresses == ["127.0.0.1"], "the first advertisement")
        assert (await watcher.info(APPLIANCE, full)).parsed_addresses() == ["127.0.0.1"]
        addresses[:] = ["127.0.0.2"]
        await until(lambda: advertiser.advertised_addresses == ["127.0.0.2"], "the new advertisement")
        assert advertiser.readvertised == 1
        await until(lambda: watcher.present.get(full) is True, "the service back")
        assert (await watcher.info(APPLIANCE, full)).parsed_addresses() == ["127.0.0.2"]


async def test_routers_lists_csi_nodes_that_announce_themselves(aiohttp_client: Any, tmp_path: Path) -> None:
    client, admin = await start(aiohttp_client, tmp_path, silent=True)  # the shipped mdns: 127.0.0.1 only
    reader = await scoped(client, admin, "system:read")
    node = f"node-{uuid.uuid4().hex[:8]}"

    async def discovered() -> list[dict[str, Any]]:
        body = await (await client.get("/api/v1/system/routers", headers=reader)).json()
        return [d for d in body["discovered"] if d["name"] == node]

    async with registered("_invispose-node._udp.local.", node, 5566, {"node_id": "7", "chip": "esp32s3"}):
        deadline = time.monotonic() + 15
        while not (found := await discovered()):
            assert time.monotonic() < deadline, "the node was never listed"
            await asyncio.sleep(0.1)
        assert found[0]["service"] == "_invispose-node._udp"
        assert (found[0]["addresses"], found[0]["port"]) == (["127.0.0.1"], 5566)
        assert found[0]["properties"] == {"node_id": "7", "chip": "esp32s3"}
    deadline = time.monotonic() + 5
    while await discovered():
        assert time.monotonic() < deadline, "the node stayed listed after its goodbye"
        await asyncio.sleep(0.1)


async def test_locate_broker_finds_an_advertised_broker() -> None:
    with socket.socket() as sock:  # a port number nobody else advertises
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with registered("_mqtt._tcp.local.", f"broker-{uuid.uuid4().hex[:8]}", port, {}):
        assert await locate_broker(interfaces=LOOPBACK, timeout_s=10) == ("127.0.0.1", port)


async def test_locate_broker_says_what_to_do_when_none_answers() -> None:
    with pytest.raises(BrokerNotFoundError, match=r"within 0\.5 s: set mqtt\.host"):
        await locate_broker(interfaces=LOOPBACK, timeout_s=0.5)
