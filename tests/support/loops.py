"""Running an in-process uvloop loop in a test, bounded.

pytest-timeout's signal method cannot interrupt uvloop (the SIGALRM handler is deferred while
the loop waits), so a hung coroutine would hang the suite. `run_bounded` waits for the test's
coroutine at most `timeout_s`, then fails the test with every task's stack (what a thread
dump cannot show), after giving the coroutine's own `finally` blocks a bounded chance to run.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run_bounded(main: Coroutine[Any, Any, T], timeout_s: float = 120.0,
                cleanup_s: float = 30.0) -> T:
    async def guarded() -> T:
        task = asyncio.ensure_future(main)
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
        if done:
            return task.result()
        stacks = _task_stacks(skip=asyncio.current_task())
        task.cancel()
        await asyncio.wait({task}, timeout=cleanup_s)
        raise TimeoutError(f"the test's event loop did not finish within {timeout_s:g} s; "
                           f"its tasks were:\n{stacks}")

    return uvloop.run(guarded())


def _task_stacks(skip: asyncio.Task[Any] | None) -> str:
    out = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not skip:
            task.print_stack(file=out)
    return out.getvalue()
