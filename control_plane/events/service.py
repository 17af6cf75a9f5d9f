"""`EventSubscriptions`: create, list, show and delete subscriptions, list and replay their
dead letters (what the admin API and `scoregate event-subscription` use). Blocking store
calls: callers on an event loop run them in a thread.
"""

from __future__ import annotations

import dataclasses
import secrets as random_secrets
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from control_plane.errors import ValidationError
from control_plane.events import rows
from control_plane.events.subscription import Subscription, check_endpoint, validated
from control_plane.store.sqlite_store import Store

MIN_SECRET_CHARS = 16


class EventSubscriptions:
    """`on_change` is told (from the writing thread) when subscriptions are created or
    deleted: `serve` points it at `Dispatcher.subscriptions_changed`."""

    def __init__(self, store: Store, on_change: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._on_change = on_change

    def create(self, subscription: Subscription, secret: str | None = None) -> rows.Stored:
        """Stores it with its delivery cursor at the newest event; the answer is the only
        place the secret is shown."""
        if secret is not None and len(secret) < MIN_SECRET_CHARS:
            raise ValidationError("event-secret", f"--secret must have at least "
                                  f"{MIN_SECRET_CHARS} characters")
        sub = validated(dataclasses.replace(subscription, created_at=time.time()))
        key = secret or random_secrets.token_urlsafe(32)
        created = self._store.feature_write(lambda conn: rows.create(conn, sub, key))
        self._on_change()
        return created

    def every(self) -> list[rows.Stored]:
        return self._store.feature_read(rows.everything)

    def show(self, name: str) -> rows.Stored:
        return self._store.feature_read(lambda conn: rows.require(conn, name))

    def delete(self, name: str) -> None:
        self._store.feature_write(lambda conn: rows.delete(conn, name))
        self._on_change()

    def dead_letters(self, name: str) -> list[rows.DeadLetter]:
        def read(conn: sqlite3.Connection) -> list[rows.DeadLetter]:
            rows.require(conn, name)
            return rows.dead_letters(conn, name)

        return self._store.feature_read(read)

    def replay(self, name: str, ids: tuple[int, ...] = ()) -> int:
        """Queues the dead letters (all, or those ids) to be delivered again, before the
        subscription's next new event; returns how many were queued."""
        def write(conn: sqlite3.Connection) -> int:
            rows.require(conn, name)
            return rows.mark_replay(conn, name, ids)

        return self._store.feature_write(write)

    def subscribe_in(self, conn: sqlite3.Connection, *, name: str, url: str,
                     subject_begins_with: str, final_types: tuple[str, ...],
                     max_attempts: int) -> None:
        """A rollout's --webhook (rollouts.events.WebhookSubscriber), inside the caller's
        transaction."""
        check_endpoint(url)
        sub = Subscription(name=name, endpoint=url, subject_begins_with=subject_begins_with,
                           final_types=final_types, max_attempts=max_attempts,
                           created_at=time.time())
        rows.create(conn, validated(sub), random_secrets.token_urlsafe(32))
        self._on_change()  # the dispatcher's read of it waits for this transaction's commit


def subscription_view(stored: rows.Stored, secret: bool = False) -> dict[str, Any]:
    """What `show` gives; the secret only in the answer to `create`."""
    view = {**stored.subscription.to_dict(), "cursor": stored.cursor}
    if secret:
        view["secret"] = stored.secret
    return view
