"""The API's security, proved on the real application: every route is protected unless it is declared public,
and tokens, scopes, rate limits, Host, Origin, CORS and versioning behave as the design says.

The auth matrix is generated from the application's endpoint table, so a new route is tested the moment it
is added; a route added to aiohttp without the API router makes ``test_every_route_is_declared`` fail.
"""

from __future__ import annotations

import json
import logging
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.api.auth import AUTHENTICATOR, SECRET_FILE
from appliance.api.routing import ENDPOINTS, Endpoint, EndpointTable, Scope
from appliance.app import build_app
from tests.auth_support import ADMIN, bearer, cli_token, config_in, database_bytes, onboard
from tests.conftest import DEFAULT_CONFIG, REPO

# Every route anybody may call without a token. Adding one here is a security decision: review it.
PUBLIC_ROUTES = {
    ("GET", "/"),
    ("GET", "/api/v1/system/health"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/auth/setup"),
    ("POST", "/api/v1/auth/setup"),
    ("POST", "/api/v1/auth/token"),
    # Authenticates inside the WebSocket protocol (close codes 4001/4003), see test_websocket.py.
    ("GET", "/ws/v1/stream"),
    # Says only whether Home Assistant's ingress signed the request in, see test_ingress.py.
    ("GET", "/api/v1/auth/session"),
}
GENEROUS_LIMITS = {
    "auth.rate_limits.anonymous": {"per_minute": 100_000, "burst": 10_000},
    "auth.rate_limits.authenticated": {"per_minute": 100_000, "burst": 10_000},
}
Client = TestClient[Any, Any]


def _endpoints() -> list[Endpoint]:
    app = build_app(config_in(Path("/nonexistent-never-opened")))
    table: EndpointTable = app[ENDPOINTS]
    return sorted(table, key=lambda e: (e.path, e.method))


PROTECTED = [e for e in _endpoints() if not e.public]


def _url(endpoint: Endpoint) -> str:
    path = endpoint.path
    for name in endpoint.path_params:
        path = path.replace(f"{{{name}}}", "no-such-item")
    return path


def _other_scope(scope: Scope | None) -> Scope:
    """A scope that is not ``scope`` and does not imply it."""
    return Scope.POSE_READ if scope is not Scope.POSE_READ else Scope.SYSTEM_READ


async def _api_token(client: Client, admin: dict[str, str], scopes: list[str]) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/tokens", json={"name": "t", "scopes": scopes}, headers=admin)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def _login_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": ADMIN["username"], "scopes": ["admin:all"], "iat": now, "exp": now + 600, "jti": "x"}
    claims.update(changes)
    return claims


@pytest.fixture
async def app_client(aiohttp_client: Any, tmp_path: Path) -> Client:
    client: Client = await aiohttp_client(build_app(config_in(tmp_path, **GENEROUS_LIMITS)))
    return client


# --------------------------------------------------------------------------------------------------------
# Which routes are protected


def undeclared_routes(app: web.Application) -> list[str]:
    """Routes on the aiohttp app that neither the endpoint table nor the static UI account for."""
    table = app[ENDPOINTS]
    return [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in app.router.routes()
        if table.for_route(route) is None and not isinstance(route.resource, web.StaticResource)
    ]


def test_every_route_is_declared_with_the_router(tmp_path: Path) -> None:
    app = build_app(config_in(tmp_path))
    assert undeclared_routes(app) == []
    public = {(e.method, e.path) for e in app[ENDPOINTS] if e.public}
    assert public == PUBLIC_ROUTES
    assert all(e.scope is not None for e in app[ENDPOINTS] if not e.public)


def test_a_route_added_around_the_router_is_caught(tmp_path: Path) -> None:
    app = build_app(config_in(tmp_path))

    async def sneaky(request: web.Request) -> web.Response:
        return web.json_response({"secret": True})

    app.router.add_get("/api/v1/sneaky", sneaky)
    assert set(undeclared_routes(app)) == {"GET /api/v1/sneaky", "HEAD /api/v1/sneaky"}


