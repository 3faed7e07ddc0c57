"""The OpenAPI 3.1 document, built from the endpoint table so that it cannot drift from the routes.

Every declared endpoint appears with its parameters (from the query model and the path), its request body,
its response schema, the error shape for each failure it can answer with, and the scope it needs. Served
publicly at ``/api/v1/openapi.json``: it holds nothing a caller could not learn by trying.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from appliance import __version__
from appliance.api.routing import (
    ACCESS_TOKEN_PARAM,
    ENDPOINTS,
    JSON_CONTENT_TYPE,
    SCOPE_DESCRIPTIONS,
    ApiRouter,
    Endpoint,
    EndpointTable,
    Scope,
)
from appliance.api.webhooks import WebhookDelivery
from appliance.contracts.schemas import MESSAGE_SCHEMAS
from appliance.integrations.webhooks.signing import (
    BODY_SIGNATURE_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)

OPENAPI_VERSION = "3.1.0"
OPENAPI_PATH = "/api/v1/openapi.json"
SECURITY_SCHEME = "bearer"
_REF = "#/components/schemas/{model}"
_ERROR_SCHEMA = "Error"

# Statuses whose body is the error shape, and why each can happen; which apply depends on the endpoint.
_ERROR_REASONS = {
    400: "the query or body is not valid (details list each field), or the body is not JSON",
    401: "no token, or a token that is malformed, expired, revoked or wrongly signed",
    403: "the token lacks the scope this endpoint needs",
    404: "not found",
    409: "conflicts with the current state",
    413: "the body is too large",
    415: "the body is not JSON",
    429: "rate limit reached; retry after Retry-After seconds",
    503: "busy; retry after Retry-After seconds",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class Error(BaseModel):
    """The one error shape of every failing request."""

    error: ErrorBody


router = ApiRouter()


@router.get(
    OPENAPI_PATH,
    public=True,
    summary="This API's OpenAPI 3.1 document",
    tags=["system"],
)
async def openapi_document(request: web.Request, query: None, body: None) -> web.Response:
    """Built from the same endpoint table that the authentication check and the router use."""
    table: EndpointTable = request.app[ENDPOINTS]
    if table.openapi_document is None:
        table.openapi_document = build_openapi(table)
    return web.json_response(table.openapi_document)


_MESSAGES_NOTE = (
    "The messages that REST, the WebSocket stream (`/ws/v1/stream`), MQTT and webhooks carry are the "
    "components " + ", ".join(f"`{m.__name__}`" for m in MESSAGE_SCHEMAS.values()) + "; the same shapes "
    "ship as JSON Schemas in `docs/schemas/<name>.schema.json` (written by `invispose schemas`), beside the "
    "WebSocket protocol's own messages (`ws-*.schema.json`)."
)


def build_openapi(endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    tags: set[str] = set()
    for endpoint in sorted(endpoints, key=lambda e: (e.path, e.method)):
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, schemas)
        tags.update(endpoint.tags)
    _add_schema(Error, schemas, "serialization")
    for model in MESSAGE_SCHEMAS.values():
        _add_schema(model, schemas, "serialization")
    scopes = "\n".join(f"- `{s.value}`: {SCOPE_DESCRIPTIONS[s]}" for s in Scope)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "InvisPose API",
            "version": __version__,
            "description": "WiFi CSI presence, pose, activity and falls. Every endpoint but the public ones "
            "needs `Authorization: Bearer <token>`: a login token from `POST /api/v1/auth/token` or an API "
            "token (`ivp_...`). Every response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and "
            "`X-RateLimit-Reset`.\n\n" + _MESSAGES_NOTE,
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": paths,
        "webhooks": _webhooks(schemas),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A login JWT or an `ivp_` API token. An operation's security "
                    "requirement names the scope it needs; `admin:all` grants every scope.\n\n" + scopes,
                }
            },
        },
    }


_WEBHOOK_HEADERS = {
    SIGNATURE_HEADER: "t=<unix seconds>,v1=<hex HMAC-SHA256 with the webhook's secret over '<t>.<body>'>; "
    "refuse a t older than a few minutes",
    BODY_SIGNATURE_HEADER: "sha256=<hex HMAC-SHA256 with the webhook's secret over the body>",
    TIMESTAMP_HEADER: "the t of the signature",
    EVENT_TYPE_HEADER: "the event's dotted type",
    DELIVERY_ID_HEADER: "the body's delivery_id",
    "User-Agent": "InvisPose/<version>",
}


def _webhooks(schemas: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.1's top-level ``webhooks``: the call the appliance makes to every webhook URL."""
    return {
        "event": {
            "post": {
                "operationId": "webhookEvent",
                "summary": "An event or alert, POSTed to each webhook whose events match it",
                "description": "Delivered from a durable outbox: at least once, in order per webhook. Any "
                "2xx acknowledges; network errors, timeouts and the statuses in the webhook's "
                "retry_policy.retry_on_status (default 408, 429, 5xx) are retried with backoff, honouring "
                "Retry-After; any other answer is final. Deliveries that fail for good are kept as dead "
                "letters (GET /api/v1/webhooks/{id}/dead-letters) and can be replayed. The webhook's own "
                "headers are sent too.",
                "tags": ["webhooks"],
                "parameters": [
                    {
                        "name": name,
                        "in": "header",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in _WEBHOOK_HEADERS.items()
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON_CONTENT_TYPE: {"schema": _add_schema(WebhookDelivery, schemas, "serialization")}
                    },
                },
                "responses": {
                    "2XX": {"description": "received"},
                    "408": {"description": "retried"},
                    "429": {"description": "retried, after Retry-After when given"},
                    "5XX": {"description": "retried (after Retry-After when given)"},
                    "default": {"description": "final: the delivery becomes a dead letter"},
                },
            }
        }
    }


