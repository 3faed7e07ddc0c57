"""Find the appliance on the network: it advertises ``_invispose._tcp.local.`` over mDNS.

The advertisement is the appliance's (TXT ``id``, ``version``, ``path=/api/v1``, ...). A node needs the
appliance's address and the UDP port its CSI listener takes; that port is read from TXT ``csi_udp`` when the
appliance says it, else it is the appliance's default (``appliance.csi.sources.udp.DEFAULT_UDP_PORT``).

``interfaces`` limits where mDNS queries go (python-zeroconf sends on every interface by default); tests
and loopback-only machines pass ``["127.0.0.1"]``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import Final

from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance.csi.sources.udp import DEFAULT_UDP_PORT

SERVICE_TYPE: Final = "_invispose._tcp.local."
CSI_UDP_TXT: Final = "csi_udp"
DEFAULT_TIMEOUT_S: Final = 3.0


class DiscoveryError(RuntimeError):
    """No single appliance found; says what to do instead."""


@dataclass(frozen=True, slots=True)
class Appliance:
    name: str
    address: str
    csi_port: int
    properties: dict[str, str]


def _decode(properties: dict[bytes, bytes | None]) -> dict[str, str]:
    return {
        k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace") for k, v in properties.items()
    }


async def find_appliances(
    *, timeout_s: float = DEFAULT_TIMEOUT_S, interfaces: list[str] | None = None
) -> list[Appliance]:
    """Every appliance that answers within ``timeout_s``."""
    v4_only = interfaces is not None and all(ipaddress.ip_address(i).version == 4 for i in interfaces)
    aiozc = AsyncZeroconf(
        interfaces=interfaces if interfaces is not None else InterfaceChoice.All,
        ip_version=IPVersion.V4Only if v4_only else IPVersion.All,
    )
    names: list[str] = []

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added and name not in names:
            names.append(name)

    browser = AsyncServiceBrowser(aiozc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        await asyncio.sleep(timeout_s)
        found = []
        for name in names:
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            if not await info.async_request(aiozc.zeroconf, timeout_s * 1000):
                continue
            addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
            if not addresses:
                continue
            props = _decode(info.properties)
            port_text = props.get(CSI_UDP_TXT, "")
            csi_port = int(port_text) if port_text.isdigit() else DEFAULT_UDP_PORT
            found.append(Appliance(name, addresses[0], csi_port, props))
        return found
    finally:
        await browser.async_cancel()
        await aiozc.async_close()


def find_sink(*, timeout_s: float = DEFAULT_TIMEOUT_S, interfaces: list[str] | None = None) -> Appliance:
    """The one appliance on the network; ``DiscoveryError`` for none or several."""
    found = asyncio.run(find_appliances(timeout_s=timeout_s, interfaces=interfaces))
    if not found:
        raise DiscoveryError(
            f"no appliance answered mDNS ({SERVICE_TYPE}) within {timeout_s:.0f} s: is it running and on "
            "this network (mDNS does not cross routers or VLANs)? Give --sink HOST:PORT instead."
        )
    if len(found) > 1:
        listed = ", ".join(f"{a.name} at {a.address}:{a.csi_port}" for a in found)
        raise DiscoveryError(f"several appliances answered ({listed}); choose one with --sink HOST:PORT")
    return found[0]
