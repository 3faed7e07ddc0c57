"""The ``webhooks:`` section and one webhook: what is accepted, and what is refused with which reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from appliance.config import ConfigError, load_config
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
