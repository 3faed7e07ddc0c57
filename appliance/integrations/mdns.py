"""mDNS (DNS-SD, python-zeroconf): the appliance says where it is, and finds what is around it.

``MdnsAdvertiser`` (a sink: the runner keeps it up and reports it) announces ``_invispose._tcp.local.`` and
``_http._tcp.local.`` on the API port, with lowercase TXT keys (``Advertisement.txt``), and browses for CSI
nodes that announce themselves (``_invispose-node._udp`` from our provisioning, ``_espectre._tcp``), which
``/api/v1/system/routers`` shows. When the machine's addresses change it stops advertising (goodbye
packets), and starts again on the new ones; stopping always waits for the goodbye, so browsers forget the
appliance at once instead of when the record expires.

``locate_broker`` finds an MQTT broker (``_mqtt._tcp``) for an MQTT sink whose broker is not configured.

``mdns.interfaces`` limits where packets go: a real box uses ``all``; tests and development machines use
``[127.0.0.1]`` so that nothing is multicast on the network they sit on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import platform
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import ifaddr
from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, field_validator
from zeroconf import (
    BadTypeInNameException,
    InterfaceChoice,
    IPVersion,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance.integrations.base import Sink, SinkStats

log = logging.getLogger(__name__)

APPLIANCE_SERVICE = "_invispose._tcp.local."
HTTP_SERVICE = "_http._tcp.local."
NODE_SERVICES = ("_invispose-node._udp.local.", "_espectre._tcp.local.")
MQTT_SERVICE = "_mqtt._tcp.local."
TXT_VERSION = "1"
API_PATH = "/api/v1"
STREAM_PATH = "/ws/v1/stream"
# How often the machine's addresses are compared with the advertised ones.
ADDRESS_CHECK_S = 30.0
# Longest wait for a found service's address, port and TXT record.
RESOLVE_TIMEOUT_MS = 3000
# A DNS-SD instance name is one DNS label: at most 63 bytes.
_MAX_NAME_BYTES = 63

Interfaces = Literal["all"] | list[str]


class MdnsSettings(BaseModel):
    """The ``mdns:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Advertise the appliance and look for CSI nodes over mDNS.")
    interfaces: Literal["all"] | list[IPvAnyAddress] = Field(
        "all",
        description="Addresses whose interfaces mDNS uses: all (a real box) or a list, e.g. [127.0.0.1] "
        "on a development machine, so nothing is multicast on its network.",
    )
    name: str | None = Field(
        None,
        min_length=1,
        description="Instance name browsers show (default: InvisPose <room name>); another appliance "
        "with the same name makes this one add ' (2)'.",
    )

    @field_validator("interfaces")
    @classmethod
    def _interfaces(
        cls, value: Literal["all"] | list[ipaddress.IPv4Address | ipaddress.IPv6Address]
    ) -> Literal["all"] | list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if value == "all":
            return value
        if not value:
            raise ValueError("list at least one address, or say all")
        for address in value:
            if address.is_unspecified or address.is_multicast:
                raise ValueError(f"{address} is not an interface's address (for every interface, say all)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and len(value.encode()) > _MAX_NAME_BYTES:
            raise ValueError(f"at most {_MAX_NAME_BYTES} bytes (one DNS label)")
        return value

    @property
    def interface_list(self) -> Interfaces:
        return "all" if self.interfaces == "all" else [str(a) for a in self.interfaces]


@dataclass(frozen=True, slots=True)
class Advertisement:
    """What the appliance says about itself; ``app.py`` fills it in from the configuration."""

    appliance_id: str
    port: int
    version: str
    name: str
    mqtt_prefix: str  # empty while MQTT is off
    model: str
    csi_udp_port: int | None  # the UDP port ESP32 nodes send CSI to, when a UDP source listens

    def txt(self, path: str = API_PATH) -> dict[str, str]:
        txt = {
            "txtvers": TXT_VERSION,
            "id": self.appliance_id,
            "version": self.version,
            "path": path,
            "ws": STREAM_PATH,
            "mqtt_prefix": self.mqtt_prefix,
            "model": self.model,
            "friendly_name": self.name,
        }
        if self.csi_udp_port is not None:
            # ``invispose-node provision --sink auto`` points nodes at this port.
            txt["csi_udp"] = str(self.csi_udp_port)
        return txt

    @property
    def host_name(self) -> str:
        """The host name the addresses are announced under: unique per appliance, a valid DNS label."""
        label = re.sub(r"[^a-z0-9-]+", "-", self.appliance_id.lower()).strip("-")
        return f"invispose-{label}"[:_MAX_NAME_BYTES] + ".local."


def hardware_model() -> str:
    """What the appliance runs on: the board (device tree) or the machine's product name, else the CPU
    architecture."""
    for path in (Path("/sys/firmware/devicetree/base/model"), Path("/sys/class/dmi/id/product_name")):
        with contextlib.suppress(OSError):
            text = path.read_bytes().decode("utf-8", "replace").strip("\0 \n")
            if text:
                return text
    return platform.machine() or "unknown"


@dataclass(frozen=True, slots=True)
class DiscoveredService:
    """A service found while browsing, as it last announced itself."""

    service_type: str
    name: str
    addresses: tuple[str, ...]
    port: int
    properties: dict[str, str]
    last_seen: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service_type.removesuffix(".local."),
            "name": self.name.removesuffix("." + self.service_type),
            "addresses": list(self.addresses),
            "port": self.port,
            "properties": self.properties,
            "last_seen": self.last_seen,
        }


