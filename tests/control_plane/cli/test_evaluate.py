"""`online-endpoint evaluate` in parts: metrics against scikit-learn (a test-only import), the
CSV reader, request bodies, answers, the traffic rule, and bounded scoring against a real
loopback backend that counts what it has in flight."""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk  # type: ignore[import-untyped]

from control_plane.cli.evaluate import (
    Deployment,
    LabelledData,
    Plan,
    Progress,
    Result,
    Target,
    rank,
    read_csv,
    read_predictions,
    request_body,
    score_all,
    suggest_traffic,
    summarize,
)
from control_plane.errors import ScoregateError
from control_plane.specs.metrics import (
    accuracy,
    as_label,
    check_pos_label,
    default_metric,
    f1,
    mae,
    percentile,
    rmse,
)
from tests.support.processes import ProcessGroup, free_port, http_ok, wait_until

# --- metrics against scikit-learn --------------------------------------------------------------

classes = st.sampled_from([0, 1, 2, 3, 4])
pairs_of = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.lists(classes, min_size=n, max_size=n),
                        st.lists(classes, min_size=n, max_size=n)))
numbers = st.floats(-1e6, 1e6, allow_nan=False)
number_pairs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.lists(numbers, min_size=n, max_size=n),
                        st.lists(numbers, min_size=n, max_size=n)))


def _labels(values: Sequence[object]) -> list[float | str]:
    return [as_label(value) for value in values]


@given(pairs_of)
def test_accuracy_matches_sklearn(pair: tuple[list[int], list[int]]) -> None:
    truth, predicted = pair
    assert accuracy(_labels(truth), _labels(predicted)) == \
        pytest.approx(sk.accuracy_score(truth, predicted))


@given(pairs_of)
@settings(max_examples=150)
def test_f1_binary_uses_the_larger_label_as_positive(pair: tuple[list[int], list[int]]) -> None:
    truth = [x % 2 + 3 for x in pair[0]]  # labels 3 and 4
    predicted = [x % 2 + 3 for x in pair[1]]
    expected = sk.f1_score(truth, predicted, pos_label=max(truth), zero_division=0)
    assert f1(_labels(truth), _labels(predicted)) == pytest.approx(expected)


@given(pairs_of)
@settings(max_examples=150)
def test_f1_multiclass_is_macro_over_every_label_seen(pair: tuple[list[int], list[int]]) -> None:
    truth, predicted = pair
    if len(set(truth)) <= 2:
        truth = truth + [0, 1, 2]
        predicted = predicted + [2, 1, 0]
    expected = sk.f1_score(truth, predicted, average="macro", zero_division=0)
    assert f1(_labels(truth), _labels(predicted)) == pytest.approx(expected)


def test_f1_with_text_labels_and_an_explicit_positive() -> None:
    truth = ["cat", "dog", "dog", "cat", "dog"]
    predicted = ["cat", "cat", "dog", "cat", "dog"]
    assert f1(truth, predicted) == pytest.approx(sk.f1_score(truth, predicted, pos_label="dog"))
    assert f1(truth, predicted, "cat") == pytest.approx(sk.f1_score(truth, predicted,
                                                                    pos_label="cat"))
    assert f1(truth, predicted, "bird") == 0.0
    with pytest.raises(ScoregateError, match="--pos-label bird is not one of the labels "
                                             "\\(cat, dog\\)"):
        check_pos_label(truth, "bird")


@given(number_pairs)
def test_rmse_and_mae_match_sklearn(pair: tuple[list[float], list[float]]) -> None:
    truth, predicted = pair
    assert rmse(truth, predicted) == pytest.approx(
        math.sqrt(sk.mean_squared_error(truth, predicted)), rel=1e-9, abs=1e-6)
    assert mae(truth, predicted) == pytest.approx(sk.mean_absolute_error(truth, predicted),
                                                  rel=1e-9, abs=1e-6)


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=80),
       st.sampled_from([0, 1, 50, 90, 99, 100]))
def test_percentile_matches_numpy(values: list[float], q: int) -> None:
    assert percentile(values, q) == pytest.approx(float(numpy.percentile(values, q)))


def test_labels_compare_as_numbers_when_they_parse() -> None:
    assert as_label(1) == as_label("1.0") == as_label(" 1 ") == as_label(True) == 1.0
    assert as_label("cat") == "cat"
    assert default_metric(_labels(["0", "1", "1", "2"])) == "accuracy"
    assert default_metric(_labels(["yes", "no"])) == "accuracy"
    assert default_metric(_labels(["0.5", "1.25", "3"])) == "rmse"
    assert default_metric(_labels([str(i) for i in range(50)])) == "rmse"  # many ints: a count
    with pytest.raises(ScoregateError, match="rmse and mae need numbers"):
        rmse(["a"], [1.0])


