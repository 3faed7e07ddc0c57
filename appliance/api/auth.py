"""Who is calling: onboarding, login, API tokens and users under ``/api/v1/auth``.

Two kinds of bearer token reach the API:

- a login token, a JWT (HS256, claims ``sub``, ``scopes``, ``exp``, ``iat``, ``jti``) signed with a secret
  generated on first start and kept in the data directory (mode 0600). It is short-lived and checked by
  signature; it also dies with its user, since ``sub`` is the user's id, which is never given to another
  user (not even one of the same name), and the user is looked up on every request.
- an API token, an opaque ``ivp_...`` string for Home Assistant, scripts and other machines. Only its
  SHA-256 is stored, and it is looked up on every request, so revoking one, or creating one with
  ``invispose token create`` against the same data directory, takes effect at once on a running instance.

Until the first user exists, ``POST /api/v1/auth/setup`` creates an admin (once; see ``onboarding`` for
when it needs a setup code); afterwards accounts are made by an admin, through the API or ``invispose user
add``.

Logins are limited per client address: an attempt counts *before* its password is checked, so that
concurrent attempts cannot all slip in under the limit, and a successful one is forgiven afterwards.
Password hashing is bounded too (``PasswordWorkers``): a login, setup or new user arriving while the
password threads are full is answered 503 with ``Retry-After`` at once.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import stat
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import jwt
from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints

from appliance.api.errors import error_response
from appliance.api.onboarding import ONBOARDING
from appliance.api.routing import ApiModel, ApiRouter, Scope
from appliance.store.accounts import (
    PASSWORD_RETRY_AFTER_S,
    TOKEN_PREFIX,
    AccountError,
    AccountStore,
    ApiToken,
    PasswordBusyError,
    User,
)

log = logging.getLogger(__name__)

SECRET_FILE = "jwt_secret"
SECRET_MODE = 0o600
_SECRET_BYTES = 64
_MIN_SECRET_BYTES = 32
JWT_ALGORITHM = "HS256"
REALM = "invispose"
# What a user who is not an admin may do: look, and watch streams; never change anything.
VIEWER_SCOPES = frozenset({Scope.POSE_READ, Scope.ANALYTICS_READ, Scope.SYSTEM_READ, Scope.STREAM_SUBSCRIBE})
LOGIN_WINDOW_S = 60.0
# Client addresses remembered by the login guard before the quietest are forgotten.
_LOGIN_GUARD_MAX_CLIENTS = 10_000
EXPIRY_PATTERN = r"^([1-9][0-9]{0,4})([hdwy])$"
_EXPIRY = re.compile(EXPIRY_PATTERN)
_EXPIRY_UNIT_S = {"h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}
NEVER = "never"

Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]
TokenName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class InvalidTokenError(Exception):
    """A bearer token that does not identify anybody; the message says why, for ``error_description``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: a logged-in user or an API token, with what it may do."""

    kind: Literal["user", "token", "homeassistant"]
    id: str
    name: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN_ALL in self.scopes or scope in self.scopes


PRINCIPAL = web.RequestKey("principal", Principal)
# The Home Assistant user of a request that came through its ingress proxy (set by the security gate).
INGRESS_USER = web.RequestKey("ingress_user", Principal)
CLIENT_IP = web.RequestKey("client_ip", str)


# --------------------------------------------------------------------------------------------------------
# The signing secret


def load_or_create_secret(data_dir: Path) -> bytes:
    """The JWT signing key from ``data_dir/jwt_secret``, created (mode 0600) on first start.

    A file readable by others is narrowed to 0600 with a warning rather than refused, because a backup
    restore or a copied volume commonly widens modes; deleting the file rotates the key (every login
    token becomes invalid, API tokens keep working).
    """
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "wb") as file:
        file.write(secrets.token_bytes(_SECRET_BYTES))
    log.info("created the login signing secret", extra={"fields": {"file": str(path)}})
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        raise RuntimeError(f"{path} must be a regular file; remove it so that a new secret is made")
    if stat.S_IMODE(info.st_mode) & 0o077:
        log.warning(
            "the login signing secret was readable by other users; its mode is now 0600. If anybody "
            "else may have read it, delete it and restart to rotate it",
            extra={"fields": {"file": str(path), "mode": oct(stat.S_IMODE(info.st_mode))}},
        )
        path.chmod(SECRET_MODE)
    secret = path.read_bytes()
    if len(secret) < _MIN_SECRET_BYTES:
        raise RuntimeError(
            f"{path} holds under {_MIN_SECRET_BYTES} bytes; delete it so that a new one is made"
        )
    return secret


# --------------------------------------------------------------------------------------------------------
# Checking tokens


def parse_expiry(text: str | None, now: float) -> float | None:
    """``"30d"`` (h, d, w, y) -> the absolute expiry time; ``None`` or ``"never"`` -> no expiry."""
    if text is None or text == NEVER:
        return None
    match = _EXPIRY.match(text)
    if match is None:
        raise ValueError(f"expiry {text!r} is not like 12h, 30d, 8w, 1y or {NEVER}")
    return now + int(match.group(1)) * _EXPIRY_UNIT_S[match.group(2)]


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Scope names -> scopes; raises ``ValueError`` naming the unknown ones and the known ones."""
    names = [n.strip() for n in names if n.strip()]
    known = {s.value for s in Scope}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(s.value for s in Scope)}")
    return frozenset(Scope(n) for n in names)


