"""Autoscaling's tables: the desired count of each autoscaled deployment and its decisions.

Every decision commits in one transaction with the new desired count and its outbox event
(`io.scoregate.deployment.scaled`), before any instance is started or drained: after a kill -9
the next `serve` starts from the last count decided. The deployment guard
`refuse_fixed_count` turns away an `instance_count` change of an autoscaled deployment, saying
what to change instead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from control_plane.autoscaling.policy import Decision
from control_plane.errors import ValidationError
from control_plane.specs.resources import DeploymentSpec
from control_plane.store import outbox
from control_plane.store.change_events import deployment_subject
from control_plane.store.extension import Migration, StoreExtension
from control_plane.store.sqlite_store import committed_deployments

FEATURE = "autoscaling"
SCALED = outbox.SCOREGATE + "deployment.scaled"
KEPT_DECISIONS = 50  # per deployment; older ones are pruned (the outbox keeps its own log)
_V1 = """
CREATE TABLE IF NOT EXISTS autoscaling (
    endpoint TEXT NOT NULL, deployment TEXT NOT NULL, desired INTEGER NOT NULL,
    last_scale_out REAL, last_change REAL NOT NULL, PRIMARY KEY (endpoint, deployment));
CREATE TABLE IF NOT EXISTS scaling_decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL, deployment TEXT NOT NULL,
    at REAL NOT NULL, utilization REAL, average_in_flight REAL NOT NULL, old INTEGER NOT NULL,
    new INTEGER NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scaling_decisions_deployment
    ON scaling_decisions (endpoint, deployment, seq);
"""


@dataclass(frozen=True)
class Recorded:
    """A decision as stored and shown (`show`'s scale_status.decisions)."""

    at: float
    decision: Decision

    def to_dict(self) -> dict[str, object]:
        d = self.decision
        return {"time": _rfc3339(self.at), "utilization_percentage": _rounded(d.utilization),
                "average_in_flight": round(d.average_in_flight, 3), "old_instances": d.old,
                "new_instances": d.new, "reason": d.reason, "message": d.message}


@dataclass(frozen=True)
class Stored:
    desired: int
    last_scale_out: float | None
    last_change: float
    decisions: tuple[Recorded, ...]  # oldest first


def record(conn: sqlite3.Connection, endpoint: str, deployment: str, at: float,
           decision: Decision, last_scale_out: float | None) -> Recorded:
    """The new desired count, the decision and its event, in the caller's transaction."""
    conn.execute(
        "INSERT INTO autoscaling (endpoint, deployment, desired, last_scale_out, last_change) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint, deployment) DO UPDATE SET "
        "desired = excluded.desired, last_scale_out = excluded.last_scale_out, "
        "last_change = excluded.last_change",
        (endpoint, deployment, decision.new, last_scale_out, at))
    conn.execute(
        "INSERT INTO scaling_decisions (endpoint, deployment, at, utilization, "
        "average_in_flight, old, new, reason, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (endpoint, deployment, at, decision.utilization, decision.average_in_flight,
         decision.old, decision.new, decision.reason, decision.message))
    conn.execute(
        "DELETE FROM scaling_decisions WHERE endpoint = ? AND deployment = ? AND seq <= "
        "(SELECT seq FROM scaling_decisions WHERE endpoint = ? AND deployment = ? "
        "ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (endpoint, deployment, endpoint, deployment, KEPT_DECISIONS))
    recorded = Recorded(at, decision)
    outbox.emit(conn, SCALED, deployment_subject(endpoint, deployment),
                {"endpoint": endpoint, "deployment": deployment, **recorded.to_dict()})
    return recorded


def load(conn: sqlite3.Connection) -> dict[str, Stored]:
    """Every deployment's stored state, keyed `endpoint/name`."""
    decisions: dict[str, list[Recorded]] = {}
    for row in conn.execute("SELECT endpoint, deployment, at, utilization, average_in_flight, "
                            "old, new, reason, message FROM scaling_decisions ORDER BY seq"):
        decision = Decision(row[5], row[6], row[7], row[3], row[4], row[8])
        decisions.setdefault(f"{row[0]}/{row[1]}", []).append(Recorded(row[2], decision))
    return {f"{row[0]}/{row[1]}": Stored(row[2], row[3], row[4],
                                          tuple(decisions.get(f"{row[0]}/{row[1]}", ())))
            for row in conn.execute("SELECT endpoint, deployment, desired, last_scale_out, "
                                    "last_change FROM autoscaling")}


def forget(conn: sqlite3.Connection, endpoint: str, deployment: str) -> None:
    """A deployment no longer autoscaled (or deleted): a new one of that name starts afresh."""
    for table in ("autoscaling", "scaling_decisions"):
        conn.execute(f"DELETE FROM {table} WHERE endpoint = ? AND deployment = ?",
                     (endpoint, deployment))


def refuse_fixed_count(conn: sqlite3.Connection, changed: Mapping[str, DeploymentSpec]) -> None:
    """`update --set instance_count=N` on an autoscaled deployment: the autoscaler owns its
    count, so say what to change instead."""
    committed = committed_deployments(conn)
    for key, spec in changed.items():
        old = committed.get(key)
        if old is None or old.scale_settings is None or spec.scale_settings is None:
            continue
        if spec.instance_count != old.instance_count:
            scale = old.scale_settings
            raise ValidationError(
                "autoscaled-instance-count",
                f"deployment {spec.name} of endpoint {spec.endpoint_name} is autoscaled "
                f"(scale_settings.type: target_utilization, min_instances "
                f"{scale.min_instances}, max_instances {scale.max_instances}): its instance "
                "count follows load, so instance_count cannot be set. Change the bounds "
                "instead (--set scale_settings.min_instances=N / --set "
                "scale_settings.max_instances=N), or fix the count with --set "
                "scale_settings.type=default --set instance_count=N")


def _rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


STORE_EXTENSION = StoreExtension(FEATURE, (Migration(1, _V1),),
                                 deployment_guards=(refuse_fixed_count,))
