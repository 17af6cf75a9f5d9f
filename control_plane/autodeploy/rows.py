"""The auto-deploy tables: one policy per endpoint, one JSON row per run, and the cursor of
the outbox events already turned into runs.

A run's row is written in the same transaction as the events of its stage (the outbox), and
the cursor moves in the same transaction as the runs an event queued, so a crash never loses
a registered version nor queues one twice. A partial unique index keeps at most one running
run per endpoint.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from control_plane.errors import NotFound
from control_plane.specs.autodeploy import QUEUED, RUNNING, Policy, Run
from control_plane.specs.resources import EndpointSpec
from control_plane.store.extension import Migration, StoreExtension

FEATURE = "autodeploy"
_V1 = """
CREATE TABLE IF NOT EXISTS autodeploy_policies (
    endpoint TEXT PRIMARY KEY, model TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS autodeploy_runs (
    id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL,
    created REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS autodeploy_one_running ON autodeploy_runs (endpoint)
    WHERE state = 'running';
CREATE TABLE IF NOT EXISTS autodeploy_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
"""


def save_policy(conn: sqlite3.Connection, policy: Policy) -> None:
    conn.execute("INSERT INTO autodeploy_policies (endpoint, model, body) VALUES (?, ?, ?) "
                 "ON CONFLICT (endpoint) DO UPDATE SET model = excluded.model, "
                 "body = excluded.body",
                 (policy.endpoint, policy.model, json.dumps(policy.to_dict())))


def policy(conn: sqlite3.Connection, endpoint: str) -> Policy | None:
    row = conn.execute("SELECT body FROM autodeploy_policies WHERE endpoint = ?",
                       (endpoint,)).fetchone()
    return Policy.from_dict(json.loads(row[0])) if row else None


def require_policy(conn: sqlite3.Connection, endpoint: str) -> Policy:
    found = policy(conn, endpoint)
    if found is None:
        raise NotFound(f"endpoint {endpoint} has no auto-deploy policy (set one with "
                       f"`scoregate online-endpoint auto-deploy set --name {endpoint} ...`)")
    return found


def policies_for(conn: sqlite3.Connection, model: str) -> list[Policy]:
    rows = conn.execute("SELECT body FROM autodeploy_policies WHERE model = ? ORDER BY endpoint",
                        (model,))
    return [Policy.from_dict(json.loads(row[0])) for row in rows]


def delete_policy(conn: sqlite3.Connection, endpoint: str) -> bool:
    return conn.execute("DELETE FROM autodeploy_policies WHERE endpoint = ?",
                        (endpoint,)).rowcount > 0


def save_run(conn: sqlite3.Connection, run: Run) -> None:
    conn.execute(
        "INSERT INTO autodeploy_runs (id, endpoint, state, body, created) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
        (run.id, run.endpoint, run.state, json.dumps(run.to_dict()), run.created_at))


def run(conn: sqlite3.Connection, run_id: str) -> Run | None:
    row = conn.execute("SELECT body FROM autodeploy_runs WHERE id = ?", (run_id,)).fetchone()
    return Run.from_dict(json.loads(row[0])) if row else None


def runs(conn: sqlite3.Connection, endpoint: str, limit: int = 20) -> list[Run]:
    """The newest `limit` runs of the endpoint, newest first."""
    rows = conn.execute("SELECT body FROM autodeploy_runs WHERE endpoint = ? "
                        "ORDER BY created DESC, rowid DESC LIMIT ?", (endpoint, limit))
    return [Run.from_dict(json.loads(row[0])) for row in rows]


def in_state(conn: sqlite3.Connection, state: str, endpoint: str | None = None) -> list[Run]:
    """Runs in `state`, oldest first."""
    query, args = "SELECT body FROM autodeploy_runs WHERE state = ?", [state]
    if endpoint is not None:
        query += " AND endpoint = ?"
        args.append(endpoint)
    rows = conn.execute(query + " ORDER BY created, rowid", args)
    return [Run.from_dict(json.loads(row[0])) for row in rows]


def active_endpoints(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT DISTINCT endpoint FROM autodeploy_runs WHERE state IN (?, ?) "
                        "ORDER BY endpoint", (QUEUED, RUNNING))
    return [str(row[0]) for row in rows]


def cursor(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT seq FROM autodeploy_cursor WHERE id = 1").fetchone()
    return int(row[0]) if row else None


def move_cursor(conn: sqlite3.Connection, seq: int) -> None:
    conn.execute("INSERT INTO autodeploy_cursor (id, seq) VALUES (1, ?) "
                 "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq", (seq,))


def drop_policy_with_endpoint(conn: sqlite3.Connection, before: Mapping[str, EndpointSpec],
                              after: Mapping[str, EndpointSpec], writer: str | None) -> None:
    """A deleted endpoint takes its policy along (in the delete's own transaction), so an
    endpoint created again under the same name does not inherit it."""
    for name in before.keys() - after.keys():
        delete_policy(conn, name)


STORE_EXTENSION = StoreExtension(FEATURE, (Migration(1, _V1),),
                                 guards=(drop_policy_with_endpoint,))
