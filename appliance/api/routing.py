"""A small declarative route layer on aiohttp: each endpoint says who may call it and what it takes and gives.

An endpoint is declared once, with its scope (or ``public=True``), its query, body and response models and
its tags; that declaration is the single source of truth for the OpenAPI document, the authentication
check, the rate-limit tier and the tests that prove every route is protected::

    router = ApiRouter()

    @router.get("/api/v1/pose/current", scope=Scope.POSE_READ, summary="Latest reading",
                query=CurrentQuery, response=PoseFrameModel, tags=["pose"])
    async def current(request: web.Request, query: CurrentQuery, body: None) -> PoseFrameModel: ...

and ``install(app, router)`` adds the routers to an application. The wrapper validates the query string and
the JSON body before the handler runs (so handlers trust their inputs), turns every input problem into the
one error shape, serializes a returned pydantic model, and passes a returned ``web.StreamResponse``
(files, CSV, WebSocket, MJPEG) through untouched. Declaring an endpoint with neither a scope nor
``public=True`` raises at import time: an unprotected route cannot be written by accident.

Bodies are validated strictly, as JSON Schema reads the OpenAPI document: ``"yes"`` is not a boolean,
``false`` is not a number and ``"5"`` is not an integer (pydantic's lax mode would coerce each). Query
strings are text by nature, so their values are converted as their fields say; a parameter that takes
one value and is given several is refused rather than one of them picked. Every GET endpoint also answers
HEAD.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Union, get_args, get_origin

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from appliance.api.errors import error_response

JSON_CONTENT_TYPE = "application/json"
# Browsers cannot put a header on a WebSocket or an <img> (MJPEG) request; streaming routes accept the
# token in this query parameter instead, and it is removed before the query model sees the query.
ACCESS_TOKEN_PARAM = "access_token"
_PATH_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Scope(StrEnum):
    """What a token may do. ``admin:all`` grants every scope."""

    POSE_READ = "pose:read"
    ANALYTICS_READ = "analytics:read"
    SYSTEM_READ = "system:read"
    CONFIG_WRITE = "config:write"
    ZONE_WRITE = "zone:write"
    ADMIN_ALL = "admin:all"
    STREAM_SUBSCRIBE = "stream:subscribe"
    STREAM_PUBLISH = "stream:publish"


SCOPE_DESCRIPTIONS: Mapping[Scope, str] = {
    Scope.POSE_READ: "read current and past poses, presence and persons",
    Scope.ANALYTICS_READ: "read occupancy, activity and event analytics",
    Scope.SYSTEM_READ: "read system status, links and health details",
    Scope.CONFIG_WRITE: "change the runtime configuration",
    Scope.ZONE_WRITE: "create, change and delete zones",
    Scope.ADMIN_ALL: "everything, including users and API tokens",
    Scope.STREAM_SUBSCRIBE: "open WebSocket and video streams",
    Scope.STREAM_PUBLISH: "publish into the pipeline (external sources)",
}


class RateTier(StrEnum):
    """Which token bucket a request draws from: anonymous per client IP, the others per token."""

    ANONYMOUS = "anonymous"
    AUTHENTICATED = "authenticated"
    STREAMING = "streaming"


class ApiModel(BaseModel):
    """Base for query and body models: unknown fields are errors, so a typo is reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class RouteDeclarationError(Exception):
    """An endpoint declared in a way that would be unsafe or ambiguous; raised when the module is imported."""


Handler = Callable[[web.Request, Any, Any], Awaitable[BaseModel | web.StreamResponse | None]]


