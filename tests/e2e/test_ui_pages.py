"""Every page of the web UI in a real Chromium, against the real application and its simulated room:
what a new user does (onboard, log in and out, watch, draw zones, fix a node, recalibrate, make a token),
under a path prefix as Home Assistant's ingress serves it, on a phone, and without a console error."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.auth_support import ADMIN
from tests.captures import capture
from tests.e2e.ui_support import (
    INGRESS_PREFIX,
    UiSession,
    ingress_proxy,
    log_in,
    onboard,
    room_point_to_screen,
    screenshot,
    serve,
)

pytestmark = pytest.mark.slow
PAGES = ("live", "zones", "nodes", "events", "history", "settings")


@pytest.fixture
def expect() -> Any:
    return pytest.importorskip("playwright.async_api").expect


@pytest.fixture
async def ui(browser: Any) -> AsyncIterator[UiSession]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    yield UiSession(context)
    await context.close()


def api_get(base: str, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


async def admin_token(server: TestServer) -> str:
    async with server.app and __import__("aiohttp").ClientSession() as session:
        async with session.post(str(server.make_url("/api/v1/auth/token")), json=ADMIN) as response:
            return str((await response.json())["access_token"])


async def test_onboarding_login_logout(ui: UiSession, expect: Any, tmp_path: Path) -> None:
    server = await serve(tmp_path)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await expect(page.locator("#user")).to_have_text(ADMIN["username"])
        # The token lives in the page's memory only: nothing in either web storage, no cookie.
        stored = await page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == [0, 0, ""]
        await page.click("#logout")
        await expect(page.locator("#auth-title")).to_have_text("Log in")
        await expect(page.locator("#nav")).to_be_hidden()
        await log_in(page, expect, password="not the password")
        await expect(page.locator("#auth-error")).to_have_text("wrong username or password")
        await log_in(page, expect)
        await expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
        # A reload forgets the session: the token was never written anywhere.
        await page.reload()
        await expect(page.locator("#auth-title")).to_have_text("Log in", timeout=10_000)
        ui.assert_clean(allowed=r"401")  # the wrong password, on purpose
    finally:
        await server.close()
