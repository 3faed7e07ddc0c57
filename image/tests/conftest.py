"""``make test-image``: the built root filesystem, booted with systemd-nspawn (see test_image.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rootfs", type=Path, required=True, help="root filesystem built by image/build.sh")