@dataclass(frozen=True, slots=True, eq=False)
class Endpoint:
    method: str
    path: str
    handler: Handler
    scope: Scope | None
    public: bool
    summary: str
    description: str
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    content_types: tuple[str, ...]
    tags: tuple[str, ...]
    tier: RateTier
    responses: Mapping[int, str]
    deprecated: bool
    body_on: frozenset[int] = frozenset()
    path_params_from: type[BaseModel] | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def token_in_query(self) -> bool:
        return self.tier is RateTier.STREAMING

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: validate, call, serialize."""
        query: BaseModel | None = None
        body: BaseModel | None = None
        if self.query is not None:
            query_or_error = self._parse_query(request, self.query)
            if isinstance(query_or_error, web.Response):
                return query_or_error
            query = query_or_error
        if self.body is not None:
            body_or_error = await self._parse_body(request, self.body)
            if isinstance(body_or_error, web.Response):
                return body_or_error
            body = body_or_error
        result = await self.handler(request, query, body)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=self.status)
        return model_response(result, status=self.status)

    def _parse_query(self, request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
        data: dict[str, Any] = {}
        repeated: list[str] = []
        for key in request.query:
            if key in data or (self.token_in_query and key == ACCESS_TOKEN_PARAM):
                continue
            values = request.query.getall(key)
            if _is_sequence_field(model, key):
                data[key] = values
                continue
            if len(values) > 1:  # which one was meant? Say so rather than guess
                repeated.append(key)
            data[key] = values[0]
        if repeated:
            once = "takes one value; it was given more than once"
            details = [{"in": "query", "field": k, "message": once, "type": "value_error"} for k in repeated]
            return error_response(400, "validation_error", "the request query is not valid", details)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            return validation_error(exc, "query")

    async def _parse_body(self, request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
        if not _is_json(request.content_type):
            return error_response(
                415,
                "unsupported_media_type",
                f"send the body as {JSON_CONTENT_TYPE}",
                {"content_type": request.content_type},
            )
        limit = request.client_max_size
        if request.content_length is not None and request.content_length > limit:
            return _too_large(limit)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(limit)
        try:
            text = raw.decode("utf-8")
            json.loads(text, parse_constant=_reject_constant)
        except UnicodeDecodeError as exc:
            return error_response(
                400, "invalid_json", "the body is not UTF-8", {"position": exc.start, "line": None}
            )
        except json.JSONDecodeError as exc:
            return error_response(
                400,
                "invalid_json",
                f"the body is not valid JSON: {exc.msg}",
                {"position": exc.pos, "line": exc.lineno, "column": exc.colno},
            )
        except ValueError as exc:
            return error_response(400, "invalid_json", str(exc), None)
        except RecursionError:
            return error_response(400, "invalid_json", "the body is nested too deeply to be read", None)
        try:
            # Checked by the JSON parser above (its errors are the clearer), then validated as JSON: in
            # strict mode that is JSON Schema's typing, with enums, dates and tuples read from JSON.
            return model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            return validation_error(exc, "body")


def model_response(
    model: BaseModel, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON response from a model, for handlers that choose their status (health answers 503)."""
    return web.Response(
        body=model.model_dump_json().encode(),
        status=status,
        content_type=JSON_CONTENT_TYPE,
        headers=headers,
    )


def validation_error(exc: ValidationError, where: str) -> web.Response:
    """400 listing each bad field; the submitted values are never echoed (they may be passwords)."""
    details = [
        {
            "in": where,
            "field": ".".join(str(part) for part in error["loc"]),
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors(include_input=False, include_url=False)
    ]
    return error_response(400, "validation_error", f"the request {where} is not valid", details)


def _too_large(limit: int) -> web.Response:
    return error_response(413, "payload_too_large", f"the body is over {limit} bytes", {"max_bytes": limit})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"the body contains {name}, which is not JSON")


def _is_json(content_type: str) -> bool:
    return content_type == JSON_CONTENT_TYPE or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _is_sequence_field(model: type[BaseModel], name: str) -> bool:
    """Whether a query parameter may repeat (``?zone=a&zone=b``): its field is a list, tuple or set."""
    info = model.model_fields.get(name)
    if info is None:
        return False
    annotation = info.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    return get_origin(annotation) in (list, tuple, set, frozenset)


# --------------------------------------------------------------------------------------------------------
# Declaring


