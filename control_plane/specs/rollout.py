"""A guarded rollout's records: what was asked, what each step saw, where it stands.

Plain frozen dataclasses that round-trip through JSON (`to_dict` / `from_dict`): the store
keeps a rollout as one JSON row, the admin API answers the same dict, and `rollout show -o
json` prints it. A transition replaces the whole record (`dataclasses.replace`), never edits it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

STRATEGIES = ("all-at-once", "canary", "linear")
ACTIONS = ("pause", "resume", "promote", "abort")  # the commands a running rollout takes
ROLLOUT_PATH = "/v1/endpoints/{endpoint}/rollout"  # admin API; the CLI and the server share it
ON_TOO_FEW = ("wait", "fail")
PHASE_MIRROR, PHASE_TRAFFIC = "mirror", "traffic"

RUNNING, PAUSED = "running", "paused"
SUCCEEDED, ROLLED_BACK, ABORTED = "succeeded", "rolled_back", "aborted"
ACTIVE_STATES = (RUNNING, PAUSED)
FINAL_STATES = (SUCCEEDED, ROLLED_BACK, ABORTED)
STATES = ACTIVE_STATES + FINAL_STATES

PASSED, TRIPPED, TOO_FEW = "passed", "tripped", "too_few"  # verdict outcomes
STEP_PENDING, STEP_BAKING = "pending", "baking"  # step status (else a verdict outcome)


@dataclass(frozen=True)
class Guardrails:
    """Thresholds judged over each bake window; None turns a guardrail off."""

    max_error_rate: float | None = 0.01
    max_p99_ms: float | None = None
    max_p95_ms: float | None = None
    max_latency_factor: float | None = None  # × the stable deployments' p99 over the window
    min_requests: int = 50
    on_too_few: str = "wait"  # wait: bake again (at most `max_extensions` times), fail: roll back
    max_extensions: int = 2
    min_agreement: float | None = None  # mirror phase: match / (match + mismatch + shadow_error)


@dataclass(frozen=True)
class RolloutRequest:
    """What `rollout start` asks for, before it is turned into a plan."""

    endpoint: str
    target: str
    strategy: str = "canary"
    canary_percent: int = 10
    step: int | None = None  # linear: the increment
    steps: tuple[int, ...] = ()  # explicit percents; override strategy's own
    bake_s: float = 60.0
    mirror_percent: int = 0  # > 0: a mirror phase before any live traffic
    mirror_bake_s: float = 120.0
    guardrails: Guardrails = field(default_factory=Guardrails)
    webhook: str | None = None


@dataclass(frozen=True)
class Check:
    """One guardrail's reading: measured value, threshold, and whether it held."""

    guardrail: str
    measured: float | None
    threshold: float | None
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: str  # passed | tripped | too_few
    at: float  # epoch seconds
    window_s: float
    requests: int
    checks: tuple[Check, ...] = ()
    message: str = ""

    @property
    def tripped(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)


@dataclass(frozen=True)
class Step:
    phase: str  # mirror | traffic
    percent: int  # the target's live (or mirror) percent at this step
    bake_s: float
    status: str = STEP_PENDING  # pending | baking | passed | tripped | too_few
    started_at: float | None = None
    traffic: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)
    verdicts: tuple[Verdict, ...] = ()


@dataclass(frozen=True)
class Rollout:
    id: str
    endpoint: str
    target: str
    strategy: str
    state: str
    current: int  # index into `steps` of the step baking (or last baked)
    steps: tuple[Step, ...]
    start_traffic: dict[str, int]
    start_mirror: dict[str, int]
    guardrails: Guardrails
    webhook: str | None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    reason: str = ""  # why it ended (or paused), in one line

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def step(self) -> Step:
        return self.steps[self.current]

    def with_step(self, index: int, **changes: Any) -> Rollout:
        steps = list(self.steps)
        steps[index] = replace(steps[index], **changes)
        return replace(self, steps=tuple(steps))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["progress"] = progress_line(self)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        data = {k: v for k, v in data.items() if k != "progress"}
        data["guardrails"] = Guardrails(**data["guardrails"])
        data["steps"] = tuple(_step(step) for step in data["steps"])
        return cls(**data)


def _step(data: dict[str, Any]) -> Step:
    verdicts = tuple(
        Verdict(**{**v, "checks": tuple(Check(**c) for c in v["checks"])})
        for v in data.get("verdicts", ())
    )
    return Step(**{**data, "verdicts": verdicts})


def progress_line(rollout: Rollout) -> str:
    """One line for a terminal: state, step n/N, the target's share, last verdict."""
    step = rollout.step
    where = f"step {rollout.current + 1}/{len(rollout.steps)}"
    share = f"{rollout.target} {step.percent}% {'mirror' if step.phase == PHASE_MIRROR else 'live'}"
    last = step.verdicts[-1].message if step.verdicts else step.status
    text = f"rollout {rollout.id} of {rollout.endpoint}: {rollout.state}, {where}, {share}, {last}"
    return f"{text} ({rollout.reason})" if rollout.reason and rollout.reason != last else text
