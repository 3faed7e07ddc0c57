"""Where the real captures live (``../shared/captures``), and a skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CAPTURES_ENV = "INVISPOSE_CAPTURES"


def captures_path() -> Path:
    """Where the captures should be (``$INVISPOSE_CAPTURES`` overrides), whether or not they are there."""
    override = os.environ.get(CAPTURES_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "captures"


def captures_dir() -> Path:
    """The captures folder; skips the test when it does not exist."""
    path = captures_path()
    if not path.is_dir():
        pytest.skip(f"real captures not found at {path} (set {CAPTURES_ENV} to their folder)")
    return path


def capture(relative: str) -> Path:
    path = captures_dir() / relative
    if not path.is_file():
        pytest.skip(f"capture {relative} not found in {path.parent}")
    return path
