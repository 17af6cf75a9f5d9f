"""The `rollouts` table: one JSON row per rollout, read and written inside the store's
transactions (so a rollout's state and the traffic it set always commit together).

A partial unique index keeps at most one running or paused rollout per endpoint, and
`refuse_manual_change` is how the store turns away traffic and mirror edits during one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from control_plane.errors import Conflict
from control_plane.specs.resources import EndpointSpec
from control_plane.specs.rollout import RUNNING, STEP_BAKING, Rollout
from control_plane.store.extension import Migration, StoreExtension

FEATURE = "rollouts"
_V1 = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL,
    created REAL NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS rollouts_one_active ON rollouts (endpoint)
    WHERE state IN ('running', 'paused');
"""
# Rolling updates' progress (rolling.py): one JSON row per deployment, its last update's.
_V2 = """
CREATE TABLE IF NOT EXISTS rolling_updates (
    endpoint TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (endpoint, name));
"""
_ACTIVE = "state IN ('running', 'paused')"


def save(conn: sqlite3.Connection, rollout: Rollout) -> None:
    """Insert or update by id; a second active rollout of the endpoint breaks the unique index
    (callers check `active` first, in the same transaction, to say so in words)."""
    conn.execute(
        "INSERT INTO rollouts (id, endpoint, state, body, created) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body",
        (rollout.id, rollout.endpoint, rollout.state, json.dumps(rollout.to_dict()),
         rollout.created_at))


def active(conn: sqlite3.Connection, endpoint: str | None = None) -> list[Rollout]:
    query = f"SELECT body FROM rollouts WHERE {_ACTIVE}"
    args: tuple[str, ...] = ()
    if endpoint is not None:
        query, args = query + " AND endpoint = ?", (endpoint,)
    return [Rollout.from_dict(json.loads(row[0])) for row in conn.execute(query, args)]


def baking_on(conn: sqlite3.Connection, endpoint: str, deployment: str) -> bool:
    """Whether a running rollout of `endpoint` bakes a step that `deployment` serves in (the
    target or a deployment it is compared with): autoscaling holds scale-ins meanwhile, so
    the bake window judges the capacity it started with."""
    for rollout in active(conn, endpoint):
        step = rollout.step
        if rollout.state == RUNNING and step.status == STEP_BAKING and deployment in {
                rollout.target, *step.traffic, *step.mirror, *rollout.start_traffic}:
            return True
    return False


def latest(conn: sqlite3.Connection, endpoint: str) -> Rollout | None:
    row = conn.execute("SELECT body FROM rollouts WHERE endpoint = ? ORDER BY created DESC, "
                       "rowid DESC LIMIT 1", (endpoint,)).fetchone()
    return Rollout.from_dict(json.loads(row[0])) if row else None


def refuse_manual_change(conn: sqlite3.Connection, before: Mapping[str, EndpointSpec],
                         after: Mapping[str, EndpointSpec], writer: str | None) -> None:
    """A change to live or mirror traffic (or deleting the endpoint) of an endpoint with a
    running or paused rollout is refused, naming the rollout; 0% entries do not count. The
    rollout engine's own writes pass."""
    if writer == FEATURE:
        return
    for name, old in before.items():
        new = after.get(name)
        if new is not None and _live(old) == _live(new):
            continue
        for rollout in active(conn, name):
            raise Conflict(
                f"endpoint {name} has rollout {rollout.id} of {rollout.target} {rollout.state}; "
                f"its traffic and mirror settings change only through the rollout (`scoregate "
                f"online-endpoint rollout abort|promote --name {name}`)")


def _live(spec: EndpointSpec) -> tuple[dict[str, int], dict[str, int]]:
    return ({k: v for k, v in spec.traffic.items() if v},
            {k: v for k, v in spec.mirror_traffic.items() if v})



STORE_EXTENSION = StoreExtension(FEATURE, (Migration(1, _V1), Migration(2, _V2)),
                                 guards=(refuse_manual_change,))