# --- the CSV, the bodies, the answers -----------------------------------------------------------

def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def test_read_csv_keeps_feature_columns_in_file_order(tmp_path: Path) -> None:
    data = read_csv(_csv(tmp_path, "a,y,b,c\n1,cat,2.5,x\n3,dog,,4\n"), "y")
    assert data.columns == ("a", "b", "c")
    assert data.rows == ((1.0, 2.5, "x"), (3.0, None, 4.0))
    assert data.labels == ("cat", "dog")


@pytest.mark.parametrize("text, label, message", [
    ("", "y", "is empty"),
    ("a,b\n1,2\n", "y", "label column 'y' is not in .* \\(its columns: a, b\\)"),
    ("a,y\n", "y", "has a header but no rows"),
    ("a,y\n1,2\n1\n", "y", "data.csv:3: 1 values, but the header has 2 columns"),
    ("a,y\n1, \n", "y", "data.csv:2: no value in label column 'y'"),
])
def test_read_csv_errors_name_the_problem(tmp_path: Path, text: str, label: str,
                                          message: str) -> None:
    with pytest.raises(ScoregateError, match=message):
        read_csv(_csv(tmp_path, text), label)
    with pytest.raises(ScoregateError, match="cannot read --data"):
        read_csv(str(tmp_path / "missing.csv"), "y")


def test_request_bodies_in_azure_and_mlflow_form() -> None:
    data = LabelledData(("a", "b"), ((1.0, 2.0), (3.0, 4.0), (5.0, 6.0)), (0.0, 1.0, 0.0))
    assert json.loads(request_body(data, 1, 3, "azure")) == {"data": [[3.0, 4.0], [5.0, 6.0]]}
    assert json.loads(request_body(data, 0, 1, "mlflow")) == {
        "input_data": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}


def test_predictions_come_as_a_list_an_object_or_a_quoted_list() -> None:
    assert read_predictions(b"[1, 0]", 2, False) == [1.0, 0.0]
    assert read_predictions(b'{"predictions": ["cat", [1]]}', 2, False) == ["cat", 1.0]
    assert read_predictions(b'"[0.5, 2]"', 2, True) == [0.5, 2.0]
    for body, message in [(b"[1]", "expected a list of 2 predictions"),
                          (b"oops", "not JSON"), (b'{"x": 1}', "expected a list"),
                          (b'[{"a": 1}, 2]', "one value")]:
        with pytest.raises(ValueError, match=message):
            read_predictions(body, 2, False)
    with pytest.raises(ValueError, match="'cat' is not a number"):
        read_predictions(b'["cat"]', 1, True)


# --- the traffic rule ---------------------------------------------------------------------

def _target(traffic: dict[str, int], mirror: dict[str, int] | None = None) -> Target:
    names = tuple(Deployment(name, 1) for name in traffic)
    return Target("my-ep", "http://127.0.0.1:9/score", "k", names, traffic, mirror or {})


def _result(name: str, value: float | None, rows: int = 100) -> Result:
    return Result(name, value, 1.0, 2.0, 100 - rows, 100, rows, None)


@pytest.mark.parametrize("current, expected", [
    ({"blue": 100, "green": 0}, {"blue": 50, "green": 50}),
    ({"blue": 50, "green": 50}, {"blue": 25, "green": 75}),
    ({"blue": 25, "green": 75}, {"blue": 0, "green": 100}),
    ({"blue": 0, "green": 0}, {"blue": 50, "green": 50}),  # traffic off: runner-up gets the rest
])
def test_the_better_deployment_steps_through_50_75_100(current: dict[str, int],
                                                       expected: dict[str, int]) -> None:
    ranked = rank([_result("blue", 0.8), _result("green", 0.9)], "accuracy")
    suggestion = suggest_traffic(_target(current), ranked, "accuracy")
    assert suggestion.traffic == expected
    text = " ".join(f"{k}={v}" for k, v in expected.items())
    assert suggestion.command == f'scoregate online-endpoint update --name my-ep --traffic "{text}"'


def test_lower_is_better_for_errors_and_failed_rows_count_against() -> None:
    ranked = rank([_result("blue", 3.0), _result("green", 2.0)], "rmse")
    assert [r.deployment for r in ranked] == ["green", "blue"]
    ranked = rank([_result("blue", 0.5), _result("green", 0.99, rows=99)], "accuracy")
    assert [r.deployment for r in ranked] == ["blue", "green"]
    ranked = rank([_result("blue", None, rows=0), _result("green", 0.1, rows=1)], "accuracy")
    assert ranked[0].deployment == "green"


