"""The whole service as a user runs it: ``invispose run`` on the shipped config, answering, then stopping."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.contracts import MOTION_OUTPUTS, TRACKER_OUTPUTS
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
    service.wait_healthy(timeout_s=20)
    assert get_json(f"{service.base}/api/v1/system/status")[0] == 401
    token = cli_token(tmp_path / "data", scopes="system:read")
    status_code, status = get_json(f"{service.base}/api/v1/system/status", token)
    assert status_code == 200
    assert status["source"] == "simulated" and status["simulated"] is True
    assert [s["kind"] for s in status["sources"]] == ["simulated"]
    assert len(status["links"]) == 6
    assert all(link["up"] for link in status["links"])
    assert status["current"]["simulated"] is True
    # The motion detector speaks until the sensing path has calibrated, then the tracker; either way every
    # output says what produced it, and skeletons say they are rendered.
    current = status["current"]
    assert (current["estimator"], current["estimators"]) in (
        ("motion", MOTION_OUTPUTS),
        ("tracker", TRACKER_OUTPUTS),
    )
    assert all(person["skeleton"] == "rendered" for person in current["persons"])
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


@pytest.mark.slow
def test_json_logs_are_one_object_per_line_with_their_fields(tmp_path: Path) -> None:
    """``server.log_format: json`` is for log collectors: every stderr line is a JSON object carrying its
    level, logger, message and the record's fields as keys."""
    config = tmp_path / "appliance.yaml"
    text = DEFAULT_CONFIG.read_text()
    assert "  log_format: text" in text
    config.write_text(text.replace("  log_format: text", "  log_format: json"))
    service = start_service(tmp_path, config)
    try:
        service.wait_healthy(timeout_s=20)
        returncode, stderr = service.stop()
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.communicate()
    assert returncode == 0, stderr
    records = [json.loads(line) for line in stderr.splitlines()]  # every line, or this raises
    by_message = {r["message"]: r for r in records}
    listening = by_message["listening"]
    assert listening["level"] == "info" and listening["logger"] == "appliance.app"
    assert listening["url"].startswith("http://127.0.0.1:") and listening["data_dir"] == str(
        tmp_path / "data"
    )
    assert isinstance(listening["time"], float)
    assert by_message["pipeline started"]["source"] == "simulated"
    assert "pipeline stopped" in by_message


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


@pytest.mark.slow
def test_restart_replaces_the_process_and_comes_back_healthy(service: Service, tmp_path: Path) -> None:
    service.wait_healthy(timeout_s=20)
    token = cli_token(tmp_path / "data", scopes="admin:all")
    time.sleep(2.0)
    before = get_json(f"{service.base}/api/v1/system/status", token)[1]["uptime_s"]
    asked_at = time.monotonic()
    request = urllib.request.Request(
        f"{service.base}/api/v1/system/restart", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 202
    time.sleep(0.5)
    service.wait_healthy(timeout_s=20)
    code, status = get_json(f"{service.base}/api/v1/system/status", token)
    # Without a restart the uptime would have gone on from ``before``.
    assert code == 200 and status["uptime_s"] < before + (time.monotonic() - asked_at) - 1.5
    assert service.process.poll() is None, "the process exited instead of replacing itself"
    returncode, stderr = service.stop()
    assert returncode == 0, stderr
    assert "restarting" in stderr and stderr.count("pipeline stopped") == 2
