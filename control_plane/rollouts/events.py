"""How a rollout's steps and verdicts become visible: an event in the outbox, a log line,
metrics.

Every event (started, step, paused, resumed, rolled_back, promoted, aborted) is recorded in
the store's outbox (`io.scoregate.rollout.<kind>`, subject `endpoints/E/rollouts/ID`) inside
the transaction of the transition it reports, so it is delivered to subscribers exactly when
the transition committed. After the commit it is also one structlog line and updates the
rollout gauges, so Grafana can annotate it. A rollout's `--webhook URL` is an event
subscription to that rollout's subject, created in the start's own transaction by the
`WebhookSubscriber` that `serve` wires in (the events feature): delivery, order and retries
are the event dispatcher's (docs/events.md).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Any, Protocol

import structlog
from prometheus_client import Counter, Gauge

from control_plane.errors import ScoregateError
from control_plane.specs.rollout import STATES, SUCCEEDED, Rollout, Verdict
from control_plane.store import outbox

EVENT_TYPE_PREFIX = outbox.SCOREGATE + "rollout."
KINDS = ("started", "step", "paused", "resumed", "rolled_back", "promoted", "aborted")
FINAL_KINDS = ("rolled_back", "promoted", "aborted")
WEBHOOK_ATTEMPTS = 5

# In the process-wide default registry, like gateway/telemetry/metrics.py: served at /metrics.
STEP_PERCENT = Gauge("scoregate_rollout_step_percent",
                     "Live traffic percent a rollout gives its target deployment now.",
                     ("endpoint", "deployment"))
VERDICTS = Counter("scoregate_rollout_verdicts", "Rollout guardrail verdicts.",
                   ("endpoint", "deployment", "verdict"))
STATE = Gauge("scoregate_rollout_state", "1 for the state of the endpoint's latest rollout.",
              ("endpoint", "state"))


class WebhookSubscriber(Protocol):
    """Creates, inside the caller's write transaction, a subscription that delivers the
    events whose subject begins with `subject_begins_with` to `url`, and that ends once it
    has handled an event of one of `final_types` (the events feature implements it)."""

    def __call__(self, conn: sqlite3.Connection, *, name: str, url: str,
                 subject_begins_with: str, final_types: tuple[str, ...],
                 max_attempts: int) -> None: ...


def subject(rollout: Rollout) -> str:
    return f"endpoints/{rollout.endpoint}/rollouts/{rollout.id}"


def event_data(rollout: Rollout, verdict: Verdict | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "rollout": rollout.id, "endpoint": rollout.endpoint, "target": rollout.target,
        "state": rollout.state, "step": rollout.current + 1, "steps": len(rollout.steps),
        "percent": rollout.step.percent, "phase": rollout.step.phase, "reason": rollout.reason}
    if verdict is not None:
        data["verdict"] = asdict(verdict)
    return data


def target_percent(rollout: Rollout) -> int:
    if rollout.state == SUCCEEDED:
        return 100
    if not rollout.active:
        return rollout.start_traffic.get(rollout.target, 0)
    step = rollout.step
    return step.traffic.get(rollout.target, 0) if step.started_at is not None else 0


class RolloutEvents:
    def __init__(self, subscriber: WebhookSubscriber | None = None) -> None:
        self._subscriber = subscriber
        self._log = structlog.get_logger("scoregate.rollout")

    def record(self, conn: sqlite3.Connection, kind: str, rollout: Rollout,
               verdict: Verdict | None = None) -> None:
        """Inside the transition's transaction: the event joins the outbox."""
        outbox.emit(conn, EVENT_TYPE_PREFIX + kind, subject(rollout), event_data(rollout, verdict))

    def subscribe_webhook(self, conn: sqlite3.Connection, rollout: Rollout) -> None:
        """Inside the start's transaction, before its `started` event: the rollout's webhook
        becomes a subscription to its subject, gone after its final event."""
        if not rollout.webhook:
            return
        if self._subscriber is None:
            raise ScoregateError("this server delivers no events, so a rollout --webhook "
                                 "cannot be sent")
        self._subscriber(conn, name=f"rollout-{rollout.id}", url=rollout.webhook,
                         subject_begins_with=subject(rollout),
                         final_types=tuple(EVENT_TYPE_PREFIX + k for k in FINAL_KINDS),
                         max_attempts=WEBHOOK_ATTEMPTS)

    def observed(self, kind: str, rollout: Rollout, verdict: Verdict | None = None) -> None:
        """After the commit: the log line and the metrics."""
        if verdict is not None:
            VERDICTS.labels(rollout.endpoint, rollout.target, verdict.outcome).inc()
        STEP_PERCENT.labels(rollout.endpoint, rollout.target).set(target_percent(rollout))
        for state in STATES:
            STATE.labels(rollout.endpoint, state).set(1 if state == rollout.state else 0)
        self._log.info(f"rollout {kind}", rollout=rollout.id, endpoint=rollout.endpoint,
                       target=rollout.target, state=rollout.state, step=rollout.current + 1,
                       phase=rollout.step.phase, percent=rollout.step.percent,
                       outcome=verdict.outcome if verdict else None,
                       message=verdict.message if verdict else rollout.reason or None)
