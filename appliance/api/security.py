"""The gate every request passes: Host, API version, Origin/CORS, authentication, scope and rate limit.

Middlewares, outermost first (``middlewares(...)`` returns them in this order, to be placed after the
JSON error middleware):

1. ``host_middleware``: the Host header must name this box, or DNS rebinding would let any web page the
   user visits read the API through the browser. Accepted: localhost (and ``*.localhost``), this machine's
   hostname, its FQDN and ``<hostname>.local``, ``server.host`` when it is a name, ``auth.allowed_hosts``,
   and every IP literal. An IP literal is safe because rebinding needs the attacker's *name* in the URL;
   a page whose origin is our IP is our own page. Anything else: 421 ``invalid_host``.
2. ``version_middleware``: retired API versions (``RETIRED_APIS``) answer 410 Gone with ``Deprecation``,
   ``Sunset`` and a ``Link rel="successor-version"``; a deprecated one still answers, with those headers.
3. ``origin_middleware``: CORS preflights are answered for ``auth.cors_origins`` only; state-changing
   requests and WebSocket upgrades from any other page are refused (403 ``origin_not_allowed``).
   Requests without Origin (curl, Home Assistant) pass: they are not browsers, and need a token anyway.
4. ``access_middleware``: the endpoint table says what the matched route needs. Public routes are charged
   to the anonymous bucket of the client IP; every other route needs ``Authorization: Bearer`` (401 with
   ``WWW-Authenticate`` otherwise), is charged to the token's bucket (authenticated or streaming tier),
   and must hold the route's scope (403 naming it). A route missing from the table (added to aiohttp
   directly) fails closed: it needs ``admin:all``.

Home Assistant's ingress (``auth.ingress_proxy``): a request from exactly that address carrying
``X-Ingress-Path`` was signed in by Home Assistant, which proxies its panel to the add-on. Such a request is
the Home Assistant user (``X-Remote-User-*``) with ``auth.ingress_role``'s scopes and needs no token; its
Host is Home Assistant's own name, so the Host check does not apply. Any other address, the add-on's
mapped port included, goes through the gate as usual.

``on_response_prepare`` then stamps every response, streams and static files included, with the rate-limit
headers (``X-RateLimit-Limit``: the bucket size, ``-Remaining``: requests left now, ``-Reset``: seconds until
the bucket is full), the security headers, and CORS headers for an allowed origin.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from appliance.api.auth import (
    AUTHENTICATOR,
    CLIENT_IP,
    INGRESS_USER,
    PRINCIPAL,
    REALM,
    VIEWER_SCOPES,
    InvalidTokenError,
    Principal,
)
from appliance.api.errors import error_response
from appliance.api.routing import ACCESS_TOKEN_PARAM, ENDPOINTS, Endpoint, RateTier, Scope
from appliance.config import AppConfig, RateLimitConfig

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
_CORS_HEADERS = "Authorization, Content-Type"
_CORS_EXPOSE = "Retry-After, WWW-Authenticate, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
_CORS_MAX_AGE_S = 600
INGRESS_PATH_HEADER = "X-Ingress-Path"
# What Home Assistant's ingress puts in X-Ingress-Path: /api/hassio_ingress/<token>
_INGRESS_PATH = re.compile(r"^/[A-Za-z0-9_\-./]{1,200}$")
# Rate-limit buckets kept before full (idle) ones are forgotten; bounds memory under a spoofed-IP flood.
MAX_BUCKETS = 10_000
_UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Home Assistant shows the UI in an iframe of its own page (same origin, through its ingress proxy), and
# the page sets its base URL to X-Ingress-Path.
_INGRESS_UI_CSP = _UI_CSP.replace("base-uri 'none'", "base-uri 'self'").replace(
    "frame-ancestors 'none'", "frame-ancestors 'self'"
)
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


# --------------------------------------------------------------------------------------------------------
# Versions


@dataclass(frozen=True, slots=True)
class RetiredApi:
    """An API version on its way out: headers while ``sunset`` is ahead, 410 Gone after it."""

    prefix: str
    successor: str
    deprecated: datetime
    sunset: datetime

    def successor_path(self, path: str) -> str:
        return self.successor + path.removeprefix(self.prefix)

    def headers(self, path: str) -> dict[str, str]:
        return {
            "Deprecation": f"@{int(self.deprecated.timestamp())}",
            "Sunset": format_datetime(self.sunset, usegmt=True),
            "Link": f'<{self.successor_path(path)}>; rel="successor-version"',
        }


# v0 was the unauthenticated API of the prototypes this project replaces; it is gone for good.
RETIRED_APIS: tuple[RetiredApi, ...] = (
    RetiredApi(
        prefix="/api/v0/",
        successor="/api/v1/",
        deprecated=datetime(2025, 1, 1, tzinfo=UTC),
        sunset=datetime(2025, 7, 1, tzinfo=UTC),
    ),
)


# --------------------------------------------------------------------------------------------------------
# Rate limits


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    refill_per_s: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
        self.updated = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True, slots=True)
class RateState:
    """What a response tells its client about its bucket."""

    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int


class RateLimiter:
    """Token buckets per (tier, key): the key is the client IP for anonymous requests, else the token."""

    def __init__(self, limits: Mapping[RateTier, RateLimitConfig]) -> None:
        self._limits = dict(limits)
        self._buckets: dict[tuple[RateTier, str], TokenBucket] = {}

    def hit(self, tier: RateTier, key: str, now: float) -> tuple[bool, RateState]:
        """Charge one request; ``False`` when the bucket is empty."""
        bucket = self._bucket(tier, key, now)
        allowed = bucket.take(now)
        return allowed, self._state(bucket)

    def peek(self, tier: RateTier, key: str, now: float) -> RateState:
        """The bucket's state without charging (for responses refused before they were charged)."""
        existing = self._buckets.get((tier, key))
        if existing is None:
            limit = self._limits[tier]
            return RateState(limit.burst, limit.burst, 0, 0)
        existing.refill(now)
        return self._state(existing)

    def _bucket(self, tier: RateTier, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get((tier, key))
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            limit = self._limits[tier]
            bucket = TokenBucket(limit.burst, limit.per_minute / 60.0, float(limit.burst), now)
            self._buckets[(tier, key)] = bucket
        return bucket

    def _forget_idle(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.tokens >= bucket.capacity:
                del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]

    @staticmethod
    def _state(bucket: TokenBucket) -> RateState:
        missing = bucket.capacity - bucket.tokens
        return RateState(
            limit=int(bucket.capacity),
            remaining=int(bucket.tokens),
            reset_s=math.ceil(missing / bucket.refill_per_s),
            retry_after_s=max(1, math.ceil((1.0 - bucket.tokens) / bucket.refill_per_s)),
        )


# --------------------------------------------------------------------------------------------------------
# Policy: what the configuration allows, computed once


@dataclass(slots=True)
class SecurityPolicy:
    host_names: frozenset[str]
    cors_origins: frozenset[str]
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    limiter: RateLimiter
    ingress_proxy: str | None = None
    ingress_scopes: frozenset[Scope] = VIEWER_SCOPES
    retired: tuple[RetiredApi, ...] = RETIRED_APIS
    unknown_routes_seen: set[str] = field(default_factory=set)

    @classmethod
    def from_config(cls, config: AppConfig, retired: Sequence[RetiredApi] = RETIRED_APIS) -> SecurityPolicy:
        auth = config.auth
        limits = auth.rate_limits
        return cls(
            host_names=frozenset(_local_names(config.server.host, auth.allowed_hosts)),
            cors_origins=frozenset(o.lower() for o in auth.cors_origins),
            trusted_proxies=tuple(auth.trusted_proxies),
            limiter=RateLimiter(
                {
                    RateTier.ANONYMOUS: limits.anonymous,
                    RateTier.AUTHENTICATED: limits.authenticated,
                    RateTier.STREAMING: limits.streaming,
                }
            ),
            retired=tuple(retired),
            ingress_proxy=None if auth.ingress_proxy is None else str(auth.ingress_proxy),
            ingress_scopes=frozenset({Scope.ADMIN_ALL}) if auth.ingress_role == "admin" else VIEWER_SCOPES,
        )

    def ingress_user(self, request: web.BaseRequest) -> Principal | None:
        """The Home Assistant user, when the request came through its ingress proxy; else None."""
        if self.ingress_proxy is None or request.remote != self.ingress_proxy:
            return None
        if ingress_path(request) is None:
            return None
        headers = request.headers
        user_id = headers.get("X-Remote-User-Id", "")
        name = (
            headers.get("X-Remote-User-Name") or headers.get("X-Remote-User-Display-Name") or "Home Assistant"
        )
        return Principal("homeassistant", user_id or name, name, self.ingress_scopes)

    def host_allowed(self, host_header: str | None) -> bool:
        if host_header is None:
            return True
        host = _split_host(host_header)
        if host is None:
            return False
        if _is_ip(host):
            return True
        name = host.rstrip(".").lower()
        return name in self.host_names or name.endswith(".localhost")

    def origin_allowed(self, origin: str, host_header: str | None) -> bool:
        """Same origin (Origin's host and port equal the Host header's) or a configured CORS origin."""
        return origin.lower() in self.cors_origins or _same_origin(origin, host_header)

    def client_ip(self, request: web.BaseRequest) -> str:
        """The peer, or, behind a trusted proxy, the nearest untrusted address in X-Forwarded-For."""
        remote = request.remote or "unknown"
        if not self.trusted_proxies or not self._trusted(remote):
            return remote
        hops = [h.strip() for h in request.headers.get(hdrs.X_FORWARDED_FOR, "").split(",") if h.strip()]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else remote

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted_proxies)


