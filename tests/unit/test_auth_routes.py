"""The routes under /api/v1/auth (appliance/api/auth.py) behind the real gate, in a small app of their own.

Onboarding, login with its lockout, API tokens and users, each as the web UI and Home Assistant use them,
with the real account database and password hashing; only the rest of the service is left out, so that
these run in well under a second each. The oracles are the routes' documented contract (their summaries
and responses in the OpenAPI document, README's "Accounts and tokens") and the settings below.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from appliance.api import auth
from appliance.api.auth import AUTHENTICATOR, LOGIN_GUARD, PRINCIPAL, Authenticator, LoginGuard
from appliance.api.errors import error_middleware
from appliance.api.onboarding import ONBOARDING, read_setup_code, start_onboarding
from appliance.api.routing import ApiRouter, Scope, install
from appliance.api.security import middlewares, setup_security
from appliance.store.accounts import PASSWORD_RETRY_AFTER_S, AccountStore, PasswordBusyError
from appliance.store.database import DATABASE_FILE, Database
from tests.auth_support import ADMIN, bearer, config_in

JWT_TTL_S = 600
LOGIN_ATTEMPTS = 3
VIEWER = {"username": "vic", "password": "viewer password"}

reader = ApiRouter()


@reader.get("/api/v1/pose", scope=Scope.POSE_READ, summary="what a pose:read token may call")
async def read(request: web.Request, query: None, body: None) -> web.Response:
    return web.json_response({"name": request[PRINCIPAL].name})


Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def make_client(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[MakeClient]:
    opened: list[tuple[Database, AccountStore]] = []

    async def make(*, new_box: bool = True, **auth_settings: Any) -> Client:
        config = config_in(tmp_path, **{f"auth.{k}": v for k, v in auth_settings.items()})
        database = await Database.open(tmp_path / DATABASE_FILE)
        accounts = AccountStore(database)
        opened.append((database, accounts))
        app = web.Application(middlewares=[error_middleware, *middlewares()])
        install(app, auth.router, reader)
        setup_security(app, config)
        app[LOGIN_GUARD] = LoginGuard(LOGIN_ATTEMPTS)
        app[AUTHENTICATOR] = Authenticator(accounts, auth.load_or_create_secret(tmp_path), JWT_TTL_S)
        app[ONBOARDING] = start_onboarding(tmp_path, users=0, new_box=new_box)
        client: Client = await aiohttp_client(app)
        return client

    yield make
    for database, accounts in opened:
        accounts.close()
        await database.close()


async def json_of(response: Any) -> Any:
    return await response.json()


async def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = (await response.json())["error"]
    return body


async def admin_headers(client: Client) -> dict[str, str]:
    response = await client.post("/api/v1/auth/setup", json=ADMIN)
    assert response.status == 201, await response.text()
    return bearer((await response.json())["access_token"])


async def test_the_first_admin_is_created_once_and_logged_in(make_client: MakeClient) -> None:
    client = await make_client()
    state = await client.get("/api/v1/auth/setup")
    assert await json_of(state) == {"setup_required": True, "setup_code_required": False}
    created = await client.post("/api/v1/auth/setup", json=ADMIN)
    assert created.status == 201
    login = await json_of(created)
    assert login["token_type"] == "bearer" and login["username"] == "admin"
    assert login["expires_in"] == JWT_TTL_S and login["scopes"] == ["admin:all"]
    users = await client.get("/api/v1/auth/users", headers=bearer(login["access_token"]))
    assert [u["username"] for u in (await json_of(users))["users"]] == ["admin"]
    again = await client.post("/api/v1/auth/setup", json={"username": "eve", "password": "password-9"})
    assert again.status == 409 and (await error_of(again))["code"] == "already_set_up"
    assert await json_of(await client.get("/api/v1/auth/setup")) == {
        "setup_required": False,
        "setup_code_required": False,
    }


async def test_a_box_that_lost_its_users_needs_the_setup_code(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(new_box=False)
    code = read_setup_code(tmp_path)
    assert code is not None
    state = await json_of(await client.get("/api/v1/auth/setup"))
    assert state == {"setup_required": True, "setup_code_required": True}
    missing = await client.post("/api/v1/auth/setup", json=ADMIN)
    assert missing.status == 403
    assert await error_of(missing) == {
        "code": "setup_code_required",
        "message": "this box was set up before and lost its users: enter the setup code printed in the "
        "appliance's log, or run 'invispose user setup-code' on the box",
        "details": None,
    }
    with caplog.at_level(logging.WARNING, logger="appliance.api.auth"):
        wrong = await client.post("/api/v1/auth/setup", json={**ADMIN, "setup_code": "AAAA-BBBB"})
    assert wrong.status == 403
    assert await error_of(wrong) == {
        "code": "invalid_setup_code",
        "message": "that is not the setup code",
        "details": None,
    }
    # Who tried a wrong code is in the log, for whoever owns the box.
    assert [(r.getMessage(), r.fields) for r in caplog.records if r.name == auth.__name__] == [  # type: ignore[attr-defined]
        ("wrong setup code", {"client": "127.0.0.1"})
    ]
    # Case, spaces and dashes do not matter.
    right = await client.post(
        "/api/v1/auth/setup", json={**ADMIN, "setup_code": code.lower().replace("-", " ")}
    )
    assert right.status == 201
    assert read_setup_code(tmp_path) is None  # spent


async def test_wrong_setup_codes_count_as_failed_logins(make_client: MakeClient) -> None:
    client = await make_client(new_box=False)
    for _ in range(LOGIN_ATTEMPTS):
        wrong = await client.post("/api/v1/auth/setup", json={**ADMIN, "setup_code": "AAAA-BBBB"})
        assert wrong.status == 403
    locked = await client.post("/api/v1/auth/setup", json={**ADMIN, "setup_code": "AAAA-BBBB"})
    assert locked.status == 429 and (await error_of(locked))["code"] == "too_many_login_attempts"
    # A request without a code was never checked: it does not count.
    other = await make_client(new_box=False)
    for _ in range(LOGIN_ATTEMPTS + 1):
        assert (await other.post("/api/v1/auth/setup", json=ADMIN)).status == 403


async def test_a_right_setup_code_is_forgiven_like_a_right_password(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(new_box=False)
    for _ in range(LOGIN_ATTEMPTS - 1):
        assert (
            await client.post("/api/v1/auth/setup", json={**ADMIN, "setup_code": "AAAA-BBBB"})
        ).status == 403
    right = await client.post("/api/v1/auth/setup", json={**ADMIN, "setup_code": read_setup_code(tmp_path)})
    assert right.status == 201
    assert (
        await client.post("/api/v1/auth/token", json=ADMIN)
    ).status == 200  # two failures so far, not three


def test_a_locked_out_or_busy_client_is_told_whole_seconds_to_wait() -> None:
    """Retry-After is delay-seconds, a whole number (RFC 9110 10.2.3): a wait is rounded up, never down."""
    locked = auth._locked_out(29.5)
    assert (locked.status, locked.headers["Retry-After"]) == (429, "30")
    busy = auth._busy(PasswordBusyError("password checks are busy"))
    assert (busy.status, busy.headers["Retry-After"]) == (503, str(PASSWORD_RETRY_AFTER_S))
    assert json.loads(busy.text or "") == {
        "error": {
            "code": "busy",
            "message": f"password checks are busy; retry in {PASSWORD_RETRY_AFTER_S} s",
            "details": {"retry_after_s": PASSWORD_RETRY_AFTER_S},
        }
    }


async def test_failed_logins_lock_the_client_out_and_right_ones_do_not_count(make_client: MakeClient) -> None:
    client = await make_client()
    await admin_headers(client)
    for _ in range(LOGIN_ATTEMPTS + 2):  # right passwords are forgiven
        assert (await client.post("/api/v1/auth/token", json=ADMIN)).status == 200
    started = time.monotonic()
    for _ in range(LOGIN_ATTEMPTS):
        wrong = await client.post("/api/v1/auth/token", json={**ADMIN, "password": "wrong password"})
        assert wrong.status == 401
        assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="invispose"'
        assert await error_of(wrong) == {
            "code": "invalid_credentials",
            "message": "wrong username or password",
            "details": None,
        }
    locked = await client.post("/api/v1/auth/token", json=ADMIN)  # even the right password now waits
    assert locked.status == 429
    # The first failure leaves the one-minute window a minute after it was made: whole seconds, rounded up.
    wait_s = int(locked.headers["Retry-After"])
    assert 60 - (time.monotonic() - started) <= wait_s <= 61
    assert await error_of(locked) == {
        "code": "too_many_login_attempts",
        "message": f"too many failed logins; try again in {wait_s} s",
        "details": {"retry_after_s": wait_s},
    }


async def test_a_login_gets_the_users_scopes_or_fewer_never_more(make_client: MakeClient) -> None:
    client = await make_client()
    admin = await admin_headers(client)
    assert (await client.post("/api/v1/auth/users", json=VIEWER, headers=admin)).status == 201
    viewer = await json_of(await client.post("/api/v1/auth/token", json=VIEWER))
    assert viewer["scopes"] == sorted(s.value for s in auth.VIEWER_SCOPES)
    assert viewer["username"] == "vic" and viewer["expires_in"] == JWT_TTL_S
    more = await client.post("/api/v1/auth/token", json={**VIEWER, "scopes": ["pose:read", "config:write"]})
    assert more.status == 403
    assert await error_of(more) == {
        "code": "scope_not_granted",
        "message": "the user lacks these scopes",
        "details": {"scopes": ["config:write"]},
    }
    narrow = await json_of(await client.post("/api/v1/auth/token", json={**ADMIN, "scopes": ["pose:read"]}))
    assert narrow["scopes"] == ["pose:read"]
    narrowed = bearer(narrow["access_token"])
    assert (await client.get("/api/v1/pose", headers=narrowed)).status == 200
    assert (await client.get("/api/v1/auth/users", headers=narrowed)).status == 403


async def test_an_api_token_is_shown_once_works_and_dies_when_revoked(make_client: MakeClient) -> None:
    client = await make_client()
    admin = await admin_headers(client)
    before = time.time()
    response = await client.post(
        "/api/v1/auth/tokens",
        json={"name": " Home Assistant ", "scopes": ["pose:read", "pose:read"], "expires": "30d"},
        headers=admin,
    )
    assert response.status == 201
    created = await json_of(response)
    assert created["token"].startswith("ivp_")
    assert created["name"] == "Home Assistant" and created["scopes"] == ["pose:read"]
    assert created["created_by"] == "admin" and created["revoked"] is None and created["last_used"] is None
    expires = created["expires"]
    assert expires is not None
    expires_at = datetime.fromisoformat(expires).timestamp()
    assert before + 30 * 86_400 <= expires_at <= time.time() + 30 * 86_400
    assert (await json_of(await client.get("/api/v1/pose", headers=bearer(created["token"]))))["name"] == (
        "Home Assistant"
    )
    listed = (await json_of(await client.get("/api/v1/auth/tokens", headers=admin)))["tokens"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0] and listed[0]["last_used"] is not None
    forever = await client.post(
        "/api/v1/auth/tokens", json={"name": "cli", "scopes": ["pose:read"]}, headers=admin
    )
    assert (await json_of(forever))["expires"] is None
    revoked = await client.delete(f"/api/v1/auth/tokens/{created['id']}", headers=admin)
    assert revoked.status == 204
    # Times are RFC 3339 date-times (docs/schemas' "date-time"), which carry their UTC offset.
    (listed_revoked,) = [
        t
        for t in (await json_of(await client.get("/api/v1/auth/tokens", headers=admin)))["tokens"]
        if t["id"] == created["id"]
    ]
    for moment in (listed_revoked["created"], listed_revoked["revoked"], created["expires"]):
        assert datetime.fromisoformat(moment).utcoffset() == timedelta(0)
    assert before <= datetime.fromisoformat(listed_revoked["revoked"]).timestamp() <= time.time()
    refused = await client.get("/api/v1/pose", headers=bearer(created["token"]))
    assert refused.status == 401 and (await error_of(refused))["message"] == "the API token was revoked"
    unknown = await client.delete("/api/v1/auth/tokens/nope", headers=admin)
    assert unknown.status == 404
    assert await error_of(unknown) == {
        "code": "not_found",
        "message": "no API token with id 'nope'",
        "details": None,
    }


async def test_users_are_added_listed_and_removed_but_the_last_admin_stays(make_client: MakeClient) -> None:
    client = await make_client()
    admin = await admin_headers(client)
    added = await client.post("/api/v1/auth/users", json=VIEWER, headers=admin)
    assert added.status == 201
    info = await json_of(added)
    assert (info["username"], info["is_admin"]) == ("vic", False)
    assert datetime.fromisoformat(info["created"]).utcoffset() == timedelta(0)
    twice = await client.post("/api/v1/auth/users", json=VIEWER, headers=admin)
    assert twice.status == 409 and (await error_of(twice))["code"] == "user_exists"
    listed = (await json_of(await client.get("/api/v1/auth/users", headers=admin)))["users"]
    assert sorted((u["username"], u["is_admin"]) for u in listed) == [("admin", True), ("vic", False)]
    assert (await client.delete("/api/v1/auth/users/vic", headers=admin)).status == 204
    gone = await client.delete("/api/v1/auth/users/vic", headers=admin)
    assert gone.status == 404
    assert await error_of(gone) == {"code": "not_found", "message": "no user 'vic'", "details": None}
    last = await client.delete("/api/v1/auth/users/admin", headers=admin)
    assert last.status == 409 and (await error_of(last))["code"] == "last_admin"


async def test_the_session_says_whether_home_assistant_signed_the_request_in(make_client: MakeClient) -> None:
    client = await make_client(ingress_proxy="127.0.0.1", ingress_role="viewer")
    plain = await json_of(await client.get("/api/v1/auth/session"))
    assert plain == {"signed_in": False, "username": None, "scopes": []}
    ingress = {"X-Ingress-Path": "/api/hassio_ingress/abc", "X-Remote-User-Name": "Maria"}
    session = await json_of(await client.get("/api/v1/auth/session", headers=ingress))
    assert session == {
        "signed_in": True,
        "username": "Maria",
        "scopes": sorted(s.value for s in auth.VIEWER_SCOPES),
    }
