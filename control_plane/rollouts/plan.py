"""Pure rollout arithmetic: which percents the steps go through, and the traffic at each.

Stable deployments are those with live traffic when the rollout starts (the target aside).
At a step the target gets p% and the stable ones share 100 − p in proportion to their
starting weights. Shares are apportioned with Sainte-Laguë's divisor method, which is
house-monotone: as p grows, no stable deployment's share ever grows, and the total is
always exactly 100 in whole percents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from control_plane.errors import ValidationError
from control_plane.specs.rollout import (
    ON_TOO_FEW,
    PHASE_MIRROR,
    PHASE_TRAFFIC,
    STRATEGIES,
    Guardrails,
    RolloutRequest,
    Step,
)

MAX_CANARY = 50
LINEAR_STEP = (10, 50)
MIN_BAKE_S, MAX_BAKE_S = 0.5, 86_400.0
MAX_MIRROR = 50


def plan_percents(request: RolloutRequest) -> tuple[int, ...]:
    """The target's live percent at each traffic step; the last is always 100."""
    if request.steps:
        return _explicit(request.steps)
    if request.strategy == "all-at-once":
        return (100,)
    if request.strategy == "canary":
        percent = request.canary_percent
        if not 1 <= percent <= MAX_CANARY:
            raise ValidationError("rollout-canary-percent", f"--canary-percent must be 1 to "
                                  f"{MAX_CANARY}, got {percent}")
        return (percent, 100)
    if request.strategy == "linear":
        step = request.step if request.step is not None else 10
        low, high = LINEAR_STEP
        if not low <= step <= high:
            raise ValidationError("rollout-step", f"--step must be {low} to {high}, got {step}")
        return tuple(range(step, 100, step)) + (100,)
    raise ValidationError("rollout-strategy", f"--strategy must be one of "
                          f"{', '.join(STRATEGIES)}, got {request.strategy!r}")


def _explicit(steps: tuple[int, ...]) -> tuple[int, ...]:
    if any(not 1 <= p <= 100 for p in steps):
        raise ValidationError("rollout-steps", f"--steps must be percents from 1 to 100, "
                              f"got {','.join(map(str, steps))}")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValidationError("rollout-steps", f"--steps must increase, got "
                              f"{','.join(map(str, steps))}")
    return steps if steps[-1] == 100 else steps + (100,)


def check_request(request: RolloutRequest) -> None:
    """Bad flags are refused with the flag's name, before anything is written."""
    for name, value in (("--bake", request.bake_s), ("--mirror-bake", request.mirror_bake_s)):
        if not MIN_BAKE_S <= value <= MAX_BAKE_S or math.isnan(value):
            raise ValidationError("rollout-bake", f"{name} must be {MIN_BAKE_S:g}s to "
                                  f"{MAX_BAKE_S:g}s, got {value:g}s")
    if not 0 <= request.mirror_percent <= MAX_MIRROR:
        raise ValidationError("rollout-mirror", f"--mirror-first must be 0 to {MAX_MIRROR}, "
                              f"got {request.mirror_percent}")
    check_guardrails(request.guardrails)
    if request.guardrails.min_agreement is not None and not request.mirror_percent:
        raise ValidationError("rollout-agreement", "--min-agreement needs a mirror phase "
                              "(--mirror-first PERCENT)")
    if request.webhook is not None and not request.webhook.startswith(("http://", "https://")):
        raise ValidationError("rollout-webhook", f"--webhook must be an http(s) URL, "
                              f"got {request.webhook!r}")


def check_guardrails(guards: Guardrails) -> None:
    ratios = (("--max-error-rate", guards.max_error_rate), ("--min-agreement",
                                                            guards.min_agreement))
    for name, ratio in ratios:
        if ratio is not None and not 0.0 <= ratio <= 1.0:
            raise ValidationError("rollout-guardrail", f"{name} must be 0 to 1, got {ratio}")
    positives = (("--max-p99-ms", guards.max_p99_ms), ("--max-p95-ms", guards.max_p95_ms),
                 ("--max-latency-factor", guards.max_latency_factor))
    for name, value in positives:
        if value is not None and not value > 0:
            raise ValidationError("rollout-guardrail", f"{name} must be above 0, got {value}")
    if guards.min_requests < 1:
        raise ValidationError("rollout-guardrail", f"--min-requests must be at least 1, "
                              f"got {guards.min_requests}")
    if guards.on_too_few not in ON_TOO_FEW:
        raise ValidationError("rollout-guardrail", f"--on-too-few must be wait or fail, "
                              f"got {guards.on_too_few!r}")
    if not 0 <= guards.max_extensions <= 10:
        raise ValidationError("rollout-guardrail", f"--max-extensions must be 0 to 10, "
                              f"got {guards.max_extensions}")


def stable_weights(start: Mapping[str, int], target: str) -> dict[str, int]:
    return {name: percent for name, percent in start.items() if percent > 0 and name != target}


def traffic_at(start: Mapping[str, int], target: str, percent: int) -> dict[str, int]:
    """Every deployment of `start` (plus the target): target p, stable ones share 100 − p."""
    stable = stable_weights(start, target)
    if not stable and percent < 100:
        raise ValidationError("rollout-no-stable", "the endpoint has no other deployment with "
                              "live traffic to shift from")
    shares = apportion(stable, 100 - percent)
    return {**{name: 0 for name in start}, **shares, target: percent}


def apportion(weights: Mapping[str, int], seats: int) -> dict[str, int]:
    """Sainte-Laguë: hand out `seats` one at a time to the highest weight / (2·given + 1),
    ties to the earlier name. House-monotone: fewer seats never gives anyone more."""
    given = {name: 0 for name in sorted(weights)}
    for _ in range(seats):
        best = ""
        for name in given:  # integer cross-multiplication: no float ties
            if not best or weights[name] * (2 * given[best] + 1) > \
                    weights[best] * (2 * given[name] + 1):
                best = name
        given[best] += 1
    return given


def mirror_during_traffic(start_mirror: Mapping[str, int], target: str) -> dict[str, int]:
    """The start's mirror, unless it pointed at the target (which now carries live traffic)."""
    return {name: p for name, p in start_mirror.items() if name != target and p > 0}


def promoted(start: Mapping[str, int], start_mirror: Mapping[str, int],
             target: str) -> tuple[dict[str, int], dict[str, int]]:
    traffic = {**{name: 0 for name in start}, target: 100}
    return traffic, mirror_during_traffic(start_mirror, target)


def plan_steps(request: RolloutRequest, start: Mapping[str, int],
               start_mirror: Mapping[str, int]) -> tuple[Step, ...]:
    """Every step with the exact traffic and mirror it will publish."""
    steps: list[Step] = []
    if request.mirror_percent:
        if start.get(request.target, 0) > 0:
            raise ValidationError("rollout-mirror", f"{request.target} already has live "
                                  "traffic; a mirror phase needs a deployment at 0%")
        steps.append(Step(PHASE_MIRROR, request.mirror_percent, request.mirror_bake_s,
                          traffic=dict(start), mirror={request.target: request.mirror_percent}))
    mirror = mirror_during_traffic(start_mirror, request.target)
    for percent in plan_percents(request):
        steps.append(Step(PHASE_TRAFFIC, percent, request.bake_s,
                          traffic=traffic_at(start, request.target, percent), mirror=mirror))
    return tuple(steps)