SECURITY = web.AppKey("security", SecurityPolicy)
RATE_STATE = web.RequestKey("rate_state", RateState)
RETIRED_API = web.RequestKey("retired_api", RetiredApi)


def ingress_path(request: web.BaseRequest) -> str | None:
    """X-Ingress-Path, the prefix Home Assistant serves the UI under, if it is a plain path."""
    value = request.headers.get(INGRESS_PATH_HEADER)
    return value.rstrip("/") if value is not None and _INGRESS_PATH.fullmatch(value) else None


def _local_names(server_host: str, allowed: Iterable[str]) -> set[str]:
    hostname = socket.gethostname().lower()
    short = hostname.split(".")[0]
    names = {"localhost", hostname, short, f"{short}.local", socket.getfqdn().lower()}
    if server_host and not _is_ip(server_host):
        names.add(server_host.lower())
    names.update(a.rstrip(".").lower() for a in allowed)
    return names


def _split_host(host_header: str) -> str | None:
    """The host part of a Host header value: ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``."""
    value = host_header.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    name, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _normalized_netloc(host: str, port: int | None, scheme: str) -> str:
    return f"{host.lower()}:{port or _DEFAULT_PORTS.get(scheme, 80)}"


def _same_origin(origin: str, host_header: str | None) -> bool:
    if host_header is None:
        return False
    try:
        parts = urlsplit(origin)
        other = urlsplit(f"{parts.scheme}://{host_header}")
        origin_netloc = _normalized_netloc(parts.hostname or "", parts.port, parts.scheme)
        host_netloc = _normalized_netloc(other.hostname or "", other.port, parts.scheme)
    except ValueError:
        return False
    return bool(parts.hostname) and origin_netloc == host_netloc


