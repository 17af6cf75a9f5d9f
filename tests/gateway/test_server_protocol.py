"""gateway/http/server_protocol.py's `Deadline`: lazily re-armed, so requests on a kept-alive
connection cost no loop timer each (the 408 behaviour is tested end to end in
tests/reliability/test_bad_input.py)."""

from __future__ import annotations

import asyncio

from gateway.http.server_protocol import Deadline
from tests.support.loops import run_bounded

TIMEOUT_S = 0.2


def test_expires_timeout_after_the_last_start_only_once() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        deadline = Deadline(loop, TIMEOUT_S, lambda: fired.append(loop.time()))
        deadline.start()
        await asyncio.sleep(TIMEOUT_S / 2)
        restarted = loop.time()
        deadline.start()  # moves the deadline; the timer already armed re-arms when it fires
        await asyncio.sleep(TIMEOUT_S * 3)
        assert not deadline.running
        return [at - restarted for at in fired]

    fired = run_bounded(main())
    assert len(fired) == 1 and fired[0] >= TIMEOUT_S * 0.9, fired


def test_stop_and_close_prevent_expiry() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        stopped = Deadline(loop, TIMEOUT_S, lambda: fired.append("stopped"))
        closed = Deadline(loop, TIMEOUT_S, lambda: fired.append("closed"))
        stopped.start()
        closed.start()
        stopped.stop()
        closed.close()
        await asyncio.sleep(TIMEOUT_S * 2)
        stopped.start()  # usable again after its stale timer found nothing to do
        await asyncio.sleep(TIMEOUT_S * 2)
        return fired

    assert run_bounded(main()) == ["stopped"]
