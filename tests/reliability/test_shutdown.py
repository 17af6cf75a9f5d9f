"""SIGTERM under load: requests in flight finish with their answers, new connections are
refused (not reset half-way), and serve exits cleanly."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

from tests.reliability.load import Result, fire, numbered
from tests.reliability.stack import start_stack
from tests.support.processes import ProcessGroup, wait_until

IN_FLIGHT = 16


def test_sigterm_lets_requests_in_flight_finish_and_refuses_new_ones(
    processes: ProcessGroup, tmp_path: Path
) -> None:
    stack = start_stack(processes, tmp_path)
    results: list[Result] = []
    clients = threading.Thread(target=lambda: results.extend(
        fire(stack.score_url, numbered(IN_FLIGHT), stack.headers("pause"), IN_FLIGHT)))
    clients.start()
    wait_until(lambda: len(stack.seen()) >= IN_FLIGHT, timeout=30,
               what="every request to be in flight at the upstream")  # each waits 1 s there
    proc = stack.gateway.started.proc
    proc.send_signal(signal.SIGTERM)
    refused, still_in_flight = 0, False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and refused == 0:
        try:
            socket.create_connection(("127.0.0.1", stack.port), timeout=1).close()
        except ConnectionRefusedError:
            refused += 1
            still_in_flight = clients.is_alive()
        time.sleep(0.02)
    clients.join(60)
    assert [r.status for r in results] == [200] * IN_FLIGHT, [(r.status, r.error)
                                                              for r in results]
    assert refused == 1, "new connections were still accepted after SIGTERM"
    assert still_in_flight  # refused while the old requests were still being answered
    assert proc.wait(60) == 0
    log = stack.gateway.started.log()
    assert "stopped" in log and "Traceback" not in log
    assert not (stack.gateway.home / "server.json").exists()
