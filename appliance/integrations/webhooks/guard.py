"""Guard against server-side request forgery: which addresses a webhook may reach.

A webhook URL is chosen by whoever may write the configuration, and the appliance then calls it from
inside the home network. Without a guard, a URL could make it talk to services that trust the box
itself (loopback), to link-local devices, or to a cloud provider's metadata endpoint, and the delivery
log would show their answers. So:

- an IP literal in a URL is checked before any connection;
- a host name is resolved by ``GuardedResolver``, which checks *every* address the name resolves to and
  hands aiohttp exactly the addresses it checked, so a name cannot resolve to an allowed address for the
  check and a forbidden one for the connection (DNS rebinding);
- redirects are followed by the sender, one hop at a time, through the same two checks.

The unspecified address (``0.0.0.0``, ``::``, which Linux connects to this machine), multicast and
reserved addresses are always refused; the rest follows ``TargetPolicy``.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import BaseModel, ConfigDict, Field
from yarl import URL

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services: AWS, GCP, Azure, OpenStack and DigitalOcean (169.254.169.254), AWS
# containers (169.254.170.2), AWS over IPv6 (fd00:ec2::254), Alibaba Cloud (100.100.100.200).
CLOUD_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class TargetPolicy(BaseModel):
    """Which addresses a webhook may reach. A guard against server-side request forgery: whoever can
    create a webhook must not be able to make the appliance call its own loopback services or a cloud
    metadata endpoint. Every address a host name resolves to is checked, on every connection and every
    redirect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_loopback: bool = Field(False, description="Allow 127.0.0.0/8 and ::1 (this machine).")
    allow_link_local: bool = Field(False, description="Allow 169.254.0.0/16 and fe80::/10.")
    allow_private: bool = Field(
        True,
        description="Allow private networks (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): where "
        "a home's Node-RED or Home Assistant lives.",
    )
    allow_cloud_metadata: bool = Field(
        False, description="Allow cloud metadata endpoints (169.254.169.254, fd00:ec2::254, ...)."
    )


class TargetRefusedError(OSError):
    """A webhook target the policy does not allow; says which setting would allow it, if any."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"target refused: {shown} is {reason}")


def refusal(address: IpAddress, policy: TargetPolicy) -> str | None:
    """Why ``address`` may not be reached under ``policy``, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "the unspecified address, which reaches this machine; never allowed"
    if address.is_multicast:
        return "a multicast address; never allowed"
    if address in CLOUD_METADATA:
        if policy.allow_cloud_metadata:
            return None
        return "a cloud metadata endpoint; set webhooks.allow_cloud_metadata: true to allow it"
    if address.is_loopback:
        return None if policy.allow_loopback else "loopback; set webhooks.allow_loopback: true to allow it"
    if address.is_link_local:
        if policy.allow_link_local:
            return None
        return "link-local; set webhooks.allow_link_local: true to allow it"
    if any(address in network for network in PRIVATE_NETWORKS if network.version == address.version):
        return None if policy.allow_private else "private; set webhooks.allow_private: true to allow it"
    if address.is_reserved:
        return "a reserved address; never allowed"
    return None


def check_address(host: str, address: str, policy: TargetPolicy) -> None:
    """Raise ``TargetRefusedError`` unless ``address`` (one of ``host``'s) may be reached."""
    why = refusal(ipaddress.ip_address(address), policy)  # a zone (fe80::1%eth0) is part of the syntax
    if why is not None:
        raise TargetRefusedError(host, address, why)


def literal_address(url: URL) -> str | None:
    """The URL's host when it is an IP address (aiohttp connects to those without resolving), else
    None. yarl gives an IPv6 host without its brackets."""
    try:
        return str(ipaddress.ip_address(url.raw_host or ""))
    except ValueError:
        return None


def check_url(url: URL, policy: TargetPolicy) -> None:
    """Refuse a URL whose host is a forbidden IP literal; names are checked when they are resolved."""
    address = literal_address(url)
    if address is not None:
        check_address(url.raw_host or address, address, policy)


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (aiohttp's default resolver unless given), refusing the whole name if any
    of its addresses is refused."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(host, result["host"], self.policy)
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_target(url: URL, policy: TargetPolicy) -> None:
    """Refuse a new webhook's URL early, with the reason, when its host is or resolves to a forbidden
    address. A name that does not resolve now is let through: deliveries check it on every connection."""
    check_url(url, policy)
    host = url.raw_host
    if host is None or literal_address(url) is not None:
        return
    resolver = GuardedResolver(policy)
    try:
        await resolver.resolve(host, 0, socket.AF_UNSPEC)  # the port changes no address
    except TargetRefusedError:
        raise
    except OSError:
        return
    finally:
        await resolver.close()
