"""``/ws/v1/stream``: the WebSocket stream's door. The protocol itself is ``integrations.websocket``.

The route is public at the HTTP level on purpose: a WebSocket client learns why it was refused from a
close code (4001 authentication, 4003 scope), which it can read, rather than from an HTTP status that
browsers hide. The Origin of an upgrade is checked by the security middleware like any state-changing
request (cross-site WebSocket hijacking); connection attempts are rate-limited per address.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from pydantic import Field

from appliance.api.auth import AUTHENTICATOR, INGRESS_USER, InvalidTokenError, Principal
from appliance.api.errors import error_response
from appliance.api.resource_keys import RESOURCES
from appliance.api.routing import ApiModel, ApiRouter, Scope
from appliance.integrations.websocket import (
    CLOSE_AUTH_FAILED,
    CLOSE_FORBIDDEN,
    AccessDeniedError,
    Authorize,
    WebSocketStream,
)

router = ApiRouter()
STREAM_PATH = "/ws/v1/stream"
_RETRY_AFTER_S = 5


class StreamQuery(ApiModel):
    token: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="a token with stream:subscribe; or send it in the first message (keeps it out of logs)",
    )


def authorizer(app: web.Application) -> Authorize:
    """Token -> who it is, or ``AccessDeniedError`` with the close code that says why not."""
    authenticator = app[AUTHENTICATOR]

    async def authorize(token: str) -> str:
        try:
            principal = await authenticator.authenticate(token)
        except InvalidTokenError as exc:
            raise AccessDeniedError(CLOSE_AUTH_FAILED, str(exc)) from None
        if not principal.allows(Scope.STREAM_SUBSCRIBE):
            raise AccessDeniedError(CLOSE_FORBIDDEN, f"this needs the {Scope.STREAM_SUBSCRIBE.value} scope")
        return f"{principal.kind}:{principal.name}"

    return authorize


def signed_in_by_home_assistant(user: Principal) -> Authorize:
    """For a stream opened through Home Assistant's ingress: the user it signed in, whatever token comes."""

    async def authorize(token: str) -> str:
        if not user.allows(Scope.STREAM_SUBSCRIBE):
            raise AccessDeniedError(CLOSE_FORBIDDEN, f"this needs the {Scope.STREAM_SUBSCRIBE.value} scope")
        return f"{user.kind}:{user.name}"

    return authorize


@router.get(
    STREAM_PATH,
    public=True,
    summary="Live messages over a WebSocket (pose, persons, zones, events, alerts, status)",
    query=StreamQuery,
    tags=["stream"],
    responses={
        101: "switching to the WebSocket protocol (see docs/schemas/ws-*.schema.json)",
        404: "the WebSocket stream is disabled",
        426: "not a WebSocket upgrade request",
        503: "too many open streams; retry after Retry-After seconds",
    },
)
async def stream(request: web.Request, query: StreamQuery, body: None) -> web.StreamResponse:
    """Authenticate with ``?token=`` or an ``{"type": "auth", "token": ...}`` first message, then
    ``subscribe`` to topics. Close codes: 4001 authentication, 4003 scope, 1008 message flood, 1009
    message too large."""
    sinks = request.app[RESOURCES].sinks
    sink = sinks.sink("websocket") if sinks is not None else None
    if not isinstance(sink, WebSocketStream):
        return error_response(
            404, "stream_disabled", "the WebSocket stream is disabled (websocket.enabled: false)"
        )
    if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
        response = error_response(426, "upgrade_required", "open this URL as a WebSocket")
        response.headers[hdrs.UPGRADE] = "websocket"
        return response
    if sink.full:
        sink.refused += 1
        response = error_response(
            503,
            "too_many_streams",
            "every stream slot is taken; retry later or raise websocket.max_clients",
            {"max_clients": sink.settings.max_clients},
        )
        response.headers[hdrs.RETRY_AFTER] = str(_RETRY_AFTER_S)
        return response
    ingress_user = request.get(INGRESS_USER)
    if ingress_user is not None:
        # Authenticated from the first frame: the page inside Home Assistant has no token to send.
        return await sink.serve(request, signed_in_by_home_assistant(ingress_user), "")
    return await sink.serve(request, authorizer(request.app), query.token)
