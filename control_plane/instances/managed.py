"""One managed instance: its process, its probes, its restarts, its state.

The instance owns a task that loops start → watch → back off → start again, until it is
stopped. It knows nothing about routing: it reports state changes to its owner, which decides
what they mean for traffic.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from control_plane.instances import launch
from control_plane.instances import logs as instance_logs
from control_plane.instances.probes import Streaks, probe
from control_plane.specs.resources import DeploymentSpec
from control_plane.tasks import cancel_and_wait
from gateway import InstanceRoute

log = logging.getLogger("scoregate.instances")

STARTING, READY, UNREADY, FAILED, DRAINING, STOPPED = (
    "starting", "ready", "unready", "failed", "draining", "stopped")
# A ready process exited and its successor is starting on the same socket: it stays in
# rotation (requests wait in the socket's backlog, served by the successor) for a short grace.
RESTARTING = "restarting"
INIT_FAILED_EXIT_CODE = 3  # the scoring servers' exit code: init() raised, or no MLflow model
# Why the last process ended (InstanceStatus.last_exit_reason), as Kubernetes names them.
OOM_KILLED, INIT_FAILED, LIVENESS_FAILED, ERROR = (
    "OOMKilled", "InitFailed", "LivenessProbeFailed", "Error")


@dataclass(frozen=True)
class SupervisorTimings:
    """How fast the supervisor acts; the defaults suit production, tests shorten them."""

    startup_poll_s: float = 0.15  # readiness polling until first ready
    # Backoff applies only to starts that never became ready (a true crash loop): 0.5 s,
    # doubling up to 30 s, from the start again once an instance is ready. A process that
    # exits after it was ready is started again at once (docs/reliability.md, "Crash loops").
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    # A ready instance whose process exited stays in rotation while its successor starts, at
    # most this long (and never longer than the deployment's request timeout).
    restart_grace_s: float = 5.0
    stop_grace_s: float = 10.0  # SIGTERM → SIGKILL
    drain_margin_s: float = 2.0  # added to the request timeout while waiting for in-flight
    start_wait_s: float = 120.0  # reconcile returns once new instances are ready, or after this


@dataclass(frozen=True)
class InstanceStatus:
    id: str
    url: str
    state: str
    pid: int | None
    restarts: int
    last_exit_code: int | None
    last_error: str | None
    last_exit_reason: str | None = None  # OOMKilled, InitFailed, LivenessProbeFailed, Error
    memory_limit_mb: int | None = None


class InstanceEvents(Protocol):
    """Where the supervisor reports what operators graph (see gateway.telemetry.metrics)."""

    def ready_instances(self, endpoint: str, deployment: str, count: int) -> None: ...

    def restarted(self, endpoint: str, deployment: str) -> None: ...

    def probe_failed(self, endpoint: str, deployment: str, probe: str) -> None: ...


@dataclass(frozen=True)
class Launch:
    """Everything needed to (re)start the process; fixed for the instance's life."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    log_max_bytes: int = instance_logs.ROTATE_BYTES
    memory_limit_mb: int | None = None  # RLIMIT_AS of the process, when set


