"""cancel_and_wait: a task that swallows its first cancellation still ends."""

from __future__ import annotations

import asyncio

from control_plane.tasks import cancel_and_wait
from tests.support.loops import run_bounded


def test_a_task_that_swallows_a_cancel_is_cancelled_again() -> None:
    swallowed: list[int] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(1)  # like a library turning a cancel into a timeout

    async def main() -> None:
        task = asyncio.create_task(stubborn())
        plain = asyncio.create_task(asyncio.sleep(3600))
        failing = asyncio.create_task(_fail())
        await asyncio.sleep(0.01)
        await asyncio.wait_for(cancel_and_wait(task, plain, failing, retry_s=0.05), 30)
        assert task.cancelled() and plain.cancelled() and failing.done()
        assert swallowed == [1]

    run_bounded(main())


def test_gather_alone_would_hang_on_the_same_task() -> None:
    """The reason for cancel_and_wait: one cancel() and a gather never return here."""

    async def stubborn() -> None:
        cancels = 0
        while cancels < 2:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1

    async def main() -> bool:
        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.3)
        await cancel_and_wait(task, retry_s=0.05)
        return bool(done)

    assert run_bounded(main()) is False


async def _fail() -> None:
    raise RuntimeError("ended with an error, which cancel_and_wait consumes")
