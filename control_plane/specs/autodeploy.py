"""An auto-deploy policy and the records of its runs (docs/autodeploy.md).

A policy says what happens when a new version of a model is registered: which deployment's
settings the candidate copies, the gate it must pass (a metric on labelled rows, absolute or
against the live deployment), the guarded rollout that follows, and what becomes of a
failed candidate and of the old deployment. A run is one version going through it, stage by
stage. Both are frozen dataclasses that round-trip through JSON: the store keeps them as JSON
rows, the admin API answers the same dicts, and `auto-deploy show` prints them.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from control_plane.errors import ValidationError
from control_plane.specs.labelled import LabelledData
from control_plane.specs.metrics import HIGHER_IS_BETTER, METRICS, as_label
from control_plane.specs.rollout import Guardrails, RolloutRequest

AUTO_DEPLOY_PATH = "/v1/endpoints/{endpoint}/auto-deploy"  # admin API; CLI and server share it
ON_GATE_FAILURE = ("keep", "delete")  # a candidate that failed: kept at 0% for inspection
# the deployment a promoted one replaced
OLD_DEPLOYMENT = ("keep", "scale-down", "scale-to-zero", "delete")
FORMATS = ("azure", "mlflow")  # the request bodies the gate sends, as `evaluate --format`
MAX_GATE_ROWS = 10_000
LIVE = "live"

# Stages, in order; a run's `stage` is the one it is in (or ended in).
QUEUED, CREATING, GATING, ROLLING_OUT, RETIRING, DONE = (
    "queued", "creating", "gating", "rolling_out", "retiring", "done")
# States: queued and running are active; the others are final.
RUNNING, SUCCEEDED, STOPPED, ROLLED_BACK, FAILED, SKIPPED = (
    "running", "succeeded", "stopped_at_gate", "rolled_back", "failed", "skipped")
ACTIVE_STATES = (QUEUED, RUNNING)

_GATE = re.compile(r"^\s*([a-z0-9]+)\s*(>=|<=)\s*(?:(live)\s*(?:([+-])\s*([0-9.]+))?|"
                   r"([-+]?[0-9.]+(?:e[-+]?[0-9]+)?))\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Gate:
    """`accuracy >= 0.85`, `rmse <= 0.3`, `accuracy >= live`, `f1 >= live - 0.02`."""

    metric: str
    threshold: float | None = None  # absolute; None: relative to the live deployment
    margin: float = 0.0  # relative gates: live + margin (negative: a tolerated loss)

    @property
    def relative(self) -> bool:
        return self.threshold is None

    @property
    def operator(self) -> str:
        return ">=" if HIGHER_IS_BETTER[self.metric] else "<="

    def bound(self, live: float | None) -> float:
        """The value the candidate must reach, given the live deployment's."""
        if self.threshold is not None:
            return self.threshold
        if live is None:
            raise ValueError("a relative gate needs the live deployment's value")
        return live + self.margin

    def passes(self, candidate: float, live: float | None) -> bool:
        bound = self.bound(live)
        return candidate >= bound if HIGHER_IS_BETTER[self.metric] else candidate <= bound

    def text(self) -> str:
        if self.threshold is not None:
            return f"{self.metric} {self.operator} {self.threshold:g}"
        if not self.margin:
            return f"{self.metric} {self.operator} live"
        sign = "+" if self.margin > 0 else "-"
        return f"{self.metric} {self.operator} live {sign} {abs(self.margin):g}"


def parse_gate(text: str) -> Gate:
    found = _GATE.match(text)
    if found is None:
        raise ValidationError("autodeploy-gate", f"--gate must look like 'accuracy >= 0.85' or "
                              f"'accuracy >= live' (or 'live - 0.02'), got {text!r}")
    metric, operator = found.group(1).lower(), found.group(2)
    if metric not in METRICS:
        raise ValidationError("autodeploy-gate", f"unknown metric {metric!r} in --gate (use "
                              f"{', '.join(METRICS)})")
    wanted = ">=" if HIGHER_IS_BETTER[metric] else "<="
    if operator != wanted:
        raise ValidationError("autodeploy-gate", f"{metric} is better when "
                              f"{'higher' if wanted == '>=' else 'lower'}: write "
                              f"'{metric} {wanted} ...'")
    if found.group(3) is None:
        threshold = float(found.group(6))
        if not math.isfinite(threshold):
            raise ValidationError("autodeploy-gate", f"--gate threshold must be a number, "
                                  f"got {found.group(6)}")
        return Gate(metric, threshold)
    margin = float(found.group(5) or 0) * (-1 if found.group(4) == "-" else 1)
    return Gate(metric, None, margin)


