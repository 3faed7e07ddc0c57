"""``invispose run`` under systemd's eye: the service's own process, started with the environment systemd
gives a ``Type=notify`` unit with ``WatchdogSec=1``, and a Unix datagram socket where systemd's would be."""

from __future__ import annotations

import socket
import time
import urllib.error
from pathlib import Path

from tests.service_support import get_json, start_service


def test_ready_once_it_serves_watchdog_pings_while_it_runs_and_stopping_at_the_end(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(60)
    service = start_service(tmp_path, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
    try:
        assert receiver.recv(4096) == b"READY=1\nSTATUS=running"
        try:
            status, body = get_json(f"{service.base}/api/v1/system/health")
        except urllib.error.URLError as exc:
            raise AssertionError(f"READY=1 came before the API answered: {exc}") from exc
        assert status in (200, 503) and "components" in body
        receiver.settimeout(5)
        started = time.monotonic()
        pings = [receiver.recv(4096) for _ in range(3)]
        assert pings == [b"WATCHDOG=1"] * 3
        assert time.monotonic() - started < 3.0  # every half second, well inside WatchdogSec
        code, stderr = service.stop()
        assert code == 0, stderr
        rest = []
        receiver.settimeout(0.5)
        try:
            while True:
                rest.append(receiver.recv(4096))
        except TimeoutError:
            pass
        assert rest[-1] == b"STOPPING=1", rest
    finally:
        if service.process.poll() is None:
            service.stop()
        receiver.close()
