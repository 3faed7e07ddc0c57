"""The whole service as a user runs it: ``invispose run`` on the shipped config, answering, then stopping."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth_support import cli_token
from tests.conftest import DEFAULT_CONFIG, REPO, pick_free_port
from tests.service_support import Service, get_json, start_service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = start_service(tmp_path)
    yield svc
    if svc.process.poll() is None:
        svc.process.kill()
        svc.process.communicate()


@pytest.mark.slow
def test_default_config_serves_a_simulated_room_and_stops_cleanly(service: Service, tmp_path: Path) -> None:
    took_s = service.wait_healthy(timeout_s=20)
    assert took_s < 20
    assert get_json(f"{service.base}/api/v1/system/status")[0] == 401
    token = cli_token(tmp_path / "data", scopes="system:read")
    status_code, status = get_json(f"{service.base}/api/v1/system/status", token)
    assert status_code == 200
    assert status["source"] == "simulated" and status["simulated"] is True
    assert [s["kind"] for s in status["sources"]] == ["simulated"]
    assert len(status["links"]) == 6
    assert all(link["up"] for link in status["links"])
    assert status["current"]["simulated"] is True
    assert status["current"]["estimator"] == "motion"
    assert status["simulation"]["ground_truth"] is not None
    assert status["memory_mb"] > 0
    code, index = 0, ""
    with urllib.request.urlopen(f"{service.base}/", timeout=2) as response:
        code, index = response.status, response.read().decode()
    assert code == 200 and "Simulated room" in index
    assert (tmp_path / "data").is_dir()

    returncode, stderr = service.stop()
    assert returncode == 0, stderr
    assert "pipeline stopped" in stderr
    assert "Traceback" not in stderr


def test_invalid_config_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "appliance.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text().replace("port: 8099", "port: 8099\n  colour: blue"))
    port = pick_free_port()
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "run", "--config", str(bad), "--port", str(port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "server.colour: unknown key" in result.stderr
    assert "nothing was started" in result.stderr
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/system/health", timeout=1)
