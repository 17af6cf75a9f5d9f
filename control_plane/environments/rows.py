"""The `environments` table: one JSON row per registered environment version, read and
written inside the store's transactions (`Store.feature_read` / `feature_write`).

`seq` records the order versions were registered in; version numbers given by the store are
one more than the highest numeric version of that name.
"""

from __future__ import annotations

import json
import sqlite3

from control_plane.environments.registered import RegisteredEnvironment
from control_plane.store.extension import Migration, StoreExtension

FEATURE = "environments"
_V1 = """
CREATE TABLE IF NOT EXISTS environments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version TEXT NOT NULL,
    archived INTEGER NOT NULL, body TEXT NOT NULL, UNIQUE (name, version));
"""


def insert(conn: sqlite3.Connection, environment: RegisteredEnvironment) -> None:
    """Breaks the unique index if the version exists (callers check `get` first, in the same
    transaction, to say so in words)."""
    conn.execute("INSERT INTO environments (name, version, archived, body) VALUES (?, ?, ?, ?)",
                 (environment.name, environment.version, int(environment.archived),
                  json.dumps(environment.to_dict())))


def update(conn: sqlite3.Connection, environment: RegisteredEnvironment) -> None:
    conn.execute("UPDATE environments SET archived = ?, body = ? WHERE name = ? AND version = ?",
                 (int(environment.archived), json.dumps(environment.to_dict()),
                  environment.name, environment.version))


def get(conn: sqlite3.Connection, name: str, version: str) -> RegisteredEnvironment | None:
    row = conn.execute("SELECT body FROM environments WHERE name = ? AND version = ?",
                       (name, version)).fetchone()
    return RegisteredEnvironment.from_dict(json.loads(row[0])) if row else None


def versions(conn: sqlite3.Connection, name: str | None = None) -> list[RegisteredEnvironment]:
    """In registration order (every name, or one)."""
    query, args = "SELECT body FROM environments", tuple[str, ...]()
    if name is not None:
        query, args = query + " WHERE name = ?", (name,)
    rows = conn.execute(query + " ORDER BY seq", args)
    return [RegisteredEnvironment.from_dict(json.loads(row[0])) for row in rows]


STORE_EXTENSION = StoreExtension(FEATURE, (Migration(1, _V1),))
