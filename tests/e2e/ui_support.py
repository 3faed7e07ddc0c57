"""The web UI in a real Chromium against the real application served in-process on a loopback port.

``UiSession`` opens pages that record every console error, uncaught exception and failed request of the
UI; a test ends by asserting there were none. Screenshots go to the test run's artifacts
(``$INVISPOSE_TEST_ARTIFACTS``, default ``build/test-artifacts``); with ``INVISPOSE_UPDATE_DOC_IMAGES=1`` the
ones the README shows are written to ``docs/images/`` as well.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, TCPConnector, WSMsgType, web
from aiohttp.test_utils import TestServer

from appliance.app import build_app
from tests.auth_support import ADMIN, config_in
from tests.conftest import REPO

ARTIFACTS = Path(os.environ.get("INVISPOSE_TEST_ARTIFACTS", REPO / "build" / "test-artifacts")) / "e2e"
DOC_IMAGES = REPO / "docs" / "images"
UPDATE_DOC_IMAGES = os.environ.get("INVISPOSE_UPDATE_DOC_IMAGES") == "1"
FAST: dict[str, Any] = {
    # Generous limits: one browser session makes many calls; calibration short so tests need not wait.
    "auth.rate_limits.anonymous": {"per_minute": 100_000, "burst": 10_000},
    "auth.rate_limits.authenticated": {"per_minute": 100_000, "burst": 10_000},
    "detector.calibration_s": 2,
    "history.flush_interval_s": 0.1,
}


async def serve(data_dir: Path, **overrides: Any) -> TestServer:
    """The application on ``data_dir`` (the shipped config plus ``overrides``) on a free loopback port."""
    server = TestServer(build_app(config_in(data_dir, **{**FAST, **overrides})), host="127.0.0.1")
    await server.start_server()
    return server


@dataclass
class UiSession:
    """Pages of one browser context, with what went wrong on them."""

    context: Any
    problems: list[str] = field(default_factory=list)

    async def page(self, url: str) -> Any:
        page = await self.context.new_page()
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self._failed(r))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status} {r.url}"))
        await page.goto(url)
        return page

    def _failed(self, request: Any) -> None:
        # A blob URL revoked after use and a WebSocket closed at logout are not failures of the UI.
        if not request.url.startswith("blob:"):
            self.problems.append(f"request failed: {request.url} {request.failure}")

    def assert_clean(self, allowed: str | None = None) -> None:
        """No console error, page error or failed request, except those matching ``allowed``."""
        left = [p for p in self.problems if allowed is None or not re.search(allowed, p)]
        assert not left, "\n".join(left)


async def onboard(page: Any, expect: Any) -> None:
    """Create the first admin in the onboarding form and wait until the live view is connected."""
    await expect(page.locator("#auth-title")).to_have_text("Create the first admin", timeout=10_000)
    await page.fill("#auth-username", ADMIN["username"])
    await page.fill("#auth-password", ADMIN["password"])
    await page.click("#auth-submit")
    await expect(page.locator("#connection")).to_have_text("live", timeout=10_000)


async def log_in(
    page: Any, expect: Any, username: str = ADMIN["username"], password: str = ADMIN["password"]
) -> None:
    await expect(page.locator("#auth-title")).to_have_text("Log in", timeout=10_000)
    await page.fill("#auth-username", username)
    await page.fill("#auth-password", password)
    await page.click("#auth-submit")


async def screenshot(target: Any, name: str, *, for_docs: bool = False, full_page: bool = False) -> bytes:
    """A PNG of a page or element into the artifacts (and docs/images when asked and enabled);
    ``full_page``: the whole page of a page target, not only what the window shows."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    options = {"full_page": True} if full_page else {}
    if full_page:  # from the top: a page scrolled down draws its sticky banner over the middle of the picture
        await target.evaluate("window.scrollTo(0, 0)")
    image: bytes = await target.screenshot(path=str(ARTIFACTS / f"{name}.png"), **options)
    if for_docs and UPDATE_DOC_IMAGES:
        (DOC_IMAGES / f"{name}.png").write_bytes(image)
    return image


async def room_point_to_screen(page: Any, selector: str, x: float, y: float) -> tuple[float, float]:
    """Where on the screen the floor plan ``selector`` draws the room point (x, y) metres."""
    point = await page.evaluate(
        """([selector, x, y]) => {
            const svg = document.querySelector(selector);
            const p = new DOMPoint(x, y).matrixTransform(svg.getScreenCTM());
            return [p.x, p.y];
        }""",
        [selector, x, y],
    )
    return float(point[0]), float(point[1])


# --------------------------------------------------------------------------------------------------------
# A path-prefix proxy, as Home Assistant's ingress is: an aiohttp server that serves the appliance under
# PREFIX, strips it, forwards HTTP and WebSocket traffic and sets X-Ingress-Path.


INGRESS_PREFIX = "/api/hassio_ingress/3fQ9xk2b"
HOME_ASSISTANT_USER = {"X-Remote-User-Id": "5e1f0c9a", "X-Remote-User-Name": "anna"}
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-encoding",
}


def ingress_proxy(upstream: str, source: str | None = None) -> web.Application:
    """``upstream``: the appliance's base URL. The browser's Host is kept (like X-Forwarded-Host), so the
    appliance's same-origin checks see the origin the browser sees. ``source``: the address the proxy
    connects from, the Supervisor's as the appliance knows it (``auth.ingress_proxy``); then it also names
    the signed-in Home Assistant user, as the Supervisor does."""
    app = web.Application()
    session_key = web.AppKey("session", ClientSession)

    async def forward(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["X-Ingress-Path"] = INGRESS_PREFIX
        if source is not None:
            headers.update(HOME_ASSISTANT_USER)
        url = f"{upstream}/{tail}"
        session = app[session_key]
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _bridge(request, session, url, headers)
        async with session.request(
            request.method, url, params=request.query, headers=headers, data=await request.read(),
            allow_redirects=False,
        ) as answer:  # fmt: skip
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=answer.status, body=body, headers=kept)

    async def open_session(app: web.Application) -> AsyncIterator[None]:
        connector = TCPConnector(local_addr=(source, 0)) if source is not None else None
        app[session_key] = ClientSession(auto_decompress=False, connector=connector)
        yield
        await app[session_key].close()

    app.cleanup_ctx.append(open_session)

    async def panel(request: web.Request) -> web.Response:
        # Home Assistant's frontend shows an add-on's panel in an iframe of its own page.
        frame = f'<iframe src="{INGRESS_PREFIX}/" title="InvisPose" style="width:100%;height:95vh"></iframe>'
        return web.Response(
            text=f'<!doctype html><title>Home Assistant</title><link rel="icon" href="data:,">{frame}',
            content_type="text/html",
        )

    app.router.add_get("/panel", panel)
    app.router.add_route("*", INGRESS_PREFIX + "/{tail:.*}", forward)
    return app


async def _bridge(request: web.Request, session: ClientSession, url: str, headers: dict[str, str]) -> Any:
    headers = {k: v for k, v in headers.items() if not k.lower().startswith("sec-websocket")}
    client = web.WebSocketResponse()
    await client.prepare(request)
    async with session.ws_connect(url, params=request.query, headers=headers) as server:

        async def pump(source: Any, sink: Any) -> None:
            async for message in source:
                if message.type == WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
            await sink.close()

        await asyncio.gather(pump(client, server), pump(server, client), return_exceptions=True)
    return client
