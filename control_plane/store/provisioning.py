"""Provisioning state of a deployment: where its last create, update or delete stands.

Azure ML reports `provisioning_state` on every deployment, and `az ml online-deployment create`
fails when the deployment cannot start. Here the state is stored next to the deployment's row,
in the same transaction as the change that starts an operation, so a server killed while a
deployment was `Creating` finds it so at the next start and decides it again: never stuck.

An operation also remembers what it must do when it ends: `all_traffic` (create
`--all-traffic`, applied only once the deployment is `Succeeded`) and `previous` (the spec that
served before an update, put back when the update fails so the old instances keep serving).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from control_plane.specs.resources import DeploymentSpec

CREATING, UPDATING, SUCCEEDED, FAILED, DELETING = (
    "Creating", "Updating", "Succeeded", "Failed", "Deleting")
IN_PROGRESS = frozenset({CREATING, UPDATING, DELETING})
# What an operation replaces: "create" when nothing of this deployment served before it (so a
# failure leaves nothing running), "update" when a working version serves meanwhile.
CREATE, UPDATE, DELETE = "create", "update", "delete"

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS deployment_status (
    endpoint TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    operation TEXT NOT NULL, all_traffic INTEGER NOT NULL, previous TEXT,
    PRIMARY KEY (endpoint, name));
"""


@dataclass(frozen=True)
class Provisioning:
    """A deployment without a row (stored before this table existed) is `Succeeded`."""

    state: str = SUCCEEDED
    reason: str = ""
    operation: str = CREATE
    all_traffic: bool = False
    previous: DeploymentSpec | None = None

    @property
    def in_progress(self) -> bool:
        return self.state in IN_PROGRESS

    @property
    def runs(self) -> bool:
        """Whether its instances should run: not after a failed create, nor while deleting."""
        if self.state == DELETING:
            return False
        return not (self.state == FAILED and self.operation == CREATE)

    @property
    def can_take_traffic(self) -> bool:
        """Live or mirror traffic may be raised only where a working version serves: not
        while it is still `Creating`, after its create failed, nor while it is deleted."""
        if self.state == SUCCEEDED:
            return True
        return self.operation == UPDATE and self.state in (UPDATING, FAILED)


def read_all(conn: sqlite3.Connection) -> dict[str, Provisioning]:
    rows = conn.execute("SELECT endpoint, name, state, reason, operation, all_traffic, previous "
                        "FROM deployment_status")
    return {f"{endpoint}/{name}": _from_row(state, reason, operation, all_traffic, previous)
            for endpoint, name, state, reason, operation, all_traffic, previous in rows}


def write_changes(conn: sqlite3.Connection, before: Mapping[str, Provisioning],
                  after: Mapping[str, Provisioning]) -> None:
    for key in before.keys() - after.keys():
        conn.execute("DELETE FROM deployment_status WHERE endpoint = ? AND name = ?",
                     tuple(key.split("/", 1)))
    for key, status in _changed(before, after):
        endpoint, name = key.split("/", 1)
        previous = json.dumps(status.previous.to_dict()) if status.previous else None
        conn.execute("INSERT OR REPLACE INTO deployment_status VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (endpoint, name, status.state, status.reason, status.operation,
                      int(status.all_traffic), previous))


def _changed(before: Mapping[str, Provisioning],
             after: Mapping[str, Provisioning]) -> Iterator[tuple[str, Provisioning]]:
    return ((key, status) for key, status in after.items() if before.get(key) != status)


def _from_row(state: str, reason: str, operation: str, all_traffic: int,
              previous: str | None) -> Provisioning:
    spec = DeploymentSpec.from_dict(json.loads(previous)) if previous else None
    return Provisioning(state, reason, operation, bool(all_traffic), spec)