class BrokerNotFoundError(LookupError):
    """No MQTT broker answered over mDNS."""


def zeroconf_for(interfaces: Interfaces) -> AsyncZeroconf:
    """A zeroconf instance that sends and listens on ``interfaces`` only."""
    if interfaces == "all":
        return AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.All)
    versions = {ipaddress.ip_address(a).version for a in interfaces}
    ip_version = (
        IPVersion.All if len(versions) > 1 else (IPVersion.V4Only if 4 in versions else IPVersion.V6Only)
    )
    return AsyncZeroconf(interfaces=list(interfaces), ip_version=ip_version)


def machine_addresses(interfaces: Interfaces) -> list[str]:
    """The addresses to announce: the configured ones, or every address of the machine that another
    machine could reach (not loopback, not IPv6 link-local, which needs an interface to be usable)."""
    if interfaces != "all":
        return sorted(interfaces)
    usable = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ipaddress.ip_address(ip.ip if isinstance(ip.ip, str) else ip.ip[0])
            if not address.is_loopback and not address.is_link_local:
                usable.add(str(address))
    return sorted(usable)


def _parsed(info: AsyncServiceInfo) -> tuple[str, ...]:
    return tuple(info.parsed_addresses(IPVersion.V4Only) + info.parsed_addresses(IPVersion.V6Only))


def _text(properties: dict[bytes, bytes | None]) -> dict[str, str]:
    return {
        key.decode("utf-8", "replace"): (value or b"").decode("utf-8", "replace")
        for key, value in properties.items()
    }


async def locate_broker(*, interfaces: Interfaces = "all", timeout_s: float = 5.0) -> tuple[str, int]:
    """The address and port of the first MQTT broker that answers over mDNS (``_mqtt._tcp``), an IPv4
    address if it has one; ``BrokerNotFoundError`` when none answers within ``timeout_s``."""
    aiozc = zeroconf_for(interfaces)
    names: asyncio.Queue[str] = asyncio.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is not ServiceStateChange.Removed:
            names.put_nowait(name)

    browser = AsyncServiceBrowser(aiozc.zeroconf, MQTT_SERVICE, handlers=[on_change])
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                name = await names.get()
                info = AsyncServiceInfo(MQTT_SERVICE, name)
                if await info.async_request(aiozc.zeroconf, RESOLVE_TIMEOUT_MS) and info.port:
                    addresses = _parsed(info)
                    if addresses:
                        return addresses[0], info.port
    except TimeoutError:
        raise BrokerNotFoundError(
            f"no MQTT broker answered over mDNS ({MQTT_SERVICE}) within {timeout_s:g} s: set mqtt.host "
            "(brokers do not always advertise themselves; Mosquitto does not by default)"
        ) from None
    finally:
        await browser.async_cancel()
        await aiozc.async_close()