async def test_a_route_added_around_the_router_fails_closed(aiohttp_client: Any, tmp_path: Path) -> None:
    app = build_app(config_in(tmp_path))

    async def sneaky(request: web.Request) -> web.Response:
        return web.json_response({"secret": True})

    app.router.add_get("/api/v1/sneaky", sneaky)
    client: Client = await aiohttp_client(app)
    admin = await onboard(client)
    viewer = await _api_token(client, admin, ["system:read", "pose:read"])
    assert (await client.get("/api/v1/sneaky")).status == 401
    assert (await client.get("/api/v1/sneaky", headers=bearer(viewer["token"]))).status == 403
    assert (await client.get("/api/v1/sneaky", headers=admin)).status == 200


@pytest.mark.parametrize("endpoint", PROTECTED, ids=lambda e: f"{e.method} {e.path}")
async def test_auth_matrix(app_client: Client, endpoint: Endpoint, tmp_path: Path) -> None:
    client = app_client
    admin = await onboard(client)
    secret = (tmp_path / SECRET_FILE).read_bytes()
    revoked = await _api_token(client, admin, [str(endpoint.scope)])
    assert (await client.delete(f"/api/v1/auth/tokens/{revoked['id']}", headers=admin)).status == 204
    right = await _api_token(client, admin, [str(endpoint.scope)])
    wrong = await _api_token(client, admin, [_other_scope(endpoint.scope).value])
    past = int(time.time()) - 3600
    credentials: dict[str, dict[str, str]] = {
        "no token": {},
        "malformed token": {"Authorization": "Bearer not-a-token"},
        "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "bad signature": bearer(jwt.encode(_login_claims(), b"x" * 64, algorithm="HS256")),
        "expired JWT": bearer(jwt.encode(_login_claims(iat=past, exp=past + 60), secret, algorithm="HS256")),
        "alg none": bearer(jwt.encode(_login_claims(), None, algorithm="none")),
        "unknown API token": bearer("ivp_" + "A" * 43),
        "revoked API token": bearer(revoked["token"]),
        "wrong scope": bearer(wrong["token"]),
        "right scope": bearer(right["token"]),
        "admin:all": admin,
    }
    expected = {name: 401 for name in credentials} | {"wrong scope": 403}
    body: dict[str, Any] | None = {} if endpoint.body is not None else None
    seen: dict[str, int] = {}
    for name, headers in credentials.items():
        response = await client.request(endpoint.method, _url(endpoint), headers=headers, json=body)
        seen[name] = response.status
        if response.status in (401, 403):
            error = (await response.json())["error"]
            assert set(error) == {"code", "message", "details"}
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="invispose"')
            if response.status == 403:
                assert endpoint.scope is not None and endpoint.scope.value in error["message"]
            elif name != "no token":
                assert 'error="invalid_token"' in challenge and "error_description=" in challenge
    failures = {
        name: status
        for name, status in seen.items()
        if (name in ("right scope", "admin:all") and status in (401, 403))
        or (name not in ("right scope", "admin:all") and status != expected[name])
    }
    assert not failures, f"{endpoint.method} {endpoint.path}: {failures} (all: {seen})"


async def test_public_routes_answer_without_a_token(app_client: Client) -> None:
    """Every public route, POSTs included, does its job for a caller without a token (never 401/403)."""
    expected = {
        ("GET", "/"): 200,
        ("GET", "/api/v1/system/health"): None,  # 200 or 503, as its body says: see below
        ("GET", "/api/v1/openapi.json"): 200,
        ("GET", "/api/v1/auth/setup"): 200,
        ("GET", "/api/v1/auth/session"): 200,  # {"signed_in": false} outside Home Assistant's ingress
        ("POST", "/api/v1/auth/setup"): 201,
        ("POST", "/api/v1/auth/token"): 200,
        ("GET", "/ws/v1/stream"): 426,  # a plain GET is told to upgrade; see test_websocket.py
    }
    assert set(expected) == PUBLIC_ROUTES
    for (method, path), status in expected.items():  # setup before login: login needs setup's admin
        response = await app_client.request(method, path, json=ADMIN if method == "POST" else None)
        assert "WWW-Authenticate" not in response.headers, (method, path)
        if status is None:
            await assert_health_answered(response)
        else:
            assert response.status == status, (method, path)


