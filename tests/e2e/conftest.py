"""A real headless Chromium (Debian's), driven by Playwright, kept on loopback."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
# Chromium calls home even with the usual "disable" flags; resolve every host but loopback to nothing.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        if shutil.which(candidate):
            return candidate
    return None


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """The async API, so the browser shares the test's event loop instead of running one of its own."""
    async_api = pytest.importorskip("playwright.async_api", reason="playwright is installed by `make test`")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Debian's chromium is not installed; `make test` installs it")
    async with async_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()