@dataclass(frozen=True)
class GateData:
    """The labelled rows the gate scores (the CLI reads the CSV and sends them)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    labels: tuple[Any, ...]
    label_column: str
    source: str = ""  # the file name it came from, for people
    format: str = "azure"
    batch_size: int = 10

    def labelled(self) -> LabelledData:
        return LabelledData(self.columns, self.rows, tuple(as_label(x) for x in self.labels))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateData:
        return cls(columns=tuple(data["columns"]), rows=tuple(tuple(r) for r in data["rows"]),
                   labels=tuple(data["labels"]), label_column=str(data["label_column"]),
                   source=str(data.get("source", "")), format=str(data.get("format", "azure")),
                   batch_size=int(data.get("batch_size", 10)))

    def check(self) -> None:
        if not self.rows:
            raise ValidationError("autodeploy-gate-data", "the gate data has no rows")
        if len(self.rows) > MAX_GATE_ROWS:
            raise ValidationError("autodeploy-gate-data", f"the gate data has {len(self.rows)} "
                                  f"rows; at most {MAX_GATE_ROWS} are scored (sample it)")
        if len(self.labels) != len(self.rows):
            raise ValidationError("autodeploy-gate-data", f"{len(self.rows)} rows but "
                                  f"{len(self.labels)} labels")
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValidationError("autodeploy-gate-data", f"every row needs "
                                  f"{len(self.columns)} values, one per column")
        if self.format not in FORMATS:
            raise ValidationError("autodeploy-gate-data", f"format must be one of "
                                  f"{', '.join(FORMATS)}, got {self.format!r}")
        if not 1 <= self.batch_size <= 1000:
            raise ValidationError("autodeploy-gate-data", "batch_size must be 1 to 1000")


@dataclass(frozen=True)
class Policy:
    endpoint: str
    model: str
    rollout: RolloutRequest  # endpoint and target are filled in for each run
    from_deployment: str | None = None  # None: the deployment with the most live traffic
    gate: Gate | None = None
    gate_data: GateData | None = None
    on_gate_failure: str = "keep"
    old_deployment: str = "delete"
    created_at: float = 0.0
    after_seq: int = 0  # versions registered after this outbox event count

    def check(self) -> None:
        if (self.gate is None) != (self.gate_data is None):
            raise ValidationError("autodeploy-gate", "a gate needs labelled data and labelled "
                                  "data needs a gate: give --gate-data with --metric and --min "
                                  "(or --gate), or neither")
        if self.gate_data is not None:
            self.gate_data.check()
        if self.on_gate_failure not in ON_GATE_FAILURE:
            raise ValidationError("autodeploy-policy", f"--on-failure must be one of "
                                  f"{', '.join(ON_GATE_FAILURE)}")
        if self.old_deployment not in OLD_DEPLOYMENT:
            raise ValidationError("autodeploy-policy", f"--old-deployment must be one of "
                                  f"{', '.join(OLD_DEPLOYMENT)}")

    def to_dict(self, rows: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["rollout"] = rollout_body(self.rollout)
        data["gate"] = None if self.gate is None else self.gate.text()
        if self.gate_data is not None and not rows:
            data["gate_data"] = {k: v for k, v in data["gate_data"].items()
                                 if k not in ("rows", "labels")}
            data["gate_data"]["row_count"] = len(self.gate_data.rows)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        return cls(
            endpoint=data["endpoint"], model=data["model"],
            rollout=rollout_request(data["endpoint"], data["rollout"]),
            from_deployment=data.get("from_deployment"),
            gate=None if data.get("gate") is None else parse_gate(data["gate"]),
            gate_data=None if data.get("gate_data") is None else GateData.from_dict(
                data["gate_data"]),
            on_gate_failure=data.get("on_gate_failure", "keep"),
            old_deployment=data.get("old_deployment", "delete"),
            created_at=float(data.get("created_at", 0.0)),
            after_seq=int(data.get("after_seq", 0)))


def rollout_body(request: RolloutRequest) -> dict[str, Any]:
    """A rollout request as the admin API's RolloutStart body, without `target`."""
    body = asdict(request)
    body.pop("endpoint")
    body.pop("target")
    body["steps"] = list(request.steps)
    return body


def rollout_request(endpoint: str, body: dict[str, Any]) -> RolloutRequest:
    values = {k: v for k, v in body.items() if k not in ("guardrails", "target", "endpoint")}
    values["steps"] = tuple(values.get("steps") or ())
    return RolloutRequest(endpoint=endpoint, target="", guardrails=Guardrails(
        **(body.get("guardrails") or {})), **values)


@dataclass(frozen=True)
class GateVerdict:
    metric: str
    passed: bool
    candidate: float | None  # None when it could not be measured (errors)
    live: float | None
    bound: float | None
    rows: int
    errors: int
    message: str


@dataclass(frozen=True)
class StageRecord:
    stage: str
    at: float
    message: str


@dataclass(frozen=True)
class Run:
    id: str
    endpoint: str
    model: str
    version: int
    state: str
    stage: str
    created_at: float
    updated_at: float
    event_seq: int = 0  # the ModelRegistered event that started it
    candidate: str = ""
    source: str = ""  # the live deployment it copied
    rollout_id: str | None = None
    gate: GateVerdict | None = None
    finished_at: float | None = None
    reason: str = ""
    history: tuple[StageRecord, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def model_id(self) -> str:
        return f"{self.model}:{self.version}"

    def at_stage(self, stage: str, message: str, now: float, **changes: Any) -> Run:
        record = StageRecord(stage, now, message)
        return replace(self, stage=stage, updated_at=now, history=(*self.history, record),
                       **changes)

    def ended(self, state: str, reason: str, now: float) -> Run:
        return replace(self.at_stage(DONE, reason, now), state=state, reason=reason,
                       finished_at=now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        values = dict(data)
        gate = values.get("gate")
        values["gate"] = None if gate is None else GateVerdict(**gate)
        values["history"] = tuple(StageRecord(**item) for item in values.get("history", ()))
        return cls(**values)
