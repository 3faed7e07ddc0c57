"""Fixtures shared by every test layer."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "appliance.yaml"


def pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    return pick_free_port()


@pytest.fixture
def default_config_path() -> Path:
    return DEFAULT_CONFIG