class MdnsAdvertiser(Sink):
    """Advertises the appliance and browses for CSI nodes while it runs."""

    name = "mdns"

    def __init__(
        self,
        settings: MdnsSettings,
        advertisement: Advertisement,
        *,
        addresses: Callable[[], list[str]] | None = None,
        address_check_s: float = ADDRESS_CHECK_S,
    ) -> None:
        """``addresses`` gives the addresses to announce (default: ``machine_addresses``); tests pass their
        own to change them, since a test cannot change the machine's."""
        self.settings = settings
        self.advertisement = advertisement
        self._addresses = addresses or (lambda: machine_addresses(settings.interface_list))
        self.address_check_s = address_check_s
        self.instance_name = settings.name or advertisement.name
        self.running = False  # zeroconf is up: announcing (or probing the names first) and browsing
        self.registered: list[str] = []  # full names of the services announced now
        self.advertised_addresses: list[str] = []
        self.readvertised = 0
        self._found: dict[tuple[str, str], DiscoveredService] = {}
        self._resolving: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        addresses = self._addresses()
        while True:
            async with self._advertising(addresses):
                changed = await self._address_change(addresses)
            log.info(
                "mdns: the machine's addresses changed; advertising again",
                extra={"fields": {"before": addresses, "after": changed}},
            )
            addresses = changed
            self.readvertised += 1

    async def _address_change(self, addresses: list[str]) -> list[str]:
        """Wait until the machine's addresses differ from ``addresses`` (there is no portable event for
        that, so they are compared every ``address_check_s``); the new ones."""
        while True:
            await asyncio.sleep(self.address_check_s)
            now = self._addresses()
            if now != addresses:
                return now

    def stats(self) -> SinkStats:
        return SinkStats(
            connected=self.running,
            delivered=len(self.registered),
            details={
                "services": list(self.registered),
                "addresses": list(self.advertised_addresses),
                "readvertised": self.readvertised,
                "found": len(self._found),
            },
        )

    def found(self) -> list[DiscoveredService]:
        """The CSI nodes found so far, by service type and name."""
        return sorted(self._found.values(), key=lambda s: (s.service_type, s.name))

    @contextlib.asynccontextmanager
    async def _advertising(self, addresses: list[str]) -> AsyncIterator[None]:
        aiozc = zeroconf_for(self.settings.interface_list)
        browser: AsyncServiceBrowser | None = None
        registered: list[AsyncServiceInfo] = []
        self.running = True
        try:
            browser = AsyncServiceBrowser(aiozc.zeroconf, list(NODE_SERVICES), handlers=[self._on_change])
            for info in self._service_infos(addresses):
                announced = await aiozc.async_register_service(info, allow_name_change=True)
                registered.append(info)
                await announced
                self.registered.append(info.name)
            self.advertised_addresses = addresses
            log.info(
                "mdns: advertising", extra={"fields": {"services": self.registered, "addresses": addresses}}
            )
            yield
        finally:
            self.running = False
            self.registered, self.advertised_addresses = [], []
            for task in list(self._resolving):
                task.cancel()
            self._found.clear()
            if browser is not None:
                await browser.async_cancel()
            for info in registered:
                goodbye = await aiozc.async_unregister_service(info)
                await goodbye
            await aiozc.async_close()

    def _service_infos(self, addresses: Iterable[str]) -> list[AsyncServiceInfo]:
        ad = self.advertisement
        packed = [ipaddress.ip_address(a).packed for a in addresses]
        # DNS-SD's ``path`` of an _http._tcp service is the page a browser opens: the web UI.
        paths = {APPLIANCE_SERVICE: API_PATH, HTTP_SERVICE: "/"}
        return [
            AsyncServiceInfo(
                service_type,
                f"{self.instance_name}.{service_type}",
                port=ad.port,
                properties=ad.txt(path),
                server=ad.host_name,
                addresses=packed,
            )
            for service_type, path in paths.items()
        ]

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            self._found.pop((service_type, name), None)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(zeroconf, service_type, name))
        self._resolving.add(task)
        task.add_done_callback(self._resolving.discard)

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        try:
            answered = await info.async_request(zeroconf, RESOLVE_TIMEOUT_MS)
        except BadTypeInNameException:
            return
        if not answered or not info.port:
            return
        self._found[(service_type, name)] = DiscoveredService(
            service_type, name, _parsed(info), info.port, _text(info.properties), time.time()
        )
