"""The outbox across a crash: ``invispose run`` in its own process is SIGKILLed with a webhook backlog and
a delivery in flight, started again, and delivers every event, in order, none lost.

Events come from real input: each ESP32 node that sends its first ADR-018 datagram to the UDP source is a
new link, announced as ``router.connected``. The receiver takes the first few deliveries and then leaves
the next one hanging, so the backlog builds up behind it in the outbox; it is killed in that state.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from aiohttp import web

from tests.auth_support import cli_token
from tests.conftest import DEFAULT_CONFIG, pick_free_port
from tests.encoders import adr018_datagram
from tests.service_support import Service, get_json, start_service
from tests.webhook_support import Received, Receiver, hook, until

NODES = 30
ACCEPTED_BEFORE_KILL = 5
BUFFER = np.random.default_rng(3).integers(-128, 128, 128).astype(np.int8)


def service_config(tmp_path: Path, receiver: Receiver, udp_port: int) -> Path:
    config: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["sources"] = [{"type": "esp32_udp", "host": "127.0.0.1", "port": udp_port}]
    config["pipeline"]["link_timeout_s"] = 60  # no router.disconnected while the test runs
    config["mdns"]["enabled"] = False
    config["webhooks"].update(
        allow_loopback=True,
        endpoints=[hook(receiver, retry_policy={"max_backoff_s": 0.2, "max_attempts": 1000})],
    )
    path = tmp_path / "appliance.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def services() -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for service in started:
        if service.process.poll() is None:
            service.process.kill()
            service.process.communicate()


async def answering(service: Service, timeout_s: float = 60.0) -> None:
    """Wait until the service answers HTTP at all (health is 503 until a source has frames)."""

    def answers() -> bool:
        try:
            get_json(f"{service.base}/api/v1/system/health")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if service.process.poll() is not None:
                raise AssertionError(f"the service exited: {service.process.communicate()[1]}") from None
            return False
        return True

    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await asyncio.to_thread(answers):
        assert asyncio.get_running_loop().time() < deadline, "the service never answered"
        await asyncio.sleep(0.2)


async def webhook_status(service: Service, token: str) -> dict[str, Any]:
    code, body = await asyncio.to_thread(get_json, f"{service.base}/api/v1/webhooks/recv", token)
    assert code == 200, body
    status: dict[str, Any] = body["status"]
    return status


@pytest.mark.slow
async def test_sigkill_with_a_backlog_loses_nothing_and_keeps_the_order(
    tmp_path: Path, services: list[Service]
) -> None:
    release_hung = asyncio.Event()

    async def answer(received: Received) -> web.StreamResponse:
        if len(receiver.delivered_ids()) > ACCEPTED_BEFORE_KILL and not release_hung.is_set():
            await release_hung.wait()  # the delivery in flight when the service is killed
        return web.Response(status=204)

    receiver = await Receiver(answer=answer).start()
    udp_port = pick_free_port()
    config = service_config(tmp_path, receiver, udp_port)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        first = start_service(tmp_path, config)
        services.append(first)
        await answering(first)
        token = await asyncio.to_thread(cli_token, tmp_path / "data", "system:read")
        for node in range(1, NODES + 1):
            sender.sendto(adr018_datagram(BUFFER, node=node, seq=1), ("127.0.0.1", udp_port))
            await asyncio.sleep(0.01)
        expected_backlog = NODES + 1 - ACCEPTED_BEFORE_KILL  # system.started and a router.connected each
        deadline = asyncio.get_running_loop().time() + 30
        while (await webhook_status(first, token))["backlog"] != expected_backlog:
            assert asyncio.get_running_loop().time() < deadline, await webhook_status(first, token)
            await asyncio.sleep(0.2)
        await until(lambda: len(receiver.received) == ACCEPTED_BEFORE_KILL + 1, "the hanging delivery")
        in_flight = receiver.received[-1].delivery_id

        first.process.kill()  # SIGKILL: no shutdown, no flush
        first.process.communicate(timeout=10)
        release_hung.set()

        second = start_service(tmp_path, config)
        services.append(second)
        await answering(second)
        await until(lambda: len(receiver.delivered_ids()) == NODES + 2, "every delivery", timeout_s=60)
        returncode, stderr = await asyncio.to_thread(second.stop)
    finally:
        sender.close()
        release_hung.set()
        await receiver.stop()

    assert returncode == 0, stderr
    assert receiver.bad_signatures == []
    firsts = {}
    for received in receiver.received:
        firsts.setdefault(received.delivery_id, received)
    delivered = list(firsts.values())
    described = [(r.event_type, r.payload["data"]["data"].get("link")) for r in delivered]
    assert described[: NODES + 2] == [
        ("system.started", None),
        *[("router.connected", f"esp32-{node}") for node in range(1, NODES + 1)],
        ("system.started", None),
    ]
    # The second run's stop may or may not have been delivered before it exited (it waits in the outbox).
    assert described[NODES + 2 :] in ([], [("system.stopped", None)])
    # The delivery the kill interrupted went out again after the restart, under the same delivery id.
    assert [r.delivery_id for r in receiver.received].count(in_flight) == 2
    assert len({r.payload["id"] for r in delivered}) == len(delivered)
