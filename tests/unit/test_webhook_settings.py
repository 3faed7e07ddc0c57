"""The ``webhooks:`` section and one webhook: what is accepted, and what is refused with which reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.config import ConfigError, load_config
from appliance.contracts import EventType
from appliance.integrations.webhooks.delivery import Attempt, retry_after_s, verdict
from appliance.integrations.webhooks.settings import RetryPolicy, WebhookConfig, event_matches
from tests.conftest import DEFAULT_CONFIG

GOOD: dict[str, Any] = {"id": "nr", "url": "https://hooks.example/x", "secret": "s" * 16}


def webhook(**fields: Any) -> WebhookConfig:
    return WebhookConfig.model_validate({**GOOD, **fields})


@pytest.mark.parametrize(
    ("patterns", "event_type", "matches"),
    [
        (["*"], "alert.system_error", True),
        (["person.*"], "person.entered_zone", True),
        (["person.*"], "router.connected", False),
        (["person.lost"], "person.lost", True),
        (["person.lost"], "person.lost_track", False),
        (["alert.*", "system.started"], "system.started", True),
    ],
)
def test_event_patterns(patterns: list[str], event_type: str, matches: bool) -> None:
    assert event_matches(webhook(events=patterns).events, event_type) is matches


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"events": ["person.*", "persons.*"]}, "'persons.*' is not an event"),
        ({"events": ["person.detect"]}, "'person.detect' is not an event"),
        ({"events": []}, "at least 1 item"),
        ({"secret": "short"}, "at least 16 characters"),
        ({"url": "ftp://hooks.example/"}, "must start with http:// or https://"),
        ({"url": "https://user:pw@hooks.example/"}, "credentials in headers"),
        ({"url": "https:///nohost"}, "no host"),
        ({"headers": {"X-Signature": "forged"}}, "set by the appliance"),
        ({"headers": {"Bad Name": "x"}}, "not an HTTP header name"),
        ({"headers": {"X-Ok": "a\r\nInjected: yes"}}, "line break"),
        ({"retry_policy": {"retry_on_status": [200]}}, "not an error status"),
        ({"retry_policy": {"retry_on_status": ["4xx"]}}, "retry_on_status"),
        ({"id": "Has Spaces"}, "pattern"),
    ],
)
def test_a_bad_webhook_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        webhook(**fields)


def test_the_secret_is_never_in_the_models_text() -> None:
    hook = webhook()
    assert "s" * 16 not in repr(hook) and "s" * 16 not in hook.model_dump_json()
    assert hook.stored()["secret"] == "s" * 16  # what the database keeps, to sign with


def write(tmp_path: Path, webhooks: str) -> Path:
    path = tmp_path / "appliance.yaml"
    path.write_text(DEFAULT_CONFIG.read_text().split("\nwebhooks:")[0] + "\nwebhooks:\n" + webhooks)
    return path


def test_a_seed_webhook_to_a_forbidden_address_is_refused_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "  endpoints:\n    - {id: local, url: 'http://127.0.0.1:1880/x', secret: '0123456789abcdef'}\n",
    )
    with pytest.raises(ConfigError, match=r"127\.0\.0\.1 is loopback; set webhooks\.allow_loopback: true"):
        load_config(path)
    allowed = write(
        tmp_path,
        "  allow_loopback: true\n"
        "  endpoints:\n    - {id: local, url: 'http://127.0.0.1:1880/x', secret: '0123456789abcdef'}\n",
    )
    assert load_config(allowed).webhooks.endpoints[0].id == "local"


def test_seed_ids_must_be_unique(tmp_path: Path) -> None:
    hook = "{id: a, url: 'https://hooks.example/', secret: '0123456789abcdef'}"
    with pytest.raises(ConfigError, match="repeated: a"):
        load_config(write(tmp_path, f"  endpoints: [{hook}, {hook}]\n"))


@pytest.mark.parametrize(
    ("attempt", "number", "expected"),
    [
        (Attempt(204, 1.0), 1, "delivered"),
        (Attempt(400, 1.0, "bad"), 1, "dead"),
        (Attempt(410, 1.0, "gone"), 1, "dead"),
        (Attempt(302, 1.0, "moved"), 1, "dead"),
        (Attempt(408, 1.0, "slow"), 1, "retry"),
        (Attempt(429, 1.0, "later"), 1, "retry"),
        (Attempt(500, 1.0, "oops"), 1, "retry"),
        (Attempt(599, 1.0, "oops"), 1, "retry"),
        (Attempt(None, 1.0, "connection refused"), 1, "retry"),
        (Attempt(None, 1.0, "connection refused"), 3, "dead"),
        (Attempt(503, 1.0, "busy"), 3, "dead"),
        (Attempt(None, 1.0, "target refused", final=True), 1, "dead"),
    ],
)
def test_verdicts(attempt: Attempt, number: int, expected: str) -> None:
    assert verdict(attempt, RetryPolicy(max_attempts=3), number) == expected


def test_retry_on_status_is_the_users_choice() -> None:
    only_503 = RetryPolicy(retry_on_status=(503,))
    assert verdict(Attempt(503, 1.0), only_503, 1) == "retry"
    assert verdict(Attempt(500, 1.0), only_503, 1) == "dead"
    assert verdict(Attempt(None, 1.0, "timeout"), only_503, 1) == "retry"


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    now = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    assert retry_after_s("120", now) == 120.0
    assert retry_after_s("Tue, 14 Nov 2023 22:14:20 GMT", now) == 60.0
    assert retry_after_s("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0  # in the past: at once
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None
    assert retry_after_s("9999999", now) == 86_400.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example:99999/", "not a URL: Port out of range 0-65535"),
        ("ftp://hooks.example/", "the URL must start with http:// or https://"),
        ("https:///nohost", "the URL has no host"),
        ("https://user@hooks.example/", "put credentials in headers (Authorization), not in the URL"),
        ("https://:pw@hooks.example/", "put credentials in headers (Authorization), not in the URL"),
        ("https://hooks.example/x#top", "a URL fragment (#...) is never sent; remove it"),
    ],
)
def test_a_bad_url_gets_the_whole_reason(url: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        webhook(url=url)
    [error] = refused.value.errors()
    assert (error["loc"], error["msg"]) == (("url",), f"Value error, {message}")


def test_an_unknown_event_pattern_lists_only_patterns_that_are_accepted() -> None:
    with pytest.raises(ValidationError) as refused:
        webhook(events=["person.detect"])
    message = refused.value.errors()[0]["msg"]
    events = message.split("one of ", 1)[1].split(", or a category wildcard", 1)[0].split(", ")
    categories = message.rsplit("(", 1)[1].rstrip(")").split(", ")
    assert set(events) == {t.value for t in EventType}
    assert set(categories) == {"alert.*", "analytics.*", "person.*", "router.*", "system.*"}
    assert webhook(events=categories + events).events == (*categories, *events)


def test_a_category_wildcard_stops_at_the_dot() -> None:
    assert not event_matches(("alert.*",), "analytics.report_generated")
    assert event_matches(("alert.*",), "alert.system_error")


def test_5xx_means_500_to_599() -> None:  # RFC 9110 section 15.6
    policy = RetryPolicy()
    assert policy.retries(500) and policy.retries(599)
    assert not policy.retries(499) and not policy.retries(600)


def test_what_the_database_keeps_is_json_with_the_secret() -> None:
    stored = webhook(events=["person.*"], headers={"Authorization": "Bearer x"}).stored()
    assert json.loads(json.dumps(stored)) == stored  # lists, not tuples: what comes back from the database
    assert stored["secret"] == GOOD["secret"]
    assert WebhookConfig.model_validate(stored) == webhook(
        events=["person.*"], headers={"Authorization": "Bearer x"}
    )