async def test_viewer_login_can_read_but_not_administer(app_client: Client) -> None:
    admin = await onboard(app_client)
    viewer = {"username": "viewer", "password": "viewer-password"}
    assert (await app_client.post("/api/v1/auth/users", json=viewer, headers=admin)).status == 201
    login = await (await app_client.post("/api/v1/auth/token", json=viewer)).json()
    assert set(login["scopes"]) == {"pose:read", "analytics:read", "system:read", "stream:subscribe"}
    headers = bearer(login["access_token"])
    assert (await app_client.get("/api/v1/system/status", headers=headers)).status == 200
    assert (await app_client.get("/api/v1/auth/users", headers=headers)).status == 403
    # Removing the user ends their session at once, though the JWT has not expired.
    assert (await app_client.delete("/api/v1/auth/users/viewer", headers=admin)).status == 204
    assert (await app_client.get("/api/v1/system/status", headers=headers)).status == 401


async def test_login_cannot_ask_for_more_than_the_user_has(app_client: Client) -> None:
    admin = await onboard(app_client)
    viewer = {"username": "viewer", "password": "viewer-password"}
    await app_client.post("/api/v1/auth/users", json=viewer, headers=admin)
    response = await app_client.post("/api/v1/auth/token", json={**viewer, "scopes": ["config:write"]})
    assert response.status == 403
    narrowed = await app_client.post("/api/v1/auth/token", json={**ADMIN, "scopes": ["pose:read"]})
    token = (await narrowed.json())["access_token"]
    assert (await app_client.get("/api/v1/system/status", headers=bearer(token))).status == 403


# --------------------------------------------------------------------------------------------------------
# Onboarding, tokens, users


async def test_setup_happens_once(app_client: Client) -> None:
    assert await (await app_client.get("/api/v1/auth/setup")).json() == {
        "setup_required": True,
        "setup_code_required": False,  # a new box
    }
    await onboard(app_client)
    assert await (await app_client.get("/api/v1/auth/setup")).json() == {
        "setup_required": False,
        "setup_code_required": False,
    }
    again = await app_client.post("/api/v1/auth/setup", json={"username": "mallory", "password": "x" * 12})
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "already_set_up"


async def test_api_token_is_shown_once_and_stored_hashed(app_client: Client, tmp_path: Path) -> None:
    admin = await onboard(app_client)
    created = await _api_token(app_client, admin, ["pose:read", "system:read"])
    assert created["token"].startswith("ivp_")
    listing = await (await app_client.get("/api/v1/auth/tokens", headers=admin)).json()
    assert created["token"] not in json.dumps(listing)
    [listed] = listing["tokens"]
    assert listed["id"] == created["id"] and listed["scopes"] == ["pose:read", "system:read"]
    assert listed["last_used"] is None and listed["revoked"] is None
    headers = bearer(created["token"])
    assert (await app_client.get("/api/v1/system/status", headers=headers)).status == 200
    listing = await (await app_client.get("/api/v1/auth/tokens", headers=admin)).json()
    assert listing["tokens"][0]["last_used"] is not None
    stored = database_bytes(tmp_path)
    assert created["token"].encode() not in stored
    assert ADMIN["password"].encode() not in stored
    assert (await app_client.delete(f"/api/v1/auth/tokens/{created['id']}", headers=admin)).status == 204
    assert (await app_client.get("/api/v1/system/status", headers=headers)).status == 401
    [revoked] = (await (await app_client.get("/api/v1/auth/tokens", headers=admin)).json())["tokens"]
    for moment in ("created", "last_used", "revoked"):  # times carry their zone: UTC
        assert datetime.fromisoformat(revoked[moment]).utcoffset() == timedelta(0), moment
    [user] = (await (await app_client.get("/api/v1/auth/users", headers=admin)).json())["users"]
    assert datetime.fromisoformat(user["created"]).utcoffset() == timedelta(0)
    assert (await app_client.delete("/api/v1/auth/tokens/nope", headers=admin)).status == 404


