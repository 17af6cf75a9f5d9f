"""Scoring off the event loop, in WORKER_COUNT dedicated threads.

The same design as `scoring_servers/azureml/runner.py` (why not `run_in_executor`: see there):
a job is a tuple on a `queue.SimpleQueue`, the answer comes back with one
`call_soon_threadsafe`. Restated rather than imported because that runner is bound to a
scoring script's `run(str)` and its error contract (every exception is a 500), while here a
client's mistake is a 4xx with MLflow's message. All CPU work of a request (JSON parsing,
DataFrame building, predict, JSON encoding) happens in the worker thread.

With batching (`scoring_servers/batching.py`) a closed batch is one job: one thread scores all
its bodies with `score_batch` (stacking.py: one `predict` for what fits together) and the
answers come back with one wakeup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scoring_servers.batching import Pending, resolve_all
from scoring_servers.mlflow.errors import ClientError

logger = logging.getLogger("scoring_servers.mlflow")

SERVER_FAILED_MESSAGE = "An unexpected error occurred while scoring. Check the logs for more info."

if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    # request body → answer body (JSON); raises ClientError
    Score = Callable[[bytes], bytes]
    # request bodies → per body, its answer body or what scoring it raised
    ScoreBatch = Callable[[Sequence[bytes]], list[bytes | Exception]]
    BatchItem = tuple[bytes, str]  # (request body, request id)


@dataclass(frozen=True)  # no slots=True: Python 3.10+
class Outcome:
    status: int
    body: bytes  # JSON
    exec_ms: float  # time spent scoring (parse, predict, encode)


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


class Runner:
    """Runs `score(body)` in its own threads; `busy` counts calls still scoring."""

    def __init__(self, score: Score, worker_count: int, timeout_s: float | None,
                 score_batch: ScoreBatch | None = None) -> None:
        self._score = score
        self._score_batch = score_batch
        self._timeout_s = timeout_s
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._inside: set[int] = set()
        # Daemon threads: a predict() that never returns must not keep the process alive.
        self._threads = [threading.Thread(target=self._work, name=f"predict_{index}", daemon=True)
                         for index in range(worker_count)]
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> int:
        return len(self._inside)

    async def score(self, body: bytes, request_id: str) -> Outcome:
        """A SCORING_TIMEOUT_MS overrun gives 500, as for the azureml server."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._jobs.put((loop, future, body, request_id))
        return await self.wait(future, request_id)

    def submit_batch(self, batch: list[Pending[BatchItem]]) -> None:
        """A closed batch (the batcher's `dispatch`, on the loop): one job for one thread."""
        self._jobs.put((asyncio.get_running_loop(), batch))

    async def wait(self, future: asyncio.Future[Outcome], request_id: str) -> Outcome:
        """The answer of a submitted job, within SCORING_TIMEOUT_MS."""
        if self._timeout_s is None:
            return await future
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except asyncio.TimeoutError:  # noqa: UP041 (not TimeoutError before 3.11)
            timeout_ms = round(self._timeout_s * 1000)
            logger.error("scoring did not finish within SCORING_TIMEOUT_MS=%d (request %s)",
                         timeout_ms, request_id)
            return Outcome(500, error_body(f"Scoring timeout after {timeout_ms} ms"),
                           (time.perf_counter() - started) * 1000.0)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if len(job) == 2:
                self._work_batch(*job)
                continue
            loop, future, body, request_id = job
            if future.cancelled():  # timed out while queued
                continue
            outcome = self._call(body, request_id)
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome)
            except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer
                pass

    def _call(self, body: bytes, request_id: str) -> Outcome:
        token = threading.get_ident()
        self._inside.add(token)
        started = time.perf_counter()
        try:
            answer = self._score(body)
            status = 200
        except ClientError as exc:
            answer, status = error_body(exc.message), exc.status
        except Exception:
            logger.exception("scoring failed (request %s)", request_id)
            answer, status = error_body(SERVER_FAILED_MESSAGE), 500
        finally:
            self._inside.discard(token)
        return Outcome(status, answer, (time.perf_counter() - started) * 1000.0)

    def _work_batch(self, loop: asyncio.AbstractEventLoop,
                    batch: list[Pending[BatchItem]]) -> None:
        live = [pending for pending in batch if not pending.future.done()]
        answers = self._call_batch([pending.item for pending in live]) if live else []
        try:
            loop.call_soon_threadsafe(resolve_all, live, answers)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _call_batch(self, items: list[BatchItem]) -> list[Outcome]:
        assert self._score_batch is not None  # only batched with a score_batch
        token = threading.get_ident()
        self._inside.add(token)
        started = time.perf_counter()
        try:
            answers = self._score_batch([body for body, _ in items])
        except Exception:  # a bug of ours (score_batch answers per request): 500 for all
            logger.exception("scoring a batch of %d failed (first request %s)", len(items),
                             items[0][1])
            failed = Outcome(500, error_body(SERVER_FAILED_MESSAGE),
                             (time.perf_counter() - started) * 1000.0)
            return [failed] * len(items)
        finally:
            self._inside.discard(token)
        exec_ms = (time.perf_counter() - started) * 1000.0
        return [_outcome(answer, exec_ms, request_id)
                for answer, (_, request_id) in zip(answers, items)]

    def close(self) -> None:
        """Stop taking calls; does not wait for a call that never returns."""
        for _ in self._threads:
            self._jobs.put(None)


if TYPE_CHECKING:  # annotations only, as above
    from typing import Union

    _Job = Union[tuple[asyncio.AbstractEventLoop, "asyncio.Future[Outcome]", bytes, str],
                 tuple[asyncio.AbstractEventLoop, list[Pending[BatchItem]]]]


def _outcome(answer: bytes | Exception, exec_ms: float, request_id: str) -> Outcome:
    """One request's answer within a batch, as `_call` would have given it alone."""
    if isinstance(answer, bytes):
        return Outcome(200, answer, exec_ms)
    if isinstance(answer, ClientError):
        return Outcome(answer.status, error_body(answer.message), exec_ms)
    logger.error("scoring failed (request %s)", request_id, exc_info=answer)
    return Outcome(500, error_body(SERVER_FAILED_MESSAGE), exec_ms)


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)
