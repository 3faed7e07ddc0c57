"""``/api/v1/webhooks``: the webhooks, their delivery log and dead letters, a test delivery and replay.

Reading needs ``system:read``; creating, replacing, deleting, testing and replaying need ``config:write``.
A webhook's ``secret`` is write-only: no answer ever contains it, and a replace that leaves it out keeps
the one saved. Changes are saved in the data directory and survive restarts; the YAML's
``webhooks.endpoints`` stays the seed (a seed webhook deleted here stays deleted).
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from yarl import URL

from appliance.api.errors import error_response
from appliance.api.resource_keys import RESOURCES
from appliance.api.routing import ApiModel, ApiRouter, Scope, model_response
from appliance.contracts.schemas import EventModel
from appliance.integrations.webhooks.guard import TargetRefusedError, check_target
from appliance.integrations.webhooks.settings import (
    MIN_SECRET_CHARS,
    WEBHOOK_ID_PATTERN,
    RetryPolicy,
    WebhookConfig,
    WebhookFields,
)
from appliance.integrations.webhooks.sink import (
    EndpointStatus,
    Origin,
    WebhookExistsError,
    WebhookNotFoundError,
    WebhookSink,
    WebhooksUnavailableError,
)
from appliance.store.webhooks import MAX_PAGE_ROWS, AttemptOutcome

router = ApiRouter()
PREFIX = "/api/v1/webhooks"
_TAGS = ["webhooks"]
_CREATED = 201
_DELETED = 204
_KNOWN_ERRORS = {404: "no webhook with that id", 409: "webhooks are switched off (webhooks.enabled: false)"}
_UNAVAILABLE = 503
_RETRY_AFTER_S = "5"


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookDelivery(_Response):
    """The body of every webhook delivery (``POST`` to the webhook's URL)."""

    id: str = Field(description="the event's id")
    delivery_id: str = Field(
        description="this event's delivery to this webhook: the same on every retry and replay, so "
        "receivers deduplicate on it"
    )
    event_type: str = Field(description="the event's dotted type; webhook.test for POST /{id}/test")
    timestamp: float = Field(description="when the event happened, seconds since the epoch")
    data: EventModel = Field(description="the event exactly as every other output carries it")


class WebhookCreate(WebhookFields):
    """A new webhook; without an ``id`` one is made."""

    id: str | None = Field(None, pattern=WEBHOOK_ID_PATTERN, description="Stable id (default: made up).")


class WebhookReplace(WebhookFields):
    """Everything a webhook is; ``secret`` may be left out to keep the saved one."""

    secret: SecretStr | None = Field(  # type: ignore[assignment]
        None,
        description=f"HMAC-SHA256 key of the signatures (at least {MIN_SECRET_CHARS} characters); leave out "
        "to keep the current one. Write-only.",
    )


class WebhookStatus(_Response):
    backlog: int = Field(description="deliveries waiting, oldest first")
    dead_letters: int = Field(description="deliveries that failed for good (replay them)")
    delivered: int = Field(description="deliveries made since the appliance started")
    failed_attempts: int = Field(description="attempts that failed since the appliance started")
    last_status: int | None = Field(description="HTTP status of the last attempt; null: no answer")
    last_error: str | None
    last_attempt_at: float | None
    last_latency_ms: float | None
    next_attempt_at: float | None = Field(description="when a failed delivery is tried again")


class Webhook(_Response):
    """A webhook as the API shows it: never its secret."""

    id: str
    url: str
    events: list[str]
    headers: dict[str, str]
    retry_policy: RetryPolicy
    active: bool
    origin: Origin = Field(description="config: as the YAML seed declares it; api: created or changed here")
    status: WebhookStatus


class WebhookList(_Response):
    items: list[Webhook] = Field(description="The YAML's webhooks first, then the API's.")


class TestResult(_Response):
    """What the endpoint answered a ``webhook.test`` delivery (not retried, not logged)."""

    delivery_id: str
    delivered: bool
    status: int | None = Field(description="the HTTP status; null when there was no answer")
    latency_ms: float
    error: str | None


class LoggedAttempt(_Response):
    seq: int = Field(description="page on with ?before=<seq>")
    delivery_id: str
    event_id: str
    event_type: str
    attempt: int = Field(description="1 for the first attempt of this delivery")
    at: float
    status: int | None
    latency_ms: float
    outcome: AttemptOutcome = Field(description="delivered; retry (it will be tried again); dead")
    error: str | None


class DeliveryLog(_Response):
    items: list[LoggedAttempt] = Field(description="newest first")
    next_before: int | None = Field(description="?before= for the next page; null on the last")


class DeadLetter(_Response):
    seq: int = Field(description="page on with ?before=<seq>")
    delivery_id: str
    event_id: str
    event_type: str
    event_time: float
    attempts: int
    created: float
    updated: float = Field(description="when it became a dead letter")
    last_status: int | None
    last_error: str | None


class DeadLetters(_Response):
    items: list[DeadLetter] = Field(description="newest first")
    next_before: int | None


class PageQuery(ApiModel):
    limit: int = Field(100, ge=1, le=MAX_PAGE_ROWS, description="most rows returned")
    before: int | None = Field(None, ge=1, description="only rows older than this seq (the next page)")


class LogQuery(PageQuery):
    delivery_id: str | None = Field(None, max_length=64, description="only this delivery's attempts")


class ReplayRequest(ApiModel):
    delivery_ids: list[str] | None = Field(
        None, max_length=MAX_PAGE_ROWS, description="dead letters to replay; leave out for all of them"
    )


class ReplayResult(_Response):
    replayed: list[str] = Field(description="the delivery ids now pending again, in delivery order")


def _view(hook: WebhookConfig, origin: Origin, status: EndpointStatus) -> Webhook:
    data: dict[str, Any] = hook.model_dump(mode="json", exclude={"secret"})
    return Webhook.model_validate({**data, "origin": origin, "status": status.to_dict()})


def _sink(request: web.Request) -> WebhookSink | web.Response:
    runner = request.app[RESOURCES].sinks
    sink = runner.sink(WebhookSink.name) if runner is not None else None
    if isinstance(sink, WebhookSink):
        return sink
    return error_response(
        409, "webhooks_disabled", "webhooks are switched off; set webhooks.enabled: true and restart"
    )


def _not_found(webhook_id: str) -> web.Response:
    return error_response(404, "not_found", f"no webhook {webhook_id!r}", {"id": webhook_id})


def _unavailable(exc: WebhooksUnavailableError) -> web.Response:
    response = error_response(_UNAVAILABLE, "webhooks_unavailable", str(exc))
    response.headers["Retry-After"] = _RETRY_AFTER_S
    return response


async def _refused_target(sink: WebhookSink, url: str) -> web.Response | None:
    try:
        await check_target(URL(url), sink.settings.policy)
    except TargetRefusedError as exc:
        return error_response(
            400,
            "validation_error",
            "the request body is not valid",
            [{"in": "body", "field": "url", "message": str(exc), "type": "target_refused"}],
        )
    return None


@router.get(
    PREFIX,
    scope=Scope.SYSTEM_READ,
    summary="Every webhook, with its backlog, dead letters and last attempt",
    response=WebhookList,
    tags=_TAGS,
    responses={409: _KNOWN_ERRORS[409], 503: "the webhook sink is starting or restarting"},
)
async def list_webhooks(request: web.Request, query: None, body: None) -> web.Response:
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    try:
        hooks = sink.hooks()
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)
    return model_response(WebhookList(items=[_view(*hook) for hook in hooks]))