async def test_token_expiry_is_validated(app_client: Client) -> None:
    admin = await onboard(app_client)
    bad = {"name": "t", "scopes": ["pose:read"], "expires": "soon"}
    response = await app_client.post("/api/v1/auth/tokens", json=bad, headers=admin)
    assert response.status == 400
    assert (await response.json())["error"]["details"][0]["field"] == "expires"
    before = time.time()
    ok = await app_client.post("/api/v1/auth/tokens", json={**bad, "expires": "30d"}, headers=admin)
    after = time.time()
    expires = datetime.fromisoformat((await ok.json())["expires"]).timestamp()
    assert before + 30 * 86_400 - 1 <= expires <= after + 30 * 86_400 + 1


async def test_an_expired_api_token_is_refused(app_client: Client) -> None:
    """An admin:all token past its expiry gets 401 naming the expiry, not the API."""
    admin = await onboard(app_client)
    assert app_client.app is not None
    accounts = app_client.app[AUTHENTICATOR].accounts
    now = time.time()
    expired, _ = await accounts.create_token("old", ("admin:all",), expires=now - 1, created_by="tests")
    current, _ = await accounts.create_token("new", ("admin:all",), expires=now + 3600, created_by="tests")
    response = await app_client.get("/api/v1/auth/users", headers=bearer(expired))
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_token"
    assert 'error_description="the API token expired"' in response.headers["WWW-Authenticate"]
    assert (await app_client.get("/api/v1/auth/users", headers=bearer(current))).status == 200
    assert (await app_client.get("/api/v1/auth/users", headers=admin)).status == 200


async def test_the_last_admin_cannot_be_removed(app_client: Client) -> None:
    admin = await onboard(app_client)
    response = await app_client.delete(f"/api/v1/auth/users/{ADMIN['username']}", headers=admin)
    assert response.status == 409


async def test_cli_token_works_on_a_running_instance_and_revocation_is_immediate(
    app_client: Client, tmp_path: Path
) -> None:
    assert (await app_client.get("/api/v1/system/status")).status == 401
    token = cli_token(tmp_path, scopes="system:read")
    assert token.startswith("ivp_") and "\n" not in token
    assert (await app_client.get("/api/v1/system/status", headers=bearer(token))).status == 200
    listed = _cli(tmp_path, "token", "list")
    token_id = listed.stdout.splitlines()[1].split("\t")[0]
    assert "active" in listed.stdout and token not in listed.stdout
    _cli(tmp_path, "token", "revoke", token_id)
    response = await app_client.get("/api/v1/system/status", headers=bearer(token))
    assert response.status == 401
    assert "revoked" in response.headers["WWW-Authenticate"]


async def test_cli_user_can_log_in(app_client: Client, tmp_path: Path) -> None:
    _cli(tmp_path, "user", "add", "ops", "--admin", "--password-stdin", stdin="ops-password\n")
    assert "ops\tadmin" in _cli(tmp_path, "user", "list").stdout
    assert (await (await app_client.get("/api/v1/auth/setup")).json())["setup_required"] is False
    response = await app_client.post(
        "/api/v1/auth/token", json={"username": "ops", "password": "ops-password"}
    )
    assert response.status == 200


def _cli(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "appliance", *args, "--config", str(DEFAULT_CONFIG)]
    return subprocess.run(
        [*command, "--data-dir", str(data_dir)],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


async def test_secret_file_is_private(app_client: Client, tmp_path: Path) -> None:
    await app_client.get("/api/v1/system/health")
    mode = stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode)
    assert mode == 0o600


# --------------------------------------------------------------------------------------------------------
# Rate limits and login lockout


