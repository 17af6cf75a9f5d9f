"""How a rollout's steps and verdicts become visible: a log line, metrics, a webhook.

Every event (started, step, paused, resumed, rolled_back, promoted, aborted) is one structlog
line and updates the rollout gauges, so Grafana can annotate it. With `--webhook URL` it is
also POSTed as a CloudEvents 1.0 JSON document (structured mode), in order, by one sender
task with retries and backoff; a receiver that stays down never slows the rollout itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from prometheus_client import Counter, Gauge

from control_plane.specs.rollout import STATES, SUCCEEDED, Rollout, Verdict
from control_plane.tasks import cancel_and_wait

EVENT_TYPE_PREFIX = "io.scoregate.rollout."
QUEUE_LIMIT = 1000

# In the process-wide default registry, like gateway/telemetry/metrics.py: served at /metrics.
STEP_PERCENT = Gauge("scoregate_rollout_step_percent",
                     "Live traffic percent a rollout gives its target deployment now.",
                     ("endpoint", "deployment"))
VERDICTS = Counter("scoregate_rollout_verdicts", "Rollout guardrail verdicts.",
                   ("endpoint", "deployment", "verdict"))
STATE = Gauge("scoregate_rollout_state", "1 for the state of the endpoint's latest rollout.",
              ("endpoint", "state"))


@dataclass(frozen=True)
class WebhookPolicy:
    attempts: int = 5
    first_backoff_s: float = 0.5
    timeout_s: float = 5.0


def cloud_event(kind: str, rollout: Rollout, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": EVENT_TYPE_PREFIX + kind,
        "source": f"/scoregate/endpoints/{rollout.endpoint}/rollouts/{rollout.id}",
        "id": str(uuid.uuid4()),
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "subject": rollout.endpoint,
        "datacontenttype": "application/json",
        "data": {"rollout": rollout.id, "endpoint": rollout.endpoint, "target": rollout.target,
                 "state": rollout.state, "step": rollout.current + 1,
                 "steps": len(rollout.steps), "percent": rollout.step.percent,
                 "phase": rollout.step.phase, "reason": rollout.reason, **data},
    }


def target_percent(rollout: Rollout) -> int:
    if rollout.state == SUCCEEDED:
        return 100
    if not rollout.active:
        return rollout.start_traffic.get(rollout.target, 0)
    step = rollout.step
    return step.traffic.get(rollout.target, 0) if step.started_at is not None else 0


class RolloutEvents:
    def __init__(self, policy: WebhookPolicy = WebhookPolicy()) -> None:
        self.policy = policy
        self._log = structlog.get_logger("scoregate.rollout")
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_LIMIT)
        self._sender: asyncio.Task[None] | None = None

    def emit(self, kind: str, rollout: Rollout, verdict: Verdict | None = None) -> None:
        data: dict[str, Any] = {}
        if verdict is not None:
            data["verdict"] = asdict(verdict)
            VERDICTS.labels(rollout.endpoint, rollout.target, verdict.outcome).inc()
        STEP_PERCENT.labels(rollout.endpoint, rollout.target).set(target_percent(rollout))
        for state in STATES:
            STATE.labels(rollout.endpoint, state).set(1 if state == rollout.state else 0)
        self._log.info(f"rollout {kind}", rollout=rollout.id, endpoint=rollout.endpoint,
                       target=rollout.target, state=rollout.state, step=rollout.current + 1,
                       phase=rollout.step.phase, percent=rollout.step.percent,
                       outcome=verdict.outcome if verdict else None,
                       message=verdict.message if verdict else rollout.reason or None)
        if rollout.webhook:
            self._post_later(rollout.webhook, cloud_event(kind, rollout, data))

    def _post_later(self, url: str, event: dict[str, Any]) -> None:
        if self._queue.full():
            self._log.warning("rollout webhook queue full, event dropped", url=url,
                              type=event["type"])
            return
        self._queue.put_nowait((url, event))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        """The one sender: events go out in the order they happened, for as long as it runs."""
        async with httpx.AsyncClient(timeout=self.policy.timeout_s) as client:
            while True:
                url, event = await self._queue.get()
                try:
                    await self._deliver(client, url, event)
                finally:
                    self._queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, url: str, event: dict[str, Any]) -> None:
        backoff = self.policy.first_backoff_s
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = await client.post(url, json=event, headers={
                    "content-type": "application/cloudevents+json"})
                if response.is_success:
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {error}"
            self._log.warning("rollout webhook failed", url=url, type=event["type"],
                              attempt=attempt, error=problem)
            if attempt < self.policy.attempts:
                await asyncio.sleep(backoff)
                backoff *= 2

    async def close(self, timeout_s: float = 5.0) -> None:
        """Give queued events a bounded chance to go out, then stop the sender."""
        sender = self._sender
        if sender is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        await cancel_and_wait(sender)
