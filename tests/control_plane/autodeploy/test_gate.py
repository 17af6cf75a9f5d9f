"""The gate's scoring against a loopback scoring server speaking real HTTP: the deployment
header and credential are sent, requests in flight never exceed the deployment's capacity, a
429 is tried again, predictions become the metric, and failures become an unmeasured value."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from control_plane.autodeploy.gate import score
from control_plane.specs.autodeploy import GateData
from tests.support.http_server import serving
from tests.support.loops import run_bounded

ROWS = [[float(x)] for x in range(-10, 10)]
DATA = GateData(columns=("x",), rows=tuple(tuple(r) for r in ROWS),
                labels=tuple(1.0 if r[0] > 0 else 0.0 for r in ROWS), label_column="y",
                batch_size=3)


class Scorer:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.lock = threading.Lock()
        self.in_flight = self.most = self.requests = 0
        self.headers: list[tuple[str | None, str | None]] = []


@pytest.fixture
def scorer(request: pytest.FixtureRequest) -> Iterator[tuple[Scorer, str]]:
    state = Scorer(request.param)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with state.lock:
                state.requests += 1
                first = state.requests == 1
                state.in_flight += 1
                state.most = max(state.most, state.in_flight)
                state.headers.append((self.headers.get("azureml-model-deployment"),
                                      self.headers.get("authorization")))
            threading.Event().wait(0.01)  # the model's work: long enough for overlaps to show
            with state.lock:
                state.in_flight -= 1
            if first or state.mode == "broken":
                self._answer(429 if first else 500, {"message": "busy" if first else "boom"})
                return
            self._answer(200, [1 if row[0] > 0 else 0 for row in body["data"]])

        def _answer(self, status: int, content: Any) -> None:
            raw = json.dumps(content).encode()
            self.send_response(status)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield state, f"{url}/score"


async def _score(url: str, capacity: int) -> Any:
    async with httpx.AsyncClient(timeout=10) as client:
        return await score(client, url, {"authorization": "Bearer k"}, "green", DATA,
                           "accuracy", capacity)


@pytest.mark.parametrize("scorer", ["good"], indirect=True)
def test_scores_within_capacity_and_tries_a_429_again(scorer: tuple[Scorer, str]) -> None:
    state, url = scorer
    scored = run_bounded(_score(url, capacity=2), 30)
    assert (scored.value, scored.errors, scored.requests) == (1.0, 0, 7)
    assert state.requests == 8 and state.most <= 2  # 7 batches + the one 429 tried again
    assert set(state.headers) == {("green", "Bearer k")}


@pytest.mark.parametrize("scorer", ["broken"], indirect=True)
def test_failed_requests_leave_the_value_unmeasured(scorer: tuple[Scorer, str]) -> None:
    _, url = scorer
    scored = run_bounded(_score(url, capacity=4), 30)
    assert scored.value is None and scored.errors == 7
    assert scored.first_error.startswith("HTTP 500")