async def test_rate_limit_headers_on_every_response_and_429(aiohttp_client: Any, tmp_path: Path) -> None:
    limits = {"auth.rate_limits.anonymous": {"per_minute": 60, "burst": 8}}
    client: Client = await aiohttp_client(build_app(config_in(tmp_path, **limits)))
    responses = [
        await client.get("/api/v1/system/health"),
        await client.get("/"),
        await client.get("/ui/app.js"),
        await client.get("/api/v1/nope"),
        await client.get("/api/v1/system/status"),
        await client.get("/api/v0/system/status"),
        await client.get("/", headers={"Host": "evil.example"}),
        await client.options(
            "/api/v1/auth/token",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        ),
    ]
    for response in responses:
        for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert header in response.headers, (response.url, response.status, header)
    remaining = [int(r.headers["X-RateLimit-Remaining"]) for r in responses[:6]]
    assert remaining == sorted(remaining, reverse=True) and remaining[0] == 7
    for _ in range(5):
        await client.get("/api/v1/system/health")
    limited = await client.get("/api/v1/system/health")
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    retry = int(limited.headers["Retry-After"])
    assert (await limited.json())["error"] == {
        "code": "rate_limited",
        "message": f"too many requests; retry in {retry} s",
        "details": {"retry_after_s": retry},
    }


async def test_authenticated_tier_is_per_token(aiohttp_client: Any, tmp_path: Path) -> None:
    limits = {"auth.rate_limits.authenticated": {"per_minute": 60, "burst": 3}}
    client: Client = await aiohttp_client(build_app(config_in(tmp_path, **limits)))
    admin = await onboard(client)
    other = bearer((await _api_token(client, admin, ["system:read"]))["token"])
    statuses = [(await client.get("/api/v1/system/status", headers=other)).status for _ in range(4)]
    assert statuses[-1] == 429
    assert (await client.get("/api/v1/auth/users", headers=admin)).status == 200


async def test_login_lockout_per_client(aiohttp_client: Any, tmp_path: Path) -> None:
    config = config_in(tmp_path, **GENEROUS_LIMITS, **{"auth.trusted_proxies": ["127.0.0.1/32"]})
    client: Client = await aiohttp_client(build_app(config))
    await onboard(client)
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    wrong = {"username": ADMIN["username"], "password": "guess-guess"}
    for _ in range(5):
        response = await client.post("/api/v1/auth/token", json=wrong, headers=attacker)
        assert response.status == 401
    locked = await client.post("/api/v1/auth/token", json=ADMIN, headers=attacker)
    assert locked.status == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    assert (await locked.json())["error"]["code"] == "too_many_login_attempts"
    elsewhere = await client.post(
        "/api/v1/auth/token", json=ADMIN, headers={"X-Forwarded-For": "198.51.100.8"}
    )
    assert elsewhere.status == 200


async def _client_seen_by_the_login_guard(
    client: Client, caplog: pytest.LogCaptureFixture, forwarded_for: str | None
) -> str:
    """The address a failed login is charged to (what the lockout and the rate limits key on)."""
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="appliance.api.auth"):
        wrong = {"username": ADMIN["username"], "password": "guess-guess"}
        assert (await client.post("/api/v1/auth/token", json=wrong, headers=headers)).status == 401
    [record] = [r for r in caplog.records if r.getMessage() == "failed login"]
    client_ip: str = record.fields["client"]  # type: ignore[attr-defined]
    return client_ip


# The test client's peer is always 127.0.0.1; which proxies are trusted decides what X-Forwarded-For means.
FORWARDED_CASES = [
    pytest.param([], "198.51.100.7", "127.0.0.1", id="no trusted proxy: header ignored"),
    pytest.param(["10.0.0.0/8"], "198.51.100.7", "127.0.0.1", id="untrusted peer: header ignored"),
    pytest.param(["127.0.0.1/32"], None, "127.0.0.1", id="trusted peer without header"),
    pytest.param(["127.0.0.1/32"], "198.51.100.7", "198.51.100.7", id="trusted peer: one hop"),
    pytest.param(
        ["127.0.0.1/32"], "203.0.113.66, 198.51.100.7", "198.51.100.7", id="spoofed leftmost hop ignored"
    ),
    pytest.param(
        ["127.0.0.1/32", "10.0.0.0/8"],
        "203.0.113.66,198.51.100.7, 10.0.0.9",
        "198.51.100.7",
        id="chain of trusted proxies: nearest untrusted hop",
    ),
    pytest.param(
        ["127.0.0.1/32", "10.0.0.0/8"], "10.0.0.1, 10.0.0.2", "10.0.0.1", id="every hop trusted: the first"
    ),
    pytest.param(
        ["127.0.0.1/32"], "198.51.100.7, unknown", "unknown", id="a hop that is no address is no proxy"
    ),
]


