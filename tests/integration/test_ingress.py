"""Home Assistant's ingress: requests from its proxy are signed in as the Home Assistant user; the same
requests from any other address are not.

The proxy's address in the add-on is 172.30.32.2; here it is 127.0.0.2 (``auth.ingress_proxy``), so that
the connections are real TCP connections on loopback whose source address is the proxy's. The headers are
the ones Home Assistant's ingress and the Supervisor send (X-Ingress-Path, X-Remote-User-*).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.app_support import Client, start

PROXY = "127.0.0.2"
PREFIX = "/api/hassio_ingress/f3Q9xk2bZ"
HA_USER = {
    "X-Ingress-Path": PREFIX,
    "X-Remote-User-Id": "8a7d6c5b4a39",
    "X-Remote-User-Name": "anna",
    "X-Remote-User-Display-Name": "Anna",
    # What the browser sent to Home Assistant, passed on by its proxy
    "Host": "home.example.org:8123",
}


@pytest.fixture
async def from_proxy() -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose connections come from the proxy's address."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(PROXY, 0))) as session:
        yield session


async def ingress_app(aiohttp_client: Any, tmp_path: Path, **overrides: Any) -> Client:
    client, _ = await start(
        aiohttp_client, tmp_path / "data", silent=True, **{"auth.ingress_proxy": PROXY}, **overrides
    )
    return client


async def test_the_proxy_passes_without_login_and_any_other_address_needs_a_token(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client = await ingress_app(aiohttp_client, tmp_path)
    url = client.make_url("/api/v1/system/status")
    async with from_proxy.get(url, headers=HA_USER) as answer:
        assert answer.status == 200, await answer.text()
    direct = await client.get("/api/v1/system/status", headers=HA_USER)
    assert direct.status == 421  # not the proxy: Home Assistant's host name is not this box's
    direct = await client.get("/api/v1/system/status", headers={**HA_USER, "Host": "127.0.0.1"})
    assert direct.status == 401
    # From the proxy's address but not an ingress request (no X-Ingress-Path): the usual gate
    no_path = {k: v for k, v in HA_USER.items() if k != "X-Ingress-Path"}
    async with from_proxy.get(url, headers={**no_path, "Host": "127.0.0.1"}) as answer:
        assert answer.status == 401


async def test_without_ingress_configured_the_proxy_address_is_nobody_special(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client, _ = await start(aiohttp_client, tmp_path / "data", silent=True)
    async with from_proxy.get(client.make_url("/api/v1/system/status"), headers=HA_USER) as answer:
        assert answer.status == 421
    headers = {**HA_USER, "Host": "127.0.0.1"}
    async with from_proxy.get(client.make_url("/api/v1/system/status"), headers=headers) as answer:
        assert answer.status == 401


async def test_the_ui_learns_who_home_assistant_signed_in(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client = await ingress_app(aiohttp_client, tmp_path)
    async with from_proxy.get(client.make_url("/api/v1/auth/session"), headers=HA_USER) as answer:
        assert answer.status == 200
        assert await answer.json() == {"signed_in": True, "username": "anna", "scopes": ["admin:all"]}
    direct = await client.get("/api/v1/auth/session")
    assert await direct.json() == {"signed_in": False, "username": None, "scopes": []}


async def test_the_viewer_role_may_look_but_not_change(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client = await ingress_app(aiohttp_client, tmp_path, **{"auth.ingress_role": "viewer"})
    async with from_proxy.get(client.make_url("/api/v1/system/controls"), headers=HA_USER) as answer:
        assert answer.status == 200
    body = {"detection_enabled": False}
    controls = client.make_url("/api/v1/system/controls")
    async with from_proxy.put(controls, json=body, headers=HA_USER) as answer:
        assert answer.status == 403
        assert (await answer.json())["error"]["details"]["required_scope"] == "config:write"


async def test_the_admin_role_may_change_things(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client = await ingress_app(aiohttp_client, tmp_path)
    body = {"detection_enabled": False}
    controls = client.make_url("/api/v1/system/controls")
    async with from_proxy.put(controls, json=body, headers=HA_USER) as answer:
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["detection_enabled"] is False


async def test_the_page_resolves_its_urls_under_the_ingress_path(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client = await ingress_app(aiohttp_client, tmp_path)
    async with from_proxy.get(client.make_url("/"), headers=HA_USER) as answer:
        page = await answer.text()
    assert f'<base href="{PREFIX}/">' in page
    direct = await (await client.get("/")).text()
    assert "<base" not in direct
    hostile = {**HA_USER, "X-Ingress-Path": '/x"><script>alert(1)</script>'}
    async with from_proxy.get(client.make_url("/"), headers=hostile) as answer:
        assert answer.status == 421  # not a plain path: not an ingress request, and not this box's name
        assert "<script>alert" not in await answer.text()


async def test_the_live_stream_is_open_to_the_signed_in_user_at_once(
    aiohttp_client: Any, tmp_path: Path, from_proxy: aiohttp.ClientSession
) -> None:
    client = await ingress_app(aiohttp_client, tmp_path)
    async with from_proxy.ws_connect(client.make_url("/ws/v1/stream"), headers=HA_USER) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "connection" and hello["authenticated"] is True
        await ws.send_json({"type": "subscribe", "topic": "controls"})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
    async with client.ws_connect("/ws/v1/stream", headers={"Host": "127.0.0.1"}) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["authenticated"] is False
        await ws.send_json({"type": "subscribe", "topic": "controls"})
        assert (await ws.receive_json(timeout=5))["code"] == "not_authenticated"
