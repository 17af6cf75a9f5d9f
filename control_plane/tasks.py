"""Stopping asyncio tasks so that a shutdown can never hang on one of them, and running
blocking work off the loop without holding the process up at exit."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar


async def cancel_and_wait(*tasks: asyncio.Task[Any], retry_s: float = 1.0) -> None:
    """Cancel `tasks` and return once every one has ended.

    One `cancel()` is not always enough: a task whose cancellation is swallowed (by a library
    catching CancelledError, or a timeout racing the cancel) would keep running, and a plain
    `gather` would wait for it forever. Whatever is still running is cancelled again every
    `retry_s`. Their results and exceptions are consumed: this is for tasks being thrown away.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved


T = TypeVar("T")


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on a daemon thread: unlike `asyncio.to_thread`, a build still running
    when `serve` stops does not hold the process up (its uv dies with the process)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = function(*args), None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=getattr(function, "__name__", "off-loop"),
                     daemon=True).start()
    return await future
