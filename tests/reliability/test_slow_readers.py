"""Clients that do not read their answer (issue 10, "Slow readers and big answers").

Each asks for a 10 MiB answer and never reads it. The answer streams with back-pressure, so
the gateway holds a transport buffer per client, not the answer (it used to hold +10.8 MB
each, forever), and `--send-timeout-s` aborts the stalled connection, upstream included.
"""

from __future__ import annotations

import hashlib
import socket

from tests.reliability.proc import PeakRss, open_fds, rss_mb
from tests.reliability.raw_http import exchange, request
from tests.reliability.stack import FAULTS, Stack
from tests.support.fake_upstream import big_body
from tests.support.processes import wait_until

SEND_TIMEOUT_S = 2.0
SERVE_FLAGS = ("--send-timeout-s", str(SEND_TIMEOUT_S))
CLIENTS = 12


def _stalled_client(stack: Stack) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little too
    sock.connect(("127.0.0.1", stack.port))
    sock.sendall(request(f"/endpoints/{FAULTS}/score", [
        (b"Host", b"x"), (b"Authorization", f"Bearer {stack.keys[FAULTS]}".encode()),
        (b"azureml-model-deployment", b"big")], b"{}"))
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the gateway ended the connection: reading it dry ends in EOF or a reset."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass
    return True


def test_clients_that_never_read_hold_no_answer_and_are_cut(stack: Stack) -> None:
    pid = stack.gateway.started.proc.pid
    whole = stack.post("big")  # warm the allocator with one answer read whole
    assert hashlib.sha256(whole.content).digest() == hashlib.sha256(big_body()).digest()
    fds, rss = open_fds(pid), rss_mb(pid)
    stack.forget()
    clients = [_stalled_client(stack) for _ in range(CLIENTS)]
    try:
        with PeakRss(pid) as watch:
            wait_until(lambda: len(stack.seen()) == CLIENTS, timeout=20,
                       what="every stalled request forwarded")
            wait_until(lambda: open_fds(pid) < fds + 2 * CLIENTS, timeout=20,
                       what="the first stalled connections cut")
        peak = watch.peak
        # Back-pressure: each stalled answer holds its buffers (~0.4 MB), not its 10 MiB.
        assert peak - rss < 2.0 * CLIENTS, (rss, peak)
        # The send timeout cuts them (client and upstream side), and nothing is left behind.
        wait_until(lambda: open_fds(pid) <= fds + 2, timeout=10 * SEND_TIMEOUT_S + 20,
                   what=f"stalled connections cut (fds {fds} before)")
        assert all(_closed(sock) for sock in clients)
    finally:
        for sock in clients:
            sock.close()
    assert stack.post("good").status_code == 200
    assert stack.log_has_no_traceback()


def test_an_upstream_failing_mid_answer_leaves_the_answer_visibly_cut(stack: Stack) -> None:
    """A streamed answer whose upstream dies after 1 of 10 MiB: the client gets the head, the
    bytes that came, then a closed connection, never something it could take for whole."""
    data = request(f"/endpoints/{FAULTS}/score", [
        (b"Host", b"x"), (b"Authorization", f"Bearer {stack.keys[FAULTS]}".encode()),
        (b"azureml-model-deployment", b"cut")], b"{}")
    answer = exchange(stack.port, data, timeout_s=10)
    assert answer.closed and answer.status == 200
    head, body = answer.data.split(b"\r\n\r\n", 1)
    assert b"content-length: 10485760" in head.lower()
    assert 64 * 1024 < len(body) < 10 * 1024 * 1024
    assert stack.post("good").status_code == 200
    assert stack.log_has_no_traceback()
    assert "ASGI callable" not in stack.gateway.started.log()  # not an application error
