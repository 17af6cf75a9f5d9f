"""Calling `run()` off the event loop, in WORKER_COUNT dedicated threads.

Why not `ThreadPoolExecutor` + `run_in_executor`: each call then also builds a
`concurrent.futures.Future` (a Condition, notify_all, callbacks) and chains it to an asyncio
future, ~10 µs of Python per request split across both threads. Here a job is a tuple on a
`queue.SimpleQueue` (C, one wakeup of an idle worker) and the answer comes back with one
`loop.call_soon_threadsafe` (one wakeup of the loop). Everything per call that is CPU work
(run(), json.dumps) happens in the worker thread, so the event loop only moves bytes.

With batching (`scoring_servers/batching.py`), a closed batch is one job: one thread calls the
script's `run_batch(list_of_raw_data)` once and the answers come back with one wakeup. It must
return one result per input, in order (a list or tuple); each result is answered as run()'s
would be. If it raises, or returns anything else (another length, not a sequence), the error is
logged and run() is called for each request of the batch, one by one: a poisoned request then
fails alone, with run()'s own answer, and its neighbours are still scored.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scoring_servers.azureml.results import (
    RUN_FAILED_MESSAGE,
    Outcome,
    error_outcome,
    exception_outcome,
    result_outcome,
)
from scoring_servers.batching import Pending, resolve_all

logger = logging.getLogger("scoring_servers.azureml")


class Runner:
    """Runs `run(*args, **kwargs)` in its own threads; `busy` counts calls still inside run()."""

    def __init__(self, run: Callable[..., Any], worker_count: int,
                 timeout_s: float | None, run_code: types.CodeType | None = None,
                 run_batch: Callable[[list[Any]], Any] | None = None) -> None:
        self._run = run
        self._run_batch = run_batch
        self._run_code = run_code  # the script's own run() code, to tell its failures apart
        self._timeout_s = timeout_s
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._inside: set[int] = set()  # threads inside run(); set.add/discard are atomic
        # Daemon threads: a run() that never returns must not keep the process alive.
        self._threads = [threading.Thread(target=self._work, name=f"run_{index}", daemon=True)
                         for index in range(worker_count)]
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> int:
        return len(self._inside)

    async def score(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
                    request_id: str) -> Outcome:
        """The answer to one request. A SCORING_TIMEOUT_MS overrun gives 500, as azmlinfsrv does
        (the gateway maps any non-2xx to 424 anyway); run() keeps its thread until it returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._jobs.put((loop, future, args, kwargs, request_id))
        return await self.wait(future, request_id)

    def submit_batch(self, batch: list[Pending[BatchItem]]) -> None:
        """A closed batch (the batcher's `dispatch`, on the loop): one job for one thread."""
        self._jobs.put((asyncio.get_running_loop(), batch))

    async def wait(self, future: asyncio.Future[Outcome], request_id: str) -> Outcome:
        """The answer of a submitted call, within SCORING_TIMEOUT_MS."""
        if self._timeout_s is None:
            return await future
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 (not TimeoutError before 3.11)
            timeout_ms = round(self._timeout_s * 1000)
            logger.error("run() did not finish within SCORING_TIMEOUT_MS=%d (request %s)",
                         timeout_ms, request_id)
            return error_outcome(500, f"Scoring timeout after {timeout_ms} ms", run_failed=True)

    def _work(self) -> None:
        """One worker thread: jobs until the None that `close` sends."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if len(job) == 2:
                batch_loop, batch = job
                answers = self._call_batch(batch)
                try:
                    batch_loop.call_soon_threadsafe(resolve_all, batch, answers)
                except RuntimeError:  # the loop closed meanwhile
                    pass
                continue
            loop, future, args, kwargs, request_id = job
            if future.cancelled():  # timed out while queued: azmlinfsrv would not run it either
                continue
            outcome = self._call(args, kwargs, request_id)
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome)
            except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer
                pass

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
              request_id: str) -> Outcome:
        token = threading.get_ident()  # one call at a time per thread
        self._inside.add(token)
        started = time.perf_counter()
        try:
            result = self._run(*args) if kwargs is None else self._run(*args, **kwargs)
        except Exception as exc:
            return exception_outcome(exc, self._run_code, request_id)
        finally:
            self._inside.discard(token)
        exec_ms = (time.perf_counter() - started) * 1000.0
        try:
            return result_outcome(result, exec_ms, request_id)
        except Exception:  # e.g. a response object whose get_data() raises: never lose the thread
            logger.exception("run()'s result could not be turned into an answer (request %s)",
                             request_id)
            return error_outcome(500, RUN_FAILED_MESSAGE, run_failed=True)

    def _call_batch(self, batch: list[Pending[BatchItem]]) -> list[Outcome | None]:
        """run_batch() once for the requests still waited for (None for the others)."""
        live = [index for index, pending in enumerate(batch) if not pending.future.done()]
        answers: list[Outcome | None] = [None] * len(batch)
        if not live:
            return answers
        inputs = [batch[index].item[0] for index in live]
        results = self._batch_results(inputs, batch[live[0]].item[1])
        if results is None:  # one run() per request: each gets its own answer
            for index in live:
                raw_data, request_id = batch[index].item
                answers[index] = self._call((raw_data,), None, request_id)
            return answers
        results_list, exec_ms = results
        for index, result in zip(live, results_list):
            request_id = batch[index].item[1]
            try:
                answers[index] = result_outcome(result, exec_ms, request_id)
            except Exception:  # as in _call: never lose the thread
                logger.exception("run_batch()'s result could not be turned into an answer "
                                 "(request %s)", request_id)
                answers[index] = error_outcome(500, RUN_FAILED_MESSAGE, run_failed=True)
        return answers

    def _batch_results(self, inputs: list[Any],
                       first_id: str) -> tuple[list[Any], float] | None:
        """run_batch's results and its time, or None when it failed (logged)."""
        assert self._run_batch is not None  # only batched when the script has run_batch
        token = threading.get_ident()
        self._inside.add(token)
        started = time.perf_counter()
        try:
            results = self._run_batch(inputs)
        except Exception:
            logger.exception("run_batch() raised on a batch of %d (first request %s); calling "
                             "run() for each request", len(inputs), first_id)
            return None
        finally:
            self._inside.discard(token)
        exec_ms = (time.perf_counter() - started) * 1000.0
        if not isinstance(results, (list, tuple)) or len(results) != len(inputs):
            got = (f"{len(results)} results" if isinstance(results, (list, tuple))
                   else type(results).__name__)
            logger.error("run_batch() returned %s for a batch of %d (first request %s); it must "
                         "return one result per input: calling run() for each request",
                         got, len(inputs), first_id)
            return None
        return list(results), exec_ms

    def close(self) -> None:
        """Stop taking calls; does not wait for a run() that never returns."""
        for _ in self._threads:
            self._jobs.put(None)


if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    from typing import Union

    BatchItem = tuple[Any, str]  # (raw data, request id)
    _Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Outcome]", tuple[Any, ...],
                  dict[str, Any] | None, str]
    _Job = Union[_Call, tuple[asyncio.AbstractEventLoop, list[Pending[BatchItem]]]]


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    """On the loop: a timed-out request's future is already cancelled."""
    if not future.done():
        future.set_result(outcome)
