"""Stopping asyncio tasks so that a shutdown can never hang on one of them."""

from __future__ import annotations

import asyncio
from typing import Any


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
