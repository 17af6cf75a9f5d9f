"""The events feature's tables: subscriptions with their delivery cursor and secret, and the
dead letters (events a subscription gave up on), read and written in the store's transactions.

A subscription's `cursor` is the `seq` of the last outbox event it has handled (delivered,
dead-lettered or filtered out); it starts at the outbox's last `seq` when the subscription is
created, so a subscription gets the events committed after it, as Event Grid does. The
cursor moves only after a receiver answered 2xx (or the event was dead-lettered), in its own
transaction: a crash in between delivers that event again (at-least-once), never skips it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from control_plane.errors import Conflict, NotFound
from control_plane.events.subscription import Subscription
from control_plane.store import outbox
from control_plane.store.extension import Migration, StoreExtension

FEATURE = "events"
_V1 = """
CREATE TABLE IF NOT EXISTS event_subscriptions (
    name TEXT PRIMARY KEY, body TEXT NOT NULL, secret TEXT NOT NULL,
    cursor INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS event_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, subscription TEXT NOT NULL, seq INTEGER NOT NULL,
    event TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT NOT NULL, at REAL NOT NULL,
    replay INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS event_dead_letters_by_subscription
    ON event_dead_letters (subscription, id)
"""


@dataclass(frozen=True)
class Stored:
    subscription: Subscription
    secret: str
    cursor: int


@dataclass(frozen=True)
class DeadLetter:
    id: int
    subscription: str
    event: outbox.Event
    attempts: int
    error: str
    at: float
    replay: bool

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "subscription": self.subscription, "seq": self.event.seq,
                "event_id": self.event.id, "type": self.event.type,
                "subject": self.event.subject, "attempts": self.attempts, "error": self.error,
                "dead_lettered_at": self.at, "replay_pending": self.replay,
                "event": self.event.to_dict()}


def create(conn: sqlite3.Connection, subscription: Subscription, secret: str) -> Stored:
    if get(conn, subscription.name) is not None:
        raise Conflict(f"event subscription {subscription.name} exists; delete it first")
    cursor = outbox.last_seq(conn)
    conn.execute("INSERT INTO event_subscriptions (name, body, secret, cursor, created) "
                 "VALUES (?, ?, ?, ?, ?)", (subscription.name, json.dumps(subscription.to_dict()),
                                            secret, cursor, subscription.created_at))
    return Stored(subscription, secret, cursor)


def get(conn: sqlite3.Connection, name: str) -> Stored | None:
    row = conn.execute("SELECT body, secret, cursor FROM event_subscriptions WHERE name = ?",
                       (name,)).fetchone()
    return None if row is None else _stored(row)


def require(conn: sqlite3.Connection, name: str) -> Stored:
    found = get(conn, name)
    if found is None:
        names = ", ".join(every_name(conn)) or "none"
        raise NotFound(f"event subscription {name} not found (subscriptions: {names})")
    return found


def everything(conn: sqlite3.Connection) -> list[Stored]:
    rows = conn.execute("SELECT body, secret, cursor FROM event_subscriptions ORDER BY name")
    return [_stored(row) for row in rows]


def every_name(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT name FROM event_subscriptions ORDER BY name")]


def delete(conn: sqlite3.Connection, name: str) -> None:
    require(conn, name)
    conn.execute("DELETE FROM event_subscriptions WHERE name = ?", (name,))
    conn.execute("DELETE FROM event_dead_letters WHERE subscription = ?", (name,))


def advance(conn: sqlite3.Connection, name: str, seq: int) -> None:
    """Never moves a cursor back (a replayed or re-read event may be older than it)."""
    conn.execute("UPDATE event_subscriptions SET cursor = max(cursor, ?) WHERE name = ?",
                 (seq, name))


def slowest_cursor(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(cursor) FROM event_subscriptions").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def dead_letter(conn: sqlite3.Connection, name: str, event: outbox.Event, attempts: int,
                error: str) -> None:
    conn.execute("INSERT INTO event_dead_letters (subscription, seq, event, attempts, error, at)"
                 " VALUES (?, ?, ?, ?, ?, ?)", (name, event.seq, json.dumps(event.to_dict()),
                                                attempts, error, time.time()))


def dead_letters(conn: sqlite3.Connection, name: str, replay_only: bool = False,
                 limit: int = 1000) -> list[DeadLetter]:
    where = "subscription = ?" + (" AND replay = 1" if replay_only else "")
    rows = conn.execute("SELECT id, subscription, event, attempts, error, at, replay FROM "
                        f"event_dead_letters WHERE {where} ORDER BY id LIMIT ?", (name, limit))
    return [DeadLetter(int(i), str(s), outbox.Event.from_dict(json.loads(e)), int(a), str(err),
                       float(at), bool(r)) for i, s, e, a, err, at, r in rows]


def mark_replay(conn: sqlite3.Connection, name: str, ids: tuple[int, ...] = ()) -> int:
    """Queue dead letters (all of the subscription's, or those ids) to be sent again."""
    query = "UPDATE event_dead_letters SET replay = 1 WHERE subscription = ?"
    args: tuple[object, ...] = (name,)
    if ids:
        query += f" AND id IN ({', '.join('?' * len(ids))})"
        args += ids
    return conn.execute(query, args).rowcount


def replayed(conn: sqlite3.Connection, letter_id: int, delivered: bool, attempts: int,
             error: str) -> None:
    """A replay was delivered (the dead letter goes) or failed again (it stays, unqueued)."""
    if delivered:
        conn.execute("DELETE FROM event_dead_letters WHERE id = ?", (letter_id,))
    else:
        conn.execute("UPDATE event_dead_letters SET replay = 0, attempts = attempts + ?, "
                     "error = ?, at = ? WHERE id = ?", (attempts, error, time.time(), letter_id))


def prune_dead_letters(conn: sqlite3.Connection, keep: int) -> int:
    """At most `keep` dead letters per subscription, the newest."""
    return conn.execute(
        "DELETE FROM event_dead_letters WHERE id IN (SELECT id FROM (SELECT id, row_number() "
        "OVER (PARTITION BY subscription ORDER BY id DESC) AS n FROM event_dead_letters) "
        "WHERE n > ?)", (keep,)).rowcount


def _stored(row: tuple[str, str, int]) -> Stored:
    body, secret, cursor = row
    return Stored(Subscription.from_dict(json.loads(body)), str(secret), int(cursor))


STORE_EXTENSION = StoreExtension(FEATURE, (Migration(1, _V1),))
