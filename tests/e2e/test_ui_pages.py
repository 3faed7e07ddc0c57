"""Every page of the web UI in a real Chromium, against the real application and its simulated room:
what a new user does (onboard, log in and out, watch, draw zones, fix a node, recalibrate, make a token),
under a path prefix as Home Assistant's ingress serves it, on a phone, and without a console error."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tests.auth_support import ADMIN, bearer
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


async def admin_token(server: TestServer) -> str:
    """A login token for the admin the UI onboarded, for checking what the UI did through the API."""
    async with (
        ClientSession() as session,
        session.post(server.make_url("/api/v1/auth/token"), json=ADMIN) as answer,
    ):
        return str((await answer.json())["access_token"])


async def api_json(server: TestServer, path: str, token: str) -> tuple[int, Any]:
    async with (
        ClientSession() as session,
        session.get(server.make_url(path), headers=bearer(token)) as answer,
    ):
        return answer.status, await answer.json()


async def poll(check: Any, timeout_s: float = 10.0) -> Any:
    """``await check()`` until it returns something truthy; fails with its last answer after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            assert result, f"not within {timeout_s} s"
            return result
        await asyncio.sleep(0.1)


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


async def test_every_page_loads_without_a_console_error(ui: UiSession, expect: Any, tmp_path: Path) -> None:
    server = await serve(tmp_path)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        checks = {
            "live": ("#presence", re.compile("present|empty")),
            "zones": (".zone-list li", re.compile(".+")),
            "nodes": (".link-card .state", re.compile(".+")),
            "events": ("#event-list li", re.compile(".+")),
            "history": ("#report table", re.compile("Occupied")),
            "settings": ("#system-facts", re.compile("Version")),
        }
        for name in PAGES:
            await page.click(f"#nav a[data-page={name}]")
            await expect(page.locator(f"#page-{name}")).to_be_visible()
            selector, text = checks[name]
            await expect(page.locator(selector).first).to_have_text(text, timeout=10_000)
            await screenshot(page, f"desktop-{name}")
        ui.assert_clean()
    finally:
        await server.close()


