"""The guard against server-side request forgery: which addresses a webhook may reach.

Expected categories come from the address registries, not from the code: RFC 1122 (0/8, 127/8), RFC 1918
(private), RFC 6598 (100.64/10, shared), RFC 3927 (169.254/16 link-local), RFC 4193 (fc00::/7), RFC 4291
(::1, fe80::/10, ::ffff:0:0/96 mapped), RFC 5771 (multicast), and the cloud providers' documented metadata
addresses.
"""

from __future__ import annotations

import socket
from ipaddress import ip_address as ip

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from appliance.integrations.webhooks.guard import (
    GuardedResolver,
    TargetPolicy,
    TargetRefusedError,
    check_address,
    check_target,
    check_url,
    refusal,
)

DEFAULT = TargetPolicy()
EVERYTHING = TargetPolicy(allow_loopback=True, allow_link_local=True, allow_cloud_metadata=True)

REFUSED_BY_DEFAULT = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "169.254.169.254": "cloud metadata",
    "169.254.170.2": "cloud metadata",
    "fd00:ec2::254": "cloud metadata",
    "100.100.100.200": "cloud metadata",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.251": "multicast",
    "ff02::fb": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
}
ALLOWED_BY_DEFAULT = [
    "192.168.1.20",
    "10.0.0.5",
    "172.16.4.4",
    "100.64.0.1",
    "fd12:3456::1",
    "93.184.216.34",
    "2606:4700::1111",
]


@pytest.mark.parametrize(("address", "category"), REFUSED_BY_DEFAULT.items())
def test_refused_by_default(address: str, category: str) -> None:
    why = refusal(ip(address), DEFAULT)
    assert why is not None and category in why


@pytest.mark.parametrize("address", ALLOWED_BY_DEFAULT)
def test_allowed_by_default(address: str) -> None:
    assert refusal(ip(address), DEFAULT) is None


def test_each_setting_opens_its_own_category_only() -> None:
    loopback = TargetPolicy(allow_loopback=True)
    assert refusal(ip("127.0.0.1"), loopback) is None
    assert refusal(ip("169.254.1.1"), loopback) is not None
    link_local = TargetPolicy(allow_link_local=True)
    assert refusal(ip("169.254.1.1"), link_local) is None
    # Allowing link-local does not open the metadata endpoint inside it.
    assert "metadata" in (refusal(ip("169.254.169.254"), link_local) or "")
    no_private = TargetPolicy(allow_private=False)
    assert "private" in (refusal(ip("192.168.1.20"), no_private) or "")
    assert "private" in (refusal(ip("100.64.0.1"), no_private) or "")
    # Never allowed, whatever the settings.
    for address in ("0.0.0.0", "::", "224.0.0.1", "240.0.0.1"):
        assert refusal(ip(address), EVERYTHING) is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8123/api/webhook/x",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0:8099/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_literal_addresses_are_refused_before_any_connection(url: str) -> None:
    with pytest.raises(TargetRefusedError, match="target refused"):
        check_url(URL(url), DEFAULT)


def test_a_setting_named_in_the_refusal_is_the_one_that_allows_it() -> None:
    with pytest.raises(TargetRefusedError, match=r"set webhooks\.allow_loopback: true"):
        check_url(URL("http://127.0.0.1/"), DEFAULT)
    check_url(URL("http://127.0.0.1/"), TargetPolicy(allow_loopback=True))


@pytest.mark.parametrize(
    ("address", "policy", "why"),
    [
        ("0.0.0.0", EVERYTHING, "the unspecified address, which reaches this machine; never allowed"),
        ("ff02::fb", EVERYTHING, "a multicast address; never allowed"),
        ("240.0.0.1", EVERYTHING, "a reserved address; never allowed"),
        ("169.254.169.254", DEFAULT,
         "a cloud metadata endpoint; set webhooks.allow_cloud_metadata: true to allow it"),
        ("127.0.0.1", DEFAULT, "loopback; set webhooks.allow_loopback: true to allow it"),
        ("fe80::1%eth0", DEFAULT, "link-local; set webhooks.allow_link_local: true to allow it"),
        ("10.0.0.5", TargetPolicy(allow_private=False),
         "private; set webhooks.allow_private: true to allow it"),
    ],
)  # fmt: skip
def test_a_refusal_says_what_the_address_is_and_the_setting_that_allows_it(
    address: str, policy: TargetPolicy, why: str
) -> None:
    # The text a user reads in the delivery log and in the API's answer to a new webhook.
    assert refusal(ip(address), policy) == why
    with pytest.raises(TargetRefusedError) as refused:
        check_address("hooks.example", address, policy)
    assert str(refused.value) == f"target refused: hooks.example ({address}) is {why}"


class FixedResolver(AbstractResolver):
    """Answers every name with fixed addresses: what a hostile DNS server could return (no such server
    can run here, and tests must not query real ones). Records what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[tuple[str, int, socket.AddressFamily]] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append((host, port, family))
        return [
            ResolveResult(
                hostname=host, host=a, port=port, family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0, flags=0,
            )
            for a in self.addresses
        ]  # fmt: skip

    async def close(self) -> None:
        return None


async def test_a_name_is_refused_if_any_of_its_addresses_is() -> None:
    mixed = GuardedResolver(DEFAULT, FixedResolver("93.184.216.34", "169.254.169.254"))
    with pytest.raises(
        TargetRefusedError, match=r"hooks\.example \(169\.254\.169\.254\) is a cloud metadata"
    ):
        await mixed.resolve("hooks.example", 443)
    clean = GuardedResolver(DEFAULT, FixedResolver("93.184.216.34", "2606:4700::1111"))
    assert [r["host"] for r in await clean.resolve("hooks.example", 443)] == [
        "93.184.216.34",
        "2606:4700::1111",
    ]


async def test_the_guard_resolves_exactly_what_aiohttp_asks_for() -> None:
    inner = FixedResolver("2606:4700::1111")
    resolved = await GuardedResolver(DEFAULT, inner).resolve("hooks.example", 8443, socket.AF_INET6)
    assert inner.asked == [("hooks.example", 8443, socket.AF_INET6)]
    assert [(r["hostname"], r["host"], r["port"]) for r in resolved] == [
        ("hooks.example", "2606:4700::1111", 8443)
    ]


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "127.1"])
async def test_names_and_numeric_spellings_resolving_to_loopback_are_refused(host: str) -> None:
    # The system resolver turns these into 127.0.0.1 (or ::1) without any query leaving the machine.
    resolver = GuardedResolver(DEFAULT)
    with pytest.raises(TargetRefusedError, match="loopback"):
        await resolver.resolve(host, 80, socket.AF_UNSPEC)


async def test_check_target_refuses_names_early() -> None:
    with pytest.raises(TargetRefusedError, match="localhost"):
        await check_target(URL("http://localhost:8123/hook"), DEFAULT)
    await check_target(URL("http://localhost:8123/hook"), TargetPolicy(allow_loopback=True))
    with pytest.raises(TargetRefusedError, match="unspecified"):
        await check_target(URL("http://0.0.0.0/hook"), EVERYTHING)
    with pytest.raises(TargetRefusedError, match="loopback"):
        await check_target(URL("http://127.0.0.1:8123/hook"), DEFAULT)
