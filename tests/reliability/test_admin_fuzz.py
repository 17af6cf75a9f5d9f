"""The admin API fuzzed from its own OpenAPI document (`GET /openapi.json`, with the token):
no path, query or body may produce a 500 or a traceback, every error is JSON with a message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.openapi_strategies import NASTY_TEXT, Operation, from_schema, operations
from tests.reliability.stack import FAULTS, Stack

NAMES = st.sampled_from([FAULTS, "other", "good", "echo", "mirrored", "primary"]) | NASTY_TEXT


def document(stack: Stack) -> dict[str, Any]:
    answer = stack.admin("GET", "/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def check(answer: httpx.Response, what: str) -> None:
    assert answer.status_code < 500, (what, answer.status_code, answer.text[:300])
    assert "Traceback" not in answer.text
    if answer.status_code >= 400:
        assert isinstance(answer.json().get("message"), str), (what, answer.text[:300])


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, bytes]
    body: dict[str, Any]  # httpx keyword: json= or content=


def calls(doc: dict[str, Any], op: Operation) -> st.SearchStrategy[Call]:
    """Requests for one operation: path names, query, If-Match and body all drawn."""
    path = st.tuples(NAMES, NAMES).map(lambda names: op.path.replace(
        "{endpoint}", quote(names[0], safe="")).replace("{deployment}", quote(names[1], safe="")))
    params = st.fixed_dictionaries({}, optional={
        p["name"]: (from_schema(doc, p.get("schema", {})) | NASTY_TEXT).map(str)
        for p in op.query})
    headers = st.fixed_dictionaries({}, optional={"If-Match": st.sampled_from(
        [b'"1"', b"*", b'W/"x"', b"a, b", "\u00e9".encode()])})
    body: st.SearchStrategy[dict[str, Any]] = st.just({})
    if op.body is not None:
        body = (from_schema(doc, op.body).map(lambda value: {"json": value})
                | st.binary(max_size=100).map(lambda raw: {"content": raw}))
    return st.builds(Call, st.just(op.method), path, params, headers, body)


@pytest.fixture(scope="module")
def api(stack: Stack) -> tuple[dict[str, Any], list[Operation]]:
    doc = document(stack)
    return doc, operations(doc)


def test_no_admin_input_gives_a_500(stack: Stack,
                                    api: tuple[dict[str, Any], list[Operation]]) -> None:
    doc, ops = api

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(call=st.sampled_from(ops).flatmap(lambda op: calls(doc, op)))
    def one(call: Call) -> None:
        answer = stack.admin(call.method, call.path, params=call.params, headers=call.headers,
                             **call.body)
        check(answer, f"{call.method} {call.path}")

    one()


def test_the_server_is_healthy_and_logged_no_traceback(stack: Stack) -> None:
    assert stack.admin("GET", "/v1/endpoints").status_code == 200
    assert stack.log_has_no_traceback()