class ManagedInstance:
    def __init__(self, instance_id: str, spec: DeploymentSpec, sock: socket.socket,
                 launch_plan: Launch, timings: SupervisorTimings, events: InstanceEvents,
                 on_state: Callable[[ManagedInstance, bool], None]) -> None:
        self.id = instance_id
        self.spec = spec
        self.socket_path = str(sock.getsockname())
        self.route = InstanceRoute(id=instance_id, url=f"unix:{self.socket_path}")
        self.state = STARTING
        self.restarts = 0
        self.last_exit_code: int | None = None
        self.last_error: str | None = None
        self.last_exit_reason: str | None = None
        self._sock = sock
        self._launch = launch_plan
        self._log = instance_logs.RotatingLog(launch_plan.log_path, launch_plan.log_max_bytes)
        self._timings = timings
        self._events = events
        self._on_state = on_state  # (instance, was_routable) after every state change
        self._proc: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready_since: float | None = None
        self._out_of_memory = False

    @property
    def ready(self) -> bool:
        return self.state == READY

    @property
    def routable(self) -> bool:
        """In the routing snapshot: ready, or restarting after it was (see RESTARTING)."""
        return self.state in (READY, RESTARTING)

    @property
    def pid(self) -> int | None:
        # returncode, not poll(): only the watcher reaps, so a pid is never waited on twice
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def status(self) -> InstanceStatus:
        return InstanceStatus(self.id, self.route.url, self.state, self.pid, self.restarts,
                              self.last_exit_code, self.last_error, self.last_exit_reason,
                              self._launch.memory_limit_mb)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"instance {self.id}")

    def begin_drain(self) -> None:
        """Out of rotation for good; the process keeps serving what it has until `stop`."""
        self._set_state(DRAINING)

    async def stop(self) -> None:
        """Stop the loop, then the process group (TERM, grace, KILL); release the port."""
        if self.state != DRAINING:
            self._set_state(DRAINING)
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._proc is not None:
            await launch.stop_group(self._proc, self._timings.stop_grace_s)
        self._sock.close()
        self._log.close()
        self._set_state(STOPPED)

    async def _run(self) -> None:
        backoff = self._timings.backoff_initial_s
        state = STARTING
        while True:
            self._ready_since = None
            self._set_state(state)
            failed = await self._run_once()
            was_ready = self._ready_since is not None
            # It served: a crash, not a crash loop. Start again at once, and keep its place in
            # rotation meanwhile, unless liveness had given up on it.
            state = RESTARTING if was_ready and self.last_exit_reason != LIVENESS_FAILED \
                else STARTING
            if was_ready:
                backoff = self._timings.backoff_initial_s
            delay = 0.0 if was_ready else backoff
            self.restarts += 1
            self._events.restarted(self.spec.endpoint_name, self.spec.name)
            if state != RESTARTING:
                self._set_state(FAILED if failed or not was_ready else STARTING)
            self._note(f"{self.last_error}; starting again in {delay:g}s")
            log.warning("instance %s: %s; starting again in %gs", self.id, self.last_error, delay)
            await asyncio.sleep(delay)
            if not was_ready:
                backoff = min(backoff * 2, self._timings.backoff_max_s)

    async def _run_once(self) -> bool:
        """Start the process and watch it until it ends; True if it could not even start."""
        limit_mb = self._launch.memory_limit_mb
        self._out_of_memory = False
        try:
            self._proc = launch.spawn(self._launch.argv, self._launch.env, self._sock.fileno(),
                                      limit_mb * 1024 * 1024 if limit_mb else None)
        except OSError as error:
            self._proc = None
            self.last_exit_code = None
            self.last_error = f"could not start {self._launch.argv[0]}: {error}"
            self.last_exit_reason = ERROR
            return True
        self._pump_output(self._proc, watch_memory=limit_mb is not None)
        if await self._watch(self._proc):
            self.last_error = f"liveness probe failed ({self.last_error}); killed"
            self.last_exit_reason = LIVENESS_FAILED
            self._set_state(UNREADY)  # out of rotation now, not after the kill's grace period
            await launch.stop_group(self._proc, self._timings.stop_grace_s)
        else:
            self.last_error = _describe_exit(self._proc.wait())
            self.last_exit_reason = _exit_reason(self._proc.wait())
        if self._out_of_memory:
            self.last_error = (f"OOMKilled: the instance ran out of memory under its limit of "
                               f"{limit_mb} MiB (MemoryError); killed")
            self.last_exit_reason = OOM_KILLED
        self.last_exit_code = self._proc.wait()
        return self.last_exit_code == INIT_FAILED_EXIT_CODE

    def _pump_output(self, proc: subprocess.Popen[bytes], watch_memory: bool) -> None:
        """Its output into its rotating log, on a thread; a MemoryError seen there (with a
        memory limit set) calls `_memory_exhausted` on the event loop."""
        if proc.stdout is None:
            return
        loop = asyncio.get_running_loop()

        def memory_error() -> None:
            loop.call_soon_threadsafe(self._memory_exhausted, proc)

        instance_logs.pump(proc.stdout, self._log, memory_error if watch_memory else None)

    def _memory_exhausted(self, proc: subprocess.Popen[bytes]) -> None:
        """Its output showed a MemoryError under the limit: do what the kernel does to a
        container past its memory limit (Azure's OOMKilled), and let the loop restart it.
        A process that survived a failed allocation may hold half-built state."""
        if proc is not self._proc or proc.returncode is not None or self._out_of_memory:
            return
        self._out_of_memory = True
        self._set_state(UNREADY)  # out of rotation before it dies
        launch.signal_group(proc.pid, signal.SIGKILL)

    def _note(self, text: str) -> None:
        """A line of the supervisor's own in the instance log, so get-logs shows restarts."""
        try:
            self._log.write(f"[scoregate] {self.id}: {text}\n".encode())
        except (OSError, ValueError):
            pass

    async def _watch(self, proc: subprocess.Popen[bytes]) -> bool:
        """Until the process exits (False) or liveness gives up on it (True)."""
        exited = asyncio.create_task(launch.wait_exit(proc))
        liveness = asyncio.create_task(self._liveness())
        readiness = asyncio.create_task(self._readiness())
        try:
            await asyncio.wait((exited, liveness), return_when=asyncio.FIRST_COMPLETED)
            return not exited.done()
        finally:
            await cancel_and_wait(exited, liveness, readiness)

    async def _readiness(self) -> None:
        settings = self.spec.readiness_probe
        streaks = Streaks(settings)
        loop = asyncio.get_running_loop()
        started = loop.time()
        grace = min(self._timings.restart_grace_s,
                    self.spec.request_settings.request_timeout_ms / 1000)
        ever_ready = False
        while True:
            if self.state == RESTARTING and loop.time() - started >= grace:
                self._set_state(STARTING)  # the successor is slow: out of rotation
            error = await probe(self.socket_path, _timeout(settings.timeout))
            streaks.record(error is None)
            counts = ever_ready or loop.time() - started >= settings.initial_delay
            if error is not None and counts:  # failures while booting are expected
                self.last_error = error
                self._events.probe_failed(self.spec.endpoint_name, self.spec.name, "readiness")
            if self.state != READY and streaks.passed:
                ever_ready = True
                self._ready_since = loop.time()
                self._set_state(READY)
            elif self.state == READY and streaks.failed:
                self._set_state(UNREADY)
            await asyncio.sleep(settings.period if ever_ready else self._timings.startup_poll_s)

    async def _liveness(self) -> None:
        settings = self.spec.liveness_probe
        streaks = Streaks(settings)
        await asyncio.sleep(settings.initial_delay)
        while not streaks.failed:
            error = await probe(self.socket_path, _timeout(settings.timeout))
            streaks.record(error is None)
            if error is not None:
                self.last_error = error
                self._events.probe_failed(self.spec.endpoint_name, self.spec.name, "liveness")
                if streaks.failed:
                    return
            await asyncio.sleep(settings.period)

    def _set_state(self, state: str) -> None:
        if self.state in (DRAINING, STOPPED) and state not in (STOPPED,):
            return  # once out of rotation, only stopping changes it
        was_routable = self.routable
        self.state = state
        self._on_state(self, was_routable)


def _timeout(seconds: float) -> float:
    return max(float(seconds), 0.5)


def _exit_reason(code: int) -> str:
    return INIT_FAILED if code == INIT_FAILED_EXIT_CODE else ERROR


def _describe_exit(code: int) -> str:
    if code == INIT_FAILED_EXIT_CODE:
        return ("init failed (exit code 3): the scoring script's init() raised or the MLflow "
                "model could not be loaded; the instance log's last line says why")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process was killed by {name}"
    return f"the process exited with code {code}"
