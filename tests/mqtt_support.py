"""A real Mosquitto for the MQTT tests, and a client that records what the broker carries.

``Mosquitto`` runs Debian's ``mosquitto`` in the foreground with a configuration of its own, on free
loopback ports, with three listeners: plain (anonymous), password (``password_file`` and an ACL), and TLS
(a CA and a server certificate for 127.0.0.1 made here). It can be stopped, killed and started again on the
same ports. ``Recorder`` subscribes to what a test wants to see and keeps every message, so tests poll
for a condition instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.integrations.mqtt.retained import payload_bytes
from tests.conftest import pick_free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# Accounts of the password listener, and what its ACL lets each do.
ACCOUNTS = {"appliance": "appliance-secret", "homeassistant": "ha-secret", "intruder": "intruder-secret"}
ACL = """\
user appliance
topic readwrite invispose/#
topic readwrite homeassistant/#

user homeassistant
topic readwrite #

user intruder
topic read #
"""


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate it signed for 127.0.0.1 and localhost: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "InvisPose test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return ca_path, cert_path, key_path


@dataclass
class Mosquitto:
    directory: Path
    port: int = field(default_factory=pick_free_port)  # anonymous
    password_port: int = field(default_factory=pick_free_port)  # accounts and ACL
    tls_port: int = field(default_factory=pick_free_port)  # TLS, anonymous
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.ca, cert, key = make_certificates(self.directory)
        passwords = self.directory / "passwords"
        passwords.touch(mode=0o600)
        for user, password in ACCOUNTS.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True)
        (self.directory / "acl").write_text(ACL)
        self.log = self.directory / "mosquitto.log"
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text(
            "\n".join(
                [
                    "per_listener_settings true",
                    "persistence false",
                    f"log_dest file {self.log}",
                    "log_type error warning notice information",
                    # As root, mosquitto would switch to the mosquitto user and could not read our files.
                    *(["user root"] if os.geteuid() == 0 else []),
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    f"listener {self.password_port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {passwords}",
                    f"acl_file {self.directory / 'acl'}",
                    f"listener {self.tls_port} 127.0.0.1",
                    "allow_anonymous true",
                    f"cafile {self.ca}",
                    f"certfile {cert}",
                    f"keyfile {key}",
                    "",
                ]
            )
        )

    def start(self, timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        for port in (self.port, self.password_port, self.tls_port):
            while True:
                if self.process.poll() is not None:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise AssertionError(f"mosquitto exited: {stderr}{self.read_log()}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                    break
                assert time.monotonic() < deadline, f"mosquitto did not listen on {port}"
                time.sleep(0.02)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def read_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def settings(self, **changes: Any) -> dict[str, Any]:
        """An ``mqtt:`` section for the anonymous listener, with ``changes``."""
        return {
            "enabled": True,
            "host": "127.0.0.1",
            "port": self.port,
            "device_id": "test_box",
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "timeout_s": 3.0,
            **changes,
        }


@contextlib.contextmanager
def running_mosquitto(directory: Path) -> Iterator[Mosquitto]:
    if shutil.which(MOSQUITTO) is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto is not installed (make test installs the Debian package)")
    broker = Mosquitto(directory)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@dataclass(frozen=True, slots=True)
class Seen:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float

    @property
    def text(self) -> str:
        return self.payload.decode()


class Recorder:
    """A client of its own that keeps every message on ``filters``; poll it with ``wait``."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[Seen] = []

    async def listen(self) -> None:
        async for message in self.client.messages:
            self.messages.append(
                Seen(
                    str(message.topic), payload_bytes(message), message.qos, message.retain, time.monotonic()
                )
            )

    def on(self, topic: str) -> list[Seen]:
        return [m for m in self.messages if m.topic == topic]

    def latest(self, topic: str) -> Seen | None:
        found = self.on(topic)
        return found[-1] if found else None

    async def wait(
        self,
        topic: str,
        accept: Callable[[Seen], bool] = lambda _: True,
        timeout_s: float = 10.0,
        after: int = 0,
    ) -> Seen:
        """The first message on ``topic`` (from index ``after`` on) that ``accept`` takes."""
        deadline = time.monotonic() + timeout_s
        while True:
            for message in self.messages[after:]:
                if message.topic == topic and accept(message):
                    return message
            if time.monotonic() > deadline:
                seen = sorted({m.topic for m in self.messages})
                raise AssertionError(f"nothing accepted on {topic} within {timeout_s} s; topics seen: {seen}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def recording(port: int, filters: Sequence[str], **client: Any) -> AsyncIterator[Recorder]:
    async with aiomqtt.Client("127.0.0.1", port, timeout=5, **client) as mqtt:
        for pattern in filters:
            await mqtt.subscribe(pattern, qos=2)
        recorder = Recorder(mqtt)
        task = asyncio.create_task(recorder.listen())
        try:
            yield recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s} s"
        await asyncio.sleep(0.02)
