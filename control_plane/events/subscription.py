"""An event subscription: where to send which events, and how (Event Grid's filter names).

Pure: the rules a subscription must follow and the filter it applies; `rows.py` stores it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from control_plane.errors import ValidationError
from control_plane.specs.validation import validate_name
from control_plane.store.outbox import Event

CLOUDEVENTS = "cloudevents"
EVENTGRID = "eventgrid"
SCHEMAS = (CLOUDEVENTS, EVENTGRID)
MAX_ATTEMPTS = 30  # Event Grid's limit too
DEFAULT_MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Subscription:
    name: str
    endpoint: str  # the receiver's http(s) URL
    event_types: tuple[str, ...] = ()  # empty: every type
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    schema: str = CLOUDEVENTS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # Once an event of one of these types is handled the subscription is deleted (a rollout's
    # --webhook ends with its rollout); empty for subscriptions people create.
    final_types: tuple[str, ...] = ()
    created_at: float = 0.0

    def matches(self, event: Event) -> bool:
        return ((not self.event_types or event.type in self.event_types)
                and event.subject.startswith(self.subject_begins_with)
                and event.subject.endswith(self.subject_ends_with))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["event_types"] = list(self.event_types)
        data["final_types"] = list(self.final_types)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscription:
        values = dict(data)
        values["event_types"] = tuple(values.get("event_types") or ())
        values["final_types"] = tuple(values.get("final_types") or ())
        return cls(**values)


def validated(subscription: Subscription) -> Subscription:
    """Raises `ValidationError` naming the rule a subscription breaks; returns it unchanged."""
    validate_name("event subscription", subscription.name)
    check_endpoint(subscription.endpoint)
    if subscription.schema not in SCHEMAS:
        raise ValidationError("event-schema", f"--schema must be one of {', '.join(SCHEMAS)}, "
                              f"got {subscription.schema!r}")
    if not 1 <= subscription.max_attempts <= MAX_ATTEMPTS:
        raise ValidationError("event-max-attempts", f"--max-attempts must be 1..{MAX_ATTEMPTS}, "
                              f"got {subscription.max_attempts}")
    _check_types(subscription.event_types)
    return subscription


def check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("event-endpoint", f"--endpoint must be an http(s) URL, got {url!r}")


def _check_types(types: Sequence[str]) -> None:
    for name in types:
        if not name or name != name.strip() or len(name) > 200:
            raise ValidationError("event-types", f"event type {name!r} is not a type name "
                                  "(e.g. Microsoft.MachineLearningServices.ModelRegistered)")
