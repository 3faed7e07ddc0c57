"""Fixtures shared by every test layer."""

from __future__ import annotations

import socket
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "appliance.yaml"


def pick_free_port() -> int:
    """A port free now, for a server in another process or one whose config refuses port 0 (``invispose
    run``, the UDP source); in-process servers bind port 0 and read their port back instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def default_config_path() -> Path:
    return DEFAULT_CONFIG


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every run says how many tests it skipped and why, so that a skip is never silent (see captures.py)."""
    skipped = terminalreporter.stats.get("skipped", [])
    terminalreporter.section(f"skipped: {len(skipped)}", sep="-")
    for reason, count in Counter(_skip_reason(r) for r in skipped).most_common():
        terminalreporter.write_line(f"{count:4d} x {reason}")