# --------------------------------------------------------------------------------------------------------
# Middlewares


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    policy = request.app[SECURITY]
    request[CLIENT_IP] = policy.client_ip(request)
    ingress_user = policy.ingress_user(request)
    if ingress_user is not None:
        # Home Assistant signed the user in; the Host is its own name, which rebinding cannot abuse here.
        request[INGRESS_USER] = ingress_user
        return await handler(request)
    if not policy.host_allowed(request.headers.get(hdrs.HOST)):
        return error_response(
            421,
            "invalid_host",
            "this box is not known by that name; add it to auth.allowed_hosts if it is yours",
            {"host": request.headers.get(hdrs.HOST)},
        )
    return await handler(request)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    for retired in request.app[SECURITY].retired:
        if request.path.startswith(retired.prefix):
            request[RETIRED_API] = retired
            if datetime.now(UTC) >= retired.sunset:
                return error_response(
                    410,
                    "api_version_gone",
                    f"{retired.prefix} is retired; use {retired.successor}",
                    {"successor": retired.successor_path(request.path)},
                )
    return await handler(request)


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return await handler(request)
    policy = request.app[SECURITY]
    host = request.headers.get(hdrs.HOST)
    if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
        if origin.lower() not in policy.cors_origins:
            return _origin_refused(origin)
        return web.Response(
            status=204,
            headers={
                hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: _CORS_METHODS,
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: _CORS_HEADERS,
                hdrs.ACCESS_CONTROL_MAX_AGE: str(_CORS_MAX_AGE_S),
                hdrs.VARY: "Origin",
            },
        )
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    if (request.method in _STATE_CHANGING or upgrade) and not policy.origin_allowed(origin, host):
        return _origin_refused(origin)
    return await handler(request)


