"""Where the real captures live (``../shared/captures``); tests needing one skip without them, but not in CI.

A user's fresh clone has no ``../shared``, so its tests skip with the reason. CI always has the captures:
when the ``CI`` environment variable is set, a missing capture fails the test instead, so that a broken path
cannot turn the real-hardware tests into silent skips.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

CAPTURES_ENV = "INVISPOSE_CAPTURES"


def captures_path() -> Path:
    """Where the captures should be (``$INVISPOSE_CAPTURES`` overrides), whether or not they are there."""
    override = os.environ.get(CAPTURES_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "captures"


def missing(reason: str) -> NoReturn:
    """Skip for want of a capture, or fail when running in CI (``CI`` set), which must have them all."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run every capture test (CI is set)", pytrace=False)
    pytest.skip(reason)


def captures_dir() -> Path:
    """The captures folder; skips the test (fails it in CI) when it does not exist."""
    path = captures_path()
    if not path.is_dir():
        missing(f"real captures not found at {path} (set {CAPTURES_ENV} to their folder)")
    return path


def capture(relative: str) -> Path:
    path = captures_dir() / relative
    if not path.is_file():
        missing(f"capture {relative} not found in {path.parent}")
    return path
