"""sd_notify: what systemd receives on its notification socket (a real Unix datagram socket here, bound by
the test as systemd binds it), and when."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.systemd import SystemdNotifier, keep_systemd_informed


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.setblocking(False)
    yield path, receiver
    receiver.close()


def received(receiver: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(receiver.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_nothing_is_sent_without_systemd() -> None:
    assert SystemdNotifier.from_environment({}) is None
    assert SystemdNotifier.from_environment({"NOTIFY_SOCKET": ""}) is None


def test_the_watchdog_period_is_taken_only_when_it_is_meant_for_this_process() -> None:
    pid = str(os.getpid())
    own = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}
    )
    assert own is not None and own.watchdog_s == 30.0
    anyone = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2500000"})
    assert anyone is not None and anyone.watchdog_s == 2.5
    other = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    )
    assert other is not None and other.watchdog_s is None
    for bad in ("0", "soon", ""):
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": bad})
        assert notifier is not None and notifier.watchdog_s is None


def test_an_abstract_socket_address_is_reached() -> None:
    name = f"invispose-test-{os.getpid()}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    try:
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        notifier.notify("READY=1", "STATUS=running")
        assert receiver.recv(100) == b"READY=1\nSTATUS=running"
        notifier.close()
    finally:
        receiver.close()


def test_a_vanished_socket_does_not_stop_the_service(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone"), None)
    notifier.notify("READY=1")  # logged, not raised
    notifier.close()


async def next_message(receiver: socket.socket, timeout_s: float = 2.0) -> str:
    loop = asyncio.get_running_loop()
    return (await asyncio.wait_for(loop.sock_recv(receiver, 4096), timeout_s)).decode()


async def test_ready_only_after_the_first_tick_then_pings_while_it_ticks_and_none_once_it_stalls(
    systemd_socket: tuple[str, socket.socket],
) -> None:
    path, receiver = systemd_socket
    notifier = SystemdNotifier(path, watchdog_s=0.2)  # a look every 0.1 s
    clock = 0.0
    tick: float | None = None
    task = asyncio.create_task(keep_systemd_informed(notifier, lambda: tick, clock=lambda: clock))
    try:
        await asyncio.sleep(0.3)
        assert received(receiver) == []  # started, but the pipeline has not run yet
        tick = clock
        assert await next_message(receiver) == "READY=1\nSTATUS=running"
        for _ in range(3):  # the pipeline keeps ticking: pings
            assert await next_message(receiver) == "WATCHDOG=1"
            clock += 0.05
            tick = clock
        clock += 1.0  # the pipeline stalls: its last tick falls behind
        await asyncio.sleep(0.35)  # three looks
        assert received(receiver) == []
        tick = clock  # and recovers
        assert await next_message(receiver) == "WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        notifier.close()


async def test_without_a_watchdog_only_ready_is_sent(systemd_socket: tuple[str, socket.socket]) -> None:
    path, receiver = systemd_socket
    notifier = SystemdNotifier(path, watchdog_s=None)
    await asyncio.wait_for(keep_systemd_informed(notifier, lambda: 1.0), timeout=1.0)
    assert received(receiver) == ["READY=1\nSTATUS=running"]
    notifier.close()
