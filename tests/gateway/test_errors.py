"""Every error the gateway answers itself, with its JSON body and headers (real processes)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.auth import issue_token
from tests.gateway.harness import (
    KEY2,
    Gateway,
    auth,
    dead_url,
    deployment,
    endpoint,
    fire,
    metric,
    metrics_text,
    post,
    start_backend,
    start_gateway,
)
from tests.support.processes import ProcessGroup, wait_until

SECRET = "shared-token-secret"
LIMIT = 4096


@pytest.fixture(scope="module")
def gateway(module_processes: tuple[ProcessGroup, Any]) -> Iterator[Gateway]:
    group, tmp = module_processes
    ok = start_backend(group, tmp, "ok")
    slow = start_backend(group, tmp, "slow", delay=1.5)
    broken = start_backend(group, tmp, "broken", status=503)
    busy = start_backend(group, tmp, "busy", delay=0.6)
    main = endpoint("main", [
        deployment("blue", ok), deployment("zero", ok),
        deployment("slow", slow, timeout=0.3), deployment("broken", broken),
        deployment("empty"), deployment("busy", busy, concurrency=1),
        deployment("retry", dead_url(), dead_url(), ok), deployment("down", dead_url()),
    ], {"blue": 100, "zero": 0}, token_secret=SECRET)
    off = endpoint("off", [deployment("blue", ok)], {}, token_secret=SECRET)
    tok = endpoint("tok", [deployment("blue", ok)], {"blue": 100}, auth_mode="aml_token",
                   token_secret=SECRET)
    yield start_gateway(group, tmp, [main, off, tok], {"max_body_bytes": LIMIT})


def score(gateway: Gateway, name: str = "main") -> str:
    return f"{gateway.url}/endpoints/{name}/score"


def to(name: str) -> dict[str, str]:
    return {**auth(), "azureml-model-deployment": name}


def message(reply: Any) -> str:
    assert reply.headers["Content-Type"] == "application/json"
    data = reply.json()
    assert set(data) == {"message"}
    return str(data["message"])


def test_ok_has_deployment_and_request_id(gateway: Gateway) -> None:
    reply = post(score(gateway))
    assert reply.status == 200 and reply.json()["name"] == "ok"
    assert reply.headers["azureml-model-deployment"] == "blue"
    assert len(reply.headers["x-request-id"]) == 36
    assert "authorization" not in {k.lower() for k in reply.json()["headers"]}


def test_401_without_or_with_wrong_key(gateway: Gateway) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "test-key-primary"}):
        reply = post(score(gateway), headers=headers)
        assert reply.status == 401 and "credentials" in message(reply)
    assert post(score(gateway), headers=auth(KEY2)).status == 200


def test_aml_token_valid_expired_tampered_foreign(gateway: Gateway) -> None:
    good, _ = issue_token("tok", SECRET.encode(), 60)
    assert post(score(gateway, "tok"), headers=auth(good)).status == 200
    expired, _ = issue_token("tok", SECRET.encode(), 60, now=time.time() - 120)
    foreign, _ = issue_token("main", SECRET.encode(), 60)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    for bad in (expired, foreign, tampered, "test-key-primary"):
        assert post(score(gateway, "tok"), headers=auth(bad)).status == 401


def test_404_unknown_route_endpoint_deployment_and_no_traffic(gateway: Gateway) -> None:
    reply = post(gateway.url + "/nope")
    assert reply.status == 404 and "/endpoints/{name}/score" in message(reply)
    reply = post(score(gateway, "ghost"))
    assert reply.status == 404 and "endpoint 'ghost' not found" in message(reply)
    reply = post(score(gateway), headers=to("ghost"))
    assert reply.status == 404
    assert message(reply) == "deployment 'ghost' not found in endpoint 'main'"
    reply = post(score(gateway, "off"))
    assert reply.status == 404 and "no deployment with positive traffic" in message(reply)
    reply = post(gateway.url + "/score")  # several endpoints and no Host naming one
    assert reply.status == 404 and "/endpoints/{name}/score" in message(reply)


def test_plain_score_by_host(gateway: Gateway) -> None:
    reply = post(gateway.url + "/score", headers={**auth(), "Host": "main.example.com"})
    assert reply.status == 200 and reply.headers["azureml-model-deployment"] == "blue"


def test_408_when_the_model_is_too_slow(gateway: Gateway) -> None:
    reply = post(score(gateway), headers=to("slow"))
    assert reply.status == 408 and "did not answer within 0.3 s" in message(reply)
    assert reply.headers["azureml-model-deployment"] == "slow"


def test_413_by_content_length_and_by_streamed_size(gateway: Gateway) -> None:
    reply = post(score(gateway), body=b"x" * (LIMIT + 1))
    assert reply.status == 413 and str(LIMIT) in message(reply)
    assert post(score(gateway), body=b"x" * LIMIT).status == 200
    raw = raw_request(gateway, b"POST /endpoints/main/score HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Bearer test-key-primary\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n"
                      + b"".join(b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(5))
                      + b"0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 413")


def test_424_carries_the_model_status(gateway: Gateway) -> None:
    reply = post(score(gateway), headers=to("broken"))
    assert reply.status == 424 and "answered 503" in message(reply)
    assert reply.headers["ms-azureml-model-error-statuscode"] == "503"
    assert reply.headers["ms-azureml-model-error-reason"] == "Service Unavailable"


def test_429_over_twice_the_concurrency(gateway: Gateway) -> None:
    replies = fire(score(gateway), count=6, concurrency=6, headers=to("busy"))
    statuses = sorted(r.status for r in replies)
    assert statuses == [200, 200, 429, 429, 429, 429], statuses
    assert "too many requests" in message(next(r for r in replies if r.status == 429))


def test_503_without_ready_instance(gateway: Gateway) -> None:
    reply = post(score(gateway), headers=to("empty"))
    assert reply.status == 503 and "no ready instance" in message(reply)


def test_refused_connection_retries_once_then_502(gateway: Gateway) -> None:
    replies = fire(score(gateway), count=30, concurrency=1, headers=to("retry"))
    statuses = [r.status for r in replies]
    # two of three instances refuse: a request drawn to one retries once, on any other
    assert statuses.count(200) >= 10 and set(statuses) <= {200, 502}, statuses
    reply = post(score(gateway), headers=to("down"))
    assert reply.status == 502 and "could not be reached" in message(reply)


def test_header_routing_to_zero_percent(gateway: Gateway) -> None:
    reply = post(score(gateway), headers=to("zero"))
    assert reply.status == 200 and reply.headers["azureml-model-deployment"] == "zero"


def test_client_request_id_rules(gateway: Gateway) -> None:
    def echoed(value: str) -> str | None:
        return post(score(gateway), headers={**auth(), "x-ms-client-request-id": value}
                    ).headers.get("x-ms-client-request-id")
    assert echoed("abc-DEF_123") == "abc-DEF_123"
    assert echoed("a" * 50) == "a" * 40
    assert echoed("has space") is None and echoed("semi;colon") is None
    assert post(score(gateway)).headers.get("x-ms-client-request-id") is None


def test_random_deployment_names_create_no_series(gateway: Gateway) -> None:
    before = series(metrics_text(gateway.url))
    for n in range(20):
        assert post(score(gateway), headers=to(f"random-{n}")).status == 404
    raw = raw_request(gateway, b"POST /endpoints/main/score HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Bearer test-key-primary\r\n"
                      b"azureml-model-deployment: evil\xe9\xffname\r\nContent-Length: 0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404") and b"\xe9" not in raw and b"\xff" not in raw
    assert b"deployment 'evil??name' not found" in raw
    # The access log and metrics are written just after the answer is sent: wait for the last one.
    wait_until(lambda: metric(metrics_text(gateway.url), "scoregate_requests_total",
                              endpoint="main", deployment="none", role="direct",
                              status_code="404") >= 21, timeout=10, what="the 404s to be counted")
    text = metrics_text(gateway.url)
    assert "random-" not in text and "evil" not in text
    assert len(series(text) - before) <= 1


def test_swagger_is_proxied_with_auth(gateway: Gateway) -> None:
    import urllib.error
    import urllib.request
    request = urllib.request.Request(gateway.url + "/endpoints/main/swagger.json?version=3",
                                     headers=auth())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"swagger": "2.0", "name": "ok",
                                               "query": "version=3"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(gateway.url + "/endpoints/main/swagger.json", timeout=10)
    assert refused.value.code == 401


def series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines()
            if line.startswith("scoregate_requests_total")}


def raw_request(gateway: Gateway, data: bytes) -> bytes:
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while not _complete(received):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def _complete(response: bytes) -> bool:
    """The head has arrived and as many body bytes as its Content-Length says."""
    head, separator, body = response.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return True
