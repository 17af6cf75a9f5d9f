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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio.to_thread

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
from control_plane.instances.supervisor import Supervisor
from control_plane.registry import ModelRegistry
from control_plane.rollouts.engine import RolloutEngine
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.extension import StoreExtension
from control_plane.store.provisioning import CREATING, DELETING, UPDATING, Provisioning
from control_plane.store.sqlite_store import Store, StoreState
from control_plane.tasks import cancel_and_wait, off_loop
from gateway import (
    AUTH_NONE,
    ComparisonReport,
    GatewaySettings,
    ScoringApp,
    SnapshotHolder,
    publish_config,
)

log = logging.getLogger("scoregate.runtime")

STARTUP_SLACK_S = 60.0  # on top of the readiness budget: start the interpreter, import, bind
# (generous: a cold import of numpy and a model library on a busy machine takes tens of seconds)
LOG_TAIL_LINES = 20  # of the instance log, in a failed deployment's reason
_POLL_S = 0.1


@dataclass(frozen=True)
class AppliedState:
    endpoints: Mapping[str, EndpointSpec] = field(default_factory=dict)
    deployments: Mapping[str, DeploymentSpec] = field(default_factory=dict)
    secrets: Mapping[str, EndpointKeys] = field(default_factory=dict)
    running: Mapping[str, DeploymentSpec] = field(default_factory=dict)  # whose instances run


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

    def build_log(self, key: str, lines: int = 5000) -> str: ...


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
        self._operations: dict[str, asyncio.Task[None]] = {}
        self._generation: dict[str, int] = {}
        self.environments = environments
        self._running: dict[str, tuple[DeploymentSpec, Path | None]] = {}  # last reconciled
        self._later: set[asyncio.Task[object]] = set()
        self.scoring_app: ScoringApp | None = None  # set by attach(); its comparison reports

    def attach(self, *, holder: SnapshotHolder, supervisor: Supervisor, scoring_url: str,
               scoring_app: ScoringApp | None = None, scoring_on_loopback: bool = False) -> None:
        self.scoring_app = scoring_app
        self.scoring_on_loopback = scoring_on_loopback
        self._holder = holder
        self._supervisor = supervisor
        self.scoring_url = scoring_url
        self._lock = asyncio.Lock()

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
            running, pythons = self._runnable(state.running, prepared)
            await self.supervisor.reconcile(running, pythons, wait=False)
            self._running = {key: (spec, pythons.get(key)) for key, spec in running.items()}
            self._applied = state
            if prepared.pending:
                self._build_later()
            for key, message in prepared.failed.items():
                self._fail_later(key, message)
            return self.publish()

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
        publish_config(snapshot)
        return snapshot.version

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
        else:
            failure = await self._until_ready(key, generation, record.spec)
        if self._generation.get(key) != generation:
            return  # a newer operation took over
        if failure is not None:
            log.warning("deployment %s: %s", key, failure.splitlines()[0])
        endpoint, name = key.split("/", 1)
        await anyio.to_thread.run_sync(self.store.finish_provisioning, endpoint, name,
                                       record.etag, status.state, failure)
        await self.apply_change()

    async def _until_ready(self, key: str, generation: int, spec: DeploymentSpec) -> str | None:
        """None once the wanted version is ready, else why it failed or will not be ready,
        with the last lines of the log of the instance to blame."""
        budget = readiness_budget(spec, self.startup_slack_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        outcome = self.supervisor.outcome(key)
        while loop.time() < deadline and self._generation.get(key) == generation:
            preparing = self._preparing(key, spec)
            if preparing is not None:  # not handed to the supervisor yet: no outcome to read
                if preparing == BUILDING:  # the budget starts once its environment is there
                    deadline = loop.time() + budget  # (a failed build ends it: mark_failed)
                await asyncio.sleep(_POLL_S)
                continue
            outcome = self.supervisor.outcome(key)
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
        build = self.environments.build_log(key, lines) if self.environments else ""
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
        return AppliedState(
            endpoints={name: record.spec for name, record in state.endpoints.items()},
            deployments={key: record.spec for key, record in state.deployments.items()},
            secrets=state.secrets,
            running=_running(state),
        )


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
