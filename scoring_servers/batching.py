"""Dynamic batching, shared by both scoring servers: requests that arrive close together are
scored by one call (a script's `run_batch`, or one `predict` on stacked rows).

Where it sits: on the event loop, in front of the server's WORKER_COUNT threads. `submit` adds
a request to the open batch; the batch closes when it holds `max_batch_size` requests or
`max_latency_s` after its first request arrived, whichever comes first, and is then handed
whole to `dispatch` (which puts it on the workers' queue as one job). So a lone request waits
at most `max_latency_s` before its call starts queueing for a thread, several batches run at
once when WORKER_COUNT > 1, and the threads never wait for each other. Each request learns the
size of its batch and how long it waited for the batch to close (`Pending.batch_size`,
`Pending.wait_s`), which the servers report in the `x-scoregate-batch-size` /
`x-scoregate-batch-wait-ms` answer headers for the gateway's metrics.

Configured with `SCOREGATE_BATCHING=<max_batch_size>,<max_latency_ms>` (e.g. `32,10`), which
the control plane sets from a deployment's `batching:` block. Python 3.8+, standard library only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

ENV_VAR = "SCOREGATE_BATCHING"
SIZE_HEADER = b"x-scoregate-batch-size"  # sent first, then WAIT_HEADER: the gateway looks there
WAIT_HEADER = b"x-scoregate-batch-wait-ms"
MAX_BATCH_SIZE = 1024  # the bounds the control plane validates too
MAX_LATENCY_MS = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int
    max_latency_s: float


def parse_batching(environ: Mapping[str, str]) -> BatchSettings | None:
    """`SCOREGATE_BATCHING=32,10` → BatchSettings(32, 0.010); unset or empty → None (off).
    Raises ValueError with a message naming the variable."""
    text = environ.get(ENV_VAR, "").strip()
    if not text:
        return None
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError(f"{ENV_VAR} must be <max_batch_size>,<max_latency_ms> in whole numbers "
                         f"(e.g. 32,10), got {text!r}")
    size, latency_ms = int(parts[0]), int(parts[1])
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise ValueError(f"{ENV_VAR}: max_batch_size must be from 1 to {MAX_BATCH_SIZE}, "
                         f"got {size}")
    if not 1 <= latency_ms <= MAX_LATENCY_MS:
        raise ValueError(f"{ENV_VAR}: max_latency_ms must be from 1 to {MAX_LATENCY_MS}, "
                         f"got {latency_ms}")
    return BatchSettings(size, latency_ms / 1000.0)


class Pending(Generic[T]):
    """One request in a batch: its input, the future its answer resolves, and once the batch
    closed, the batch's size and how long this request waited for it."""

    __slots__ = ("item", "future", "arrived", "batch_size", "wait_s")

    def __init__(self, item: T, future: asyncio.Future[Any], arrived: float) -> None:
        self.item = item
        self.future = future
        self.arrived = arrived
        self.batch_size = 0
        self.wait_s = 0.0

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The batch headers, to be sent first in the answer."""
        return [(SIZE_HEADER, str(self.batch_size).encode()),
                (WAIT_HEADER, f"{self.wait_s * 1000.0:.3f}".encode())]


if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    Batch = list[Pending[Any]]
    Dispatch = Callable[[list[Pending[Any]]], None]


class Batcher(Generic[T]):
    """Collects requests into batches on the running event loop (not thread-safe: call
    `submit` from the loop only). `dispatch` gets each closed batch, in arrival order."""

    __slots__ = ("_settings", "_dispatch", "_open", "_timer")

    def __init__(self, settings: BatchSettings, dispatch: Dispatch) -> None:
        self._settings = settings
        self._dispatch = dispatch
        self._open: Batch = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def settings(self) -> BatchSettings:
        return self._settings

    def submit(self, item: T) -> Pending[T]:
        """Add `item` to the open batch; await `pending.future` for its answer."""
        loop = asyncio.get_running_loop()
        pending: Pending[T] = Pending(item, loop.create_future(), time.perf_counter())
        batch = self._open
        batch.append(pending)
        if len(batch) >= self._settings.max_batch_size:
            self.close()
        elif len(batch) == 1:
            self._timer = loop.call_later(self._settings.max_latency_s, self.close)
        return pending

    def close(self) -> None:
        """Close the open batch now (full, or its first request waited the latency bound)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._open
        if not batch:
            return
        self._open = []
        closed = time.perf_counter()
        size = len(batch)
        for pending in batch:
            pending.batch_size = size
            pending.wait_s = closed - pending.arrived
        self._dispatch(batch)


def resolve_all(batch: Batch, answers: list[Any]) -> None:
    """On the loop, once per batch: each request's answer (a timed-out one is already done)."""
    for pending, answer in zip(batch, answers):
        if not pending.future.done():
            pending.future.set_result(answer)
