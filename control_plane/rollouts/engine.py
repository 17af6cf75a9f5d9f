"""The rollout state machine: bake a step, judge it, then advance, promote or roll back.

One asyncio task ("driver") per running rollout. Every transition is one store transaction
that saves the rollout's row together with the traffic and mirror settings it implies, and
is then published (`apply_change`), so a crash at any point leaves a state the rollout can
resume from: after a restart it bakes its current step again with a fresh window, or rolls
back when its target is gone. Transitions and operator commands of one endpoint take the
same lock, so a command never interleaves with a verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio.to_thread
import structlog

from control_plane.errors import Conflict, NotFound, ScoregateError, ValidationError
from control_plane.rollouts import rows as rollout_rows
from control_plane.rollouts.events import RolloutEvents
from control_plane.rollouts.judge import Window, judge
from control_plane.rollouts.plan import check_request, plan_steps, promoted, stable_weights
from control_plane.rollouts.window import (
    ComparisonReader,
    WindowSample,
    read_comparisons,
    read_sample,
)
from control_plane.specs.resources import EndpointSpec
from control_plane.specs.rollout import (
    ABORTED,
    PASSED,
    PAUSED,
    PHASE_MIRROR,
    ROLLED_BACK,
    RUNNING,
    STEP_BAKING,
    SUCCEEDED,
    TOO_FEW,
    TRIPPED,
    Rollout,
    RolloutRequest,
    Verdict,
)
from control_plane.store.sqlite_store import Store
from control_plane.tasks import cancel_and_wait
from gateway import ROLE_LIVE, ROLE_MIRROR

T = TypeVar("T")
Percents = Mapping[str, int]
Transition = Callable[[Rollout, EndpointSpec], tuple[Rollout, Percents | None, Percents | None]]
Kinds = Callable[[Rollout], Sequence[tuple[str, Verdict | None]]]
"""The events a transition records (kind, verdict), given the rollout after it."""
_log = structlog.get_logger("scoregate.rollout")
READY_WAIT_S = 300.0  # how long a window waits for its deployments' instances to be ready
READY_POLL_S = 0.1


@dataclass(frozen=True)
class Reading:
    target: WindowSample
    stable: WindowSample
    comparisons: Mapping[str, int] | None
    at: float  # monotonic seconds

    def since(self, start: Reading) -> tuple[float, WindowSample, WindowSample,
                                             dict[str, int] | None]:
        comparisons = None
        if self.comparisons is not None and start.comparisons is not None:
            comparisons = {k: v - start.comparisons.get(k, 0) for k, v in self.comparisons.items()}
        return (self.at - start.at, self.target - start.target, self.stable - start.stable,
                comparisons)


class RolloutEngine:
    def __init__(self, store: Store, apply_change: Callable[[], Awaitable[int]],
                 events: RolloutEvents, comparisons: ComparisonReader | None = None,
                 metrics_enabled: bool = True,
                 serving: Callable[[str, str], bool] | None = None) -> None:
        self.store = store
        self._serving = serving
        self._apply_change = apply_change
        self.events = events
        self._comparisons = comparisons
        self._metrics_enabled = metrics_enabled
        self._locks: dict[str, asyncio.Lock] = {}
        self._drivers: dict[str, asyncio.Task[None]] = {}

    # --- reads ---------------------------------------------------------------------------

    async def show(self, endpoint: str) -> Rollout:
        rollout: Rollout | None = await self._thread(
            self.store.feature_read, functools.partial(rollout_rows.latest, endpoint=endpoint))
        if rollout is None:
            await self._thread(self.store.endpoint, endpoint)  # 404 for an unknown endpoint
            raise NotFound(f"endpoint {endpoint} has had no rollout")
        return rollout

    # --- operator commands -----------------------------------------------------------------

    async def start(self, request: RolloutRequest) -> Rollout:
        check_request(request)
        if not self._metrics_enabled:
            raise ScoregateError("rollouts judge the gateway's own metrics, and this server "
                                 "runs with --no-metrics")
        if request.guardrails.min_agreement is not None and self._comparisons is None:
            raise ValidationError("rollout-agreement", "--min-agreement needs the gateway's "
                                  "shadow comparison, which this server does not have")
        endpoint = request.endpoint
        async with self._lock(endpoint):
            started: list[Rollout] = []

            def save(conn: sqlite3.Connection, spec: EndpointSpec) -> tuple[Percents, Percents]:
                for running in rollout_rows.active(conn, endpoint):
                    raise Conflict(f"endpoint {endpoint} already has rollout {running.id} of "
                                   f"{running.target} {running.state}; abort or promote it first")
                rollout = _new_rollout(request, spec)
                rollout_rows.save(conn, rollout)
                self.events.subscribe_webhook(conn, rollout)
                self.events.record(conn, "started", rollout)
                started.append(rollout)
                return rollout.step.traffic, rollout.step.mirror

            await self._thread(self.store.feature_traffic_write, rollout_rows.FEATURE, endpoint,
                               save)
            rollout = started[0]
            await self._apply_change()
            self.events.observed("started", rollout)
            self._drive(rollout)
            return rollout

    async def pause(self, endpoint: str) -> Rollout:
        def change(r: Rollout, spec: EndpointSpec) -> tuple[Rollout, None, None]:
            _require(r, RUNNING, "pause")
            return replace(r, state=PAUSED, reason="paused by the operator"), None, None

        return await self._command(endpoint, change, "paused")

    async def resume(self, endpoint: str) -> Rollout:
        def change(r: Rollout, spec: EndpointSpec) -> tuple[Rollout, None, None]:
            _require(r, PAUSED, "resume")
            return _rebake(replace(r, state=RUNNING, reason="")), None, None

        return await self._command(endpoint, change, "resumed")

    async def promote(self, endpoint: str) -> Rollout:
        def change(r: Rollout, spec: EndpointSpec) -> tuple[Rollout, Percents, Percents]:
            return _promoted(r, "promoted by the operator")

        return await self._command(endpoint, change, "promoted")

    async def abort(self, endpoint: str) -> Rollout:
        def change(r: Rollout, spec: EndpointSpec) -> tuple[Rollout, Percents, Percents]:
            return _ended(r, ABORTED, "aborted by the operator")

        return await self._command(endpoint, change, "aborted")

    # --- lifecycle -------------------------------------------------------------------------

    async def resume_all(self) -> list[Rollout]:
        """At start: carry on every rollout that was running when the server stopped, with a
        fresh bake window, or roll it back when its window can no longer be judged."""
        found = await self._thread(self.store.feature_read, rollout_rows.active)
        resumed = []
        for rollout in found:
            names = {record.spec.name for record in
                     (await self._thread(self.store.deployments, rollout.endpoint)).values()}

            def change(r: Rollout, spec: EndpointSpec, names: set[str] = names) -> tuple[
                    Rollout, Any, Any]:
                if r.target not in names:
                    return _ended(r, ROLLED_BACK, f"rolled back after a restart: deployment "
                                  f"{r.target} is gone, so the step cannot be judged")
                if r.state == RUNNING:
                    return _rebake(replace(r, reason="resumed after a restart")), None, None
                return r, None, None

            kind = "resumed" if rollout.state == RUNNING else "paused"
            resumed.append(await self._command(rollout.endpoint, change, kind,
                                               functools.partial(_restart_kinds, kind)))
        return resumed

    async def close(self) -> None:
        await cancel_and_wait(*self._drivers.values())

    # --- the driver ----------------------------------------------------------------------

    def _drive(self, rollout: Rollout) -> None:
        if rollout.state == RUNNING:
            task = asyncio.get_running_loop().create_task(self._run(rollout.endpoint))
            self._drivers[rollout.endpoint] = task

    async def _run(self, endpoint: str) -> None:
        try:
            rollout = await self._active(endpoint)
            while rollout is not None and rollout.state == RUNNING:
                rollout = await self._bake(rollout)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not leave the rollout half-driven: say so, roll back
            _log.exception("rollout driver failed; rolling back", endpoint=endpoint)
            with contextlib.suppress(Exception):
                await self._fail(endpoint)

    async def _bake(self, rollout: Rollout) -> Rollout | None:
        """Bake the current step (extending its window while too few requests came in);
        returns the rollout after the transition its verdict led to."""
        await self._until_serving(rollout)
        start = self._reading(rollout)
        extensions = 0
        while True:
            await asyncio.sleep(rollout.step.bake_s)
            async with self._lock(rollout.endpoint):
                current = await self._active(rollout.endpoint)
                if current is None or current.id != rollout.id or current.state != RUNNING:
                    return None
                seconds, target, stable, comparisons = self._reading(current).since(start)
                window = Window(seconds, target, stable, comparisons,
                                current.step.phase == PHASE_MIRROR)
                verdict = judge(current.guardrails, window, time.time())
                wait = (verdict.outcome == TOO_FEW and current.guardrails.on_too_few == "wait"
                        and extensions < current.guardrails.max_extensions)
                after = await self._verdict(current, verdict, wait)
            if not wait:
                return after
            extensions += 1
            rollout = after

    async def _until_serving(self, rollout: Rollout) -> None:
        """A window opens only once the target and the deployments it is compared with have a
        ready instance in the published snapshot: after a restart their instances start again,
        and the 503s of that gap are the server's, not the new version's, so judging them could
        roll a healthy rollout back. Bounded: past `READY_WAIT_S` the window opens anyway and
        the guardrails judge what they see."""
        if self._serving is None:
            return
        names = [rollout.target, *(n for n, p in rollout.start_traffic.items() if p > 0)]
        deadline = time.monotonic() + READY_WAIT_S
        while not all(self._serving(rollout.endpoint, name) for name in names):
            if time.monotonic() >= deadline:
                _log.warning("rollout window opens before its deployments are ready",
                             endpoint=rollout.endpoint, deployments=names)
                return
            await asyncio.sleep(READY_POLL_S)

    async def _verdict(self, rollout: Rollout, verdict: Verdict, wait: bool) -> Rollout:
        index = rollout.current
        verdicts = rollout.step.verdicts + (verdict,)

        def change(r: Rollout, spec: EndpointSpec) -> tuple[Rollout, Any, Any]:
            r = r.with_step(index, verdicts=verdicts,
                            status=STEP_BAKING if wait else verdict.outcome)
            if wait:
                return r, None, None
            if verdict.outcome != PASSED:
                why = verdict.message if verdict.outcome == TRIPPED else (
                    f"{verdict.message} after {len(verdicts)} windows")
                return _ended(r, ROLLED_BACK, f"rolled back at step {index + 1} "
                              f"({_where(r)}): {why}")
            if index + 1 == len(r.steps):
                return _promoted(r, "every step passed")
            nxt = replace(r, current=index + 1)
            nxt = nxt.with_step(index + 1, status=STEP_BAKING, started_at=time.time())
            return nxt, nxt.step.traffic, nxt.step.mirror

        def kinds(after: Rollout) -> list[tuple[str, Verdict | None]]:
            found: list[tuple[str, Verdict | None]] = [("step", verdict)]
            if not after.active:
                found.append(("promoted" if after.state == SUCCEEDED else "rolled_back", None))
            return found

        return await self._transition(rollout.endpoint, change, kinds)

    def _reading(self, rollout: Rollout) -> Reading:
        endpoint, step = rollout.endpoint, rollout.step
        role = ROLE_MIRROR if step.phase == PHASE_MIRROR else ROLE_LIVE
        comparisons = None
        if step.phase == PHASE_MIRROR:
            comparisons = read_comparisons(self._comparisons, endpoint, rollout.target)
        return Reading(read_sample(endpoint, [rollout.target], role),
                       read_sample(endpoint, stable_weights(rollout.start_traffic,
                                                            rollout.target), ROLE_LIVE),
                       comparisons, time.monotonic())

    async def _fail(self, endpoint: str) -> None:
        def change(r: Rollout, spec: EndpointSpec) -> tuple[Rollout, Any, Any]:
            return _ended(r, ROLLED_BACK, "rolled back: the rollout driver failed (see the log)")

        async with self._lock(endpoint):
            await self._transition(endpoint, change, lambda r: [("rolled_back", None)])

    # --- transitions -----------------------------------------------------------------------

    async def _command(self, endpoint: str, change: Transition, kind: str,
                       kinds: Kinds | None = None) -> Rollout:
        async with self._lock(endpoint):
            await self._stop_driver(endpoint)
            try:
                after = await self._transition(endpoint, change,
                                               kinds or (lambda r: [(kind, None)]))
            except BaseException:
                still = await self._active(endpoint)  # refused: the driver carries on
                if still is not None:
                    self._drive(still)
                raise
            self._drive(after)
            return after

    async def _transition(self, endpoint: str, change: Transition, kinds: Kinds) -> Rollout:
        """Read the active rollout, change it and its traffic in one transaction that also
        records its events (the outbox), publish, then log them."""
        result: list[Rollout] = []
        recorded: list[tuple[str, Verdict | None]] = []

        def save(conn: sqlite3.Connection, spec: EndpointSpec) -> tuple[Any, Any]:
            found = rollout_rows.active(conn, endpoint)
            if not found:
                latest = rollout_rows.latest(conn, endpoint)
                if latest is None:
                    raise NotFound(f"endpoint {endpoint} has no rollout")
                raise Conflict(f"rollout {latest.id} of endpoint {endpoint} has already "
                               f"ended: {latest.state}")
            rollout, traffic, mirror = change(found[0], spec)
            rollout = replace(rollout, updated_at=time.time())
            rollout_rows.save(conn, rollout)
            recorded[:] = kinds(rollout)
            for kind, verdict in recorded:
                self.events.record(conn, kind, rollout, verdict)
            result.append(rollout)
            return _nonzero(traffic), _nonzero(mirror)

        await self._thread(self.store.feature_traffic_write, rollout_rows.FEATURE, endpoint, save)
        await self._apply_change()
        for kind, verdict in recorded:
            self.events.observed(kind, result[0], verdict)
        return result[0]

    async def _active(self, endpoint: str) -> Rollout | None:
        found = await self._thread(self.store.feature_read,
                                   functools.partial(rollout_rows.active, endpoint=endpoint))
        return found[0] if found else None

    async def _stop_driver(self, endpoint: str) -> None:
        task = self._drivers.pop(endpoint, None)
        if task is not None and task is not asyncio.current_task():
            await cancel_and_wait(task)

    def _lock(self, endpoint: str) -> asyncio.Lock:
        return self._locks.setdefault(endpoint, asyncio.Lock())

    async def _thread(self, call: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(call, *args))


def _new_rollout(request: RolloutRequest, spec: EndpointSpec) -> Rollout:
    if request.target not in spec.traffic:
        raise NotFound(f"deployment {request.target} not found in endpoint {spec.name}")
    if not stable_weights(spec.traffic, request.target):
        raise ValidationError("rollout-no-stable", f"endpoint {spec.name} has no deployment "
                              f"other than {request.target} with live traffic to shift from")
    steps = plan_steps(request, spec.traffic, spec.mirror_traffic)
    now = time.time()
    rollout = Rollout(
        id=uuid.uuid4().hex[:12], endpoint=spec.name, target=request.target,
        strategy=request.strategy if not request.steps else "steps", state=RUNNING, current=0,
        steps=steps, start_traffic=dict(spec.traffic), start_mirror=dict(spec.mirror_traffic),
        guardrails=request.guardrails, webhook=request.webhook, created_at=now, updated_at=now)
    return rollout.with_step(0, status=STEP_BAKING, started_at=now)


def _restart_kinds(kind: str, rollout: Rollout) -> list[tuple[str, Verdict | None]]:
    return [("rolled_back" if rollout.state == ROLLED_BACK else kind, None)]


def _rebake(rollout: Rollout) -> Rollout:
    """The current step again, with a fresh window (its earlier verdicts stay on record)."""
    return rollout.with_step(rollout.current, status=STEP_BAKING, started_at=time.time())


def _ended(rollout: Rollout, state: str, reason: str) -> tuple[Rollout, Percents, Percents]:
    """Back to exactly the traffic and mirror the rollout started from, in one step."""
    ended = replace(rollout, state=state, reason=reason, finished_at=time.time())
    return ended, rollout.start_traffic, rollout.start_mirror


def _promoted(rollout: Rollout, reason: str) -> tuple[Rollout, Percents, Percents]:
    traffic, mirror = promoted(rollout.start_traffic, rollout.start_mirror, rollout.target)
    done = replace(rollout, state=SUCCEEDED, reason=reason, finished_at=time.time())
    return done, traffic, mirror


def _require(rollout: Rollout, state: str, verb: str) -> None:
    if rollout.state != state:
        raise Conflict(f"cannot {verb} rollout {rollout.id} of endpoint {rollout.endpoint}: "
                       f"it is {rollout.state}")


def _where(rollout: Rollout) -> str:
    step = rollout.step
    return f"{rollout.target} {step.percent}% {'mirror' if step.phase == PHASE_MIRROR else 'live'}"


def _nonzero(percents: Percents | None) -> dict[str, int] | None:
    """Entries at 0 are left out (the store gives every deployment left out 0), so a
    deployment deleted meanwhile never makes a rollback invalid."""
    return None if percents is None else {k: v for k, v in percents.items() if v > 0}