def user_scopes(user: User) -> frozenset[Scope]:
    return frozenset({Scope.ADMIN_ALL}) if user.is_admin else VIEWER_SCOPES


class Authenticator:
    """Issues login tokens and turns any presented bearer token into a ``Principal``."""

    def __init__(self, accounts: AccountStore, secret: bytes, jwt_ttl_s: float) -> None:
        self.accounts = accounts
        self._secret = secret
        self.jwt_ttl_s = jwt_ttl_s

    def issue(self, user: User, scopes: frozenset[Scope]) -> str:
        now = int(time.time())
        claims = {
            "sub": user.id,
            "scopes": sorted(s.value for s in scopes),
            "iat": now,
            "exp": now + int(self.jwt_ttl_s),
            "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    async def authenticate(self, token: str) -> Principal:
        if token.startswith(TOKEN_PREFIX):
            return await self._api_token(token)
        return await self._login_token(token)

    async def _api_token(self, token: str) -> Principal:
        record = await self.accounts.find_token(token)
        now = time.time()
        if record is None:
            raise InvalidTokenError("unknown API token")
        if record.revoked is not None:
            raise InvalidTokenError("the API token was revoked")
        if not record.usable(now):
            raise InvalidTokenError("the API token expired")
        await self.accounts.touch_token(record, now)
        return Principal("token", record.id, record.name, _stored_scopes(record))

    async def _login_token(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["sub", "scopes", "exp", "iat", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token expired") from None
        except jwt.InvalidSignatureError:
            raise InvalidTokenError("the token's signature is not valid") from None
        except jwt.DecodeError:
            raise InvalidTokenError("the token is malformed") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"the token is not valid: {exc}") from None
        user_id, names = claims["sub"], claims["scopes"]
        if not isinstance(user_id, str) or not isinstance(names, list):
            raise InvalidTokenError("the token's claims are malformed")
        try:
            scopes = parse_scopes(str(n) for n in names)
        except ValueError:
            raise InvalidTokenError("the token names an unknown scope") from None
        user = await self.accounts.get_user_by_id(user_id)
        if user is None:
            raise InvalidTokenError("the token's user no longer exists")
        # The claims are signed, but the user's rights today bound them (no admin rights from old tokens).
        allowed = scopes if user.is_admin else scopes & VIEWER_SCOPES
        return Principal("user", user.id, user.username, allowed)


def _stored_scopes(record: ApiToken) -> frozenset[Scope]:
    known = {s.value for s in Scope}
    return frozenset(Scope(n) for n in record.scopes if n in known)


class LoginGuard:
    """Login attempts per client address in a sliding minute; past the limit, logins wait (429).

    ``attempt`` counts an attempt before anything is checked, so that a burst of concurrent attempts is
    cut at the limit however long each check takes; ``forgive`` takes back one that turned out right (or
    was never checked), so that only failures stay on the client's record.
    """

    def __init__(self, attempts_per_minute: int) -> None:
        self.limit = attempts_per_minute
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until the client may try again, or ``None`` if it may now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - LOGIN_WINDOW_S:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        return failures[0] + LOGIN_WINDOW_S - now

    def attempt(self, client: str, now: float) -> float | None:
        """Count an attempt now; ``None`` if it may go ahead, else the seconds to wait (nothing counted)."""
        wait_s = self.retry_after(client, now)
        if wait_s is not None:
            return wait_s
        if client not in self._failures and len(self._failures) >= _LOGIN_GUARD_MAX_CLIENTS:
            self._forget_quietest(now)
        self._failures.setdefault(client, deque()).append(now)
        return None

    def forgive(self, client: str, when: float) -> None:
        """Take back the attempt counted at ``when`` (it succeeded, or was never checked)."""
        failures = self._failures.get(client)
        if failures is not None and when in failures:
            failures.remove(when)

    def _forget_quietest(self, now: float) -> None:
        for client in [c for c, f in self._failures.items() if not f or f[-1] <= now - LOGIN_WINDOW_S]:
            del self._failures[client]
        if len(self._failures) >= _LOGIN_GUARD_MAX_CLIENTS:
            del self._failures[min(self._failures, key=lambda c: self._failures[c][-1])]


AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)


# --------------------------------------------------------------------------------------------------------
# Routes


class SetupState(BaseModel):
    setup_required: bool = Field(description="true until the first admin exists")
    setup_code_required: bool = Field(
        description="true when creating the first admin needs the setup code: the box has been set up "
        "before and lost its users; the code is in the appliance's log and `invispose user setup-code`"
    )


class Credentials(ApiModel):
    username: Username
    password: Password


class SetupRequest(Credentials):
    setup_code: str | None = Field(
        None,
        max_length=64,
        description="Needed when `setup_code_required`: the code printed in the appliance's log at start "
        "and by `invispose user setup-code` (case, spaces and dashes do not matter).",
    )


class LoginRequest(ApiModel):
    username: Username
    password: str = Field(min_length=1, max_length=1024)
    scopes: list[Scope] | None = Field(
        None, description="Narrow the token to these scopes (default: all the user has)."
    )


class LoginToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
    scopes: list[Scope]
    username: str


class UserInfo(BaseModel):
    username: str
    is_admin: bool
    created: datetime


class UserList(BaseModel):
    users: list[UserInfo]


class NewUser(ApiModel):
    username: Username
    password: Password
    is_admin: bool = False


class NewApiToken(ApiModel):
    name: TokenName
    scopes: list[Scope] = Field(min_length=1)
    expires: str | None = Field(
        None,
        pattern=f"{EXPIRY_PATTERN}|^{NEVER}$",
        description='Lifetime like "12h", "30d", "8w", "1y"; null or "never": no expiry.',
    )


class ApiTokenInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created: datetime
    created_by: str | None
    expires: datetime | None
    last_used: datetime | None
    revoked: datetime | None


class CreatedApiToken(ApiTokenInfo):
    token: str = Field(description="The token itself. Shown this once; only its hash is kept.")


class ApiTokenList(BaseModel):
    tokens: list[ApiTokenInfo]


router = ApiRouter()
_TAGS = ["auth"]


@router.get(
    "/api/v1/auth/setup", public=True, summary="Whether the first admin must still be created", tags=_TAGS
)
async def setup_state(request: web.Request, query: None, body: None) -> SetupState:
    required = await request.app[AUTHENTICATOR].accounts.user_count() == 0
    return SetupState(
        setup_required=required, setup_code_required=required and request.app[ONBOARDING].code_required
    )


class SessionState(BaseModel):
    signed_in: bool = Field(
        description="true when Home Assistant signed this request in (its ingress panel): no login needed"
    )
    username: str | None = Field(None, description="the Home Assistant user")
    scopes: list[Scope] = Field(default_factory=list, description="what that user may do here")


@router.get(
    "/api/v1/auth/session",
    public=True,
    summary="Whether Home Assistant signed this request in (ingress), so that the UI needs no login",
    response=SessionState,
    tags=_TAGS,
)
async def session_state(request: web.Request, query: None, body: None) -> SessionState:
    user = request.get(INGRESS_USER)
    if user is None:
        return SessionState(signed_in=False)
    return SessionState(signed_in=True, username=user.name, scopes=sorted(user.scopes))


@router.post(
    "/api/v1/auth/setup",
    public=True,
    summary="Create the first admin (once) and log in",
    body=SetupRequest,
    response=LoginToken,
    status=201,
    tags=_TAGS,
    responses={
        403: "the setup code is needed (setup_code_required) and was not given, or is wrong",
        409: "setup is already done",
        503: "password checks are busy; retry after Retry-After seconds",
    },
)
async def setup(request: web.Request, query: None, body: SetupRequest) -> LoginToken | web.Response:
    """Only while no user exists. On a new box whoever reaches it first owns it, as with Home Assistant's
    onboarding, so set it up on a trusted network (or create the admin with `invispose user add`). A box
    that was set up before and lost its users (`setup_code_required`) also needs `setup_code`: printed in
    the appliance's log at start and by `invispose user setup-code`. Wrong codes count as failed logins."""
    authenticator, onboarding = request.app[AUTHENTICATOR], request.app[ONBOARDING]
    if await authenticator.accounts.user_count():
        return error_response(409, "already_set_up", "setup is already done: log in, or ask an admin")
    if onboarding.code_required:
        refused = _check_setup_code(request, body.setup_code)
        if refused is not None:
            return refused
    try:
        user = await authenticator.accounts.create_user(
            body.username, body.password, is_admin=True, only_if_first=True
        )
    except AccountError as exc:
        return error_response(409, "already_set_up", str(exc))
    except PasswordBusyError as exc:
        return _busy(exc)
    onboarding.finish()
    log.info("first admin created", extra={"fields": {"user": user.username}})
    return _login_token(authenticator, user, user_scopes(user))


def _check_setup_code(request: web.Request, given: str | None) -> web.Response | None:
    """None when ``given`` is the setup code; else the refusal. Wrong codes count like failed logins."""
    guard, client, now = request.app[LOGIN_GUARD], request[CLIENT_IP], time.monotonic()
    wait_s = guard.attempt(client, now)
    if wait_s is not None:
        return _locked_out(wait_s)
    if given is None:
        guard.forgive(client, now)
        return error_response(
            403,
            "setup_code_required",
            "this box was set up before and lost its users: enter the setup code printed in the "
            "appliance's log, or run 'invispose user setup-code' on the box",
        )
    if not request.app[ONBOARDING].code_matches(given):
        log.warning("wrong setup code", extra={"fields": {"client": client}})
        return error_response(403, "invalid_setup_code", "that is not the setup code")
    guard.forgive(client, now)
    return None


def _locked_out(wait_s: float) -> web.Response:
    retry_after = int(wait_s) + 1
    response = error_response(
        429,
        "too_many_login_attempts",
        f"too many failed logins; try again in {retry_after} s",
        {"retry_after_s": retry_after},
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def _busy(exc: PasswordBusyError) -> web.Response:
    response = error_response(
        503, "busy", f"{exc}; retry in {PASSWORD_RETRY_AFTER_S} s", {"retry_after_s": PASSWORD_RETRY_AFTER_S}
    )
    response.headers["Retry-After"] = str(PASSWORD_RETRY_AFTER_S)
    return response


@router.post(
    "/api/v1/auth/token",
    public=True,
    summary="Log in: username and password for a login token (JWT)",
    body=LoginRequest,
    response=LoginToken,
    tags=_TAGS,
    responses={
        401: "wrong username or password",
        403: "a requested scope is not granted to the user",
        503: "password checks are busy; retry after Retry-After seconds",
    },
)
async def login(request: web.Request, query: None, body: LoginRequest) -> LoginToken | web.Response:
    """Failed attempts are limited per client address (`auth.login_attempts_per_minute`); an attempt
    counts as soon as it arrives, and a right password takes it back."""
    authenticator, guard = request.app[AUTHENTICATOR], request.app[LOGIN_GUARD]
    client, now = request[CLIENT_IP], time.monotonic()
    wait_s = guard.attempt(client, now)
    if wait_s is not None:
        return _locked_out(wait_s)
    try:
        user = await authenticator.accounts.check_password(body.username, body.password)
    except PasswordBusyError as exc:
        guard.forgive(client, now)
        return _busy(exc)
    if user is None:
        log.warning("failed login", extra={"fields": {"client": client}})
        response = error_response(401, "invalid_credentials", "wrong username or password")
        response.headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
        return response
    guard.forgive(client, now)
    granted = user_scopes(user)
    wanted = frozenset(body.scopes) if body.scopes else granted
    missing = [s.value for s in wanted if Scope.ADMIN_ALL not in granted and s not in granted]
    if missing:
        return error_response(403, "scope_not_granted", "the user lacks these scopes", {"scopes": missing})
    return _login_token(authenticator, user, wanted)


def _login_token(authenticator: Authenticator, user: User, scopes: frozenset[Scope]) -> LoginToken:
    return LoginToken(
        access_token=authenticator.issue(user, scopes),
        expires_in=int(authenticator.jwt_ttl_s),
        scopes=sorted(scopes),
        username=user.username,
    )


@router.get(
    "/api/v1/auth/tokens", scope=Scope.ADMIN_ALL, summary="List API tokens", response=ApiTokenList, tags=_TAGS
)
async def list_tokens(request: web.Request, query: None, body: None) -> ApiTokenList:
    tokens = await request.app[AUTHENTICATOR].accounts.list_tokens()
    return ApiTokenList(tokens=[token_info(t) for t in tokens])


@router.post(
    "/api/v1/auth/tokens",
    scope=Scope.ADMIN_ALL,
    summary="Create an API token (the token is in this response only)",
    body=NewApiToken,
    response=CreatedApiToken,
    status=201,
    tags=_TAGS,
)
async def create_token(request: web.Request, query: None, body: NewApiToken) -> CreatedApiToken:
    accounts = request.app[AUTHENTICATOR].accounts
    token, record = await accounts.create_token(
        body.name,
        tuple(sorted({s.value for s in body.scopes})),
        expires=parse_expiry(body.expires, time.time()),
        created_by=request[PRINCIPAL].name,
    )
    log.info("API token created", extra={"fields": {"id": record.id, "name": record.name}})
    return CreatedApiToken(**token_info(record).model_dump(), token=token)


@router.delete(
    "/api/v1/auth/tokens/{token_id}",
    scope=Scope.ADMIN_ALL,
    summary="Revoke an API token (immediately)",
    status=204,
    tags=_TAGS,
    responses={404: "no such token"},
)
async def revoke_token(request: web.Request, query: None, body: None) -> web.Response | None:
    token_id = request.match_info["token_id"]
    if not await request.app[AUTHENTICATOR].accounts.revoke_token(token_id):
        return error_response(404, "not_found", f"no API token with id {token_id!r}")
    log.info("API token revoked", extra={"fields": {"id": token_id}})
    return None


@router.get("/api/v1/auth/users", scope=Scope.ADMIN_ALL, summary="List users", response=UserList, tags=_TAGS)
async def list_users(request: web.Request, query: None, body: None) -> UserList:
    users = await request.app[AUTHENTICATOR].accounts.list_users()
    return UserList(users=[user_info(u) for u in users])


@router.post(
    "/api/v1/auth/users",
    scope=Scope.ADMIN_ALL,
    summary="Add a user",
    body=NewUser,
    response=UserInfo,
    status=201,
    tags=_TAGS,
    responses={409: "the user exists", 503: "password checks are busy; retry after Retry-After seconds"},
)
async def add_user(request: web.Request, query: None, body: NewUser) -> UserInfo | web.Response:
    try:
        user = await request.app[AUTHENTICATOR].accounts.create_user(
            body.username, body.password, is_admin=body.is_admin
        )
    except AccountError as exc:
        return error_response(409, "user_exists", str(exc))
    except PasswordBusyError as exc:
        return _busy(exc)
    return user_info(user)


@router.delete(
    "/api/v1/auth/users/{username}",
    scope=Scope.ADMIN_ALL,
    path_params_from=NewUser,
    summary="Remove a user (their login tokens stop working at once)",
    status=204,
    tags=_TAGS,
    responses={404: "no such user", 409: "the last admin cannot be removed"},
)
async def remove_user(request: web.Request, query: None, body: None) -> web.Response | None:
    username = request.match_info["username"]
    try:
        removed = await request.app[AUTHENTICATOR].accounts.delete_user(username)
    except AccountError as exc:
        return error_response(409, "last_admin", str(exc))
    if not removed:
        return error_response(404, "not_found", f"no user {username!r}")
    return None


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def token_info(token: ApiToken) -> ApiTokenInfo:
    return ApiTokenInfo(
        id=token.id,
        name=token.name,
        scopes=list(token.scopes),
        created=datetime.fromtimestamp(token.created, UTC),
        created_by=token.created_by,
        expires=_time(token.expires),
        last_used=_time(token.last_used),
        revoked=_time(token.revoked),
    )


def user_info(user: User) -> UserInfo:
    return UserInfo(
        username=user.username, is_admin=user.is_admin, created=datetime.fromtimestamp(user.created, UTC)
    )
