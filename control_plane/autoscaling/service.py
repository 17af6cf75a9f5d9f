"""The scaler: samples each autoscaled deployment's demand, decides, records, then acts.

One loop for all deployments. Every `tick_s` it samples the data plane's own count of
requests in flight (and waiting for a first instance) per deployment, in memory, no metrics
scrape; once a deployment's `polling_interval` has passed it averages the samples and asks
`policy.decide`. A request waiting for a deployment scaled to zero is acted on at the next
tick. A decision is committed first (`rows.record`: count, decision, outbox event, one
transaction), then logged, put in the metrics, and carried out through `scale` (the runtime:
supervisor, which drains removed instances before stopping them, then a new snapshot).

The runtime calls `track` with the deployments that run after every change, and reads
`desired` back when it hands them to the supervisor, so a restart or an unrelated change keeps
the decided count.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import structlog

from control_plane.autoscaling import rows
from control_plane.autoscaling.policy import (
    SCALE_IN,
    Decision,
    History,
    Measurement,
    bounded,
    cold_start,
    decide,
)
from control_plane.specs.resources import DeploymentSpec, ScaleSettings
from control_plane.store.sqlite_store import Store
from control_plane.tasks import cancel_and_wait
from gateway import count_scaling_decision, set_desired_instances

log = structlog.get_logger("scoregate.autoscaling")

TICK_S = 0.1  # how often demand is sampled
SHOWN_DECISIONS = 10  # the last decisions in `show`

Demand = Callable[[str, str], int]  # (endpoint, deployment) → requests in flight and waiting
Ready = Callable[[str], int]  # "endpoint/name" → ready instances
Scale = Callable[[str, int], Awaitable[object]]  # "endpoint/name", count → done
Baking = Callable[[str, str], bool]  # a rollout step bakes on it now (a blocking store read)


@dataclass
class _Tracked:
    spec: DeploymentSpec
    desired: int
    history: History
    window_started: float
    demand_sum: int = 0  # the samples of the current polling interval
    samples: int = 0
    decisions: deque[rows.Recorded] = field(default_factory=lambda: deque(maxlen=SHOWN_DECISIONS))
    held: str = ""  # why a scale-in waits now, shown once in the log

    @property
    def scale(self) -> ScaleSettings:
        assert self.spec.scale_settings is not None
        return self.spec.scale_settings


class Autoscaler:
    def __init__(self, store: Store, demand: Demand, ready: Ready, scale: Scale,
                 baking: Baking, *, tick_s: float = TICK_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._demand = demand
        self._ready = ready
        self._scale = scale
        self._baking = baking
        self._tick_s = tick_s
        self._clock = clock
        self._stored: dict[str, rows.Stored] = {}
        self._tracked: dict[str, _Tracked] = {}
        self._task: asyncio.Task[None] | None = None

    def recover(self) -> None:
        """Read the stored counts (blocking; once, before the first `track`)."""
        self._stored = self._store.feature_read(rows.load)

    # --- what the runtime calls ------------------------------------------------------------

    def track(self, running: Mapping[str, DeploymentSpec]) -> None:
        """The deployments that run now; those autoscaled are followed from here on."""
        now = self._clock()
        for key in [k for k in self._tracked if k not in running
                    or running[k].scale_settings is None]:
            del self._tracked[key]
            self._forget_later(key)
        for key, spec in running.items():
            if spec.scale_settings is None:
                continue
            tracked = self._tracked.get(key)
            if tracked is not None:
                tracked.spec = spec
                continue
            self._tracked[key] = self._first(key, spec, now)

    def desired(self, key: str) -> int | None:
        """The count to run for `key` (within its current bounds), None if not autoscaled."""
        tracked = self._tracked.get(key)
        return None if tracked is None else bounded(tracked.desired, tracked.scale)

    def status(self, key: str) -> dict[str, Any] | None:
        """`show`'s scale_status: the desired count and the last decisions, newest last."""
        tracked = self._tracked.get(key)
        if tracked is None:
            return None
        status: dict[str, Any] = {"desired_instances": bounded(tracked.desired, tracked.scale),
                                  "decisions": [r.to_dict() for r in tracked.decisions]}
        if tracked.held:
            status["scale_in_held"] = tracked.held
        return status

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="autoscaler")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    # --- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            for key, tracked in list(self._tracked.items()):
                try:
                    await self._tick(key, tracked)
                except Exception:  # one deployment's failure must not stop the others
                    log.exception("autoscaling failed", deployment=key)

    async def _tick(self, key: str, tracked: _Tracked) -> None:
        endpoint, name = key.split("/", 1)
        demand = self._demand(endpoint, name)
        tracked.demand_sum += demand
        tracked.samples += 1
        now = self._clock()
        if tracked.desired == 0 and demand > 0:
            return await self._carry_out(key, tracked, cold_start(tracked.scale, demand), now)
        if now - tracked.window_started < tracked.scale.polling_interval:
            return
        measured = Measurement(tracked.demand_sum / tracked.samples, self._ready(key),
                               tracked.spec.request_settings.max_concurrent_requests_per_instance)
        tracked.demand_sum = tracked.samples = 0
        tracked.window_started = now
        decision = decide(tracked.scale, tracked.desired, measured, tracked.history, now)
        if decision is not None and decision.reason == SCALE_IN:
            baking = await anyio.to_thread.run_sync(self._baking, endpoint, name)
            if baking:
                return self._hold(key, tracked, "a rollout step is baking on this deployment")
        tracked.held = ""
        if decision is not None:
            await self._carry_out(key, tracked, decision, now)

    async def _carry_out(self, key: str, tracked: _Tracked, decision: Decision,
                         now: float) -> None:
        endpoint, name = key.split("/", 1)
        last_out = now if decision.new > decision.old else tracked.history.last_scale_out

        def write(conn: Any) -> rows.Recorded:
            return rows.record(conn, endpoint, name, now, decision, last_out)

        recorded = await anyio.to_thread.run_sync(self._store.feature_write, write)
        if self._tracked.get(key) is not tracked:  # deleted, or no longer autoscaled, meanwhile
            self._forget_later(key)
            return
        tracked.desired = decision.new
        tracked.history = History(last_out, now)
        tracked.decisions.append(recorded)
        set_desired_instances(endpoint, name, decision.new)
        count_scaling_decision(endpoint, name, decision.reason)
        log.info(f"deployment scaled: {decision.message}", endpoint=endpoint, deployment=name,
                 old_instances=decision.old, new_instances=decision.new, reason=decision.reason,
                 utilization_percentage=recorded.to_dict()["utilization_percentage"])
        await self._scale(key, decision.new)

    def _hold(self, key: str, tracked: _Tracked, why: str) -> None:
        if tracked.held != why:
            log.info(f"scale-in held: {why}", deployment=key)
        tracked.held = why

    def _first(self, key: str, spec: DeploymentSpec, now: float) -> _Tracked:
        stored = self._stored.pop(key, None)
        endpoint, name = key.split("/", 1)
        if stored is None:
            tracked = _Tracked(spec, spec.instance_count, History(None, now), now)
        else:  # no measurement spans a restart: a full scale_in_cooldown before a scale-in
            tracked = _Tracked(spec, stored.desired, History(stored.last_scale_out, now), now)
            tracked.decisions.extend(stored.decisions)
        set_desired_instances(endpoint, name, bounded(tracked.desired, tracked.scale))
        return tracked

    def _forget_later(self, key: str) -> None:
        endpoint, name = key.split("/", 1)

        def forget() -> None:
            self._store.feature_write(lambda conn: rows.forget(conn, endpoint, name))

        def logged(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("could not forget the autoscaling state", deployment=key,
                          error=repr(done.exception()))

        asyncio.get_running_loop().run_in_executor(None, forget).add_done_callback(logged)
