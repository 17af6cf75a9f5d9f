"""Pure guardrail verdicts: one bake window's statistics in, passed / tripped / too few out.

Every guardrail that is on yields a `Check` with the measured value and the threshold, so a
verdict says exactly why a rollout went on or rolled back. Too few requests is a verdict of
its own (the engine waits or fails, as configured); a guardrail that trips wins over it, so
a window of 5 requests that all failed still rolls back at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from control_plane.rollouts.window import WindowSample
from control_plane.specs.rollout import PASSED, TOO_FEW, TRIPPED, Check, Guardrails, Verdict


@dataclass(frozen=True)
class Window:
    """One bake window: the target's figures, the stable deployments' (for the latency
    factor), and the shadow-comparison counts (mirror phase) when available."""

    seconds: float
    target: WindowSample
    stable: WindowSample
    comparisons: Mapping[str, int] | None = None
    mirror_phase: bool = False


def judge(guards: Guardrails, window: Window, at: float) -> Verdict:
    checks = [*_error_rate(guards, window), *_latency(guards, window),
              *_agreement(guards, window)]
    requests = window.target.requests
    enough = requests >= guards.min_requests
    checks.append(Check("min-requests", float(requests), float(guards.min_requests), enough,
                        f"{requests} requests to {'the shadow' if window.mirror_phase else 'it'}"
                        f" in {window.seconds:.1f}s"))
    failed = [check for check in checks if not check.ok and check.guardrail != "min-requests"]
    if failed:
        outcome, message = TRIPPED, "; ".join(_describe(check) for check in failed)
    elif not enough or not _agreement_judged(guards, window):
        outcome = TOO_FEW
        message = (f"too few requests to judge: {requests} < {guards.min_requests}"
                   if not enough else "too few compared answers to judge the agreement")
    else:
        outcome, message = PASSED, "all guardrails held"
    return Verdict(outcome, at, round(window.seconds, 3), requests, tuple(checks), message)


def _error_rate(guards: Guardrails, window: Window) -> list[Check]:
    if guards.max_error_rate is None or window.target.requests == 0:
        return []
    rate = window.target.error_rate
    return [Check("error-rate", round(rate, 6), guards.max_error_rate,
                  rate <= guards.max_error_rate,
                  f"{window.target.errors} of {window.target.requests} failed "
                  "(5xx, 408, 424, 429)")]


def _latency(guards: Guardrails, window: Window) -> list[Check]:
    checks: list[Check] = []
    for name, q, limit in (("p99-latency", 0.99, guards.max_p99_ms),
                           ("p95-latency", 0.95, guards.max_p95_ms)):
        measured = window.target.quantile_ms(q)
        if limit is not None and measured is not None:
            checks.append(Check(name, round(measured, 3), limit, measured <= limit,
                                f"p{int(q * 100)} {measured:.1f} ms"))
    factor = guards.max_latency_factor
    mine, theirs = window.target.quantile_ms(0.99), window.stable.quantile_ms(0.99)
    if factor is not None and mine is not None:
        if theirs is None or theirs <= 0:
            checks.append(Check("latency-factor", None, factor, True,
                                "no stable requests in the window to compare with"))
        else:
            ratio = mine / theirs
            checks.append(Check("latency-factor", round(ratio, 3), factor, ratio <= factor,
                                f"p99 {mine:.1f} ms vs stable p99 {theirs:.1f} ms"))
    return checks


def _agreement(guards: Guardrails, window: Window) -> list[Check]:
    if guards.min_agreement is None or not window.mirror_phase:
        return []
    counts = window.comparisons
    if counts is None:
        return [Check("agreement", None, guards.min_agreement, False,
                      "this gateway reports no shadow comparisons")]
    judged = _compared(counts)
    if judged == 0:
        return []
    rate = counts.get("match", 0) / judged
    return [Check("agreement", round(rate, 6), guards.min_agreement, rate >= guards.min_agreement,
                  f"{counts.get('match', 0)} of {judged} compared answers matched "
                  f"({counts.get('mismatch', 0)} mismatched, {counts.get('shadow_error', 0)} "
                  "shadow errors)")]


def _agreement_judged(guards: Guardrails, window: Window) -> bool:
    if guards.min_agreement is None or not window.mirror_phase or window.comparisons is None:
        return True
    return _compared(window.comparisons) >= guards.min_requests


def _compared(counts: Mapping[str, int]) -> int:
    """Answers the shadow comparison judged (an incomparable one is neither way)."""
    return counts.get("match", 0) + counts.get("mismatch", 0) + counts.get("shadow_error", 0)


def _describe(check: Check) -> str:
    if check.measured is None:
        return f"{check.guardrail}: {check.detail}"
    relation = "<" if check.guardrail == "agreement" else ">"
    return (f"{check.guardrail} {check.measured:g} {relation} {check.threshold:g} "
            f"({check.detail})")
