"""WebRTC of the overlay video, run where no packet can leave the machine: the checks of
``webrtc_in_namespace.py`` in a new network namespace that has only ``lo`` (``unshare -n``, as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
CHECKS = Path(__file__).with_name("webrtc_in_namespace.py")


def test_webrtc_checks_pass_inside_a_loopback_only_network_namespace() -> None:
    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root (make test runs as root in CI)")
    missing = [p for p in ("unshare", "ip") if shutil.which(p) is None]
    assert not missing, f"{missing} missing; `make test` installs iproute2 (util-linux is essential)"
    command = f"ip link set lo up && exec {sys.executable} -m pytest -q -s -p no:cacheprovider {CHECKS}"
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "2 passed" in result.stdout, report
    print(report)
