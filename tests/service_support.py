"""The service as a user runs it: ``invispose run`` in its own process on the shipped config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.auth_support import bearer
from tests.conftest import DEFAULT_CONFIG, REPO, pick_free_port


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=bearer(token) if token else {})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


class Service:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.base = f"http://127.0.0.1:{port}"

    def wait_healthy(self, timeout_s: float) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"service exited early:\n{self.process.stderr.read() if self.process.stderr else ''}"
                )
            try:
                status, _ = get_json(f"{self.base}/api/v1/system/health")
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"not healthy within {timeout_s} s")

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=10)
        return self.process.returncode, stderr


def start_service(
    tmp_path: Path, config: Path = DEFAULT_CONFIG, env: dict[str, str] | None = None
) -> Service:
    """``invispose run`` on ``config`` (the shipped one by default), on a free loopback port, as a user
    would start it; ``env`` is added to the environment."""
    port = pick_free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "run",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    return Service(process, port)