def test_no_suggestion_without_a_clear_winner_or_a_next_step() -> None:
    tie = rank([_result("blue", 0.9), _result("green", 0.9)], "accuracy")
    assert suggest_traffic(_target({"blue": 100, "green": 0}), tie, "accuracy").command is None
    done = rank([_result("blue", 0.8), _result("green", 0.9)], "accuracy")
    full = suggest_traffic(_target({"blue": 0, "green": 100}), done, "accuracy")
    assert full.command is None and "all live traffic already" in full.reason
    alone = suggest_traffic(_target({"green": 100}), [_result("green", 0.9)], "accuracy")
    assert alone.command is None and "at least two" in alone.reason


def test_the_rest_is_shared_in_proportion_and_a_mirror_is_turned_off() -> None:
    ranked = rank([_result("a", 0.1), _result("b", 0.2), _result("c", 0.9)], "accuracy")
    suggestion = suggest_traffic(_target({"a": 70, "b": 30, "c": 0}, {"c": 20}), ranked,
                                 "accuracy")
    assert suggestion.traffic == {"a": 35, "b": 15, "c": 50}
    assert suggestion.command is not None
    assert suggestion.command.endswith('--traffic "a=35 b=15 c=50" --mirror-traffic "c=0"')
    odd = suggest_traffic(_target({"a": 1, "b": 1, "c": 1, "d": 0}),
                          rank([_result("d", 1.0), _result("a", 0.5)], "accuracy"), "accuracy")
    assert odd.traffic is not None and sum(odd.traffic.values()) == 100


# --- bounded scoring against a real backend -----------------------------------------------------

BACKEND = '''
import asyncio, json, sys
from aiohttp import web

in_flight, peak = {}, {"total": 0}

async def score(request):
    name = request.headers["azureml-model-deployment"]
    in_flight[name] = in_flight.get(name, 0) + 1
    peak[name] = max(peak.get(name, 0), in_flight[name])
    peak["total"] = max(peak["total"], sum(in_flight.values()))
    try:
        await asyncio.sleep(0.01)
        rows = json.loads(await request.read())["data"]
        if any(row[0] == 13 for row in rows):
            return web.json_response({"message": "unlucky"}, status=500)
        answer = [row[0] % 2 for row in rows]
        return web.json_response(answer if name == "plain" else {"predictions": answer})
    finally:
        in_flight[name] -= 1

async def stats(request):
    return web.json_response(peak)

app = web.Application()
app.router.add_post("/score", score)
app.router.add_get("/stats", stats)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
'''


def test_scoring_respects_both_bounds_and_counts_failures(processes: ProcessGroup,
                                                          tmp_path: Path) -> None:
    script = tmp_path / "backend.py"
    script.write_text(BACKEND)
    port = free_port()
    processes.python(str(script), str(port), name="backend")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{base}/stats"), timeout=30, what="the fake backend")

    rows = tuple((float(i), 0.0) for i in range(60))
    data = LabelledData(("x", "z"), rows, tuple(float(i % 2) for i in range(60)))
    target = Target("ep", f"{base}/score", "k",
                    (Deployment("plain", 3), Deployment("wrapped", 1)), {}, {})
    plan = Plan(data, batch_size=2, fmt="azure", concurrency=3, numeric=False)
    stream = io.StringIO()
    tallies = asyncio.run(score_all(target, plan, Progress(60, stream)))

    peak = httpx.get(f"{base}/stats").json()
    assert peak["wrapped"] == 1
    assert 2 <= peak["plain"] <= 3  # the pool is used, never beyond the deployment's capacity
    assert peak["total"] <= 3
    for name, tally in tallies.items():
        result = summarize(name, tally, data.labels, "accuracy", None, 30)
        # rows 12 and 13 share the failing request; every other row is predicted right
        assert (result.errors, result.rows_scored, result.value) == (1, 58, 1.0)
        assert result.first_error is not None and "HTTP 500" in result.first_error
        assert result.latency_p50_ms is not None and result.latency_p99_ms is not None
        assert result.latency_p50_ms <= result.latency_p99_ms
    lines = stream.getvalue().splitlines()  # not a terminal: one line per tenth
    assert len(lines) == 10 and lines[-1] == "scoring: 60/60 requests (100%), 2 errors"