def _origin_refused(origin: str) -> web.Response:
    return error_response(
        403,
        "origin_not_allowed",
        "pages from this origin may not call the API; add it to auth.cors_origins if it is yours",
        {"origin": origin},
    )


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    policy = request.app[SECURITY]
    now = time.monotonic()
    client = request[CLIENT_IP]
    match_info = request.match_info
    endpoint = request.app[ENDPOINTS].for_route(match_info.route)
    public = match_info.http_exception is not None or (
        endpoint.public if endpoint else isinstance(match_info.route.resource, web.StaticResource)
    )
    if public:
        allowed, state = policy.limiter.hit(RateTier.ANONYMOUS, client, now)
        request[RATE_STATE] = state
        return await handler(request) if allowed else _rate_limited(state)
    scope = _required_scope(request, endpoint, policy)
    token = _bearer_token(request, endpoint)
    principal = request.get(INGRESS_USER)
    problem = "no bearer token; log in or create an API token"
    if principal is None and isinstance(token, str):
        try:
            principal = await request.app[AUTHENTICATOR].authenticate(token)
        except InvalidTokenError as exc:
            problem = str(exc)
    elif isinstance(token, _MalformedCredentials):
        problem = token.message
    if principal is None:
        allowed, state = policy.limiter.hit(RateTier.ANONYMOUS, client, now)
        request[RATE_STATE] = state
        return _unauthorized(problem, with_error=token is not None) if allowed else _rate_limited(state)
    tier = RateTier.STREAMING if endpoint and endpoint.tier is RateTier.STREAMING else RateTier.AUTHENTICATED
    allowed, state = policy.limiter.hit(tier, f"{principal.kind}:{principal.id}", now)
    request[RATE_STATE] = state
    if not allowed:
        return _rate_limited(state)
    if not principal.allows(scope):
        return _forbidden(scope)
    request[PRINCIPAL] = principal
    return await handler(request)


@dataclass(frozen=True, slots=True)
class _MalformedCredentials:
    message: str


def _bearer_token(request: web.Request, endpoint: Endpoint | None) -> str | _MalformedCredentials | None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        if endpoint is not None and endpoint.token_in_query:
            return request.query.get(ACCESS_TOKEN_PARAM)
        return None
    match = _BEARER.match(header)
    if match is None:
        return _MalformedCredentials("the Authorization header is not 'Bearer <token>'")
    return match.group(1)