@router.get(
    PREFIX + "/{id}",
    scope=Scope.SYSTEM_READ,
    summary="One webhook, with its backlog, dead letters and last attempt",
    response=Webhook,
    tags=_TAGS,
    responses={**_KNOWN_ERRORS, 503: "the webhook sink is starting or restarting"},
)
async def get_webhook(request: web.Request, query: None, body: None) -> web.Response:
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    webhook_id = request.match_info["id"]
    try:
        return model_response(_view(*sink.hook(webhook_id)))
    except WebhookNotFoundError:
        return _not_found(webhook_id)
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)


@router.post(
    PREFIX,
    scope=Scope.CONFIG_WRITE,
    summary="Create a webhook (its secret is never shown again)",
    body=WebhookCreate,
    response=Webhook,
    status=_CREATED,
    tags=_TAGS,
    responses={409: "a webhook with that id exists, or webhooks are switched off", 503: "starting"},
)
async def create_webhook(request: web.Request, query: None, body: WebhookCreate) -> web.Response:
    """Events published from now on that match ``events`` are delivered to it; a URL whose host is (or
    resolves to) an address the configuration does not allow is refused with 400."""
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    refused = await _refused_target(sink, body.url)
    if refused is not None:
        return refused
    fields = body.model_dump(exclude={"id", "secret"})
    hook = WebhookConfig(**fields, secret=body.secret, id=body.id or uuid.uuid4().hex[:12])
    try:
        await sink.put(hook, create=True)
        view = _view(*sink.hook(hook.id))
    except WebhookExistsError as exc:
        return error_response(409, "conflict", str(exc), {"id": hook.id})
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)
    return model_response(view, status=_CREATED, headers={"Location": f"{PREFIX}/{hook.id}"})


@router.put(
    PREFIX + "/{id}",
    scope=Scope.CONFIG_WRITE,
    summary="Replace a webhook (leave secret out to keep it)",
    body=WebhookReplace,
    response=Webhook,
    tags=_TAGS,
    responses={**_KNOWN_ERRORS, 503: "starting"},
)
async def replace_webhook(request: web.Request, query: None, body: WebhookReplace) -> web.Response:
    """Deliveries waiting for it go to the new URL, signed with the new secret."""
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    webhook_id = request.match_info["id"]
    refused = await _refused_target(sink, body.url)
    if refused is not None:
        return refused
    try:
        current, _, _ = sink.hook(webhook_id)
        fields = body.model_dump(exclude={"secret"})
        hook = WebhookConfig(**fields, secret=body.secret or current.secret, id=webhook_id)
        await sink.put(hook, create=False)
        return model_response(_view(*sink.hook(webhook_id)))
    except WebhookNotFoundError:
        return _not_found(webhook_id)
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)


