"""`serve --workers N`: the data-plane worker processes and their control channels.

The control plane (this process) keeps the store, the supervisor, rollouts and the admin API;
N workers (`gateway.fleet.worker`) serve the scoring port, each on its own socket bound with
SO_REUSEPORT to the same address, so the kernel spreads new connections over them.

- Snapshots: every publish is encoded once and written to every worker's channel, in order,
  with the slot table of the shared in-flight counts. `applied(version)` returns once every
  live worker acknowledged that version (a worker that dies leaves the wait; one that does
  not answer within `ack_timeout_s` is logged and no longer waited for), so an admin write
  answers only when its change is in force on every worker.
- In-flight counts: one shared memory row per worker (gateway/fleet/shared_counts.py); the
  supervisor's drain and anything else here read the fleet-wide sums with `in_flight`.
- Metrics and comparisons: `collect()` asks every worker for its samples and comparison
  reports; `/metrics` does it on each scrape, a background loop every `collect_every_s` for
  rollout windows (their counts lag by at most that).
- A worker that exits is started again (after a back-off that grows while it keeps dying);
  its shared row is zeroed and its counters kept in the retired base.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from control_plane.instances.launch import die_with_parent, wait_exit
from control_plane.tasks import cancel_and_wait
from gateway import (
    FLEET_SAMPLES,
    FLEET_SLOTS,
    FLEET_TALLIES,
    CompareSettings,
    ComparisonReport,
    ListenerLimits,
    RoutingSnapshot,
    SharedCounts,
    WorkerConfig,
    create_counts_fd,
    demand_slot_key,
    deployment_slot_key,
    frame,
    merge_reports,
    read_message,
    render_metrics,
    snapshot_to_wire,
)

log = logging.getLogger("scoregate.workers")

MAX_WORKERS = 8  # the default caps at this many: past it the control plane's fan-out and the
# upstream connections per instance (one pool per worker) cost more than they bring
ACK_TIMEOUT_S = 10.0
COLLECT_EVERY_S = 1.0
ASK_TIMEOUT_S = 5.0  # a worker's answer to a collection, however busy its loop
HUNG_AFTER = 3  # collections in a row without an answer: the worker is killed and restarted
_BACKOFF_S = (0.2, 1.0, 2.0, 5.0, 10.0)
_HEALTHY_AFTER_S = 30.0  # a worker that lived this long starts its next back-off afresh


def default_workers() -> int:
    """The number of cores this process may run on, capped at MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


@dataclass(frozen=True)
class FleetOptions:
    workers: int
    host: str
    port: int
    log_format: str
    metrics: bool
    metrics_route: bool
    access_log: bool
    compare: CompareSettings
    limits: ListenerLimits
    ack_timeout_s: float = ACK_TIMEOUT_S
    collect_every_s: float = COLLECT_EVERY_S


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    started_at: float
    acked: int = 0
    alive: bool = True
    unanswered: int = 0  # collections in a row it did not answer (hung: see HUNG_AFTER)
    answers: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)


class SlotTable:
    """Which shared column each instance id and deployment uses; a key never moves."""

    def __init__(self) -> None:
        self.slots: dict[str, int] = {}
        self._full_logged = False

    def cover(self, snapshot: RoutingSnapshot) -> None:
        for endpoint in snapshot.endpoints.values():
            for deployment in endpoint.deployments.values():
                self._add(deployment_slot_key(endpoint.name, deployment.name))
                self._add(demand_slot_key(endpoint.name, deployment.name))
                for instance in deployment.instances:
                    self._add(instance.id)

    def _add(self, key: str) -> None:
        if key in self.slots:
            return
        if len(self.slots) >= FLEET_SLOTS:
            if not self._full_logged:
                log.warning("the shared in-flight table is full (%d keys): new instances and "
                            "deployments are counted per worker only", FLEET_SLOTS)
                self._full_logged = True
            return
        self.slots[key] = len(self.slots)


