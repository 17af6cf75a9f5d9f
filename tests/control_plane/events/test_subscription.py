"""A subscription's rules and the secret it is created with."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import Conflict, NotFound, ScoregateError, ValidationError
from control_plane.events import STORE_EXTENSION as EVENTS
from control_plane.events import EventSubscriptions, Subscription, parse_age, subscription_view
from control_plane.store.sqlite_store import Store

URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def service(tmp_path: Path) -> EventSubscriptions:
    return EventSubscriptions(Store(tmp_path / "home", (EVENTS,)))


@pytest.mark.parametrize(("fields", "rule"), [
    ({"name": "x"}, "name"),
    ({"endpoint": "ftp://host/x"}, "event-endpoint"),
    ({"endpoint": "http://"}, "event-endpoint"),
    ({"schema": "xml"}, "event-schema"),
    ({"max_attempts": 0}, "event-max-attempts"),
    ({"max_attempts": 31}, "event-max-attempts"),
    ({"event_types": ("",)}, "event-types"),
])
def test_wrong_subscriptions_are_refused_naming_the_rule(
        service: EventSubscriptions, fields: dict[str, object], rule: str) -> None:
    values: dict[str, object] = {"name": "hook-one", "endpoint": URL, **fields}
    with pytest.raises(ValidationError) as caught:
        service.create(Subscription(**values))  # type: ignore[arg-type]
    assert caught.value.rule == rule


def test_secret_is_generated_or_given_and_shown_only_at_create(
        service: EventSubscriptions) -> None:
    made = service.create(Subscription("hook-one", URL))
    assert len(made.secret) >= 32
    assert "secret" in subscription_view(made, secret=True)
    assert "secret" not in subscription_view(service.show("hook-one"))
    given = service.create(Subscription("hook-two", URL), secret="s" * 16)
    assert given.secret == "s" * 16
    with pytest.raises(ValidationError, match="at least 16"):
        service.create(Subscription("hook-three", URL), secret="short")


def test_names_are_unique_and_unknown_ones_are_404(service: EventSubscriptions) -> None:
    service.create(Subscription("hook-one", URL))
    with pytest.raises(Conflict):
        service.create(Subscription("hook-one", URL))
    with pytest.raises(NotFound, match="hook-one"):
        service.show("hook-nine")
    service.delete("hook-one")
    assert service.every() == []


def test_ages() -> None:
    assert [parse_age(t) for t in ("90s", "30m", "2h", "7d", "15")] == [
        90, 1800, 7200, 604800, 15]
    with pytest.raises(ValidationError):
        parse_age("soon")


def test_since_takes_ages_and_times() -> None:
    from control_plane.admin.events import parse_since

    now = 1_800_000_000.0
    assert parse_since("2h", now) == now - 7200
    assert parse_since("2026-11-27T17:00:00Z", now) == parse_since("2026-11-27T17:00:00", now)
    assert parse_since("2026-11-27T18:00:00+01:00", now) == parse_since(
        "2026-11-27T17:00:00Z", now)
    assert parse_since(None, now) is None
    with pytest.raises(ScoregateError):
        parse_since("yesterday", now)
