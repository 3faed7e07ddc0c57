"""The security gate (appliance/api/security.py) in front of a small app of its own, over loopback HTTP.

The app has the real middlewares, policy, Authenticator and account database, and four declared routes
(public, a scope, a state change, a stream) plus one added around the router. It stands in for the whole
service so that each gate rule is pinned by a test that takes milliseconds: the module docstring, RFC 6750
(bearer challenges) and the rate-limit settings below are the oracles.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from appliance.api.auth import AUTHENTICATOR, PRINCIPAL, Authenticator, load_or_create_secret
from appliance.api.errors import error_middleware
from appliance.api.routing import ApiRouter, RateTier, Scope, install
from appliance.api.security import (
    RETIRED_APIS,
    RetiredApi,
    SecurityPolicy,
    _unauthorized,
    ingress_path,
    middlewares,
    setup_security,
)
from appliance.store.accounts import AccountStore
from appliance.store.database import DATABASE_FILE, Database
from tests.auth_support import bearer, config_in

# Buckets small enough to empty in a test; one token a minute, so none comes back while it runs.
ANONYMOUS = {"per_minute": 1, "burst": 3}
AUTHENTICATED = {"per_minute": 1, "burst": 5}
STREAMING = {"per_minute": 1, "burst": 2}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Still answering, with deprecation headers, until a sunset far ahead.
DEPRECATED = RetiredApi(
    prefix="/api/v2/",
    successor="/api/v3/",
    deprecated=datetime(2026, 1, 1, tzinfo=UTC),
    sunset=datetime(2099, 1, 1, tzinfo=UTC),
)

router = ApiRouter()


def _who(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    return web.json_response({"kind": principal.kind, "id": principal.id, "name": principal.name})


@router.get("/api/v1/ping", public=True, summary="public")
async def ping(request: web.Request, query: None, body: None) -> web.Response:
    return web.Response(text="pong")


@router.get("/api/v2/ping", public=True, summary="public, on a deprecated version")
async def old_ping(request: web.Request, query: None, body: None) -> web.Response:
    return web.Response(text="pong")


@router.get("/ui", public=True, summary="a page of the web UI")
async def page(request: web.Request, query: None, body: None) -> web.Response:
    return web.Response(text="<html></html>", content_type="text/html")


@router.get("/api/v1/pose", scope=Scope.POSE_READ, summary="read")
async def read(request: web.Request, query: None, body: None) -> web.Response:
    return _who(request)


@router.post("/api/v1/config", scope=Scope.CONFIG_WRITE, summary="change")
async def change(request: web.Request, query: None, body: None) -> web.Response:
    return _who(request)


@router.get("/api/v1/stream", scope=Scope.STREAM_SUBSCRIBE, tier=RateTier.STREAMING, summary="stream")
async def stream(request: web.Request, query: None, body: None) -> web.Response:
    return _who(request)


async def _raw(request: web.Request) -> web.Response:
    return _who(request)


@dataclass
class Gate:
    client: TestClient[Any, Any]
    admin: dict[str, str]
    viewer: dict[str, str]
    reader: dict[str, str]  # an API token with pose:read only


MakeGate = Callable[..., Awaitable[Gate]]


@pytest.fixture
async def make_gate(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[MakeGate]:
    databases: list[tuple[Database, AccountStore]] = []

    async def make(**auth: Any) -> Gate:
        data_dir = tmp_path / f"box{len(databases)}"
        overrides = {
            "auth.rate_limits.anonymous": ANONYMOUS,
            "auth.rate_limits.authenticated": AUTHENTICATED,
            "auth.rate_limits.streaming": STREAMING,
            **{f"auth.{key}": value for key, value in auth.items()},
        }
        config = config_in(data_dir, **overrides)
        data_dir.mkdir()
        database = await Database.open(data_dir / DATABASE_FILE)
        accounts = AccountStore(database)
        databases.append((database, accounts))
        authenticator = Authenticator(accounts, load_or_create_secret(data_dir), jwt_ttl_s=600)
        app = web.Application(middlewares=[error_middleware, *middlewares()])
        install(app, router)
        app.router.add_get("/api/v1/raw", _raw)
        setup_security(app, config, (*RETIRED_APIS, DEPRECATED))
        app[AUTHENTICATOR] = authenticator
        admin = await accounts.create_user("ann", "password-1", is_admin=True)
        viewer = await accounts.create_user("vic", "password-2", is_admin=False)
        token, _ = await accounts.create_token("ha", ("pose:read",), expires=None, created_by=None)
        return Gate(
            await aiohttp_client(app),
            bearer(authenticator.issue(admin, frozenset({Scope.ADMIN_ALL}))),
            bearer(authenticator.issue(viewer, frozenset(Scope))),
            bearer(token),
        )

    yield make
    for database, accounts in databases:
        accounts.close()
        await database.close()


async def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = (await response.json())["error"]
    return body


def rate_headers(response: Any) -> tuple[str, str, str]:
    h = response.headers
    return h["X-RateLimit-Limit"], h["X-RateLimit-Remaining"], h["X-RateLimit-Reset"]


async def test_public_routes_are_charged_to_the_client_until_429(make_gate: MakeGate) -> None:
    gate = await make_gate()
    answers = [await gate.client.get("/api/v1/ping") for _ in range(3)]
    assert [r.status for r in answers] == [200, 200, 200]
    # Limit: the burst; Remaining: requests left; Reset: seconds until full at one token a minute.
    assert [rate_headers(r) for r in answers] == [("3", "2", "60"), ("3", "1", "120"), ("3", "0", "180")]
    refused = await gate.client.get("/api/v1/ping")
    assert refused.status == 429 and refused.headers["Retry-After"] == "60"
    assert await error_of(refused) == {
        "code": "rate_limited",
        "message": "too many requests; retry in 60 s",
        "details": {"retry_after_s": 60},
    }
    # Requests without a valid token are anonymous too: the same client's bucket is empty for them.
    assert (await gate.client.get("/api/v1/pose")).status == 429
    # A token has a bucket of its own.
    assert (await gate.client.get("/api/v1/pose", headers=gate.admin)).status == 200


async def test_a_token_is_charged_to_its_own_tier_and_bucket(make_gate: MakeGate) -> None:
    gate = await make_gate()
    first = await gate.client.get("/api/v1/pose", headers=gate.viewer)
    assert rate_headers(first) == ("5", "4", "60")
    assert rate_headers(await gate.client.get("/api/v1/pose", headers=gate.reader)) == ("5", "4", "60")
    streams = [await gate.client.get("/api/v1/stream", headers=gate.viewer) for _ in range(3)]
    assert [r.status for r in streams] == [200, 200, 429]
    assert rate_headers(streams[0]) == ("2", "1", "60")
    # The stream bucket is empty, the viewer's API bucket is not.
    assert rate_headers(await gate.client.get("/api/v1/pose", headers=gate.viewer)) == ("5", "3", "120")


async def test_every_response_carries_the_security_headers(make_gate: MakeGate) -> None:
    gate = await make_gate()
    api = await gate.client.get("/api/v1/ping")
    ui = await gate.client.get("/ui")
    missing = await gate.client.get("/nowhere")
    for response in (api, ui, missing):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert api.headers["Content-Security-Policy"] == API_CSP
    assert api.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in ui.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in ui.headers["Content-Security-Policy"]
    assert ui.headers["Cache-Control"] == "no-cache"
    # A 404 is public and charged like any other anonymous request.
    assert missing.status == 404 and rate_headers(missing)[:2] == ("3", "0")


async def test_no_token_gets_a_bare_challenge_and_a_bad_one_says_why(make_gate: MakeGate) -> None:
    gate = await make_gate(**{"rate_limits.anonymous": {"per_minute": 1, "burst": 10}})
    none = await gate.client.get("/api/v1/pose")
    assert none.status == 401
    assert none.headers["WWW-Authenticate"] == 'Bearer realm="invispose"'
    assert await error_of(none) == {
        "code": "unauthorized",
        "message": "no bearer token; log in or create an API token",
        "details": None,
    }
    basic = await gate.client.get("/api/v1/pose", headers={"Authorization": "Basic YW5uOnB3"})
    assert basic.status == 401
    assert (await error_of(basic))["code"] == "invalid_token"
    assert basic.headers["WWW-Authenticate"] == (
        'Bearer realm="invispose", error="invalid_token", '
        "error_description=\"the Authorization header is not 'Bearer <token>'\""
    )
    forged = await gate.client.get("/api/v1/pose", headers=bearer("not.a.jwt"))
    assert forged.status == 401
    assert (await error_of(forged))["message"] == "the token is malformed"
    unknown = await gate.client.get("/api/v1/pose", headers=bearer("ivp_" + "0" * 40))
    assert (await error_of(unknown))["message"] == "unknown API token"


async def test_scopes_decide_and_a_refusal_names_the_one_missing(make_gate: MakeGate) -> None:
    gate = await make_gate()
    read = await gate.client.get("/api/v1/pose", headers=gate.viewer)
    assert read.status == 200 and (await read.json())["name"] == "vic"
    refused = await gate.client.post("/api/v1/config", headers=gate.viewer)
    assert refused.status == 403
    assert refused.headers["WWW-Authenticate"] == (
        'Bearer realm="invispose", error="insufficient_scope", scope="config:write"'
    )
    assert await error_of(refused) == {
        "code": "insufficient_scope",
        "message": "this needs the config:write scope, which the token does not have",
        "details": {"required_scope": "config:write"},
    }
    changed = await gate.client.post("/api/v1/config", headers=gate.admin)
    assert changed.status == 200 and (await changed.json())["name"] == "ann"
    token = await gate.client.get("/api/v1/pose", headers=gate.reader)
    assert token.status == 200 and (await token.json())["kind"] == "token"
    assert (await gate.client.get("/api/v1/stream", headers=gate.reader)).status == 403


async def test_a_stream_takes_its_token_from_the_query_and_no_other_route_does(make_gate: MakeGate) -> None:
    """Browsers cannot set headers on a WebSocket or an <img> stream, so streams read ?access_token=."""
    gate = await make_gate()
    token = gate.viewer["Authorization"].removeprefix("Bearer ")
    stream = await gate.client.get("/api/v1/stream", params={"access_token": token})
    assert stream.status == 200 and (await stream.json())["name"] == "vic"
    assert (await gate.client.get("/api/v1/pose", params={"access_token": token})).status == 401


async def test_a_route_added_around_the_router_needs_admin_and_is_logged_once(
    make_gate: MakeGate, caplog: pytest.LogCaptureFixture
) -> None:
    gate = await make_gate()
    with caplog.at_level(logging.WARNING, logger="appliance.api.security"):
        refused = await gate.client.get("/api/v1/raw", headers=gate.viewer)
        await gate.client.get("/api/v1/raw", headers=gate.viewer)
        allowed = await gate.client.get("/api/v1/raw", headers=gate.admin)
    assert refused.status == 403 and (await error_of(refused))["details"] == {"required_scope": "admin:all"}
    assert allowed.status == 200
    warnings = [r for r in caplog.records if r.name == "appliance.api.security"]
    assert [(r.getMessage(), getattr(r, "fields", None)) for r in warnings] == [
        ("route is not declared with the API router; only admin:all may call it", {"route": "/api/v1/raw"})
    ]


async def test_an_unknown_host_name_is_refused(make_gate: MakeGate) -> None:
    gate = await make_gate(allowed_hosts=["box.example.lan"])
    rebound = await gate.client.get("/api/v1/ping", headers={"Host": "evil.example"})
    assert rebound.status == 421
    error = await error_of(rebound)
    assert error["code"] == "invalid_host" and error["details"] == {"host": "evil.example"}
    assert "auth.allowed_hosts" in error["message"]
    assert rate_headers(rebound) == ("3", "3", "0")  # refused before it was charged
    assert (await gate.client.get("/api/v1/ping", headers={"Host": "box.example.lan:8099"})).status == 200
    assert (await gate.client.get("/api/v1/ping", headers={"Host": "192.0.2.7"})).status == 200
    # A refusal still tells the client what is left in its own bucket, and charges nothing.
    again = await gate.client.get("/api/v1/ping", headers={"Host": "evil.example"})
    assert rate_headers(again) == ("3", "1", "120")


async def test_foreign_pages_may_read_but_not_change_or_stream(make_gate: MakeGate) -> None:
    gate = await make_gate()
    foreign = {"Origin": "http://evil.example"}
    refused = await gate.client.post("/api/v1/config", headers={**gate.admin, **foreign})
    assert refused.status == 403
    assert await error_of(refused) == {
        "code": "origin_not_allowed",
        "message": "pages from this origin may not call the API; add it to auth.cors_origins if it is yours",
        "details": {"origin": "http://evil.example"},
    }
    upgrade = {**gate.admin, **foreign, "Upgrade": "WebSocket", "Connection": "Upgrade"}
    assert (await gate.client.get("/api/v1/stream", headers=upgrade)).status == 403
    read = await gate.client.get("/api/v1/pose", headers={**gate.admin, **foreign})
    assert read.status == 200 and "Access-Control-Allow-Origin" not in read.headers
    # The appliance's own page: Origin names the Host it was loaded from.
    host = f"{gate.client.host}:{gate.client.port}"
    own = {**gate.admin, "Origin": f"http://{host}", "Host": host}
    assert (await gate.client.post("/api/v1/config", headers=own)).status == 200


async def test_cors_opens_only_for_a_configured_origin(make_gate: MakeGate) -> None:
    gate = await make_gate(cors_origins=["https://ha.example:8123"])
    preflight = {"Origin": "https://HA.example:8123", "Access-Control-Request-Method": "POST"}
    answer = await gate.client.options("/api/v1/config", headers=preflight)
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == "https://HA.example:8123"
    assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, PATCH, DELETE"
    assert answer.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert answer.headers["Access-Control-Max-Age"] == "600"
    assert answer.headers["Vary"] == "Origin"
    other = await gate.client.options(
        "/api/v1/config", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert other.status == 403 and (await error_of(other))["code"] == "origin_not_allowed"
    changed = await gate.client.post(
        "/api/v1/config", headers={**gate.admin, "Origin": "https://ha.example:8123"}
    )
    assert changed.status == 200
    assert changed.headers["Access-Control-Allow-Origin"] == "https://ha.example:8123"
    exposed = {h.strip() for h in changed.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "WWW-Authenticate", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= exposed
    assert "Origin" in changed.headers.getall("Vary")


async def test_a_retired_version_is_gone_and_a_deprecated_one_says_so(make_gate: MakeGate) -> None:
    gate = await make_gate()
    gone = await gate.client.get("/api/v0/pose/current")
    assert gone.status == 410
    assert await error_of(gone) == {
        "code": "api_version_gone",
        "message": "/api/v0/ is retired; use /api/v1/",
        "details": {"successor": "/api/v1/pose/current"},
    }
    # RFC 9745 Deprecation (@epoch seconds of 2025-01-01), RFC 8594 Sunset (HTTP date), successor link.
    assert gone.headers["Deprecation"] == "@1735689600"
    assert gone.headers["Sunset"] == "Tue, 01 Jul 2025 00:00:00 GMT"
    assert gone.headers["Link"] == '</api/v1/pose/current>; rel="successor-version"'
    old = await gate.client.get("/api/v2/ping")
    assert old.status == 200 and await old.text() == "pong"
    assert old.headers["Deprecation"] == "@1767225600"
    assert old.headers["Sunset"] == "Thu, 01 Jan 2099 00:00:00 GMT"
    assert old.headers["Link"] == '</api/v3/ping>; rel="successor-version"'
    assert "Deprecation" not in (await gate.client.get("/api/v1/ping")).headers


async def test_home_assistant_ingress_signs_its_user_in(make_gate: MakeGate) -> None:
    gate = await make_gate(ingress_proxy="127.0.0.1", ingress_role="viewer")
    ingress = {
        "X-Ingress-Path": "/api/hassio_ingress/abc123",
        "X-Remote-User-Id": "u-42",
        "X-Remote-User-Name": "Maria",
        "Host": "homeassistant.local:8123",
    }
    read = await gate.client.get("/api/v1/pose", headers=ingress)
    assert read.status == 200
    assert await read.json() == {"kind": "homeassistant", "id": "u-42", "name": "Maria"}
    # The viewer role: looking is fine, changing is not.
    assert (await gate.client.post("/api/v1/config", headers=ingress)).status == 403
    ui = await gate.client.get("/ui", headers=ingress)
    assert ui.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in ui.headers["Content-Security-Policy"]
    assert "base-uri 'self'" in ui.headers["Content-Security-Policy"]
    anonymous = {key: value for key, value in ingress.items() if not key.startswith("X-Remote-User")}
    who = await (await gate.client.get("/api/v1/pose", headers=anonymous)).json()
    assert who == {"kind": "homeassistant", "id": "Home Assistant", "name": "Home Assistant"}
    # Without the ingress header it is an ordinary request, and the Home Assistant host name is refused.
    no_path = {key: value for key, value in ingress.items() if key != "X-Ingress-Path"}
    assert (await gate.client.get("/api/v1/pose", headers=no_path)).status == 421
    bad_path = {**ingress, "X-Ingress-Path": "javascript:alert(1)"}
    assert (await gate.client.get("/api/v1/pose", headers=bad_path)).status == 421


async def test_an_admin_ingress_may_change_things(make_gate: MakeGate) -> None:
    gate = await make_gate(ingress_proxy="127.0.0.1")
    headers = {"X-Ingress-Path": "/api/hassio_ingress/abc123", "X-Remote-User-Display-Name": "Jo"}
    changed = await gate.client.post("/api/v1/config", headers=headers)
    assert changed.status == 200 and (await changed.json())["name"] == "Jo"


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(make_gate: MakeGate) -> None:
    gate = await make_gate(trusted_proxies=["127.0.0.0/8"])

    async def remaining(forwarded_for: str) -> str:
        response = await gate.client.get("/api/v1/ping", headers={"X-Forwarded-For": forwarded_for})
        return response.headers["X-RateLimit-Remaining"]

    assert [await remaining("198.51.100.1"), await remaining("198.51.100.1")] == ["2", "1"]
    assert await remaining("198.51.100.2") == "2"
    # The nearest untrusted hop is the client; a spoofed first hop changes nothing.
    assert await remaining("203.0.113.9, 198.51.100.1, 127.0.0.5") == "0"
    # Only trusted proxies in the header: the first one is the client.
    assert await remaining("127.0.0.9, 127.0.0.5") == "2"
    assert await remaining("127.0.0.9") == "1"
    # No header: the proxy itself is the client, the same one as a header naming only it.
    assert (await gate.client.get("/api/v1/ping")).headers["X-RateLimit-Remaining"] == "2"
    assert await remaining("127.0.0.1") == "1"


async def test_a_forwarded_hop_that_is_not_an_address_is_never_trusted(make_gate: MakeGate) -> None:
    """Past a trusted proxy, anything that is not an address is the client as far as limits go."""
    gate = await make_gate(trusted_proxies=["127.0.0.0/8", "198.51.100.0/24"])

    async def remaining(forwarded_for: str) -> str:
        response = await gate.client.get("/api/v1/ping", headers={"X-Forwarded-For": forwarded_for})
        return response.headers["X-RateLimit-Remaining"]

    assert await remaining("203.0.113.9, not-an-address") == "2"
    assert await remaining("203.0.113.9, another-name") == "2"  # its own bucket, not 203.0.113.9's
    assert await remaining("203.0.113.9, 198.51.100.1") == "2"  # 203.0.113.9's first request...
    assert await remaining("203.0.113.9") == "1"  # ...and its second


def test_the_ingress_path_is_a_plain_path_without_its_trailing_slash() -> None:
    def path_of(value: str) -> str | None:
        return ingress_path(make_mocked_request("GET", "/", headers={"X-Ingress-Path": value}))

    assert path_of("/api/hassio_ingress/abc123/") == "/api/hassio_ingress/abc123"
    assert path_of("/api/hassio_ingress/abc123") == "/api/hassio_ingress/abc123"
    assert path_of("/api/hassio_ingress/tokenX/") == "/api/hassio_ingress/tokenX"
    assert path_of("api/hassio_ingress/abc") is None  # not absolute
    assert path_of("/a b") is None
    assert ingress_path(make_mocked_request("GET", "/")) is None


def test_a_token_error_never_puts_a_backslash_or_a_quote_in_the_challenge() -> None:
    """RFC 9110 quoted-string: a backslash escapes the next character and a quote ends the string."""
    challenge = _unauthorized('bad \\"sub\\" claim', with_error=True).headers["WWW-Authenticate"]
    assert challenge.endswith("error_description=\"bad 'sub' claim\"")


async def test_only_the_ingress_proxy_itself_can_sign_a_user_in(make_gate: MakeGate) -> None:
    """X-Ingress-Path from any other address (the add-on's mapped port, a neighbour) is just a header."""
    gate = await make_gate(ingress_proxy="192.0.2.1")
    ingress = {"X-Ingress-Path": "/api/hassio_ingress/abc123", "X-Remote-User-Name": "Maria"}
    assert (await gate.client.get("/api/v1/pose", headers=ingress)).status == 401


async def test_forwarded_for_counts_only_from_a_trusted_proxy(make_gate: MakeGate) -> None:
    gate = await make_gate(trusted_proxies=["198.51.100.0/24"])  # not loopback, where the test calls from

    async def remaining(headers: dict[str, str]) -> str:
        return (await gate.client.get("/api/v1/ping", headers=headers)).headers["X-RateLimit-Remaining"]

    # A client that names another client cannot get a fresh bucket: both requests are charged to 127.0.0.1.
    assert await remaining({"X-Forwarded-For": "203.0.113.1"}) == "2"
    assert await remaining({"X-Forwarded-For": "203.0.113.2"}) == "1"


async def test_a_trusted_proxy_without_forwarded_for_is_the_client(make_gate: MakeGate) -> None:
    gate = await make_gate(trusted_proxies=["127.0.0.0/8"])
    answers = [await gate.client.get("/api/v1/ping") for _ in range(2)]
    assert [(r.status, r.headers["X-RateLimit-Remaining"]) for r in answers] == [(200, "2"), (200, "1")]


def test_the_box_answers_to_the_names_the_readme_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """README, Security: localhost, its hostname, <hostname>.local, an IP address, or auth.allowed_hosts
    (and server.host when it is a name). The box's name is set here: this machine's has no dots."""
    monkeypatch.setattr(socket, "gethostname", lambda: "Box.Home.Arpa")
    monkeypatch.setattr(socket, "getfqdn", lambda: "Box.Home.Arpa.example.net")
    policy = SecurityPolicy.from_config(
        config_in(
            Path("/unused"), **{"server.host": "Invispose.Lan", "auth.allowed_hosts": ["Cam.Example.Lan"]}
        )
    )
    for known in ("localhost", "box.home.arpa", "box", "box.local", "box.home.arpa.example.net"):
        assert policy.host_allowed(f"{known}:8099"), known
    assert policy.host_allowed("invispose.lan") and policy.host_allowed("cam.example.lan")
    assert not policy.host_allowed("none.local") and not policy.host_allowed(".cam.example.lan")


def test_host_names_as_browsers_send_them() -> None:
    policy = SecurityPolicy.from_config(
        config_in(Path("/unused"), **{"auth.allowed_hosts": ["box.example.lan", "invispose-box"]})
    )
    assert policy.host_allowed("box.example.lan.:8099")  # a fully qualified name ends with a dot
    assert policy.host_allowed("INVISPOSE-BOX.")  # host names ignore case (RFC 4343)
    assert not policy.host_allowed("invispose-bo")
    assert policy.host_allowed("[::1]:8099") and policy.host_allowed("[::1]")
    assert policy.host_allowed(None)  # HTTP/1.0 sends no Host: no name, nothing to rebind
    assert not policy.host_allowed("[]:8099")
