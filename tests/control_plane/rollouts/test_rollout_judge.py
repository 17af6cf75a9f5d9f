"""Guardrail verdicts from window statistics, and the histogram quantile they rely on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from control_plane.rollouts.judge import Window, judge
from control_plane.rollouts.window import WindowSample
from control_plane.specs.rollout import PASSED, TOO_FEW, TRIPPED, Guardrails
from gateway.telemetry.metrics import BUCKETS


def sample(latencies_s: list[float], errors: int = 0) -> WindowSample:
    bounds = [*BUCKETS, float("inf")]
    buckets = tuple((b, float(sum(1 for x in latencies_s if x <= b))) for b in bounds)
    return WindowSample(len(latencies_s), errors, buckets)


def test_error_rate_trips_with_measured_value_and_threshold() -> None:
    verdict = judge(Guardrails(max_error_rate=0.01, min_requests=50),
                    Window(3.0, sample([0.01] * 100, errors=20), sample([0.01] * 900)), 0.0)
    assert verdict.outcome == TRIPPED
    (check,) = verdict.tripped
    assert (check.guardrail, check.measured, check.threshold) == ("error-rate", 0.2, 0.01)
    assert "error-rate 0.2 > 0.01" in verdict.message


def test_latency_factor_compares_with_the_stable_p99_of_the_same_window() -> None:
    guards = Guardrails(max_error_rate=None, max_latency_factor=2.0, min_requests=10)
    slow = judge(guards, Window(3.0, sample([0.2] * 50), sample([0.02] * 500)), 0.0)
    assert slow.outcome == TRIPPED and slow.tripped[0].guardrail == "latency-factor"
    assert slow.tripped[0].measured is not None and slow.tripped[0].measured > 5
    fine = judge(guards, Window(3.0, sample([0.02] * 50), sample([0.02] * 500)), 0.0)
    assert fine.outcome == PASSED


def test_p99_and_p95_thresholds() -> None:
    guards = Guardrails(max_p99_ms=100, max_p95_ms=50, min_requests=10)
    latencies = [0.01] * 90 + [0.07] * 10  # p95 ~ 70 ms, p99 ~ 70 ms
    verdict = judge(guards, Window(1.0, sample(latencies), sample([])), 0.0)
    assert [c.guardrail for c in verdict.tripped] == ["p95-latency"]


def test_too_few_requests_is_its_own_verdict_but_a_trip_wins() -> None:
    guards = Guardrails(min_requests=50)
    assert judge(guards, Window(1.0, sample([0.01] * 10), sample([])), 0.0).outcome == TOO_FEW
    failing = judge(guards, Window(1.0, sample([0.01] * 10, errors=10), sample([])), 0.0)
    assert failing.outcome == TRIPPED


def test_agreement_in_the_mirror_phase() -> None:
    guards = Guardrails(min_agreement=0.99, min_requests=20)
    window = Window(2.0, sample([0.01] * 100), sample([]),
                    {"match": 60, "mismatch": 40, "shadow_error": 0, "incomparable": 7}, True)
    verdict = judge(guards, window, 0.0)
    assert verdict.outcome == TRIPPED
    (check,) = verdict.tripped
    assert (check.guardrail, check.measured, check.threshold) == ("agreement", 0.6, 0.99)
    few = Window(2.0, sample([0.01] * 100), sample([]), {"match": 5}, True)
    assert judge(guards, few, 0.0).outcome == TOO_FEW


@given(st.lists(st.floats(0.0005, 50.0), min_size=1, max_size=300), st.sampled_from(
    [0.5, 0.9, 0.95, 0.99]))
def test_quantile_lies_in_the_bucket_of_the_true_quantile(values: list[float], q: float) -> None:
    values.sort()
    true = values[max(0, int(q * len(values) + 0.999999) - 1)]
    estimate = sample(values).quantile_ms(q)
    assert estimate is not None
    bounds = [0.0, *BUCKETS]
    upper = next(b for b in BUCKETS if true <= b)
    lower = bounds[bounds.index(upper) - 1]
    assert lower * 1000 - 1e-6 <= estimate <= upper * 1000 + 1e-6


def test_window_is_the_difference_of_two_readings() -> None:
    earlier, later = sample([0.01] * 10, errors=1), sample([0.01] * 10 + [0.5] * 5, errors=4)
    window = later - earlier
    assert (window.requests, window.errors) == (5, 3)
    assert window.quantile_ms(0.5) is not None and window.quantile_ms(0.5) > 300
