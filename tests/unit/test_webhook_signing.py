"""The delivery body and its signatures, checked against independent implementations: OpenSSL's HMAC
(``openssl dgst -sha256 -hmac``) for the signatures and the standard JSON parser for the body."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from appliance.contracts import Event, EventType
from appliance.hub import Message
from appliance.integrations.webhooks.signing import envelope, signature_headers

SECRET = "whsec-0123456789abcdef"


def openssl_hmac(key: str, data: bytes) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (Debian package openssl)")
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", key, "-r"], input=data, capture_output=True, check=True
    ).stdout
    return out.split()[0].decode()


def test_the_envelope_wraps_the_hubs_event_json_unchanged() -> None:
    event = Event(EventType.PERSON_ENTERED_ZONE, {"person_id": 3, "zone": "kitchen", "ünïcode": "ok"})
    text = Message.of(event).text
    body = envelope(event.id, event.type.value, event.time, "d1", text)
    parsed = json.loads(body)
    assert parsed == {
        "id": event.id,
        "delivery_id": "d1",
        "event_type": "person.entered_zone",
        "timestamp": event.time,
        "data": json.loads(text),
    }
    assert body.endswith(f', "data": {text}}}'.encode())


def test_signatures_match_openssl_over_the_exact_bytes() -> None:
    body = b'{"id": "e", "delivery_id": "d", "event_type": "person.lost", "timestamp": 1.5, "data": {}}'
    headers = signature_headers(SECRET, body, 1_700_000_000)
    assert headers["X-InvisPose-Signature"] == "t=1700000000,v1=" + openssl_hmac(
        SECRET, b"1700000000." + body
    )
    assert headers["X-Signature"] == "sha256=" + openssl_hmac(SECRET, body)
    assert headers["X-Timestamp"] == "1700000000"
