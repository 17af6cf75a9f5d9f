"""What a receiver gets: CloudEvents 1.0 JSON in structured mode, or Event Grid's own schema,
with an HMAC-SHA256 signature of the body.

Structured mode puts the whole event in the body (`content-type: application/cloudevents+json`).
Event Grid's schema is a JSON array of events (`eventType`, `eventTime`, `topic`,
`dataVersion`, `metadataVersion`), as Event Grid posts it. Both carry the same `id`, so a
receiver can drop the copies at-least-once delivery may bring.

Signature: `scoregate-signature: sha256=<hex of HMAC-SHA256(secret, body)>`, the secret being
the subscription's (shown once when it was created). A receiver recomputes it over the raw body
and compares in constant time (`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from control_plane.events.subscription import EVENTGRID
from control_plane.store.outbox import Event

SOURCE = "/scoregate"
CLOUDEVENTS_TYPE = "application/cloudevents+json"
SIGNATURE_HEADER = "scoregate-signature"


def cloud_event(event: Event) -> dict[str, Any]:
    return {"specversion": "1.0", "type": event.type, "source": SOURCE, "id": event.id,
            "time": event.time, "subject": event.subject,
            "datacontenttype": "application/json", "data": dict(event.data)}


def event_grid_event(event: Event) -> dict[str, Any]:
    return {"id": event.id, "topic": SOURCE, "subject": event.subject,
            "eventType": event.type, "eventTime": event.time, "data": dict(event.data),
            "dataVersion": "1", "metadataVersion": "1"}


def render(event: Event, schema: str) -> tuple[bytes, str]:
    """The body and its content type."""
    if schema == EVENTGRID:
        return _dumps([event_grid_event(event)]), "application/json"
    return _dumps(cloud_event(event)), CLOUDEVENTS_TYPE


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