def _operation(endpoint: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": list(endpoint.tags),
        "security": [] if endpoint.public else [{SECURITY_SCHEME: [str(endpoint.scope)]}],
        "x-rate-limit-tier": endpoint.tier.value,
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.deprecated:
        operation["deprecated"] = True
    parameters = _parameters(endpoint, schemas)
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON_CONTENT_TYPE: {"schema": _add_schema(endpoint.body, schemas, "validation")}},
        }
    operation["responses"] = _responses(endpoint, schemas)
    return operation


def _parameters(endpoint: Endpoint, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    fields: dict[str, Any] = {}
    if endpoint.path_params_from is not None:
        fields = _inline_schema(endpoint.path_params_from, schemas).get("properties", {})
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": fields.get(name, {"type": "string"})}
        for name in endpoint.path_params
    ]
    if endpoint.query is not None:
        schema = _inline_schema(endpoint.query, schemas)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                parameter["description"] = prop["description"]
            parameter["schema"] = prop
            if prop.get("type") == "array":
                parameter["style"], parameter["explode"] = "form", True
            parameters.append(parameter)
    if endpoint.token_in_query:
        parameters.append(
            {
                "name": ACCESS_TOKEN_PARAM,
                "in": "query",
                "required": False,
                "description": "the bearer token, for clients that cannot set a header "
                "(browser WebSocket, <img>)",
                "schema": {"type": "string"},
            }
        )
    return parameters


def _responses(endpoint: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    error = {JSON_CONTENT_TYPE: {"schema": {"$ref": _REF.format(model=_ERROR_SCHEMA)}}}
    success: dict[str, Any] = {"description": endpoint.summary}
    if endpoint.status != 204:
        success["content"] = {
            content_type: {"schema": _success_schema(endpoint, content_type, schemas)}
            for content_type in endpoint.content_types
        }
    responses: dict[str, Any] = {str(endpoint.status): success}
    for status, reason in endpoint.responses.items():
        if status < 400 or status in endpoint.body_on:
            responses[str(status)] = {"description": reason, "content": success.get("content", {})}
        else:
            responses[str(status)] = {"description": reason, "content": error}
    codes = {429}
    if endpoint.query is not None or endpoint.body is not None:
        codes.add(400)
    if endpoint.body is not None:
        codes.update({413, 415})
    if not endpoint.public:
        codes.update({401, 403})
    if endpoint.path_params:
        codes.add(404)
    for status in sorted(codes):
        responses.setdefault(str(status), {"description": _ERROR_REASONS[status], "content": error})
    return responses


def _success_schema(endpoint: Endpoint, content_type: str, schemas: dict[str, Any]) -> dict[str, Any]:
    if content_type == JSON_CONTENT_TYPE:
        if endpoint.response is not None:
            return _add_schema(endpoint.response, schemas, "serialization")
        return {"type": "object"}
    if content_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "contentMediaType": content_type}


def _add_schema(model: type[BaseModel], schemas: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    """Put ``model`` (and the models it uses) into components; return a reference to it."""
    schema = model.model_json_schema(ref_template=_REF, mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": _REF.format(model=model.__name__)}


def _inline_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """The model's own schema (its properties become parameters); the models it uses go to components."""
    schema = model.model_json_schema(ref_template=_REF, mode="validation")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    return schema
