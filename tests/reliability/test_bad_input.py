"""Bad input at the scoring listener: smuggling attempts, oversized and slow heads, huge and
non-UTF-8 bodies, random bytes in every header scoregate reads. Nothing desynchronised ever
reaches the upstream (it records every request), nothing answers 500, the gateway keeps serving.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.load import fire, numbered
from tests.reliability.raw_http import exchange, request
from tests.reliability.stack import FAULTS, Stack

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 48
SERVE_FLAGS = ("--header-timeout-s", str(HEADER_TIMEOUT_S), "--max-body-mb", "1",
               "--body-timeout-s", str(BODY_TIMEOUT_S),
               "--max-connections", str(MAX_CONNECTIONS))
PATH = f"/endpoints/{FAULTS}/score"


def head(stack: Stack, deployment: bytes = b"echo") -> list[tuple[bytes, bytes]]:
    return [(b"Host", b"127.0.0.1"), (b"Authorization", f"Bearer {stack.keys[FAULTS]}".encode()),
            (b"azureml-model-deployment", deployment)]


def auth_lines(stack: Stack) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in head(stack))


SMUGGLING = {
    "content-length and transfer-encoding": b"Content-Length: 4\r\nTransfer-Encoding: chunked"
                                            b"\r\n\r\n0\r\n\r\nPOST /x HTTP/1.1\r\n\r\n",
    "two different content-lengths": b"Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
    "two equal content-lengths": b"Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    "chunk size not hex": b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk size overflow": b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nab\r\n",
    "chunk shorter than its size": b"Transfer-Encoding: chunked\r\n\r\n8\r\nabcd\r\n0\r\n\r\n",
    "obs-fold": b"Content-Length: 4\r\nX-A: a\r\n b\r\n\r\nabcd",
    "obfuscated transfer-encoding": b"Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n"
                                    b"abcd",
    "chunked not last": b"Transfer-Encoding: chunked, identity\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    "space before colon": b"Content-Length : 4\r\n\r\nabcd",
    "negative content-length": b"Content-Length: -1\r\n\r\nabcd",
    "bare LF line ends": b"Content-Length: 4\n\nabcd",
    "NUL in a header": b"X-A: a\x00b\r\nContent-Length: 4\r\n\r\nabcd",
}


@pytest.mark.parametrize("case", sorted(SMUGGLING))
def test_smuggling_attempt_is_refused_and_never_reaches_the_upstream(stack: Stack,
                                                                     case: str) -> None:
    stack.forget()
    raw = f"POST {PATH} HTTP/1.1\r\n".encode() + auth_lines(stack) + SMUGGLING[case]
    answer = exchange(stack.port, raw)
    assert answer.status == 400 and answer.closed, answer
    assert "message" in answer.json()  # type: ignore[operator]
    assert stack.seen() == []
    assert stack.post("good").status_code == 200


def test_pipelined_requests_reach_the_upstream_exactly_as_sent(stack: Stack) -> None:
    """A compliant client's pipeline: a body that looks like a request stays a body."""
    stack.forget()
    inner = b"POST /endpoints/faults/score HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
    bodies = [b"first", inner, bytes(range(256)), b""]
    raw = b"".join(request(PATH, head(stack), body) for body in bodies)
    answer = exchange(stack.port, raw + request(PATH, head(stack) + [(b"Connection", b"close")],
                                                b"last"))
    assert answer.statuses == [200] * 5, answer.data[:500]
    assert [r["body"].encode("latin-1") for r in stack.seen()] == bodies + [b"last"]
    assert {r["path"] for r in stack.seen()} == {"/echo/score"}


@pytest.mark.parametrize("extra", [
    [(b"X-Big", b"a" * 200_000)],
    [(f"X-{i}".encode(), b"v") for i in range(20_000)],
    [(b"X-" + b"n" * 100_000, b"v")],
])
def test_oversized_heads_get_431(stack: Stack, extra: list[tuple[bytes, bytes]]) -> None:
    stack.forget()
    answer = exchange(stack.port, request(PATH, head(stack) + extra, b"abcd"))
    assert answer.status == 431 and answer.closed
    assert stack.seen() == []
    assert stack.post("good").status_code == 200


def test_bodies_past_the_limit_get_413_and_non_utf8_bodies_pass_intact(stack: Stack) -> None:
    stack.forget()
    declared = exchange(stack.port, request(PATH, head(stack) + [
        (b"Content-Length", b"2000000")], b"a" * 1000, length=False), timeout_s=2)
    assert declared.status == 413
    chunk = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
    chunked = exchange(stack.port, request(PATH, head(stack) + [
        (b"Transfer-Encoding", b"chunked")], chunk * 2 + b"0\r\n\r\n", length=False), 2)
    assert chunked.status == 413
    assert b"larger than the limit of 1048576 bytes" in chunked.data
    assert stack.seen() == []
    binary = bytes(range(256)) * 64 + b"\xff\xfe\xc3\x28"
    echoed = stack.post("echo", binary)
    assert echoed.status_code == 200 and echoed.content == binary