@router.delete(
    PREFIX + "/{id}",
    scope=Scope.CONFIG_WRITE,
    summary="Delete a webhook with its backlog, dead letters and log",
    status=_DELETED,
    tags=_TAGS,
    responses={**_KNOWN_ERRORS, 503: "starting"},
)
async def delete_webhook(request: web.Request, query: None, body: None) -> web.Response:
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    webhook_id = request.match_info["id"]
    try:
        await sink.delete(webhook_id)
    except WebhookNotFoundError:
        return _not_found(webhook_id)
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)
    return web.Response(status=_DELETED)


@router.post(
    PREFIX + "/{id}/test",
    scope=Scope.CONFIG_WRITE,
    summary="Send a signed webhook.test delivery now and say what the endpoint answered",
    response=TestResult,
    tags=_TAGS,
    responses={**_KNOWN_ERRORS, 503: "starting"},
)
async def test_webhook(request: web.Request, query: None, body: None) -> web.Response:
    """The test goes out at once, outside the outbox: it is neither retried nor logged, and it does not
    wait behind the webhook's backlog. Its ``event_type`` is ``webhook.test`` and its ``data`` is
    ``{"webhook_id", "message"}``."""
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    webhook_id = request.match_info["id"]
    try:
        result = await sink.send_test(webhook_id)
    except WebhookNotFoundError:
        return _not_found(webhook_id)
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)
    attempt = result.attempt
    return model_response(
        TestResult(
            delivery_id=result.delivery_id,
            delivered=attempt.succeeded,
            status=attempt.status,
            latency_ms=round(attempt.latency_ms, 3),
            error=attempt.error,
        )
    )


@router.get(
    PREFIX + "/{id}/deliveries",
    scope=Scope.SYSTEM_READ,
    summary="The delivery log: every attempt with its status, latency and error",
    query=LogQuery,
    response=DeliveryLog,
    tags=_TAGS,
    responses=_KNOWN_ERRORS,
)
async def webhook_deliveries(request: web.Request, query: LogQuery, body: None) -> web.Response:
    """Kept for ``webhooks.log_retention_days``."""
    known = _known(request)
    if isinstance(known, web.Response):
        return known
    sink, webhook_id = known
    rows = await sink.outbox.attempts(
        webhook_id, limit=query.limit, before=query.before, delivery_id=query.delivery_id
    )
    items = [LoggedAttempt.model_validate(row.to_dict()) for row in rows]
    return model_response(DeliveryLog(items=items, next_before=_next(items, query.limit)))


@router.get(
    PREFIX + "/{id}/dead-letters",
    scope=Scope.SYSTEM_READ,
    summary="Deliveries that failed for good, for inspection and replay",
    query=PageQuery,
    response=DeadLetters,
    tags=_TAGS,
    responses=_KNOWN_ERRORS,
)
async def webhook_dead_letters(request: web.Request, query: PageQuery, body: None) -> web.Response:
    """Kept for ``webhooks.dead_letter_retention_days``."""
    known = _known(request)
    if isinstance(known, web.Response):
        return known
    sink, webhook_id = known
    rows = await sink.outbox.dead_letters(webhook_id, limit=query.limit, before=query.before)
    items = [DeadLetter.model_validate(row.to_dict()) for row in rows]
    return model_response(DeadLetters(items=items, next_before=_next(items, query.limit)))


@router.post(
    PREFIX + "/{id}/dead-letters/replay",
    scope=Scope.CONFIG_WRITE,
    summary="Deliver dead letters again (all, or those named), with their original delivery ids",
    body=ReplayRequest,
    response=ReplayResult,
    tags=_TAGS,
    responses=_KNOWN_ERRORS,
)
async def replay_dead_letters(request: web.Request, query: None, body: ReplayRequest) -> web.Response:
    """Replayed deliveries are pending again with a fresh count of attempts and go out next, before
    newer events; receivers that already have one recognise it by its delivery id."""
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    webhook_id = request.match_info["id"]
    try:
        replayed = await sink.replay(webhook_id, body.delivery_ids)
    except WebhookNotFoundError:
        return _not_found(webhook_id)
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)
    return model_response(ReplayResult(replayed=replayed))


def _known(request: web.Request) -> tuple[WebhookSink, str] | web.Response:
    """The sink and the path's webhook id, or the error answer when either is missing."""
    sink = _sink(request)
    if isinstance(sink, web.Response):
        return sink
    webhook_id = request.match_info["id"]
    try:
        sink.hook(webhook_id)
    except WebhookNotFoundError:
        return _not_found(webhook_id)
    except WebhooksUnavailableError as exc:
        return _unavailable(exc)
    return sink, webhook_id


def _next(items: list[LoggedAttempt] | list[DeadLetter], limit: int) -> int | None:
    return items[-1].seq if len(items) == limit else None
