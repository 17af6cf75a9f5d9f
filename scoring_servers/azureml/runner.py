"""Calling `run()` off the event loop, in WORKER_COUNT dedicated threads.

Why not `ThreadPoolExecutor` + `run_in_executor`: each call then also builds a
`concurrent.futures.Future` (a Condition, notify_all, callbacks) and chains it to an asyncio
future, ~10 µs of Python per request split across both threads. Here a job is a tuple on a
`queue.SimpleQueue` (C, one wakeup of an idle worker) and the answer comes back with one
`loop.call_soon_threadsafe` (one wakeup of the loop). Everything per call that is CPU work
(run(), json.dumps) happens in the worker thread, so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger("scoring_servers.azureml")

RUN_FAILED_MESSAGE = "An unexpected error occurred in scoring script. Check the logs for more info."


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: bytes  # JSON
    exec_ms: float  # time spent in run()


def error_body(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


def encode_result(result: Any) -> bytes:
    """`json.dumps` exactly as azureml-inference-server-http answers (None → `{}`).

    orjson is not used: it writes `[1,2]` where json.dumps writes `[1, 2]`, and clients may
    compare bytes.
    """
    if result is None:
        return b"{}"
    return json.dumps(result).encode()


class Runner:
    """Runs `run(raw_data)` in its own threads; `busy` counts calls still inside `run()`."""

    def __init__(self, run: Callable[[str], Any], worker_count: int,
                 timeout_s: float | None) -> None:
        self._run = run
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

    async def score(self, raw_data: str, request_id: str) -> Outcome:
        """The answer to one request. A SCORING_TIMEOUT_MS overrun gives 500, as azmlinfsrv does
        (the gateway maps any non-2xx to 424 anyway); run() keeps its thread until it returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._jobs.put((loop, future, raw_data, request_id))
        if self._timeout_s is None:
            return await future
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(future, self._timeout_s)
        except asyncio.TimeoutError:
            timeout_ms = round(self._timeout_s * 1000)
            logger.error("run() did not finish within SCORING_TIMEOUT_MS=%d (request %s)",
                         timeout_ms, request_id)
            return Outcome(500, error_body(f"Scoring timeout after {timeout_ms} ms"),
                           (time.perf_counter() - started) * 1000.0)

    def _work(self) -> None:
        """One worker thread: jobs until the None that `close` sends."""
        while (job := self._jobs.get()) is not None:
            loop, future, raw_data, request_id = job
            if future.cancelled():  # timed out while queued: azmlinfsrv would not run it either
                continue
            outcome = self._call(raw_data, request_id)
            try:
                loop.call_soon_threadsafe(_resolve, future, outcome)
            except RuntimeError:  # the loop closed meanwhile: nobody waits for this answer
                pass

    def _call(self, raw_data: str, request_id: str) -> Outcome:
        token = threading.get_ident()  # one call at a time per thread
        self._inside.add(token)
        started = time.perf_counter()
        try:
            result = self._run(raw_data)
        except Exception:
            exec_ms = (time.perf_counter() - started) * 1000.0
            logger.exception("run() raised an exception (request %s)", request_id)
            return Outcome(500, error_body(RUN_FAILED_MESSAGE), exec_ms)
        finally:
            self._inside.discard(token)
        exec_ms = (time.perf_counter() - started) * 1000.0
        try:
            return Outcome(200, encode_result(result), exec_ms)
        except (TypeError, ValueError) as exc:
            logger.error("run() returned a value json.dumps cannot encode (request %s): %s",
                         request_id, exc)
            return Outcome(500, error_body(f"run() returned a value that is not JSON: {exc}"), exec_ms)

    def close(self) -> None:
        """Stop taking calls; does not wait for a run() that never returns."""
        for _ in self._threads:
            self._jobs.put(None)


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Outcome]", str, str]


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    """On the loop: a timed-out request's future is already cancelled."""
    if not future.done():
        future.set_result(outcome)
