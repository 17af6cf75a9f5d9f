"""The transactional outbox: every state change worth reacting to, as a row of `events`.

A writer calls `emit(conn, type, subject, data)` inside its own write transaction, so the
event commits with the change or not at all: it is never lost, and never recorded for a change
that rolled back. Delivering events to subscribers is a feature's job (`control_plane/events`);
the store only keeps the log, knowing no feature.

`seq` is an AUTOINCREMENT key, so it only grows, never repeats (not even after pruning), and
is the one order of the log: a subscriber's cursor is the last `seq` it has delivered.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from control_plane.errors import ScoregateError

AZURE_ML = "Microsoft.MachineLearningServices."
SCOREGATE = "io.scoregate."

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    subject TEXT NOT NULL, time TEXT NOT NULL, created REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_created ON events (created)
"""


@dataclass(frozen=True)
class Event:
    seq: int
    id: str
    type: str
    subject: str
    time: str  # RFC 3339, UTC, milliseconds, with a Z
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "type": self.type, "subject": self.subject,
                "time": self.time, "data": dict(self.data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        return cls(int(data["seq"]), str(data["id"]), str(data["type"]), str(data["subject"]),
                   str(data["time"]), dict(data["data"]))


def emit(conn: sqlite3.Connection, type: str, subject: str, data: Mapping[str, Any]) -> Event:
    """Record an event inside the caller's open write transaction (it commits with it)."""
    if not conn.in_transaction:
        raise ScoregateError(f"event {type} emitted outside a write transaction; it would "
                             "commit apart from the change it reports")
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    body = json.dumps(dict(data), sort_keys=True)
    cursor = conn.execute(
        "INSERT INTO events (id, type, subject, time, created, data) VALUES (?, ?, ?, ?, ?, ?)",
        (event_id, type, subject, _rfc3339(now), now.timestamp(), body))
    return Event(int(cursor.lastrowid or 0), event_id, type, subject, _rfc3339(now), dict(data))


def after(conn: sqlite3.Connection, seq: int, limit: int = 100) -> list[Event]:
    """The events committed after `seq`, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                        (seq, limit))
    return [_event(row) for row in rows]


def listing(conn: sqlite3.Connection, since: float | None = None,
            types: Sequence[str] = (), limit: int = 1000) -> list[Event]:
    """The newest `limit` events (created at or after `since`, of one of `types` when given),
    oldest first."""
    where: list[str] = ["1"]
    args: list[float | str] = []
    if since is not None:
        where.append("created >= ?")
        args.append(since)
    if types:
        where.append(f"type IN ({', '.join('?' * len(types))})")
        args.extend(types)
    query = (f"SELECT * FROM (SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} "
             "ORDER BY seq DESC LIMIT ?) ORDER BY seq")
    return [_event(row) for row in conn.execute(query, (*args, limit))]


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest `seq` ever given (pruned events included), 0 for none."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return int(row[0]) if row else 0


def prune(conn: sqlite3.Connection, older_than: float, keep: int, up_to_seq: int) -> int:
    """Delete events created before `older_than` or beyond the newest `keep`, but none after
    `up_to_seq` (those a subscriber still has to deliver); returns how many went."""
    row = conn.execute("SELECT seq FROM events ORDER BY seq DESC LIMIT 1 OFFSET ?",
                       (max(keep, 0),)).fetchone()
    beyond_count = int(row[0]) if row else 0
    cursor = conn.execute("DELETE FROM events WHERE seq <= ? AND (created < ? OR seq <= ?)",
                          (up_to_seq, older_than, beyond_count))
    return cursor.rowcount


_COLUMNS = "seq, id, type, subject, time, data"


def _event(row: tuple[Any, ...]) -> Event:
    seq, event_id, type_, subject, time, data = row
    return Event(int(seq), str(event_id), str(type_), str(subject), str(time), json.loads(data))


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