def _required_scope(request: web.Request, endpoint: Endpoint | None, policy: SecurityPolicy) -> Scope:
    if endpoint is not None and endpoint.scope is not None:
        return endpoint.scope
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
    if route not in policy.unknown_routes_seen:
        policy.unknown_routes_seen.add(route)
        log.warning(
            "route is not declared with the API router; only admin:all may call it",
            extra={"fields": {"route": route}},
        )
    return Scope.ADMIN_ALL


def _unauthorized(description: str, *, with_error: bool) -> web.Response:
    """401 per RFC 6750: no error code when no credentials were sent, ``invalid_token`` when bad ones were."""
    challenge = f'Bearer realm="{REALM}"'
    if with_error:
        quoted = description.replace("\\", "").replace('"', "'")
        challenge += f', error="invalid_token", error_description="{quoted}"'
    response = error_response(401, "unauthorized" if not with_error else "invalid_token", description)
    response.headers[hdrs.WWW_AUTHENTICATE] = challenge
    return response


def _forbidden(scope: Scope) -> web.Response:
    response = error_response(
        403,
        "insufficient_scope",
        f"this needs the {scope.value} scope, which the token does not have",
        {"required_scope": scope.value},
    )
    response.headers[hdrs.WWW_AUTHENTICATE] = (
        f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope.value}"'
    )
    return response


def _rate_limited(state: RateState) -> web.Response:
    response = error_response(
        429,
        "rate_limited",
        f"too many requests; retry in {state.retry_after_s} s",
        {"retry_after_s": state.retry_after_s},
    )
    response.headers[hdrs.RETRY_AFTER] = str(state.retry_after_s)
    return response


# --------------------------------------------------------------------------------------------------------
# Response headers


async def stamp_response(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """``on_response_prepare``: rate-limit, security, CORS and deprecation headers on every response."""
    if not isinstance(request, web.Request) or SECURITY not in request.app:
        return
    policy = request.app[SECURITY]
    headers = response.headers
    state = request.get(RATE_STATE)
    if state is None:
        client = request.get(CLIENT_IP) or policy.client_ip(request)
        state = policy.limiter.peek(RateTier.ANONYMOUS, client, time.monotonic())
    headers["X-RateLimit-Limit"] = str(state.limit)
    headers["X-RateLimit-Remaining"] = str(state.remaining)
    headers["X-RateLimit-Reset"] = str(state.reset_s)
    ingress = INGRESS_USER in request
    if ingress:
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    is_api = request.path.startswith(API_PREFIX)
    headers.setdefault(
        "Content-Security-Policy", _API_CSP if is_api else _INGRESS_UI_CSP if ingress else _UI_CSP
    )
    # The UI's files are revalidated on every load (a cheap 304), so an upgraded appliance never runs a
    # browser's cached copy of an older script against its newer API.
    headers.setdefault(hdrs.CACHE_CONTROL, "no-store" if is_api else "no-cache")
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin.lower() in policy.cors_origins:
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = _CORS_EXPOSE
        headers.add(hdrs.VARY, "Origin")
    retired = request.get(RETIRED_API)
    if retired is not None:
        headers.update(retired.headers(request.path))


def middlewares() -> list[Middleware]:
    """The gate, outermost first; goes after the error middleware so that its answers keep their headers."""
    return [host_middleware, version_middleware, origin_middleware, access_middleware]


def setup_security(
    app: web.Application, config: AppConfig, retired: Sequence[RetiredApi] = RETIRED_APIS
) -> None:
    """Install the policy and the response stamp; ``middlewares()`` must be in the app's middleware list."""
    app[SECURITY] = SecurityPolicy.from_config(config, retired)
    app.on_response_prepare.append(stamp_response)
