"""Auto-deploy's pure parts: gates, policies and runs round-tripping through JSON, the
candidate's name, the gate's verdict, and the admin body parser's errors."""

from __future__ import annotations

import json

import pytest

from control_plane.admin.autodeploy import parse_policy
from control_plane.autodeploy.gate import Scored, verdict
from control_plane.autodeploy.pipeline import candidate_name
from control_plane.errors import ScoregateError, ValidationError
from control_plane.specs.autodeploy import (
    GateData,
    Policy,
    Run,
    StageRecord,
    parse_gate,
)
from control_plane.specs.rollout import Guardrails, RolloutRequest
from control_plane.specs.validation import validate_name

DATA = {"columns": ["x"], "rows": [[1.0], [-1.0]], "labels": [1.0, 0.0],
        "label_column": "y"}


@pytest.mark.parametrize(("text", "threshold", "margin", "shown"), [
    ("accuracy >= 0.85", 0.85, 0.0, "accuracy >= 0.85"),
    ("ACCURACY>=live", None, 0.0, "accuracy >= live"),
    ("f1 >= live - 0.02", None, -0.02, "f1 >= live - 0.02"),
    ("rmse <= 0.3", 0.3, 0.0, "rmse <= 0.3"),
    ("mae <= live + 1", None, 1.0, "mae <= live + 1"),
])
def test_gates_parse_and_print_back(text: str, threshold: float | None, margin: float,
                                    shown: str) -> None:
    gate = parse_gate(text)
    assert (gate.threshold, gate.margin, gate.text()) == (threshold, margin, shown)
    assert parse_gate(gate.text()) == gate


@pytest.mark.parametrize(("text", "message"), [
    ("accuracy > 0.8", "must look like"),
    ("auc >= 0.8", "unknown metric 'auc'"),
    ("accuracy <= 0.8", "better when higher"),
    ("rmse >= live", "better when lower"),
])
def test_bad_gates_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_gate(text)


def test_gate_direction_follows_the_metric() -> None:
    assert parse_gate("accuracy >= live - 0.02").passes(0.89, 0.9)
    assert not parse_gate("accuracy >= live").passes(0.89, 0.9)
    assert parse_gate("rmse <= 0.3").passes(0.29, None)
    assert not parse_gate("rmse <= live").passes(0.31, 0.3)


def test_policy_and_run_round_trip_through_json() -> None:
    policy = Policy(endpoint="e1", model="heart", from_deployment="blue",
                    rollout=RolloutRequest(endpoint="e1", target="", strategy="linear", step=20,
                                           mirror_percent=10, mirror_bake_s=30.0,
                                           guardrails=Guardrails(min_agreement=0.9)),
                    gate=parse_gate("accuracy >= live"), gate_data=GateData.from_dict(DATA),
                    on_gate_failure="delete", old_deployment="scale-down", after_seq=7)
    assert Policy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    summary = policy.to_dict(rows=False)["gate_data"]
    assert summary["row_count"] == 2 and "rows" not in summary
    run = Run(id="r1", endpoint="e1", model="heart", version=3, state="running",
              stage="gating", created_at=1.0, updated_at=2.0,
              history=(StageRecord("queued", 1.0, "queued"),))
    assert Run.from_dict(json.loads(json.dumps(run.to_dict()))) == run


@pytest.mark.parametrize(("model", "version"), [("heart-classifier", 2), ("my_model.v2", 10),
                                                 ("9lives", 1), ("x" * 40, 12345)])
def test_candidate_names_are_valid_deployment_names(model: str, version: int) -> None:
    name = candidate_name(model, version)
    validate_name("deployment", name)
    assert name.endswith(f"-v{version}")


def test_verdict_carries_the_measured_values() -> None:
    gate = parse_gate("accuracy >= live")
    passed = verdict(gate, Scored("green", 0.92, 2, 0), Scored("blue", 0.9, 2, 0), 20)
    assert (passed.passed, passed.candidate, passed.live, passed.bound) == (True, 0.92, 0.9, 0.9)
    stopped = verdict(parse_gate("accuracy >= 0.95"), Scored("green", 0.92, 2, 0), None, 20)
    assert not stopped.passed and "accuracy 0.9200 on 20 rows misses" in stopped.message
    errors = verdict(gate, Scored("green", None, 2, 1, "HTTP 500: boom"), None, 20)
    assert not errors.passed and "1 of 2 requests to green failed: HTTP 500" in errors.message


@pytest.mark.parametrize(("body", "message"), [
    ({}, "needs the field 'model'"),
    ({"model": "m", "colour": 1}, "unknown field 'colour'"),
    ({"model": "m", "gate": "accuracy >= 0.9"}, "a gate needs labelled data"),
    ({"model": "m", "gate_data": DATA}, "a gate needs labelled data"),
    ({"model": "m", "gate": "accuracy >= 0.9", "gate_data": {**DATA, "labels": [1]}},
     "2 rows but 1 labels"),
    ({"model": "m", "rollout": {"target": "x"}}, "each new version is the target"),
    ({"model": "m", "rollout": {"bake_s": "soon"}}, "'bake_s' must be a number"),
    ({"model": "m", "old_deployment": "burn"}, "--old-deployment must be one of"),
])
def test_bad_policy_bodies_are_refused_with_the_field(body: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ScoregateError, match=message):
        parse_policy("e1", body)
