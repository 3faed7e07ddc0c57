"""What a delivery sends: the envelope around the hub's event JSON, and the headers that sign it.

The body is ``{"id", "delivery_id", "event_type", "timestamp", "data"}``: ``id``, ``event_type`` and
``timestamp`` are the event's id, dotted type and time, ``delivery_id`` identifies this event's delivery
to this webhook (the same on every retry and replay: receivers deduplicate on it), and ``data`` is the
event exactly as the hub encoded it once for every output (the ``Event`` schema). The event is never
serialized a second time; only the envelope's own four fields are.

Signatures are HMAC-SHA256 with the webhook's secret, over the exact bytes sent:

- ``X-InvisPose-Signature: t=<unix seconds>,v1=<hex>`` signs ``<t>.<body>``, so a receiver can refuse
  replays older than a few minutes (the timestamp cannot be changed without breaking the signature);
- ``X-Signature: sha256=<hex>`` signs the body alone, for simple receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import json

SIGNATURE_HEADER = "X-InvisPose-Signature"
BODY_SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
EVENT_TYPE_HEADER = "X-Event-Type"
DELIVERY_ID_HEADER = "X-Delivery-ID"


def envelope(event_id: str, event_type: str, timestamp: float, delivery_id: str, data: str) -> bytes:
    """The body of one delivery; ``data`` is JSON text already (the hub's encoding of the event)."""
    head = json.dumps(
        {"id": event_id, "delivery_id": delivery_id, "event_type": event_type, "timestamp": timestamp}
    )
    return f'{head[:-1]}, "data": {data}}}'.encode()


def signature_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    key = secret.encode()
    signed = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    plain = hmac.new(key, body, hashlib.sha256).hexdigest()
    return {
        SIGNATURE_HEADER: f"t={timestamp},v1={signed}",
        BODY_SIGNATURE_HEADER: f"sha256={plain}",
        TIMESTAMP_HEADER: str(timestamp),
    }
