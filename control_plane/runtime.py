"""The running control plane: committed state → instances → published snapshot.

One `Runtime` per `serve`. After each accepted write, `apply_change` hands the committed state
to the supervisor (which starts and stops instances in the background) and publishes at once:
it never waits for an instance, so one slow `init()` holds up no other change and no other
endpoint. A snapshot routes only to ready instances, and the supervisor's readiness changes
republish (`publish` is its `on_change`), so a new deployment gets requests only once an
instance of it is ready.

Deployment operations (create, update, delete) are followed by `provision`, one background
task per deployment: it waits until the wanted version is ready (bounded by the deployment's
own readiness probe settings), its scoring script failed, or its instances stopped (delete),
and records the outcome in the store (`Store.finish_provisioning`): `Succeeded` with the
pending `--all-traffic`, or `Failed` with the reason and the instance log's last lines.

An update that replaces instances rolls batch by batch (`_roll`, docs/rolling-updates.md): the
supervisor gets a `Batch` bound for the deployment, each batch must be ready and pass its bake
before the next, and a failed batch fails the update (the store puts the previous spec back, so
the old instances, which never stopped serving, take the replaced ones' place again). Its
progress is stored before each batch starts; a server that finds one mid-way at its next start
(killed meanwhile: every instance died with it) rolls it back and starts the previous spec.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from control_plane.autodeploy import AutoDeploy
from control_plane.autoscaling import Autoscaler
from control_plane.compile import EndpointKeys, compile_snapshot
from control_plane.environments.deployments import (
    BUILDING,
    READY,
    EnvironmentStatus,
    Prepared,
)
from control_plane.events import EventSubscriptions
from control_plane.home import StateDir
from control_plane.instances.managed import InstanceStatus
from control_plane.instances.supervisor import Batch, Supervisor, replaces_instances
from control_plane.registry import ModelRegistry
from control_plane.rollouts import rolling
from control_plane.rollouts import rows as rollout_rows
from control_plane.rollouts.engine import RolloutEngine
from control_plane.rollouts.window import WindowSample
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.specs.rollout import TRIPPED
from control_plane.store.extension import StoreExtension
from control_plane.store.provisioning import CREATING, DELETING, UPDATING, Provisioning
from control_plane.store.sqlite_store import Record, Store, StoreState
from control_plane.tasks import cancel_and_wait, off_loop
from gateway import (
    AUTH_NONE,
    ComparisonReport,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    SnapshotHolder,
    publish_config,
)

log = logging.getLogger("scoregate.runtime")

STARTUP_SLACK_S = 60.0  # on top of the readiness budget: start the interpreter, import, bind
# (generous: a cold import of numpy and a model library on a busy machine takes tens of seconds)
LOG_TAIL_LINES = 20  # of the instance log, in a failed deployment's reason
_POLL_S = 0.1
_TRIPPED = "guardrails tripped"
_BAKE_TICK_S = 0.5  # how often a bake checks that its update still stands


class Comparing(Protocol):
    """Where shadow comparison reports come from: the scoring app, or the worker fleet."""

    def comparisons(self, endpoint: str, deployment: str) -> ComparisonReport: ...
    def comparison_counts(self, endpoint: str, deployment: str) -> dict[str, int]: ...


class SnapshotFanOut(Protocol):
    """The data-plane workers of `serve --workers N` (control_plane/workers.py)."""

    def publish(self, snapshot: RoutingSnapshot) -> None: ...
    async def applied(self, version: int) -> None: ...


@dataclass(frozen=True)
class AppliedState:
    endpoints: Mapping[str, EndpointSpec] = field(default_factory=dict)
    deployments: Mapping[str, DeploymentSpec] = field(default_factory=dict)
    secrets: Mapping[str, EndpointKeys] = field(default_factory=dict)
    running: Mapping[str, DeploymentSpec] = field(default_factory=dict)  # whose instances run
    batches: Mapping[str, Batch] = field(default_factory=dict)  # rolling updates' bounds


def readiness_budget(spec: DeploymentSpec, slack_s: float = STARTUP_SLACK_S) -> float:
    """How long a create or update waits for the instances to be ready, from the deployment's
    own probe settings as Azure counts them, plus start-up slack."""
    probe = spec.readiness_probe
    return probe.initial_delay + probe.period * probe.failure_threshold + slack_s


def stop_budget(spec: DeploymentSpec, grace_s: float) -> float:
    """How long a delete waits for its instances to drain and stop before removing the row."""
    return spec.request_settings.request_timeout_ms / 1000 + grace_s + 5.0


class DeploymentEnvironments(Protocol):
    """Each deployment's environment, built before its instances start (see
    control_plane/environments/deployments.py; `serve` gives the real one)."""

    def prepare(self, deployments: Mapping[str, DeploymentSpec], build: bool = True,
                known: frozenset[str] | None = None) -> Prepared: ...  # blocking: in a thread

    def status(self, key: str) -> EnvironmentStatus | None: ...

    def build_log(self, key: str, lines: int = 5000,
                  spec: DeploymentSpec | None = None) -> str: ...


class Runtime:
    def __init__(self, state_dir: StateDir, settings: GatewaySettings, admin_token: str,
                 extensions: tuple[StoreExtension, ...] = (), *,
                 startup_slack_s: float = STARTUP_SLACK_S,
                 environments: DeploymentEnvironments | None = None) -> None:
        self.state_dir = state_dir
        self.startup_slack_s = startup_slack_s
        self.settings = settings
        self.store = Store(state_dir.path, extensions)
        self.admin_token = admin_token
        self.scoring_url = ""
        self.scoring_on_loopback = False  # set by attach(): whether --local endpoints open
        self._holder: SnapshotHolder | None = None
        self._supervisor: Supervisor | None = None
        self._applied = AppliedState()
        self._version = 0
        self._lock: asyncio.Lock | None = None
        self._rollouts: RolloutEngine | None = None
        self._models: ModelRegistry | None = None
        self._events: EventSubscriptions | None = None
        self._autodeploy: AutoDeploy | None = None
        self._autoscaler: Autoscaler | None = None
        self._operations: dict[str, asyncio.Task[None]] = {}
        self._generation: dict[str, int] = {}
        # Rolling updates this server drives: key → (the update's ETag, its current batch).
        self._batches: dict[str, tuple[str, Batch]] = {}
        self._progress: dict[str, rolling.Progress] = {}  # the last stored, for `show`
        self._tripped: set[str] = set()  # rolled back by a guardrail: its new instances fail
        self._rolling_rows = rollout_rows.STORE_EXTENSION in extensions
        self.environments = environments
        self._running: dict[str, tuple[DeploymentSpec, Path | None]] = {}  # last reconciled
        self._later: set[asyncio.Task[object]] = set()
        self.scoring_app: Comparing | None = None  # set by attach(); its comparison reports
        self._fleet: SnapshotFanOut | None = None

    def attach(self, *, holder: SnapshotHolder, supervisor: Supervisor, scoring_url: str,
               scoring_app: Comparing | None = None, scoring_on_loopback: bool = False) -> None:
        self.scoring_app = scoring_app
        self.scoring_on_loopback = scoring_on_loopback
        self._holder = holder
        self._supervisor = supervisor
        self.scoring_url = scoring_url
        self._lock = asyncio.Lock()

    def attach_fleet(self, fleet: SnapshotFanOut) -> None:
        """With `serve --workers N`: every snapshot also goes to the workers, and
        `apply_change` returns only once every live worker applied it."""
        self._fleet = fleet

    def attach_rollouts(self, engine: RolloutEngine) -> None:
        """`serve` hands over the engine once the first snapshot is out; until then the admin
        API answers rollout calls with 503."""
        self._rollouts = engine

    @property
    def rollouts(self) -> RolloutEngine | None:
        return self._rollouts
    def attach_models(self, registry: ModelRegistry) -> None:
        """`serve` hands over the registry once `recover()` ran; until then the admin API
        answers model calls with 503."""
        self._models = registry

    @property
    def models(self) -> ModelRegistry | None:
        return self._models

    def attach_events(self, subscriptions: EventSubscriptions) -> None:
        """`serve` hands over the subscriptions once delivery runs; until then the admin API
        answers event-subscription calls with 503."""
        self._events = subscriptions

    @property
    def events(self) -> EventSubscriptions | None:
        return self._events

    def attach_autodeploy(self, autodeploy: AutoDeploy) -> None:
        """`serve` hands over auto-deploy once rollouts run; until then the admin API answers
        auto-deploy calls with 503."""
        self._autodeploy = autodeploy

    @property
    def autodeploy(self) -> AutoDeploy | None:
        return self._autodeploy

    def attach_autoscaler(self, autoscaler: Autoscaler) -> None:
        """`serve` hands over the autoscaler (its stored counts read) before the first
        `apply_change`, so a restart runs each autoscaled deployment at its decided count."""
        self._autoscaler = autoscaler

    async def scale_deployment(self, key: str, count: int) -> None:
        """The autoscaler's decision, carried out: the supervisor starts or drains instances
        and republishes as readiness changes (its `on_change`)."""
        await self.supervisor.scale(key, count)

    def scale_status(self, key: str) -> Mapping[str, Any] | None:
        """`show`'s scale_status of an autoscaled deployment (None: a fixed count)."""
        return None if self._autoscaler is None else self._autoscaler.status(key)

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("the runtime is not attached to a supervisor yet")
        return self._supervisor

    async def apply_change(self, build: bool = True) -> int:
        """Hand the committed state to the supervisor and publish it; returns the snapshot
        version. Never waits for instances.

        Environments are built first, on a thread and outside the lock (a cold build takes
        minutes): other writes go on meanwhile, and do not wait for a build another write
        started (that write applies it when done). Under the lock nothing is built: what
        appeared since is left to a background pass. A deployment whose environment failed
        ends its create or update Failed with the resolver's message (`mark_failed`: an update
        goes back to the previous spec, a create runs nothing).
        `build=False` (at start, and for the admin API's writes, whose answer never waits on a
        build) leaves every missing environment to a background pass; the operation's follower
        (`provision`) builds too, and starts its readiness budget once the build is done.
        """
        assert self._lock is not None, "attach() first"
        if build and self.environments is not None:
            committed = self._read_committed()
            await off_loop(self.environments.prepare, committed.running, True,
                           frozenset(committed.deployments))
        async with self._lock:
            state = self._read_committed()
            prepared = Prepared()
            if self.environments is not None:  # a failed create keeps its status and build log
                prepared = await off_loop(self.environments.prepare, state.running, False,
                                          frozenset(state.deployments))
            running, pythons = self._runnable(self._scaled(state.running), prepared)
            await self.supervisor.reconcile(running, pythons, wait=False, batches=state.batches)
            self._running = {key: (spec, pythons.get(key)) for key, spec in running.items()}
            self._applied = state
            if prepared.pending:
                self._build_later()
            for key, message in prepared.failed.items():
                self._fail_later(key, message)
            version = self.publish()
        if self._fleet is not None:  # "effective_at" means in force on every worker
            await self._fleet.applied(version)
        return version

    def _runnable(self, deployments: Mapping[str, DeploymentSpec],
                  prepared: Prepared) -> tuple[dict[str, DeploymentSpec], dict[str, Path]]:
        """What to run: the committed specs, except where the environment is not there."""
        running: dict[str, DeploymentSpec] = {}
        pythons: dict[str, Path] = {}
        for key, spec in deployments.items():
            if key not in prepared.failed and key not in prepared.pending \
                    and key not in prepared.waiting:
                running[key] = spec
                if key in prepared.pythons:
                    pythons[key] = prepared.pythons[key]
            elif key in self._running:  # it ran before: it goes on as it was
                running[key], old_python = self._running[key]
                if old_python is not None:
                    pythons[key] = old_python
        return running, pythons

    def _fail_later(self, key: str, message: str) -> None:
        """Its environment cannot be built: end its create or update (after this lock)."""
        task = asyncio.create_task(self.mark_failed(key, message), name=f"failed {key}")
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    def _build_later(self) -> None:
        task = asyncio.create_task(self.apply_change(), name="build environments")
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    def publish(self) -> int:
        """Compile the applied state with the instances ready now, and swap it in."""
        if self._holder is None or self._supervisor is None:
            return 0
        self._version += 1
        snapshot = compile_snapshot(
            self._version,
            self._effective_endpoints(),
            self._applied.deployments,
            self._applied.secrets,
            self._supervisor.ready_instances(),
            self.settings,
        )
        self._holder.publish(snapshot)
        if self._fleet is not None:
            self._fleet.publish(snapshot)
        publish_config(snapshot)
        return snapshot.version

    def _scaled(self, running: Mapping[str, DeploymentSpec]) -> Mapping[str, DeploymentSpec]:
        """What runs, with each autoscaled deployment at the count its autoscaler decided."""
        autoscaler = self._autoscaler
        if autoscaler is None:
            return running
        autoscaler.track(running)
        scaled = dict(running)
        for key, spec in running.items():
            count = autoscaler.desired(key)
            if count is not None and count != spec.instance_count:
                scaled[key] = spec.with_changes(instance_count=count)
        return scaled

    def _count(self, key: str, spec: DeploymentSpec) -> int:
        """How many instances run: an autoscaled deployment's decided count, else its own.
        A rolling update plans its batches on it, so it replaces what actually runs."""
        decided = self._autoscaler.desired(key) if self._autoscaler is not None else None
        return spec.instance_count if decided is None else decided

    def _effective_endpoints(self) -> dict[str, EndpointSpec]:
        """`--local` endpoints take requests without a key, as Azure's local endpoints do,
        but only while the scoring listener is bound to loopback: `serve --host 0.0.0.0`
        never opens them to the network (their key applies then)."""
        return {name: spec.with_changes(auth_mode=AUTH_NONE)
                if spec.local and self.scoring_on_loopback else spec
                for name, spec in self._applied.endpoints.items()}

    # --- deployment operations ----------------------------------------------------------

    async def provision(self, key: str, wait: bool = True) -> None:
        """Follow the operation stored for deployment `key` to its end, in the background; with
        `wait`, return once it ended. Call it after every write that starts one (a newer call
        for the same key supersedes the older follower). A waiter that goes away (a client
        that hangs up) never cancels the operation."""
        generation = self._generation.get(key, 0) + 1
        self._generation[key] = generation
        task = asyncio.create_task(self._follow(key, generation), name=f"provision {key}")
        self._operations[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))
        if wait:
            await asyncio.shield(task)

    async def mark_failed(self, key: str, reason: str) -> bool:
        """End the create or update of deployment `key` now, in `Failed` with `reason`: for a
        step that prepares a deployment before its instances can start (an environment build)
        and knows it never will. A failed update puts the previous spec back, a failed create
        runs nothing and gets no traffic, as when readiness fails. False when no create or
        update was in progress (nothing changed)."""
        state = await anyio.to_thread.run_sync(self.store.state)
        record, status = state.deployments.get(key), state.status(key)
        if record is None or status.state not in (CREATING, UPDATING):
            return False
        self._generation[key] = self._generation.get(key, 0) + 1  # its follower stops waiting
        endpoint, name = key.split("/", 1)
        await anyio.to_thread.run_sync(self.store.finish_provisioning, endpoint, name,
                                       record.etag, status.state, reason)
        self._batches.pop(key, None)
        await self.apply_change()
        return True

    async def resume_provisioning(self, wait: bool = False) -> list[str]:
        """At start: decide every operation in progress (`Creating`, `Updating`, `Deleting` as
        stored: a stop interrupted it, or the YAML given to `serve` just started it), never
        leaving one stuck; with `wait`, return once all of them ended. Their keys."""
        state = await anyio.to_thread.run_sync(self.store.state)
        keys = [key for key in state.deployments if state.status(key).in_progress]
        for key in keys:
            await self.provision(key, wait=False)
        if wait:
            await asyncio.gather(*(asyncio.shield(task) for key in keys
                                   if (task := self._operations.get(key)) is not None))
        return keys

    def provisioning_line(self, key: str) -> str:
        """One line for a person: how the operation on `key` stands."""
        state = self.store.state()
        endpoint, name = key.split("/", 1)
        if key not in state.deployments:
            return f"deployment {name} of endpoint {endpoint}: deleted"
        status = state.status(key)
        reason = f": {status.reason.splitlines()[0]}" if status.reason else ""
        return f"deployment {name} of endpoint {endpoint}: {status.state}{reason}"

    async def stop_provisioning(self) -> None:
        """Before the supervisor stops: operations still running stay stored as they are, and
        the next start decides them (stopping instances is no verdict on a deployment)."""
        await cancel_and_wait(*self._operations.values())

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._operations.get(key) is task:
            del self._operations[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("following deployment %s failed", key, exc_info=task.exception())

    async def _follow(self, key: str, generation: int) -> None:
        state = await anyio.to_thread.run_sync(self.store.state)
        record = state.deployments.get(key)
        status = state.status(key)
        if record is None or not status.in_progress:
            return
        await self.apply_change()
        failure = None
        if status.state == DELETING:
            await self._until_stopped(key, generation, record.spec)
        elif self._rolls(record.spec, status):
            failure = await self._roll(key, generation, record)
        else:
            failure = await self._until_ready(key, generation, record.spec)
        if self._generation.get(key) != generation:
            return  # a newer operation took over
        if failure is not None:
            log.warning("deployment %s: %s", key, failure.splitlines()[0])
        endpoint, name = key.split("/", 1)
        await anyio.to_thread.run_sync(self.store.finish_provisioning, endpoint, name,
                                       record.etag, status.state, failure)
        self._batches.pop(key, None)
        if key in self._tripped:
            await self._evict_tripped(key)
        await self.apply_change()

    # --- rolling updates --------------------------------------------------------------------

    def _rolls(self, spec: DeploymentSpec, status: Provisioning) -> bool:
        """Whether this operation is a rolling update: an update of a managed deployment that
        replaces its instances while a working version serves."""
        previous = status.previous
        return (self._rolling_rows and status.state == UPDATING and previous is not None
                and not spec.is_external and not previous.is_external
                and replaces_instances(previous, spec))

    async def _roll(self, key: str, generation: int,
                    record: Record[DeploymentSpec]) -> str | None:
        """Batch after batch: bound the supervisor, wait for the batch to be ready, bake and
        judge it. None once every instance is new, else why the update stops (the caller's
        `finish_provisioning` then puts the previous spec back)."""
        spec = record.spec
        stored = await self._load_progress(key)
        if key not in self._batches and _interrupted(stored, record.etag):
            assert stored is not None
            reason = (f"the rolling update was interrupted at batch {stored.batch}/"
                      f"{stored.batches} ({stored.state}) by a stop of scoregate serve; rolled "
                      "back to the previous version (run the update again)")
            await self._save_progress(key, rolling.step(stored, state=rolling.ROLLED_BACK,
                                                        message=reason))
            return reason
        plan = rolling.plan(self._count(key, spec), spec.rolling_update)
        progress: rolling.Progress | None = None
        for index, target in enumerate(plan.targets, 1):
            self._batches[key] = (record.etag, Batch(target, plan.unavailable))
            progress = rolling.step(progress, etag=record.etag, batch=index,
                                    batches=len(plan.targets), state=rolling.ROLLING,
                                    new_instances=target, message="starting the batch")
            await self._save_progress(key, progress)
            await self.apply_change()
            failure = await self._until_ready(key, generation, spec, target)
            if failure is None and spec.rolling_update.bake_s > 0:
                failure = await self._bake(key, generation, spec, progress)
            if self._generation.get(key) != generation:
                return None  # a newer operation took over
            if failure is not None and failure.startswith(_TRIPPED):
                self._tripped.add(key)
            if failure is not None:
                failure = (f"rolling update stopped at batch {index}/{len(plan.targets)}: "
                           f"{failure}; the replaced instances were rolled back")
                await self._save_progress(key, rolling.step(
                    progress, state=rolling.ROLLED_BACK, message=failure.splitlines()[0]))
                return failure
        await self._save_progress(key, rolling.step(progress, state=rolling.SUCCEEDED,
                                                    message="every instance replaced"))
        return None

    async def _bake(self, key: str, generation: int, spec: DeploymentSpec,
                    progress: rolling.Progress) -> str | None:
        """Serve `bake_s` with the batch in rotation, then judge its new instances against
        the old ones; why it failed, or None."""
        update = spec.rolling_update
        await self._save_progress(key, rolling.step(progress, state=rolling.BAKING,
                                                    message=f"baking {update.bake_s:g} s"))
        new, old = self.supervisor.versions(key)
        start = {route.url: rolling.read_instances((route,)) for route in (*new, *old)}
        loop = asyncio.get_running_loop()
        began = loop.time()
        while loop.time() - began < update.bake_s and self._generation.get(key) == generation:
            await asyncio.sleep(min(_BAKE_TICK_S, update.bake_s))  # the bake is a span of time
        new, old = self.supervisor.versions(key)
        seconds = loop.time() - began
        verdict = rolling.judge_batch(update, seconds, _since(start, new), _since(start, old))
        log.info("deployment %s: batch %d/%d: %s", key, progress.batch, progress.batches,
                 verdict.message)
        return f"{_TRIPPED}: {verdict.message}" if verdict.outcome == TRIPPED else None

    async def _evict_tripped(self, key: str) -> None:
        """After a rollback that a guardrail decided, the new instances (in rotation, failing)
        leave at once instead of serving until the previous spec's replacements are ready:
        a batch bound that lets every instance of the restored spec be unavailable."""
        self._tripped.discard(key)
        state = await anyio.to_thread.run_sync(self.store.state)
        restored = state.deployments.get(key)
        if restored is not None:
            count = self._count(key, restored.spec)
            self._batches[key] = (restored.etag, Batch(count, count))

    async def _load_progress(self, key: str) -> rolling.Progress | None:
        if not self._rolling_rows:
            return None
        endpoint, name = key.split("/", 1)
        return await anyio.to_thread.run_sync(self.store.feature_read, lambda conn: rolling.load(
            conn, endpoint, name))

    async def _save_progress(self, key: str, progress: rolling.Progress) -> None:
        """Stored before the batch it announces starts: a restart finds it."""
        endpoint, name = key.split("/", 1)
        await anyio.to_thread.run_sync(self.store.feature_write, lambda conn: rolling.save(
            conn, endpoint, name, progress))
        self._progress[key] = progress
        log.info("deployment %s: rolling update batch %d/%d %s: %s", key, progress.batch,
                 progress.batches, progress.state, progress.message)

    def rolling_status(self, key: str) -> dict[str, object] | None:
        """The last rolling update's progress of `key` (batch i/n, state), for `show`."""
        progress = self._progress.get(key)
        return None if progress is None else progress.to_view()

    async def _until_ready(self, key: str, generation: int, spec: DeploymentSpec,
                           count: int | None = None) -> str | None:
        """None once the wanted version is ready (`count` of its instances, by default all),
        else why it failed or will not be ready, with the last lines of the log of the
        instance to blame."""
        budget = readiness_budget(spec, self.startup_slack_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        outcome = self.supervisor.outcome(key, count)
        while loop.time() < deadline and self._generation.get(key) == generation:
            preparing = self._preparing(key, spec)
            if preparing is not None:  # not handed to the supervisor yet: no outcome to read
                if preparing == BUILDING:  # the budget starts once its environment is there
                    deadline = loop.time() + budget  # (a failed build ends it: mark_failed)
                await asyncio.sleep(_POLL_S)
                continue
            outcome = self.supervisor.outcome(key, count)
            if outcome.ready:
                return None
            if outcome.failure is not None:
                return await self._with_log_tail(key, outcome.failure, outcome.instance)
            await asyncio.sleep(_POLL_S)
        why = _not_ready_in_time(spec, budget, self.startup_slack_s)
        return await self._with_log_tail(key, why, outcome.instance)

    def _preparing(self, key: str, spec: DeploymentSpec) -> str | None:
        """The state of its environment while the runtime has not handed `spec` to the
        supervisor yet (building, or built since the last pass; an update's previous spec
        runs on meanwhile); None when it did, or when its build failed (`mark_failed`
        decides) or it needs none."""
        status = self.environment_status(key)
        handed = key in self._running and self._running[key][0] == spec
        if handed or status is None or status.state not in (BUILDING, READY):
            return None
        return status.state

    async def _until_stopped(self, key: str, generation: int, spec: DeploymentSpec) -> None:
        """Its instances drain and stop (bounded); the row goes after, whatever remains."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stop_budget(spec, self.supervisor.stop_grace_s)
        while (self.supervisor.status(key) and loop.time() < deadline
               and self._generation.get(key) == generation):
            await asyncio.sleep(_POLL_S)

    async def _with_log_tail(self, key: str, failure: str, instance: str | None) -> str:
        tail = await anyio.to_thread.run_sync(self.supervisor.logs, key, LOG_TAIL_LINES,
                                              instance)
        if not tail.strip():
            return failure
        return f"{failure}\nlast lines of the instance log:\n{tail.rstrip()}"

    # --- reading --------------------------------------------------------------------------

    def instance_status(self, key: str) -> list[InstanceStatus]:
        return list(self.supervisor.status(key))

    def logs(self, key: str, lines: int = 5000) -> str:
        """The instances' logs, after the environment's build log when it has one."""
        build = ""
        if self.environments is not None:  # the spec: to find the log again after a restart
            endpoint, name = key.split("/", 1)
            spec = self.store.deployment(endpoint, name).spec
            build = self.environments.build_log(key, lines, spec)
        instances = self.supervisor.logs(key, lines)
        if not build:
            return instances
        return f"[scoregate] environment build log:\n{build}\n[scoregate] instances:\n{instances}"

    def environment_status(self, key: str) -> EnvironmentStatus | None:
        return self.environments.status(key) if self.environments else None

    def comparisons(self, endpoint: str, deployment: str) -> ComparisonReport:
        """The shadow comparison report of a deployment (the admin API renders it)."""
        if self.scoring_app is None:
            raise RuntimeError("the runtime is not attached to a scoring app yet")
        return self.scoring_app.comparisons(endpoint, deployment)

    def close(self) -> None:
        for task in self._later:
            task.cancel()
        self.store.close()

    def _read_committed(self) -> AppliedState:
        state = self.store.state()  # one read transaction: never a mix of two commits
        running, batches = _running(state), {}
        for key, record in state.deployments.items():
            status, held = state.status(key), self._batches.get(key)
            if key in running and held is not None and held[0] == record.etag:
                batches[key] = held[1]
            elif key not in running or not self._rolls(record.spec, status):
                continue
            elif status.previous is not None and _interrupted(self._stored(key), record.etag):
                running[key] = status.previous  # rolled back by its follower: start no new one
            else:  # just written, its follower not there yet: the first batch
                plan = rolling.plan(self._count(key, record.spec),
                                    record.spec.rolling_update)
                batches[key] = Batch(plan.targets[0], plan.unavailable)
        return AppliedState(
            endpoints={name: record.spec for name, record in state.endpoints.items()},
            deployments={key: record.spec for key, record in state.deployments.items()},
            secrets=state.secrets,
            running=running,
            batches=batches,
        )

    def _stored(self, key: str) -> rolling.Progress | None:
        """The stored progress of `key` (read in the loop: one small row, only for a rolling
        update this server does not drive, i.e. at the first start after a stop)."""
        endpoint, name = key.split("/", 1)
        progress = self.store.feature_read(lambda conn: rolling.load(conn, endpoint, name))
        if progress is not None:
            self._progress.setdefault(key, progress)
        return progress


def _interrupted(progress: rolling.Progress | None, etag: str) -> bool:
    """A rolling update of this very operation was mid-way when the server stopped."""
    return (progress is not None and progress.etag == etag
            and progress.state in (rolling.ROLLING, rolling.BAKING))


def _since(start: Mapping[str, WindowSample], routes: tuple[InstanceRoute, ...]) -> WindowSample:
    """What these instances did since `start` was read (one started since then: everything)."""
    total = WindowSample()
    for route in routes:
        total = total + (rolling.read_instances((route,)) - start.get(route.url, WindowSample()))
    return total


def _not_ready_in_time(spec: DeploymentSpec, budget: float, slack_s: float) -> str:
    probe = spec.readiness_probe
    return (f"not all of its {spec.instance_count} instance(s) became ready within {budget:g} s "
            f"(readiness_probe: initial_delay {probe.initial_delay} + period {probe.period} x "
            f"failure_threshold {probe.failure_threshold}, plus {slack_s:g} s to start)")


def _running(state: StoreState) -> dict[str, DeploymentSpec]:
    """What the supervisor runs: not a deployment whose create failed, nor one being deleted."""
    statuses: Mapping[str, Provisioning] = state.provisioning
    return {key: record.spec for key, record in state.deployments.items()
            if statuses.get(key, Provisioning()).runs}
