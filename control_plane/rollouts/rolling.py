"""Rolling updates: replace a deployment's instances a batch at a time (docs/rolling-updates.md).

An update that changes what runs (model, code, environment, variables) no longer starts every
new instance at once: `plan` cuts it into batches from `rolling_update.max_surge` and
`max_unavailable`, the runtime lets the supervisor start one batch (`instances.Batch`), waits
for it to be ready, bakes it and judges its instances against the old ones with the rollouts'
own guardrails (`judge.judge` over `window.WindowSample`s, read per instance from the gateway's
`instance_counts`), and only then starts the next. Progress is a row per deployment in the
rollouts feature's tables (`rows.py`: `rolling_updates`), written at every step, so a restart
knows an update was mid-way.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from control_plane.rollouts.judge import Window, judge
from control_plane.rollouts.window import ERROR_CODES, WindowSample
from control_plane.specs.resources import RollingUpdate
from control_plane.specs.rollout import Guardrails, Verdict
from control_plane.specs.validation import rolling_counts
from gateway import InstanceRoute, instance_counts

ROLLING, BAKING, SUCCEEDED, ROLLED_BACK = "rolling", "baking", "succeeded", "rolled_back"


@dataclass(frozen=True)
class Plan:
    """`targets[i]`: how many new instances run once batch i + 1 is done (the last is
    `instance_count`); `unavailable`: how far below `instance_count` a batch may go."""

    targets: tuple[int, ...]
    unavailable: int


@dataclass(frozen=True)
class Progress:
    """Where the rolling update started at `etag` (the deployment's ETag after the update)
    stands; `batch` counts from 1."""

    etag: str
    batch: int
    batches: int
    state: str
    new_instances: int
    message: str = ""
    updated_at: float = 0.0

    def to_view(self) -> dict[str, object]:
        """What `show` and the CLI print (the ETag is internal)."""
        return {"batch": self.batch, "batches": self.batches, "state": self.state,
                "new_instances": self.new_instances, "message": self.message}


def plan(instance_count: int, update: RollingUpdate) -> Plan:
    """Batches of `max_surge + max_unavailable` new instances (Kubernetes' arithmetic)."""
    surge, unavailable = rolling_counts(update, instance_count)
    step = max(1, surge + unavailable)
    targets = tuple(min(instance_count, step * i)
                    for i in range(1, -(-instance_count // step) + 1))
    return Plan(targets, unavailable)


def save(conn: sqlite3.Connection, endpoint: str, name: str, progress: Progress) -> None:
    body = json.dumps(asdict(progress))
    conn.execute("INSERT OR REPLACE INTO rolling_updates VALUES (?, ?, ?)", (endpoint, name, body))


def load(conn: sqlite3.Connection, endpoint: str, name: str) -> Progress | None:
    row = conn.execute("SELECT body FROM rolling_updates WHERE endpoint = ? AND name = ?",
                       (endpoint, name)).fetchone()
    return Progress(**json.loads(row[0])) if row else None


def step(progress: Progress | None, **changes: object) -> Progress:
    """`progress` with `changes`, stamped now."""
    data = {**(asdict(progress) if progress else {}), **changes, "updated_at": time.time()}
    return Progress(**data)


def read_instances(routes: Iterable[InstanceRoute]) -> WindowSample:
    """The cumulative counts of these instances, read now from the gateway's tallies."""
    total = WindowSample()
    for route in routes:
        counts = instance_counts(route.url)
        errors = sum(n for status, n in counts.by_status.items()
                     if status >= 500 or status in ERROR_CODES)
        total = total + WindowSample(counts.requests, errors, counts.latency_buckets)
    return total


def judge_batch(update: RollingUpdate, seconds: float, new: WindowSample,
                old: WindowSample) -> Verdict:
    """The rollouts' verdict on one batch's bake window: the new instances as the target, the
    old ones as the stable side of the latency factor."""
    guards = Guardrails(max_error_rate=update.max_error_rate,
                        max_latency_factor=update.max_latency_factor,
                        min_requests=update.min_requests)
    return judge(guards, Window(seconds, new, old), time.time())
