"""The ``webhooks:`` section: what is delivered where, how hard to retry, and which targets are allowed.

``endpoints`` is the seed: the webhooks the YAML declares, each with a stable ``id``. The API
(``/api/v1/webhooks``) creates, replaces and deletes webhooks on top of it, and those changes survive
restarts (``appliance.store.settings``, as for zones and nodes).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from appliance.contracts import EventType
from appliance.integrations.webhooks.guard import TargetPolicy, TargetRefusedError, check_url

WEBHOOK_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MIN_SECRET_CHARS = 16
ANY_EVENT = "*"
# Headers the appliance sets on every delivery; a webhook's own ``headers`` may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "host",
        "user-agent",
        "x-invispose-signature",
        "x-signature",
        "x-event-type",
        "x-delivery-id",
        "x-timestamp",
    }
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_CATEGORIES = sorted({t.value.split(".", 1)[0] for t in EventType})
StatusClass = Literal["5xx"]


def event_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot select events, or None: ``*``, a dotted event name, or ``<category>.*``."""
    if pattern == ANY_EVENT or pattern in {t.value for t in EventType}:
        return None
    if pattern.endswith(".*") and pattern[:-2] in _CATEGORIES:
        return None
    return (
        f"{pattern!r} is not an event: use '*', one of {', '.join(t.value for t in EventType)}, "
        f"or a category wildcard ({', '.join(c + '.*' for c in _CATEGORIES)})"
    )


def event_matches(patterns: tuple[str, ...] | list[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern in (ANY_EVENT, event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


class RetryPolicy(BaseModel):
    """When a failed delivery is tried again. Network errors and timeouts are always retried."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(
        12,
        ge=1,
        le=1000,
        description="Attempts before the delivery moves to the dead letters (the API replays them).",
    )
    retry_on_status: tuple[int | StatusClass, ...] = Field(
        (408, 429, "5xx"),
        description="HTTP statuses that are retried ('5xx' for all of 500-599); any other answer that "
        "is not 2xx is final. A 429 or 503 with Retry-After waits that long.",
    )
    max_backoff_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Longest wait between two attempts (exponential from 1 s, with random jitter).",
    )

    @field_validator("retry_on_status")
    @classmethod
    def _statuses(cls, statuses: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for status in statuses:
            if isinstance(status, int) and not 300 <= status <= 599:
                raise ValueError(f"{status} is not an error status (300-599)")
        return statuses

    def retries(self, status: int) -> bool:
        return status in self.retry_on_status or ("5xx" in self.retry_on_status and 500 <= status <= 599)


class WebhookFields(BaseModel):
    """What a webhook is, besides its id (the API's create body adds an optional id, the YAML a required
    one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        min_length=1, max_length=2048, description="http:// or https:// URL the events are POSTed to."
    )
    events: tuple[str, ...] = Field(
        (ANY_EVENT,),
        min_length=1,
        description="Event types delivered: dotted names (person.fall_detected), category wildcards "
        "(person.*) or * for all.",
    )
    secret: SecretStr = Field(
        description=f"HMAC-SHA256 key of the signatures (at least {MIN_SECRET_CHARS} characters; use "
        "!secret). Write-only: never shown again.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (e.g. Authorization for the receiver)."
    )
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    active: bool = Field(True, description="false: no new deliveries (those waiting stay until it is on).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        url_problem(value)
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"the secret needs at least {MIN_SECRET_CHARS} characters (make one: openssl rand -hex 32)"
            )
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        problems = [p for p in (event_pattern_problem(pattern) for pattern in patterns) if p]
        if problems:
            raise ValueError("; ".join(problems))
        return patterns

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{name} is set by the appliance on every delivery and cannot be replaced")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"the value of {name} contains a line break or NUL")
        return headers

    def stored(self) -> dict[str, object]:
        """The webhook as the database keeps it: JSON with the secret in clear (the API never shows it)."""
        data = self.model_dump(mode="json")
        data["secret"] = self.secret.get_secret_value()
        return data


class WebhookConfig(WebhookFields):
    """One webhook of the seed (``webhooks.endpoints``) or of the API."""

    id: str = Field(pattern=WEBHOOK_ID_PATTERN, description="Stable id: lowercase letters, digits, _ and -.")


def url_problem(value: str) -> URL:
    """The parsed URL, or ValueError saying what is wrong with it."""
    try:
        url = URL(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not url.host:
        raise ValueError("the URL has no host")
    if url.user is not None or url.password is not None:
        raise ValueError("put credentials in headers (Authorization), not in the URL")
    if url.fragment:
        raise ValueError("a URL fragment (#...) is never sent; remove it")
    return url


class WebhookSettings(TargetPolicy):
    """The ``webhooks:`` section."""

    enabled: bool = Field(True, description="Deliver events to webhooks (and serve /api/v1/webhooks).")
    endpoints: list[WebhookConfig] = Field(
        default_factory=list, description="The seed: webhooks declared here; the API adds to them."
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Longest wait for one delivery's answer.")
    max_redirects: int = Field(
        3,
        ge=0,
        le=10,
        description="307/308 redirects followed per delivery (each target checked again); other "
        "redirects are final failures, since a POST would turn into a GET.",
    )
    log_retention_days: float = Field(
        7.0, gt=0, le=3650, description="Days the delivery log and delivered events are kept."
    )
    dead_letter_retention_days: float = Field(
        30.0, gt=0, le=3650, description="Days a dead letter is kept for replay."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> WebhookSettings:
        ids = [hook.id for hook in self.endpoints]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"webhook ids must be unique; repeated: {', '.join(repeated)}")
        return self

    @model_validator(mode="after")
    def _targets_allowed(self) -> WebhookSettings:
        """A seed webhook whose URL names a forbidden address is refused here, with the setting that would
        allow it; host names are checked on every connection."""
        for index, hook in enumerate(self.endpoints):
            try:
                check_url(URL(hook.url), self.policy)
            except TargetRefusedError as exc:
                raise ValueError(f"endpoints[{index}] ({hook.id}): {exc}") from None
        return self

    @property
    def policy(self) -> TargetPolicy:
        return TargetPolicy.model_validate(self.model_dump(include=set(TargetPolicy.model_fields)))
