"""The instance supervisor: keeps each managed deployment's processes in line with its spec.

It knows nothing about HTTP routing. It starts, probes, restarts, drains and stops instance
processes, and tells the rest of the system (through `on_change`) whenever the set of ready
instances changes; `ready_instances()` is what the next routing snapshot is compiled from.

Convergence is level-triggered: `_converge` compares what runs with the wanted spec and acts,
and it runs again whenever an instance becomes ready. That gives scaling (add, or drain the
extra ones), rolling replace (start instances of the new spec, drain one old instance for each
new one that is ready) and removal, with the same few rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from control_plane.errors import ValidationError
from control_plane.instances import launch
from control_plane.instances import logs as instance_logs
from control_plane.instances.launch import CommandBuilder
from control_plane.instances.limits import memory_limit_mb
from control_plane.instances.managed import (
    DRAINING,
    FAILED,
    INIT_FAILED_EXIT_CODE,
    READY,
    STOPPED,
    InstanceEvents,
    InstanceStatus,
    Launch,
    ManagedInstance,
    SupervisorTimings,
)
from control_plane.instances.model_dir import InstanceFolders, InstancePaths
from control_plane.specs.resources import DeploymentSpec, RollingUpdate
from control_plane.tasks import cancel_and_wait
from gateway import InstanceRoute, count_probe_failure, count_restart, set_ready_instances

__all__ = ["Batch", "CommandBuilder", "InstanceStatus", "MetricEvents", "Outcome", "Supervisor",
           "SupervisorTimings", "replaces_instances"]

log = logging.getLogger("scoregate.instances")

# Fields that do not change what runs: editing them never restarts instances.
_COSMETIC = {"instance_count": 0, "description": "", "tags": {}, "not_applied": {},
             "scale_settings": None, "rolling_update": RollingUpdate()}
# Exits before ready that no restart cures: the script failed (import, init) or the command
# line is wrong (the scoring server's codes); None: the process could not be spawned at all.
_HOPELESS_EXIT_CODES = (None, INIT_FAILED_EXIT_CODE, 2)


class MetricEvents:
    """InstanceEvents that set the supervisor's series of the gateway's metrics."""

    def ready_instances(self, endpoint: str, deployment: str, count: int) -> None:
        set_ready_instances(endpoint, deployment, count)

    def restarted(self, endpoint: str, deployment: str) -> None:
        count_restart(endpoint, deployment)

    def probe_failed(self, endpoint: str, deployment: str, probe: str) -> None:
        count_probe_failure(endpoint, deployment, probe)


@dataclass(frozen=True)
class Outcome:
    """`Supervisor.outcome`: `ready`, or `failure` (why it never will be), or neither yet;
    `instance`: the one whose log tells why (the failed one, else the first not ready)."""

    ready: bool
    failure: str | None
    instance: str | None = None


@dataclass(frozen=True)
class Batch:
    """A rolling update's bound on one deployment (docs/rolling-updates.md): at most `new`
    instances of the wanted spec run, and old ones retire only as new ones get ready, never
    leaving more than `unavailable` below `instance_count`. Without one, every new instance
    starts at once (the old ones still go only as new ones are ready)."""

    new: int
    unavailable: int = 0


@dataclass
class _Deployment:
    """What is wanted (spec, or None once removed) and what runs, for one "endpoint/name"."""

    endpoint: str
    name: str
    spec: DeploymentSpec | None
    instances: dict[str, ManagedInstance] = field(default_factory=dict)
    external: tuple[InstanceRoute, ...] = ()
    batch: Batch | None = None
    python: Path | None = None  # the environment's interpreter (None: the gateway's own)
    pythons: dict[str, Path | None] = field(default_factory=dict)  # instance id -> its python


class Supervisor:
    def __init__(self, log_root: Path, on_change: Callable[[], object],
                 in_flight: Callable[[str], int], command: CommandBuilder | None = None, *,
                 work_root: Path | None = None, timings: SupervisorTimings = SupervisorTimings(),
                 events: InstanceEvents | None = None, memory_mb: int | None = None,
                 log_max_bytes: int = instance_logs.ROTATE_BYTES) -> None:
        """`work_root`: where each instance's private folder (its socket and model folder) is
        made (default: the temp folder, never the state folder: see model_dir.py);
        `memory_mb`: the memory limit of instances whose instance_type names no known size."""
        self._log_root = Path(log_root)
        self._folders = InstanceFolders(Path(work_root) if work_root else None)
        self._paths: dict[ManagedInstance, InstancePaths] = {}
        self._memory_mb = memory_mb
        self._log_max_bytes = log_max_bytes
        self._on_change = on_change
        self._in_flight = in_flight
        self._command = command or launch.default_command
        self._timings = timings
        self._events: InstanceEvents = events or MetricEvents()
        self._deployments: dict[str, _Deployment] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._closed = False

    # --- the contract -------------------------------------------------------------------

    @property
    def stop_grace_s(self) -> float:
        """What stopping an instance adds to its request timeout (drain margin, then TERM→KILL)."""
        return self._timings.drain_margin_s + self._timings.stop_grace_s

    async def reconcile(self, deployments: Mapping[str, DeploymentSpec],
                        pythons: Mapping[str, Path] | None = None, *,
                        wait: bool = True, batches: Mapping[str, Batch] | None = None) -> None:
        """Make what runs match `deployments`; `pythons` (same keys) names the interpreter of
        a deployment's own environment (absent: the gateway's; a new python is a new process);
        `batches` bounds the deployments being rolled.

        Removed instances leave the ready set at once and drain in the background. With
        `wait`, returns when every instance this call started is ready or has failed, bounded
        by `timings.start_wait_s`; without, at once (the runtime follows each deployment with
        `outcome` and republishes through `on_change`). The wait holds no lock, so other
        reconciles and `close` are not held up by it.
        """
        started: list[ManagedInstance] = []
        async with self._lock:
            if self._closed:
                raise RuntimeError("the supervisor is closed")
            external = {key: self._checked_external(key, spec)
                        for key, spec in deployments.items()}
            for key, removed in list(self._deployments.items()):
                if key not in deployments:
                    removed.spec, removed.external = None, ()
                    started += self._converge(key)
            for key, spec in deployments.items():
                wanted = self._deployments.setdefault(
                    key, _Deployment(spec.endpoint_name, spec.name, spec))
                wanted.spec, wanted.external = spec, external[key]
                wanted.batch = (batches or {}).get(key)
                wanted.python = (pythons or {}).get(key)
                started += self._converge(key)
            self._notify_change()
        if wait:
            await self._until_started(started)

    async def scale(self, key: str, count: int) -> bool:
        """Run `count` instances of `key`'s wanted spec (the autoscaler's decision): added ones
        start in the background, removed ones leave rotation at once and drain before they
        stop, as with any smaller `instance_count`. False when `key` runs nothing here."""
        async with self._lock:
            deployment = self._deployments.get(key)
            if self._closed or deployment is None or deployment.spec is None \
                    or deployment.spec.is_external or count < 0:
                return False
            deployment.spec = deployment.spec.with_changes(instance_count=count)
            self._converge(key)
            self._notify_change()
        return True

    async def _until_started(self, instances: list[ManagedInstance]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timings.start_wait_s
        while not self._closed and loop.time() < deadline:
            if all(i.ready or i.restarts or i.state in (FAILED, DRAINING, STOPPED)
                   for i in instances):
                return
            await asyncio.sleep(0.05)

    def ready_instances(self) -> dict[str, tuple[InstanceRoute, ...]]:
        ready: dict[str, tuple[InstanceRoute, ...]] = {}
        for key, deployment in self._deployments.items():
            if deployment.spec is None:
                continue
            managed = sorted((i for i in deployment.instances.values() if i.routable),
                             key=lambda i: _index(i.id))
            ready[key] = deployment.external + tuple(i.route for i in managed)
        return ready

    def status(self, key: str) -> list[InstanceStatus]:
        deployment = self._deployments.get(key)
        if deployment is None:
            return []
        external = [InstanceStatus(r.id, r.url, READY, None, 0, None, None)
                    for r in deployment.external]
        managed = sorted(deployment.instances.values(), key=lambda i: _index(i.id))
        return external + [instance.status() for instance in managed]

    def logs(self, key: str, lines: int = 5000, instance: str | None = None) -> str:
        """The last lines of the deployment's instance logs, or of one instance's."""
        endpoint, name = _split_key(key)
        if instance is None:
            return instance_logs.deployment_logs(self._log_root, endpoint, name, lines)
        path = instance_logs.instance_log_path(self._log_root, endpoint, name, instance)
        return "".join(f"{line}\n" for line in instance_logs.tail(path, lines))

    def versions(self, key: str) -> tuple[tuple[InstanceRoute, ...], tuple[InstanceRoute, ...]]:
        """The routable instances of `key`: (of the wanted spec, of an older one)."""
        deployment = self._deployments.get(key)
        if deployment is None or deployment.spec is None:
            return (), ()
        spec = deployment.spec
        routable = [i for i in deployment.instances.values() if i.routable]
        return (tuple(i.route for i in routable if _same_process(i.spec, spec)),
                tuple(i.route for i in routable if not _same_process(i.spec, spec)))

    def outcome(self, key: str, count: int | None = None) -> Outcome:
        """How the wanted version of `key` stands: enough of its instances ready (`count`, by
        default its `instance_count`), or a failure that waiting will not cure (its scoring
        script failed, bad arguments, a process that cannot be spawned), or neither yet."""
        deployment = self._deployments.get(key)
        if deployment is None or deployment.spec is None:
            return Outcome(False, f"deployment {key} is not running")
        spec = deployment.spec
        if spec.is_external:
            return Outcome(True, None)
        wanted = [i for i in deployment.instances.values()
                  if i.state not in (DRAINING, STOPPED) and _same_process(i.spec, spec)]
        if sum(1 for i in wanted if i.ready) >= (spec.instance_count if count is None else count):
            return Outcome(True, None)
        waiting = sorted((i for i in wanted if not i.ready), key=lambda i: _index(i.id))
        for instance in waiting:
            if instance.state == FAILED and instance.last_exit_code in _HOPELESS_EXIT_CODES:
                return Outcome(False, f"instance {instance.id}: {instance.last_error}",
                               instance.id)
        return Outcome(False, None, waiting[0].id if waiting else None)

    async def wait_ready(self, key: str, timeout_s: float) -> bool:
        """True once `key` runs exactly its wanted instances, all ready (False on timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._settled(key):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        """Stop every instance (TERM, grace, KILL of each process group); no orphans."""
        async with self._lock:
            self._closed = True
            instances = [i for d in self._deployments.values() for i in d.instances.values()]
            for instance in instances:
                instance.begin_drain()
            self._notify_change()
            await cancel_and_wait(*self._retiring)
            await asyncio.gather(*(self._stop(i) for i in instances), return_exceptions=True)
            self._deployments.clear()

    # --- convergence ----------------------------------------------------------------------

    def _converge(self, key: str) -> list[ManagedInstance]:
        """Start and retire instances of `key` as its spec asks; returns those started."""
        deployment = self._deployments[key]
        spec = deployment.spec
        live = [i for i in deployment.instances.values() if i.state not in (DRAINING, STOPPED)]
        if spec is None or spec.is_external:
            for instance in live:
                self._retire(deployment, instance)
            return []
        current = [i for i in live if self._same(deployment, i)]
        stale = [i for i in live if not self._same(deployment, i)]
        for instance in current:
            instance.spec = spec  # instance_count or cosmetic fields changed
        count, batch = spec.instance_count, deployment.batch
        limit = count if batch is None or not stale else min(batch.new, count)
        unavailable = 0 if batch is None else batch.unavailable
        started = [self._start(deployment, spec) for _ in range(limit - len(current))]
        current += started
        for instance in _retire_order(current)[:max(0, len(current) - count)]:
            self._retire(deployment, instance)
        ready_new = sum(1 for i in current if i.ready)
        keep = max(0, count - limit, count - unavailable - ready_new)
        for instance in _retire_order(stale)[:max(0, len(stale) - keep)]:
            self._retire(deployment, instance)
        return started

    def _start(self, deployment: _Deployment, spec: DeploymentSpec) -> ManagedInstance:
        used = {_index(i) for i in deployment.instances}
        index = next(n for n in range(len(used) + 1) if n not in used)
        instance_id = f"{deployment.name}-{index}"
        log_path = instance_logs.instance_log_path(self._log_root, deployment.endpoint,
                                                   deployment.name, instance_id)
        paths = self._folders.allocate(spec.model_path)
        try:
            sock = launch.bind_listener(paths.socket)
            try:
                plan = Launch(self._command(spec, sock.fileno(), deployment.python),
                              launch.instance_env(spec, paths.model_dir), log_path,
                              self._log_max_bytes, memory_limit_mb(spec, self._memory_mb))
                instance = ManagedInstance(instance_id, spec, sock, plan, self._timings,
                                           self._events, self._instance_changed)
            except BaseException:
                sock.close()
                raise
        except BaseException:
            self._folders.release(paths)
            raise
        self._paths[instance] = paths
        deployment.instances[instance_id] = instance
        deployment.pythons[instance_id] = deployment.python
        instance.start()
        return instance

    def _retire(self, deployment: _Deployment, instance: ManagedInstance) -> None:
        """Out of rotation now; stop once nothing is in flight to it (bounded)."""
        instance.begin_drain()
        task = asyncio.create_task(self._drain_and_stop(deployment, instance),
                                   name=f"retire {instance.id}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drain_and_stop(self, deployment: _Deployment, instance: ManagedInstance) -> None:
        loop = asyncio.get_running_loop()
        timeout_s = instance.spec.request_settings.request_timeout_ms / 1000
        deadline = loop.time() + timeout_s + self._timings.drain_margin_s
        await asyncio.sleep(0.05)  # let a request that picked it from the old snapshot count itself
        while self._in_flight(instance.id) > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self._in_flight(instance.id) > 0:
            log.warning("instance %s still had requests in flight after %.1fs; stopping it",
                        instance.id, timeout_s + self._timings.drain_margin_s)
        await self._stop(instance)
        deployment.instances.pop(instance.id, None)
        deployment.pythons.pop(instance.id, None)
        key = f"{deployment.endpoint}/{deployment.name}"
        if deployment.spec is None and not deployment.instances:
            if self._deployments.get(key) is deployment:
                del self._deployments[key]

    async def _stop(self, instance: ManagedInstance) -> None:
        try:
            await instance.stop()
        finally:
            paths = self._paths.pop(instance, None)
            if paths is not None:
                self._folders.release(paths)

    # --- reporting ----------------------------------------------------------------------------

    def _instance_changed(self, instance: ManagedInstance, was_routable: bool) -> None:
        if instance.routable == was_routable and not instance.ready:
            return
        key = f"{instance.spec.endpoint_name}/{instance.spec.name}"
        deployment = self._deployments.get(key)
        if deployment is None:
            return
        count = sum(1 for i in deployment.instances.values() if i.routable)
        self._events.ready_instances(deployment.endpoint, deployment.name, count)
        if instance.ready and not self._closed:
            self._converge(key)  # a new instance is ready: an old one may go now
        self._notify_change()

    def _notify_change(self) -> None:
        try:
            self._on_change()
        except Exception:  # a failing listener must not take the supervisor down with it
            log.exception("on_change failed")

    def _settled(self, key: str) -> bool:
        deployment = self._deployments.get(key)
        if deployment is None or deployment.spec is None:
            return deployment is None
        if deployment.spec.is_external:
            return not deployment.instances
        instances = list(deployment.instances.values())
        return (len(instances) == deployment.spec.instance_count
                and all(i.ready and self._same(deployment, i) for i in instances))

    @staticmethod
    def _same(deployment: _Deployment, instance: ManagedInstance) -> bool:
        """The instance runs what the deployment wants now (spec and interpreter)."""
        assert deployment.spec is not None
        return (_same_process(instance.spec, deployment.spec)
                and deployment.pythons.get(instance.id) == deployment.python)

    def _checked_external(self, key: str, spec: DeploymentSpec) -> tuple[InstanceRoute, ...]:
        """Check everything before changing anything; the external routes of `spec`."""
        endpoint, name = _split_key(key)
        if (endpoint, name) != (spec.endpoint_name, spec.name):
            raise ValidationError("name", f"deployment key {key!r} does not match its spec "
                                          f"{spec.endpoint_name}/{spec.name}")
        if not spec.is_external and spec.instance_count < 0:
            raise ValidationError("instance-count", f"{key}: instance_count must be >= 0")
        return _external_routes(spec) if spec.is_external else ()


def _split_key(key: str) -> tuple[str, str]:
    endpoint, _, name = key.partition("/")
    instance_logs.checked_name("endpoint", endpoint)
    instance_logs.checked_name("deployment", name)
    return endpoint, name


def replaces_instances(old: DeploymentSpec, new: DeploymentSpec) -> bool:
    """Whether going from `old` to `new` starts new processes (model, code, environment,
    variables, probes...), not only a count or a description."""
    return not _same_process(old, new)


def _same_process(a: DeploymentSpec, b: DeploymentSpec) -> bool:
    return a.with_changes(**_COSMETIC) == b.with_changes(**_COSMETIC)


def _index(instance_id: str) -> int:
    return int(instance_id.rsplit("-", 1)[1])


def _retire_order(instances: list[ManagedInstance]) -> list[ManagedInstance]:
    """Which to remove first: instances not ready, then the newest."""
    return sorted(instances, key=lambda i: (i.ready, -_index(i.id)))


def _external_routes(spec: DeploymentSpec) -> tuple[InstanceRoute, ...]:
    routes = []
    for url in spec.urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError("url", f"{spec.endpoint_name}/{spec.name}: external url {url!r} "
                                         "must be http(s)://host[:port][/path]")
        base = f"{parts.scheme}://{parts.netloc}"
        routes.append(InstanceRoute(id=url, url=base, score_path=parts.path or "/score"))
    return tuple(routes)
