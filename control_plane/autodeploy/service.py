"""`AutoDeploy`: the policies (set, show, disable) and the loop that turns registered model
versions into runs.

The registry records `ModelRegistered` in the outbox in the same transaction as the version,
so nothing is missed: a watcher task, woken by the store's commit hook (with a slow poll as a
fallback), reads the events after its cursor and, in one transaction, queues a run for every
policy of that model and moves the cursor. One driver task per endpoint takes the queued runs
one at a time; a version registered while a run is active waits, and only the newest waiting
one runs (the ones it overtook end `skipped`, with an event). At start, runs left `running` by
a stop or a crash carry on from their stored stage (`Pipeline.advance`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import anyio.to_thread
import structlog

from control_plane.autodeploy import rows
from control_plane.autodeploy.pipeline import (
    ModelBinder,
    Pipeline,
    Platform,
    Rollouts,
    candidate_name,
    record,
)
from control_plane.errors import NotFound, ScoregateError
from control_plane.specs.autodeploy import (
    CREATING,
    QUEUED,
    RUNNING,
    SKIPPED,
    Policy,
    Run,
)
from control_plane.specs.rollout import RolloutRequest
from control_plane.store import outbox
from control_plane.store.sqlite_store import Store
from control_plane.tasks import cancel_and_wait

T = TypeVar("T")
MODEL_REGISTERED = outbox.AZURE_ML + "ModelRegistered"
POLL_S = 5.0  # a fallback: every commit wakes the watcher
BATCH = 1000  # events read per transaction
_log = structlog.get_logger("scoregate.autodeploy")


class AutoDeploy:
    """`check_rollout` refuses bad rollout settings when a policy is set (the rollout
    engine's own check, handed in by `serve`)."""

    def __init__(self, store: Store, platform: Platform, rollouts: Rollouts,
                 models: ModelBinder,
                 check_rollout: Callable[[RolloutRequest], None] = lambda request: None) -> None:
        self.store = store
        self._pipeline = Pipeline(store, platform, rollouts, models)
        self._check_rollout = check_rollout
        self._wake = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._drivers: dict[str, asyncio.Task[None]] = {}

    # --- policies (the admin API) -------------------------------------------------------------

    async def set(self, policy: Policy) -> Policy:
        policy.check()
        self._check_rollout(replace(policy.rollout, endpoint=policy.endpoint, target="-"))

        def write(conn: sqlite3.Connection) -> Policy:
            stored = replace(policy, created_at=time.time(), after_seq=outbox.last_seq(conn))
            rows.save_policy(conn, stored)
            outbox.emit(conn, outbox.SCOREGATE + "autodeploy.policy_set",
                        f"endpoints/{policy.endpoint}/auto-deploy",
                        {"endpoint": policy.endpoint, "modelName": policy.model})
            return stored

        await self._thread(self.store.endpoint, policy.endpoint)  # 404 for an unknown one
        if policy.from_deployment is not None:
            await self._thread(self.store.deployment, policy.endpoint, policy.from_deployment)
        return await self._thread(self.store.feature_write, write)

    async def show(self, endpoint: str) -> dict[str, Any]:
        """The policy (without its rows) and the newest runs, newest first."""
        def read(conn: sqlite3.Connection) -> tuple[Policy | None, list[Run]]:
            return rows.policy(conn, endpoint), rows.runs(conn, endpoint)

        await self._thread(self.store.endpoint, endpoint)
        policy, runs = await self._thread(self.store.feature_read, read)
        if policy is None and not runs:
            raise NotFound(f"endpoint {endpoint} has no auto-deploy policy (set one with "
                           f"`scoregate online-endpoint auto-deploy set --name {endpoint} ...`)")
        return {"endpoint": endpoint, "enabled": policy is not None,
                "policy": None if policy is None else policy.to_dict(rows=False),
                "runs": [run.to_dict() for run in runs]}

    async def policy(self, endpoint: str) -> dict[str, Any] | None:
        """The policy without its rows (for `online-endpoint show`), None when there is none."""
        found = await self._thread(self.store.feature_read,
                                   functools.partial(rows.policy, endpoint=endpoint))
        return None if found is None else found.to_dict(rows=False)

    async def disable(self, endpoint: str) -> dict[str, Any]:
        """Removes the policy; queued versions end `skipped`, a run in progress finishes."""
        def write(conn: sqlite3.Connection) -> int:
            rows.require_policy(conn, endpoint)
            rows.delete_policy(conn, endpoint)
            queued = rows.in_state(conn, QUEUED, endpoint)
            for run in queued:
                _skip(conn, run, "the auto-deploy policy was disabled")
            outbox.emit(conn, outbox.SCOREGATE + "autodeploy.policy_disabled",
                        f"endpoints/{endpoint}/auto-deploy", {"endpoint": endpoint})
            return len(queued)

        skipped = await self._thread(self.store.feature_write, write)
        return {"message": f"auto-deploy disabled for endpoint {endpoint}"
                           + (f"; {skipped} queued version(s) skipped" if skipped else "")}

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Watch the outbox from where the last run left it (from now, the first time) and
        carry on the runs a stop or a crash interrupted."""
        loop = asyncio.get_running_loop()

        def committed() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._wake.set)

        def begin(conn: sqlite3.Connection) -> list[str]:
            if rows.cursor(conn) is None:
                rows.move_cursor(conn, outbox.last_seq(conn))
            return rows.active_endpoints(conn)

        self.store.on_commit(committed)
        for endpoint in await self._thread(self.store.feature_write, begin):
            self._drive(endpoint)
        self._watcher = asyncio.create_task(self._watch(), name="auto-deploy watcher")

    async def close(self) -> None:
        """Runs in progress stay stored at their stage; the next start carries them on."""
        tasks = [*self._drivers.values()] + ([self._watcher] if self._watcher else [])
        await cancel_and_wait(*tasks)

    # --- the watcher: events → queued runs -----------------------------------------------------

    async def _watch(self) -> None:
        while True:
            self._wake.clear()
            try:  # a read first: a write commits, and every commit wakes this loop again
                endpoints, more = [], False
                if await self._thread(self.store.feature_read, _has_new_events):
                    endpoints, more = await self._thread(self.store.feature_write,
                                                         _queue_new_versions)
            except ScoregateError:
                _log.exception("auto-deploy: reading the outbox failed; retrying")
                endpoints, more = [], False
            for endpoint in endpoints:
                self._drive(endpoint)
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    # --- drivers: one run at a time per endpoint -------------------------------------------

    def _drive(self, endpoint: str) -> None:
        task = self._drivers.get(endpoint)
        if task is None or task.done():
            self._drivers[endpoint] = asyncio.create_task(self._run_endpoint(endpoint),
                                                          name=f"auto-deploy {endpoint}")

    async def _run_endpoint(self, endpoint: str) -> None:
        while True:
            run = await self._thread(self.store.feature_write,
                                     functools.partial(_next_run, endpoint=endpoint))
            if run is None:
                return
            try:
                await self._pipeline.advance(run)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug: said, and the run ends so the next can go
                _log.exception("auto-deploy run failed unexpectedly", endpoint=endpoint,
                               run=run.id, error=repr(error))
                await self._pipeline.abandon(run, f"internal error: {error!r} (see the log)")

    async def _thread(self, call: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(functools.partial(call, *args))


def _has_new_events(conn: sqlite3.Connection) -> bool:
    """Whether the outbox has events after the cursor (most commits add none for it)."""
    return bool(outbox.after(conn, rows.cursor(conn) or 0, limit=1))


def _queue_new_versions(conn: sqlite3.Connection) -> tuple[list[str], bool]:
    """Queue a run per policy for each `ModelRegistered` after the cursor (a batch of them);
    move the cursor. Returns the endpoints that got one, and whether more events wait."""
    start = rows.cursor(conn) or 0
    touched: list[str] = []
    batch = outbox.after(conn, start, limit=BATCH)
    for event in batch:
        start = event.seq
        if event.type != MODEL_REGISTERED:
            continue
        name, version = str(event.data.get("modelName")), event.data.get("modelVersion")
        try:
            number = int(str(version))
        except ValueError:
            continue
        for policy in rows.policies_for(conn, name):
            if event.seq > policy.after_seq:
                _enqueue(conn, policy, number, event.seq)
                touched.append(policy.endpoint)
    rows.move_cursor(conn, start)
    return sorted(set(touched)), len(batch) == BATCH


def _enqueue(conn: sqlite3.Connection, policy: Policy, version: int, seq: int) -> None:
    """Newest wins: a queued older version is skipped; a version older than one queued or
    running is recorded as skipped at once."""
    now = time.time()
    run = Run(id=uuid.uuid4().hex[:12], endpoint=policy.endpoint, model=policy.model,
              version=version, state=QUEUED, stage=QUEUED, created_at=now, updated_at=now,
              event_seq=seq, candidate=candidate_name(policy.model, version))
    waiting = rows.in_state(conn, QUEUED, policy.endpoint) + rows.in_state(
        conn, RUNNING, policy.endpoint)
    newer = [other for other in waiting if other.version >= version]
    rows.save_run(conn, run.at_stage(QUEUED, "queued", now))
    if newer:
        _skip(conn, run, f"version {newer[0].version} is already {newer[0].state}")
        return
    record(conn, "queued", run)
    for other in rows.in_state(conn, QUEUED, policy.endpoint):
        if other.id != run.id:
            _skip(conn, other, f"version {version} was registered after it (newest wins)")


def _skip(conn: sqlite3.Connection, run: Run, reason: str) -> None:
    skipped = run.ended(SKIPPED, reason, time.time())
    rows.save_run(conn, skipped)
    record(conn, "skipped", skipped, reason=reason)


def _next_run(conn: sqlite3.Connection, endpoint: str) -> Run | None:
    """The running run (after a restart), else the newest queued one, now running."""
    running = rows.in_state(conn, RUNNING, endpoint)
    if running:
        return running[0]
    queued = rows.in_state(conn, QUEUED, endpoint)
    if not queued:
        return None
    newest = queued[-1]
    for older in queued[:-1]:
        _skip(conn, older, f"version {newest.version} is newer (newest wins)")
    started = replace(newest, state=RUNNING).at_stage(CREATING, f"creating deployment "
                                                      f"{newest.candidate}", time.time())
    rows.save_run(conn, started)
    record(conn, "started", started)
    return started
