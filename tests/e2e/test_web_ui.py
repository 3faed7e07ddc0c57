"""The web UI in a real browser against the real service: it must say, visibly, that the room is simulated."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.api.auth import SECRET_FILE
from appliance.api.onboarding import read_setup_code
from tests.auth_support import ADMIN
from tests.service_support import Service, start_service


@pytest.fixture
def running_service(tmp_path: Path) -> Iterator[Service]:
    service = start_service(tmp_path)
    try:
        service.wait_healthy(timeout_s=20)
        yield service
    finally:
        service.stop()


@pytest.mark.slow
async def test_ui_shows_simulated_room_with_live_readings(browser: Any, running_service: Service) -> None:
    expect = pytest.importorskip("playwright.async_api").expect
    page = await browser.new_page()
    try:
        await page.goto(running_service.base + "/")
        await expect(page.locator("#auth-title")).to_have_text("Create the first admin", timeout=10_000)
        await expect(page.locator("#auth-code")).to_be_hidden()  # a new box needs no setup code
        await page.fill("#auth-username", ADMIN["username"])
        await page.fill("#auth-password", ADMIN["password"])
        await page.click("#auth-submit")
        await expect(page.locator("#source-badge")).to_have_text("SIMULATED", timeout=10_000)
        await expect(page.locator("#simulated-banner")).to_be_visible()
        await expect(page.locator("#connection")).to_have_text("live")
        await expect(page.locator("#presence")).to_have_text(re.compile("present|empty"))
        await expect(page.locator("#estimator")).to_have_text("Motion detector")
        await expect(page.locator("#provenance")).to_contain_text(
            "From the motion detector, on the simulated room"
        )
        await page.click("#nav a[data-page=nodes]")
        await expect(page.locator(".link-card")).to_have_count(6, timeout=10_000)
    finally:
        await page.close()


@pytest.mark.slow
async def test_ui_asks_for_the_setup_code_on_a_box_that_lost_its_accounts(
    browser: Any, tmp_path: Path
) -> None:
    """Set up before (its login secret exists), no database now: the first admin needs the logged code."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / SECRET_FILE).write_bytes(os.urandom(64))
    (data / SECRET_FILE).chmod(0o600)
    service = start_service(tmp_path)
    expect = pytest.importorskip("playwright.async_api").expect
    page = await browser.new_page()
    try:
        service.wait_healthy(timeout_s=20)
        code = read_setup_code(data)
        assert code is not None
        await page.goto(service.base + "/")
        await expect(page.locator("#auth-title")).to_have_text("Create the first admin", timeout=10_000)
        await expect(page.locator("#auth-hint")).to_contain_text("setup code")
        await expect(page.locator("#auth-code")).to_be_visible()
        await page.fill("#auth-username", ADMIN["username"])
        await page.fill("#auth-password", ADMIN["password"])
        await page.fill("#auth-code", "WRNG-CODE-HERE")
        await page.click("#auth-submit")
        await expect(page.locator("#auth-error")).to_have_text("that is not the setup code")
        await page.fill("#auth-code", code)
        await page.click("#auth-submit")
        await expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
    finally:
        await page.close()
        service.stop()