class ApiRouter:
    """Collects endpoint declarations; ``install`` puts them on an application."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        scope: Scope | str | None = None,
        public: bool = False,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        content_types: Sequence[str] = (JSON_CONTENT_TYPE,),
        tags: Sequence[str] = (),
        tier: RateTier = RateTier.AUTHENTICATED,
        responses: Mapping[int, str] | None = None,
        deprecated: bool = False,
        body_on: Sequence[int] = (),
        path_params_from: type[BaseModel] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare an endpoint. ``scope``: what a token needs; ``public``: no token at all (login, health).

        ``responses`` documents further statuses (``{404: "no such token"}``), with the error shape unless
        listed in ``body_on`` (health's 503 carries the health body); ``tier=RateTier.STREAMING`` puts a
        stream on the streaming bucket and lets it take the token from ``?access_token=``. A path
        parameter is documented as the field of the same name of ``path_params_from`` (an item's ``id``),
        else as any string.
        """
        method = method.upper()
        if public == (scope is not None):
            raise RouteDeclarationError(
                f"{method} {path}: give exactly one of scope=... (who may call it) or public=True"
            )
        if not path.startswith("/"):
            raise RouteDeclarationError(f"{method} {path}: the path must start with /")
        if body is not None and method not in _BODY_METHODS:
            raise RouteDeclarationError(f"{method} {path}: a {method} request has no body")
        if public and tier is not RateTier.AUTHENTICATED:
            raise RouteDeclarationError(
                f"{method} {path}: a public endpoint is always rate-limited anonymously"
            )
        if any(e.method == method and e.path == path for e in self.endpoints):
            raise RouteDeclarationError(f"{method} {path}: declared twice")
        checked_scope = None if scope is None else _scope(method, path, scope)

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method,
                    path=path,
                    handler=handler,
                    scope=checked_scope,
                    public=public,
                    summary=summary,
                    description=(handler.__doc__ or "").strip(),
                    query=query,
                    body=body,
                    response=response,
                    status=status,
                    content_types=tuple(content_types),
                    tags=tuple(tags),
                    tier=RateTier.ANONYMOUS if public else tier,
                    responses=dict(responses or {}),
                    deprecated=deprecated,
                    body_on=frozenset(body_on),
                    path_params_from=path_params_from,
                )
            )
            return handler

        return register


def _scope(method: str, path: str, scope: Scope | str) -> Scope:
    try:
        return Scope(scope)
    except ValueError:
        known = ", ".join(s.value for s in Scope)
        raise RouteDeclarationError(f"{method} {path}: unknown scope {scope!r} (known: {known})") from None


# --------------------------------------------------------------------------------------------------------
# Installing


@dataclass(slots=True)
class EndpointTable:
    """Every declared endpoint of an application, found from the aiohttp route a request matched."""

    _by_route: dict[web.AbstractRoute, Endpoint] = field(default_factory=dict)
    # The OpenAPI document built from this table, kept once built: routes never change after start-up.
    openapi_document: dict[str, Any] | None = None

    def add(self, route: web.AbstractRoute, endpoint: Endpoint) -> None:
        self._by_route[route] = endpoint
        self.openapi_document = None

    def for_route(self, route: web.AbstractRoute) -> Endpoint | None:
        return self._by_route.get(route)

    def __iter__(self) -> Iterator[Endpoint]:
        """Each endpoint once (a GET endpoint has a HEAD route too)."""
        return iter(dict.fromkeys(self._by_route.values()))

    def __len__(self) -> int:
        return len(dict.fromkeys(self._by_route.values()))


ENDPOINTS = web.AppKey("endpoints", EndpointTable)


def install(app: web.Application, *routers: ApiRouter) -> None:
    """Add the routers' endpoints to ``app`` and to its endpoint table (created on first use)."""
    if ENDPOINTS not in app:
        app[ENDPOINTS] = EndpointTable()
    table = app[ENDPOINTS]
    for router in routers:
        for endpoint in router.endpoints:
            methods = ["GET", "HEAD"] if endpoint.method == "GET" else [endpoint.method]
            for method in methods:
                table.add(app.router.add_route(method, endpoint.path, endpoint.handle), endpoint)
