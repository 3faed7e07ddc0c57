"""``provision --sink auto`` finds the appliance over mDNS. The test registers ``_invispose._tcp.local.``
itself with python-zeroconf, on 127.0.0.1 only (the machine's network must not see test traffic), so that
it decides the TXT record (with and without ``csi_udp``) and how many appliances answer; the appliance's
own record is checked against the same keys in tests/integration/test_mdns.py. An appliance running on
this machine with mDNS on loopback answers too (these tests then see one appliance more)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from tests.firmware_tools import nvs_reader
from tests.firmware_tools.conftest import run_cli

SERVICE = "_invispose._tcp.local."


@pytest.fixture
def advertise() -> Iterator[object]:
    zeroconf = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    registered: list[ServiceInfo] = []

    def register(name: str, properties: dict[str, str]) -> None:
        info = ServiceInfo(
            SERVICE, f"{name}.{SERVICE}", addresses=[socket.inet_aton("127.0.0.1")], port=8099,
            properties=properties, server=f"{name}.local.",
        )  # fmt: skip
        zeroconf.register_service(info)
        registered.append(info)

    yield register
    for info in registered:
        zeroconf.unregister_service(info)
    zeroconf.close()


def provision_auto(tmp_path: Path, timeout: str = "3") -> tuple[int, str, Path]:
    out = tmp_path / "nvs.bin"
    code, _, err = run_cli(
        "provision", "--output", str(out), "--ssid", "Net", "--node-id", "1", "--sink", "auto",
        "--mdns-interface", "127.0.0.1", "--mdns-timeout", timeout,
    )  # fmt: skip
    return code, err, out


def test_sink_auto_uses_the_advertised_address_and_csi_port(tmp_path: Path, advertise: object) -> None:
    advertise("invispose-kitchen", {"id": "abc123", "version": "0.1.0", "path": "/api/v1", "csi_udp": "5999"})  # type: ignore[operator]
    code, err, out = provision_auto(tmp_path)
    assert code == 0, err
    keys = nvs_reader.read(out.read_bytes())["invispose"]
    assert keys["sink_host"] == ("string", "127.0.0.1")
    assert keys["sink_port"] == ("u16", 5999)


def test_sink_auto_without_csi_port_uses_the_appliances_default(tmp_path: Path, advertise: object) -> None:
    advertise("invispose-hall", {"id": "def456", "version": "0.1.0", "path": "/api/v1"})  # type: ignore[operator]
    code, err, out = provision_auto(tmp_path)
    assert code == 0, err
    assert nvs_reader.read(out.read_bytes())["invispose"]["sink_port"] == ("u16", 5566)


def test_sink_auto_with_two_appliances_asks_to_choose(tmp_path: Path, advertise: object) -> None:
    advertise("invispose-a", {"id": "a"})  # type: ignore[operator]
    advertise("invispose-b", {"id": "b"})  # type: ignore[operator]
    code, err, out = provision_auto(tmp_path)
    assert code == 1
    assert "several appliances answered" in err and "choose one with --sink HOST:PORT" in err
    assert not out.exists()


def test_sink_auto_with_no_appliance(tmp_path: Path) -> None:
    code, err, out = provision_auto(tmp_path, timeout="0.5")
    assert code == 1
    assert "no appliance answered mDNS (_invispose._tcp.local.)" in err
    assert not out.exists()
