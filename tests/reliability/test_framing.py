"""Request framing a proxy must not guess about (issue 10: bug 3, bug 8, the header rules).

Raw sockets against a real `scoregate serve` in front of the fault backend, which records
exactly what reached it. Every refusal is a JSON `{"message"}`, closes the connection and
reaches no upstream.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability.raw_http import RawAnswer, exchange, request
from tests.reliability.stack import FAULTS, Stack

SERVE_FLAGS = ("--max-body-mb", "1")
PATH = f"/endpoints/{FAULTS}/score"


def _auth(stack: Stack, deployment: str = "echo") -> list[tuple[bytes, bytes]]:
    return [(b"Host", b"gateway.example"),
            (b"Authorization", f"Bearer {stack.keys[FAULTS]}".encode()),
            (b"azureml-model-deployment", deployment.encode())]


def _refused(answer: RawAnswer, status: int) -> None:
    assert answer.status == status, answer.data[:300]
    assert answer.closed, "the connection stayed open after a refusal"
    body = answer.json()
    assert isinstance(body, dict) and set(body) == {"message"}, body


def _no_traceback(stack: Stack) -> None:
    log = stack.gateway.started.log()
    assert "Traceback" not in log and "Unsupported upgrade" not in log


def test_an_h2c_upgrade_post_is_served_with_its_body_and_the_pipeline_goes_on(
        stack: Stack) -> None:
    """What `curl --http2` sends: the model got Content-Length 0 and the next request was
    never answered."""
    stack.forget()
    upgrade = [(b"Connection", b"Upgrade, HTTP2-Settings"), (b"Upgrade", b"h2c"),
               (b"HTTP2-Settings", b"AAMAAABkAARAAAAAAAIAAAAA")]
    first = request(PATH, _auth(stack) + upgrade, b'{"first": 1}')
    second = request(PATH, _auth(stack), b'{"second": 2}')
    answer = exchange(stack.port, first + second, timeout_s=3)
    assert answer.statuses == [200, 200], answer.data[:500]
    assert not answer.data.startswith(b"HTTP/1.1 101")
    seen = stack.seen()
    assert [r["body"] for r in seen] == ['{"first": 1}', '{"second": 2}']
    sent = {name.lower() for name, _ in seen[0]["headers"]}
    assert not sent & {"upgrade", "http2-settings"}
    _no_traceback(stack)


def test_a_chunked_upgrade_post_keeps_its_body(stack: Stack) -> None:
    stack.forget()
    head = request(PATH, _auth(stack) + [(b"Connection", b"upgrade"), (b"Upgrade", b"h2c"),
                                         (b"Transfer-Encoding", b"chunked")], length=False)
    answer = exchange(stack.port, head + b"5\r\nhello\r\n0\r\n\r\n", timeout_s=3)
    assert answer.statuses == [200]
    assert [r["body"] for r in stack.seen()] == ["hello"]


def test_a_websocket_upgrade_is_not_switched(stack: Stack) -> None:
    head = request(PATH, _auth(stack) + [(b"Connection", b"Upgrade"),
                                         (b"Upgrade", b"websocket"),
                                         (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                                         (b"Sec-WebSocket-Version", b"13")], method=b"GET")
    answer = exchange(stack.port, head, timeout_s=2)
    assert answer.status == 405, answer.data[:300]
    _no_traceback(stack)


def test_connect_is_refused(stack: Stack) -> None:
    _refused(exchange(stack.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443"
                                  b"\r\n\r\n"), 405)


def test_an_upstream_switching_protocols_is_a_502_without_traceback(stack: Stack) -> None:
    response = stack.post("switch")
    assert response.status_code == 502
    assert "101" in response.json()["message"]
    _no_traceback(stack)


@pytest.mark.parametrize("hosts", [[b"a.example", b"b.example"], [b"a.example", b"a.example"]])
def test_a_duplicate_host_is_refused(stack: Stack, hosts: list[bytes]) -> None:
    stack.forget()
    headers = [(b"Host", host) for host in hosts] + _auth(stack)[1:]
    _refused(exchange(stack.port, request(PATH, headers, b"{}")), 400)
    assert stack.seen() == []


def test_http11_without_host_is_refused_and_http10_without_host_is_served(stack: Stack) -> None:
    stack.forget()
    _refused(exchange(stack.port, request(PATH, _auth(stack)[1:], b"{}")), 400)
    assert stack.seen() == []
    old = request(PATH, _auth(stack)[1:], b"{}").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    assert exchange(stack.port, old).status == 200


def test_an_unknown_transfer_coding_gets_501(stack: Stack) -> None:
    stack.forget()
    head = request(PATH, _auth(stack) + [(b"Transfer-Encoding", b"gzip, chunked")],
                   length=False)
    _refused(exchange(stack.port, head + b"0\r\n\r\n"), 501)
    assert stack.seen() == []


def test_transfer_encoding_on_http10_gets_400(stack: Stack) -> None:
    stack.forget()
    head = request(PATH, _auth(stack) + [(b"Transfer-Encoding", b"chunked")], length=False)
    head = head.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    _refused(exchange(stack.port, head + b"2\r\n{}\r\n0\r\n\r\n"), 400)
    assert stack.seen() == []


@pytest.mark.parametrize("line", [b"POST /score HTTP/2.0", b"PRI * HTTP/2.0"])
def test_http2_request_lines_get_505(stack: Stack, line: bytes) -> None:
    data = request(PATH, _auth(stack), b"{}").replace(f"POST {PATH} HTTP/1.1".encode(), line, 1)
    if line.startswith(b"PRI"):
        data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    _refused(exchange(stack.port, data), 505)


def test_a_413_closes_the_connection(stack: Stack) -> None:
    """The rest of a refused body must never be read as the next request."""
    stack.forget()
    body = b"x" * (2 * 1024 * 1024)
    smuggled = request(PATH, _auth(stack), b"smuggled")
    head = request(PATH, _auth(stack), b"", length=False)
    data = head[:-2] + f"Content-Length: {len(body)}\r\n\r\n".encode() + smuggled
    answer = exchange(stack.port, data)
    _refused(answer, 413)
    assert answer.statuses == [413]
    assert stack.seen() == []
    json.loads(answer.data.split(b"\r\n\r\n", 1)[1])