class WorkerFleet:
    def __init__(self, options: FleetOptions) -> None:
        self.options = options
        self._counts_fd = create_counts_fd(options.workers)
        self.counts = SharedCounts(self._counts_fd, options.workers)
        self.slots = SlotTable()
        self._workers: dict[int, _Worker] = {}
        self._latest: bytes | None = None
        self._acks = asyncio.Condition()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()  # each forgets itself when done
        self._next_id = 0
        self._reports: dict[int, list[dict[str, Any]]] = {}
        self._failures: dict[int, int] = {}  # quick deaths in a row, per worker index
        self.restarts = 0

    # --- start and stop -----------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn every worker (they listen once they have the first snapshot)."""
        FLEET_SAMPLES.active = FLEET_TALLIES.active = True
        for index in range(self.options.workers):
            await self._spawn(index)
        self._task(self._collect_loop(), "collect samples")

    async def _spawn(self, index: int) -> None:
        listener = bind_port(self.options.host, self.options.port, reuse_port=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = WorkerConfig(
            index=index, workers=self.options.workers, listen_fd=listener.fileno(),
            control_fd=theirs.fileno(), counts_fd=self._counts_fd,
            log_format=self.options.log_format, metrics=self.options.metrics,
            metrics_route=self.options.metrics_route, access_log=self.options.access_log,
            compare=self.options.compare, limits=self.options.limits)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.fleet.worker", "--config", config.to_json()],
                pass_fds=(listener.fileno(), theirs.fileno(), self._counts_fd),
                preexec_fn=die_with_parent(signal.SIGTERM))
        finally:
            listener.close()  # the worker's copy is the only one: it dies with the worker
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        loop = asyncio.get_running_loop()
        worker = _Worker(index, proc, writer, reader, loop.time())
        self._workers[index] = worker
        if self._latest is not None:
            writer.write(self._latest)
        self._task(self._read(worker), f"read worker {index}")
        self._task(self._watch(worker), f"watch worker {index}")
        log.info("data-plane worker %d started (pid %d)", index, proc.pid)

    def _task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, graceful_s: float) -> None:
        """SIGTERM every worker (they finish requests in flight), SIGKILL after `graceful_s`."""
        self._closing = True
        workers = [w for w in self._workers.values() if w.proc.poll() is None]
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(wait_exit(w.proc) for w in workers)),
                                   graceful_s)
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                await wait_exit(worker.proc)
        await cancel_and_wait(*self._tasks)
        for worker in self._workers.values():
            worker.writer.close()
        self.counts.close()
        os.close(self._counts_fd)
        FLEET_SAMPLES.active = FLEET_TALLIES.active = False

    # --- snapshots ------------------------------------------------------------------------------

    def publish(self, snapshot: RoutingSnapshot) -> None:
        """Send `snapshot` to every worker (in publish order: one stream per worker)."""
        self.slots.cover(snapshot)
        message = frame({"t": "snapshot", "snapshot": snapshot_to_wire(snapshot),
                         "slots": self.slots.slots})
        self._latest = message
        for worker in self._workers.values():
            if worker.alive:
                worker.writer.write(message)

    async def applied(self, version: int) -> None:
        """Return once every live worker acknowledged `version` (or a newer one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.ack_timeout_s
        async with self._acks:
            while lagging := [w for w in self._workers.values()
                              if w.alive and w.acked < version]:
                left = deadline - loop.time()
                if left <= 0:
                    log.warning("snapshot %d: no acknowledgement from worker(s) %s within "
                                "%.0f s; answering without them", version,
                                ", ".join(str(w.index) for w in lagging),
                                self.options.ack_timeout_s)
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks.wait(), left)

    def acknowledged(self) -> dict[int, int]:
        """The snapshot version each live worker acknowledged last."""
        return {w.index: w.acked for w in self._workers.values() if w.alive}

    # --- fleet-wide reads -----------------------------------------------------------------------

    def in_flight(self, instance_id: str) -> int:
        """Requests in flight to that instance in all workers (the supervisor drains with it)."""
        slot = self.slots.slots.get(instance_id)
        return self.counts.total(slot) if slot is not None else 0

    def deployment_in_flight(self, endpoint: str, deployment: str) -> int:
        """Live and direct requests in flight to a deployment in all workers (what the 429
        rule compares with its limit; an autoscaler's utilisation reads the same)."""
        slot = self.slots.slots.get(deployment_slot_key(endpoint, deployment))
        return self.counts.total(slot) if slot is not None else 0

    async def collect(self) -> None:
        """Ask every live worker for its samples and comparison reports (bounded wait)."""
        asked = [w for w in self._workers.values() if w.alive]
        answers = await asyncio.gather(*(self._ask(w, {"t": "samples?"}) for w in asked),
                                       return_exceptions=True)
        for worker, answer in zip(asked, answers, strict=True):
            if not worker.alive:
                continue
            if isinstance(answer, BaseException):
                self._unanswered(worker)
                continue
            worker.unanswered = 0
            FLEET_SAMPLES.update(worker.index, answer["families"])
            FLEET_TALLIES.update(worker.index, answer["instances"])
            self._reports[worker.index] = answer["compare"]

    def _unanswered(self, worker: _Worker) -> None:
        """A worker whose loop does not answer for HUNG_AFTER collections in a row is hung
        (stopped, or stuck in a loop): it is killed, and `_watch` starts it again."""
        worker.unanswered += 1
        if worker.unanswered >= HUNG_AFTER and worker.proc.poll() is None:
            log.warning("data-plane worker %d (pid %d) has not answered for %d collections; "
                        "killing it", worker.index, worker.proc.pid, worker.unanswered)
            worker.proc.kill()

    async def metrics(self) -> tuple[bytes, str]:
        await self.collect()
        return render_metrics()

    def comparisons(self, endpoint: str, deployment: str) -> ComparisonReport:
        reports = [r for worker_reports in self._reports.values() for r in worker_reports
                   if r["endpoint"] == endpoint and r["deployment"] == deployment]
        return merge_reports(endpoint, deployment, self.options.compare, reports)

    def comparison_counts(self, endpoint: str, deployment: str) -> dict[str, int]:
        return dict(self.comparisons(endpoint, deployment).counts)

    def demand(self, endpoint: str, deployment: str) -> int:
        """What the autoscaler samples, summed over the workers (`ScoringApp.demand`): live,
        direct and mirror requests in flight plus those waiting for a first instance."""
        slot = self.slots.slots.get(demand_slot_key(endpoint, deployment))
        return self.counts.total(slot) if slot is not None else 0

    # --- per worker -----------------------------------------------------------------------------

    async def _ask(self, worker: _Worker, message: Mapping[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        ask_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.answers[ask_id] = future
        try:
            worker.writer.write(frame({**message, "id": ask_id}))
            return await asyncio.wait_for(future, ASK_TIMEOUT_S)
        finally:
            worker.answers.pop(ask_id, None)

    async def _read(self, worker: _Worker) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                message = await read_message(worker.reader)
                kind = message["t"]
                if kind == "ack":
                    async with self._acks:
                        worker.acked = max(worker.acked, int(message["version"]))
                        self._acks.notify_all()
                elif kind == "samples":
                    future = worker.answers.get(int(message["id"]))
                    if future is not None and not future.done():
                        future.set_result(message)
                elif kind == "metrics?":
                    self._task(self._answer_metrics(worker, int(message["id"])), "metrics")

    async def _answer_metrics(self, worker: _Worker, ask_id: int) -> None:
        body, content_type = await self.metrics()
        if worker.alive:
            worker.writer.write(frame({"t": "metrics", "id": ask_id, "body": body.decode(),
                                       "content_type": content_type}))

    async def _watch(self, worker: _Worker) -> None:
        code = await wait_exit(worker.proc)
        worker.alive = False
        async with self._acks:
            self._acks.notify_all()  # nobody waits for a dead worker's acknowledgement
        for future in worker.answers.values():
            if not future.done():
                future.set_exception(ConnectionError(f"worker {worker.index} exited"))
        if self._closing:
            return
        self.counts.clear_row(worker.index)  # its requests died with it
        FLEET_SAMPLES.retire(worker.index)
        FLEET_TALLIES.retire(worker.index)
        self._reports.pop(worker.index, None)
        worker.writer.close()
        loop = asyncio.get_running_loop()
        lived = loop.time() - worker.started_at
        failures = 0 if lived > _HEALTHY_AFTER_S else self._failures.get(worker.index, -1) + 1
        self._failures[worker.index] = failures
        delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
        log.warning("data-plane worker %d (pid %d) exited with %s; starting it again in "
                    "%.1f s", worker.index, worker.proc.pid, _exit_reason(code), delay)
        self.restarts += 1
        await asyncio.sleep(delay)
        if not self._closing:
            await self._spawn(worker.index)

    async def _collect_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.collect_every_s)
            with contextlib.suppress(Exception):
                await self.collect()


def _exit_reason(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"code {code}"


def bind_port(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A socket bound to the scoring address, not listening yet; with `reuse_port`, others
    bound the same way (the workers') may share the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
