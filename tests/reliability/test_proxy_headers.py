"""What headers the gateway forwards and passes back (issue 10, "Headers").

The fault backend records exactly the request head it received, and its `hop`, `many` and
`huge` modes answer with hop-by-hop and oversized heads.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.reliability.raw_http import exchange, request
from tests.reliability.stack import FAULTS, Stack

PATH = f"/endpoints/{FAULTS}/score"


def _sent(stack: Stack, extra: list[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """POST to `echo` with `extra` headers; the headers the upstream received, by name."""
    stack.forget()
    headers = [(b"Host", b"gateway.example"),
               (b"Authorization", f"Bearer {stack.keys[FAULTS]}".encode()),
               (b"azureml-model-deployment", b"echo"), *extra]
    answer = exchange(stack.port, request(PATH, headers, b"{}"), timeout_s=2)
    assert answer.status == 200, answer.data[:300]
    [seen] = stack.seen()
    received: dict[str, list[str]] = {}
    for name, value in seen["headers"]:
        received.setdefault(name.lower(), []).append(value)
    return received


def test_the_upstream_gets_its_own_host(stack: Stack) -> None:
    """nginx's default `$proxy_host`: host:port of the deployment URL, not the client's."""
    received = _sent(stack, [])
    assert received["host"] == [urlsplit(stack.backend).netloc]


def test_headers_named_in_connection_are_not_forwarded(stack: Stack) -> None:
    received = _sent(stack, [(b"Connection", b"keep-alive, X-Hop"), (b"X-Hop", b"secret"),
                             (b"X-Kept", b"yes")])
    assert "x-hop" not in received and "connection" not in received
    assert received["x-kept"] == ["yes"]


def test_headers_named_in_the_answers_connection_do_not_reach_the_client(stack: Stack) -> None:
    response = stack.post("hop")
    assert response.status_code == 200
    assert "x-internal" not in response.headers
    assert response.headers["x-model"] == "kept"


def test_the_client_is_appended_to_x_forwarded_for(stack: Stack) -> None:
    received = _sent(stack, [(b"X-Forwarded-For", b"203.0.113.7"),
                             (b"X-Forwarded-Proto", b"https")])
    assert received["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]
    assert received["x-forwarded-proto"] == ["http"]  # what the gateway saw, not the claim
    assert _sent(stack, [])["x-forwarded-for"] == ["127.0.0.1"]


def test_an_answer_with_too_many_headers_is_a_502(stack: Stack) -> None:
    response = stack.post("many")
    assert response.status_code == 502
    assert "100 headers" in response.json()["message"]
    assert stack.post("good").status_code == 200


def test_an_answer_with_a_huge_header_is_a_502(stack: Stack) -> None:
    response = stack.post("huge")
    assert response.status_code == 502
    assert "KiB" in response.json()["message"]
    assert stack.log_has_no_traceback()