async def test_live_view_changes_while_simulated_people_move(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    server = await serve(tmp_path, **{"sensing.enabled": True})
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await expect(page.locator("#simulated-banner")).to_be_visible()
        await expect(page.locator("#source-badge")).to_have_text("SIMULATED")
        # Every reading says what produced it, in words.
        await expect(page.locator("#provenance")).to_contain_text("on the simulated room", timeout=10_000)
        await page.check("#truth-toggle")
        # The demo's first visitor walks in after about 15 s of empty room.
        await expect(page.locator("#truth")).to_have_text(
            re.compile(r"Really in the room: person \d"), timeout=40_000
        )
        await expect(page.locator(".layer-truth .dot").first).to_be_visible()
        plan = page.locator(".plan-card")
        before = await screenshot(plan, "live-plan-before")
        await page.wait_for_timeout(1500)  # let people move: the two pictures must differ
        after = await screenshot(plan, "live-plan-after")
        assert before != after
        # Once the links have learnt the empty room, the trackers place the visitor: a dot with its
        # uncertainty circle beside the ground truth.
        await expect(page.locator("#estimator")).to_have_text("Trackers and model", timeout=30_000)
        await expect(page.locator(".layer-people .uncertainty").first).to_be_visible(timeout=30_000)
        await screenshot(page, "live", for_docs=True, full_page=True)
        ui.assert_clean()
    finally:
        await server.close()


async def test_zone_drawn_with_the_mouse_is_saved_moved_and_deleted(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    server = await serve(tmp_path)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        token = await admin_token(server)
        await page.click("#nav a[data-page=zones]")
        plan = "#page-zones svg.floorplan"
        await expect(page.locator(f"{plan} .room")).to_be_visible()
        await page.click("#draw-zone")
        corners = [(3.0, 1.0), (4.5, 1.0), (4.5, 2.5), (3.0, 2.5)]
        for x, y in [*corners, corners[0]]:  # clicking the first corner again closes the polygon
            await page.mouse.click(*await room_point_to_screen(page, plan, x, y))
        await page.fill("#zone-name", "Reading corner")
        await page.check("#zone-restricted")
        await screenshot(page, "zones", for_docs=True)
        await page.click("#save-zone")

        async def saved() -> Any:
            _, zones = await api_json(server, "/api/v1/config/zones", token)
            return next((z for z in zones["items"] if z["id"] == "reading_corner"), None)

        zone = await poll(saved)
        assert zone["name"] == "Reading corner" and zone["restricted"] is True
        assert len(zone["polygon"]) == 4
        for (x, y), (px, py) in zip(corners, zone["polygon"], strict=True):
            assert abs(x - px) <= 0.05 and abs(y - py) <= 0.05, zone["polygon"]
        # Its occupancy on the Live page, as the running estimator gives it (the motion detector: unknown).
        await page.click("#nav a[data-page=live]")
        occupancy = page.locator("#zone-occupancy li[data-zone=reading_corner]")
        await expect(occupancy).to_have_text(
            "Reading corner (restricted): unknown: the motion detector cannot tell who is where",
            timeout=10_000,
        )

        # Dragged half a metre to the left with the mouse: saved where it was dropped.
        await page.click("#nav a[data-page=zones]")
        await page.click("#page-zones .zone-list button[data-zone=reading_corner]")
        await page.mouse.move(*await room_point_to_screen(page, plan, 3.75, 1.75))
        await page.mouse.down()
        await page.mouse.move(*await room_point_to_screen(page, plan, 3.5, 1.75), steps=3)
        await page.mouse.move(*await room_point_to_screen(page, plan, 3.25, 1.75), steps=3)
        await page.mouse.up()

        async def moved() -> Any:
            zone = await saved()
            return zone if zone and abs(zone["polygon"][0][0] - 2.5) <= 0.05 else None

        zone = await poll(moved)
        assert [round(p[1], 1) for p in zone["polygon"]] == [1.0, 1.0, 2.5, 2.5]

        await page.click("#delete-zone")
        await page.click("#confirm-delete")
        await poll(lambda: _absent(saved))
        await expect(page.locator("#page-zones .zone-list button[data-zone=reading_corner]")).to_have_count(0)
        ui.assert_clean()
    finally:
        await server.close()


async def _absent(lookup: Any) -> bool:
    return await lookup() is None


async def test_nodes_page_explains_a_link_whose_source_stopped(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    """A real ESP32 capture replayed once (5x speed, 2 s) beside the simulator: when it ends, its link
    goes silent and the page says so, and why."""
    recording = capture("esp32/baseline_esp32_64sc_20260214_183059.npz")
    sources = [
        {"type": "simulator"},
        {"type": "replay", "name": "bench-node", "path": str(recording), "speed": 5, "loop": False},
    ]
    server = await serve(tmp_path, sources=sources)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await page.click("#nav a[data-page=nodes]")
        card = page.locator(f'.link-card[data-link="{recording.stem}"]')
        await expect(card.locator(".state")).to_have_text("Silent", timeout=20_000)
        await expect(card.locator(".diagnosis")).to_contain_text('Its source "bench-node" has stopped')
        await expect(card.locator(".diagnosis")).to_contain_text("Troubleshooting")
        await expect(page.locator('#sources li[data-source="bench-node"]')).to_contain_text("stopped")
        await expect(page.locator('.link-card[data-link="ap-rx1"] .state')).to_have_text(
            "Working", timeout=10_000
        )
        await screenshot(page, "nodes", for_docs=True)
        ui.assert_clean()
    finally:
        await server.close()


async def test_recalibrate_counts_down_and_finishes(ui: UiSession, expect: Any, tmp_path: Path) -> None:
    server = await serve(tmp_path)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        token = await admin_token(server)
        await page.click("#nav a[data-page=nodes]")
        await expect(page.locator('.link-card[data-link="ap-rx6"] .state')).to_have_text(
            "Working", timeout=15_000
        )
        await page.click("#recalibrate")
        countdown = page.locator("#calibration-countdown")
        await expect(countdown).to_have_text(re.compile(r"Keep the room empty: \d s left"))
        await expect(page.locator("#recalibrate")).to_be_disabled()
        await expect(countdown).to_have_text(
            re.compile(r"Done at .*: 6 of 6 links calibrated"), timeout=15_000
        )
        status, controls = await api_json(server, "/api/v1/system/controls", token)
        assert status == 200 and controls["calibrating"] is False and controls["calibrated_links"] == 6
        ui.assert_clean()
    finally:
        await server.close()


async def test_token_made_in_settings_works_until_revoked(ui: UiSession, expect: Any, tmp_path: Path) -> None:
    server = await serve(tmp_path)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        await page.click("#nav a[data-page=settings]")
        await page.fill("#token-name", "home-assistant")
        await page.select_option("#token-expires", "30d")
        await page.click("#create-token")
        await expect(page.locator("#new-token-box")).to_contain_text("it is not shown again")
        token = await page.input_value("#new-token")
        assert token.startswith("ivp_")
        status, body = await api_json(server, "/api/v1/pose/zones", token)
        assert status == 200 and {z["id"] for z in body["zones"]} == {"sofa", "doorway"}
        assert (await api_json(server, "/api/v1/system/status", token))[0] == 403  # pose:read only
        row = page.locator('#tokens tr[data-token-name="home-assistant"]')
        await expect(row).to_contain_text("pose:read")
        await screenshot(page, "settings-tokens")
        await row.locator("button").click()
        await expect(row).to_contain_text("revoked")
        status, body = await api_json(server, "/api/v1/pose/zones", token)
        assert status == 401 and "revoked" in body["error"]["message"]
        ui.assert_clean()
    finally:
        await server.close()


async def test_ui_works_under_a_path_prefix_as_home_assistant_ingress_serves_it(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    server = await serve(tmp_path)
    proxy = TestServer(ingress_proxy(str(server.make_url("")).rstrip("/")), host="127.0.0.1")
    await proxy.start_server()
    try:
        base = str(proxy.make_url(INGRESS_PREFIX + "/"))
        requested: list[str] = []
        page = await ui.context.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.on("websocket", lambda ws: requested.append(ws.url))
        page.on("console", lambda m: m.type == "error" and ui.problems.append(m.text))
        await page.goto(base)
        await onboard(page, expect)  # "live" means the WebSocket came through the prefix too
        for name in ("zones", "nodes", "settings"):
            await page.click(f"#nav a[data-page={name}]")
            await expect(page.locator(f"#title-{name}")).to_be_visible()
        await expect(page.locator("#system-facts")).to_contain_text("Version")
        ws_base = base.replace("http://", "ws://")
        outside = [u for u in requested if not (u.startswith(base) or u.startswith(ws_base))]
        assert not outside, outside
        assert any(u.startswith(ws_base + "ws/v1/stream") for u in requested)
        ui.assert_clean()
    finally:
        for open_page in ui.context.pages:  # ends the bridged WebSocket, which the proxy would wait for
            await open_page.close()
        await proxy.close()
        await server.close()


async def test_inside_home_assistant_the_ui_needs_no_login(
    ui: UiSession, expect: Any, tmp_path: Path
) -> None:
    """Through Home Assistant's ingress (the proxy connects from the address the appliance trusts as the
    Supervisor's), the page starts signed in as the Home Assistant user: no login form, no logout."""
    server = await serve(tmp_path, **{"auth.ingress_proxy": "127.0.0.2"})
    upstream = str(server.make_url("")).rstrip("/")
    proxy = TestServer(ingress_proxy(upstream, source="127.0.0.2"), host="127.0.0.1")
    await proxy.start_server()
    try:
        page = await ui.page(str(proxy.make_url("/panel")))  # the UI in Home Assistant's iframe
        panel = page.frame_locator("iframe")
        await expect(panel.locator("#connection")).to_have_text("live", timeout=10_000)
        await expect(panel.locator("#user")).to_have_text("anna")
        await expect(panel.locator("#auth-panel")).to_be_hidden()
        await expect(panel.locator("#logout")).to_be_hidden()
        await panel.locator("#nav a[data-page=settings]").click()
        await expect(panel.locator("#system-facts")).to_contain_text("Version")
        ui.assert_clean()
    finally:
        for open_page in ui.context.pages:
            await open_page.close()
        await proxy.close()
        await server.close()


async def test_phone_layout(browser: Any, expect: Any, tmp_path: Path) -> None:
    server = await serve(tmp_path)
    context = await browser.new_context(
        viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True
    )
    ui = UiSession(context)
    try:
        page = await ui.page(str(server.make_url("/")))
        await onboard(page, expect)
        for name in PAGES:
            await page.click(f"#nav a[data-page={name}]")
            await expect(page.locator(f"#title-{name}")).to_be_visible()
            await page.wait_for_timeout(300)  # let charts and lists fill in before measuring
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{name}: the page is {width} px wide on a 375 px screen"
            await screenshot(page, f"phone-{name}", for_docs=name == "live")
        ui.assert_clean()
    finally:
        await context.close()
        await server.close()