def _slow_client(port: int, stop: threading.Event, cut: list[float]) -> None:
    """Sends a request head one byte every 100 ms, never finishing it."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    started = time.monotonic()
    try:
        for byte in b"POST /score HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            if stop.is_set():
                return
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
    except OSError:
        cut.append(time.monotonic() - started)
    finally:
        sock.close()


def test_slowloris_connections_are_cut_and_others_are_served(stack: Stack) -> None:
    stop = threading.Event()
    cut: list[float] = []
    threads = [threading.Thread(target=_slow_client, args=(stack.port, stop, cut), daemon=True)
               for _ in range(MAX_CONNECTIONS // 2)]
    for thread in threads:
        thread.start()
    try:
        served = fire(stack.score_url, numbered(100), stack.headers("good"), 4)
    finally:
        for thread in threads:
            thread.join(30)
        stop.set()
    assert {r.status for r in served} == {200}
    assert len(cut) == len(threads), f"{len(cut)} of {len(threads)} slow clients were cut off"
    # Cut at the header timeout, not when they gave up (they would trickle for 100 s).
    assert max(cut) < 10 * HEADER_TIMEOUT_S, cut


def test_a_stalled_body_gets_408_and_never_reaches_the_upstream(stack: Stack) -> None:
    stack.forget()
    body = b'{"data": [1, 2, 3]}'
    raw = request(PATH, head(stack, b"good"), body)
    started = time.monotonic()
    answer = exchange(stack.port, raw[:-5], timeout_s=20 * BODY_TIMEOUT_S)  # 5 bytes never sent
    waited = time.monotonic() - started
    assert answer.closed and answer.status == 408, answer.data
    assert "body" in str(answer.json())
    assert BODY_TIMEOUT_S * 0.9 <= waited < 15 * BODY_TIMEOUT_S, waited
    assert stack.seen() == []
    assert stack.post("good").status_code == 200


def test_a_body_trickling_faster_than_the_timeout_is_served(stack: Stack) -> None:
    """The body timeout is between bytes (like nginx's client_body_timeout), not in total."""
    stack.forget()
    body = b'{"data": [1, 2, 3]}'
    raw = request(PATH, head(stack, b"good"), body)
    split = len(raw) - len(body)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(raw[:split])
        deadline = time.monotonic() + 3 * BODY_TIMEOUT_S  # in total longer than the timeout
        for index in range(len(body)):
            sock.sendall(body[index:index + 1])
            time.sleep(max(0.0, min(BODY_TIMEOUT_S / 5, deadline - time.monotonic())))
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert [r["body"] for r in stack.seen()] == [body.decode()]


def test_connections_past_the_bound_cut_the_longest_idle_ones(stack: Stack) -> None:
    """Past the bound, each new connection takes the place of the longest-idle one (issue 10:
    the new ones used to be closed, so silent connections locked clients out)."""
    socks = [socket.create_connection(("127.0.0.1", stack.port), timeout=5)
             for _ in range(MAX_CONNECTIONS + 10)]
    try:
        closed = 0
        for sock in socks[:10]:
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, ConnectionResetError):
                closed += 1
        assert closed >= 10 - 2, closed  # a connection or two of the test's own may have ended
        newest = socks[-1]
        newest.sendall(request(f"/endpoints/{FAULTS}/score", [
            (b"Host", b"x"), (b"Authorization", f"Bearer {stack.keys[FAULTS]}".encode()),
            (b"azureml-model-deployment", b"good")], b"{}"))
        assert newest.recv(65536).startswith(b"HTTP/1.1 200"), "the newest was not served"
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.2)
    assert stack.post("good").status_code == 200


NASTY_NAMES = [b"../admin", b"good/../echo", b"%2e%2e%2fgood", b"good\x01", b"go\tod",
               b"\xff\xfe", b"/v1/endpoints", b"a" * 5000, b"good echo", b"GOOD", b""]


@pytest.mark.parametrize("name", NASTY_NAMES, ids=range(len(NASTY_NAMES)))
def test_deployment_names_with_path_or_control_characters(stack: Stack, name: bytes) -> None:
    stack.forget()
    answer = exchange(stack.port, request(PATH, head(stack, name) + [(b"Connection", b"close")],
                                          b"{}"))
    assert answer.status in (400, 404), answer.data[:300]
    if answer.status == 404:
        message = str(answer.json()["message"])  # type: ignore[index]
        assert message.isprintable() and "deployment" in message and len(message) < 300
    assert stack.seen() == []


HEADERS_READ = [b"Authorization", b"azureml-model-deployment", b"x-ms-client-request-id",
                b"Host", b"Content-Type"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(HEADERS_READ),
       value=st.binary(max_size=300).filter(lambda v: b"\r" not in v and b"\n" not in v))
def test_random_bytes_in_each_header_never_break_the_gateway(stack: Stack, header: bytes,
                                                             value: bytes) -> None:
    headers = [(n, v) for n, v in head(stack, b"echo") if n.lower() != header.lower()]
    answer = exchange(stack.port, request(PATH, headers + [(header, value),
                                                           (b"Connection", b"close")], b"{}"))
    assert answer.closed and answer.status in (200, 400, 401, 404), answer.data[:300]
    if answer.status != 200:
        assert "message" in answer.json()  # type: ignore[operator]


def test_no_traceback_after_all_that(stack: Stack) -> None:
    assert stack.post("good").status_code == 200
    assert stack.log_has_no_traceback()