@pytest.mark.parametrize(("trusted", "forwarded_for", "expected"), FORWARDED_CASES)
async def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(
    aiohttp_client: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    trusted: list[str],
    forwarded_for: str | None,
    expected: str,
) -> None:
    config = config_in(tmp_path, **GENEROUS_LIMITS, **{"auth.trusted_proxies": trusted})
    client: Client = await aiohttp_client(build_app(config))
    await onboard(client)
    assert await _client_seen_by_the_login_guard(client, caplog, forwarded_for) == expected


async def test_rotating_a_spoofed_hop_does_not_escape_the_lockout(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """A client behind the proxy writes what it likes left of the proxy's own entry; it stays locked."""
    config = config_in(tmp_path, **GENEROUS_LIMITS, **{"auth.trusted_proxies": ["127.0.0.1/32"]})
    client: Client = await aiohttp_client(build_app(config))
    await onboard(client)
    wrong = {"username": ADMIN["username"], "password": "guess-guess"}
    statuses = []
    for i in range(7):
        headers = {"X-Forwarded-For": f"203.0.113.{i}, 198.51.100.7"}
        statuses.append((await client.post("/api/v1/auth/token", json=wrong, headers=headers)).status)
    assert statuses == [401] * 5 + [429] * 2


# --------------------------------------------------------------------------------------------------------
# Host, Origin, CORS, versions, headers


async def assert_health_answered(response: Any) -> None:
    """The health document itself (200 when healthy, 503 while starting), not a refusal."""
    health = await response.json()
    assert response.status == (200 if health["status"] == "healthy" else 503), health
    assert set(health) == {"status", "version", "uptime_s", "components"}


async def test_dns_rebinding_host_is_refused(app_client: Client) -> None:
    for host in ("evil.example", "evil.example:8099", "localhost.evil.example"):
        response = await app_client.get("/api/v1/system/health", headers={"Host": host})
        assert response.status == 421, host
        assert (await response.json())["error"]["code"] == "invalid_host"
    short = socket.gethostname().split(".")[0]
    for host in ("localhost:8099", "127.0.0.1", "[::1]:8099", "192.168.1.20", f"{short}.local", short):
        response = await app_client.get("/api/v1/system/health", headers={"Host": host})
        await assert_health_answered(response)


async def test_configured_host_is_accepted(aiohttp_client: Any, tmp_path: Path) -> None:
    config = config_in(tmp_path, **{"auth.allowed_hosts": ["invispose.example.lan"]})
    client: Client = await aiohttp_client(build_app(config))
    response = await client.get("/api/v1/system/health", headers={"Host": "invispose.example.lan:8099"})
    await assert_health_answered(response)


async def test_foreign_origin_cannot_change_state_or_open_streams(app_client: Client) -> None:
    host = f"127.0.0.1:{app_client.port}"
    foreign = {"Origin": "http://evil.example", "Host": host}
    response = await app_client.post("/api/v1/auth/setup", json=ADMIN, headers=foreign)
    assert response.status == 403
    assert (await response.json())["error"] == {
        "code": "origin_not_allowed",
        "message": "pages from this origin may not call the API; add it to auth.cors_origins if it is yours",
        "details": {"origin": "http://evil.example"},
    }
    upgrade = {**foreign, "Upgrade": "websocket", "Connection": "Upgrade"}
    assert (await app_client.get("/api/v1/system/status", headers=upgrade)).status == 403
    same = await app_client.post(
        "/api/v1/auth/setup", json=ADMIN, headers={"Origin": f"http://{host}", "Host": host}
    )
    assert same.status == 201


async def test_cors_is_closed_by_default(app_client: Client) -> None:
    preflight = await app_client.options(
        "/api/v1/system/status",
        headers={"Origin": "http://homeassistant.local:8123", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    response = await app_client.get(
        "/api/v1/system/health", headers={"Origin": "http://homeassistant.local:8123"}
    )
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_opens_for_a_configured_origin(aiohttp_client: Any, tmp_path: Path) -> None:
    origin = "http://homeassistant.local:8123"
    client: Client = await aiohttp_client(build_app(config_in(tmp_path, **{"auth.cors_origins": [origin]})))
    preflight = await client.options(
        "/api/v1/system/status",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    admin = await onboard(client)
    response = await client.get("/api/v1/system/status", headers={**admin, "Origin": origin})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert "X-RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    other = await client.options(
        "/api/v1/system/status",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert other.status == 403


async def test_retired_version_is_gone_with_pointers(app_client: Client) -> None:
    response = await app_client.get("/api/v0/pose/current")
    assert response.status == 410
    assert response.headers["Deprecation"].startswith("@")
    assert response.headers["Sunset"].endswith("GMT")
    assert response.headers["Link"] == '</api/v1/pose/current>; rel="successor-version"'
    assert (await response.json())["error"]["code"] == "api_version_gone"


async def test_security_headers(app_client: Client) -> None:
    ui = await app_client.get("/")
    assert "script-src 'self'" in ui.headers["Content-Security-Policy"]
    api = await app_client.get("/api/v1/system/health")
    for response in (ui, api):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert api.headers["Cache-Control"] == "no-store"


async def test_request_errors_use_the_error_shape(app_client: Client) -> None:
    cases: list[tuple[Callable[[], Any], int, str]] = [
        (lambda: app_client.post("/api/v1/auth/token", data="{\n  bad", headers=_json), 400, "invalid_json"),
        (
            lambda: app_client.post("/api/v1/auth/token", data="user=a", headers=_form),
            415,
            "unsupported_media_type",
        ),
        (lambda: app_client.post("/api/v1/auth/token", json={"user": "a"}), 400, "validation_error"),
        (
            lambda: app_client.post("/api/v1/auth/token", data=b"{" + b" " * 2**21, headers=_json),
            413,
            "payload_too_large",
        ),
    ]
    for request, status, code in cases:
        response = await request()
        assert response.status == status, code
        body = await response.json()
        assert body["error"]["code"] == code
    invalid = await app_client.post("/api/v1/auth/token", data="{\n  bad", headers=_json)
    details = (await invalid.json())["error"]["details"]
    assert details == {"position": 4, "line": 2, "column": 3}


_json = {"Content-Type": "application/json"}
_form = {"Content-Type": "application/x-www-form-urlencoded"}


# --------------------------------------------------------------------------------------------------------
# OpenAPI


async def test_openapi_document_is_valid_and_lists_every_route(app_client: Client) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    response = await app_client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    validator.validate(document)
    app = app_client.app
    assert app is not None
    for endpoint in app[ENDPOINTS]:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        if endpoint.public:
            assert operation["security"] == []
        else:
            assert operation["security"] == [{"bearer": [str(endpoint.scope)]}]
            for status in ("401", "403"):
                assert operation["responses"][status]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }
        assert "429" in operation["responses"]
    status = document["paths"]["/api/v1/system/status"]["get"]["responses"]["200"]
    assert status["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Status"}
    assert "Status" in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_openapi_document_is_built_once(app_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """It is public and costs ~20 ms to build: anonymous callers must not be able to make us rebuild it."""
    from appliance.api import openapi

    builds: list[int] = []
    build = openapi.build_openapi

    def counted(table: Any) -> dict[str, Any]:
        builds.append(1)
        return build(table)

    monkeypatch.setattr(openapi, "build_openapi", counted)
    first = await (await app_client.get("/api/v1/openapi.json")).json()
    second = await (await app_client.get("/api/v1/openapi.json")).json()
    assert first == second
    assert len(builds) <= 1
