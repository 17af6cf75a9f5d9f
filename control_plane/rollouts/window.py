"""What a deployment did over a bake window, from the gateway's own in-process metrics.

A reading is a `WindowSample` of the cumulative counters (requests, errors, latency
histogram buckets) of one deployment in one role; the window is the difference of two
readings taken at its start and end. No Prometheus server is involved: the gateway's
`request_counts` reads its own metric objects, in the process that serves the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gateway import COMPARISON_OUTCOMES, request_counts

ERROR_CODES = frozenset({408, 424, 429})  # plus every 5xx
ComparisonReader = Callable[[str, str], Mapping[str, int]]


@dataclass(frozen=True)
class WindowSample:
    requests: int = 0
    errors: int = 0
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound s, cumulative count), +Inf last

    def __add__(self, other: WindowSample) -> WindowSample:
        return WindowSample(self.requests + other.requests, self.errors + other.errors,
                            _combine(self.buckets, other.buckets, 1))

    def __sub__(self, earlier: WindowSample) -> WindowSample:
        return WindowSample(self.requests - earlier.requests, self.errors - earlier.errors,
                            _combine(self.buckets, earlier.buckets, -1))

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile_ms(self, q: float) -> float | None:
        """Like PromQL's histogram_quantile: linear inside the bucket the rank falls in."""
        if not self.buckets or self.buckets[-1][1] <= 0:
            return None
        rank = q * self.buckets[-1][1]
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in self.buckets:
            if count >= rank:
                if math.isinf(bound):
                    return lower_bound * 1000.0  # the highest finite bound, as Prometheus does
                inside = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
                return (lower_bound + (bound - lower_bound) * inside) * 1000.0
            lower_bound, lower_count = bound, count
        return lower_bound * 1000.0


def _combine(a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...],
             sign: int) -> tuple[tuple[float, float], ...]:
    if not b:
        return a
    if not a:
        return tuple((bound, sign * count) for bound, count in b)
    return tuple((bound, count + sign * other)
                 for (bound, count), (_, other) in zip(a, b, strict=False))


def read_sample(endpoint: str, deployments: Iterable[str], role: str) -> WindowSample:
    """Cumulative totals of these deployments of `endpoint` in `role` (`gateway.ROLES`), read
    now."""
    total = WindowSample()
    for deployment in set(deployments):
        counts = request_counts(endpoint, deployment, role)
        errors = sum(n for status, n in counts.by_status.items()
                     if status >= 500 or status in ERROR_CODES)
        total = total + WindowSample(counts.requests, errors, counts.latency_buckets)
    return total


def read_comparisons(reader: ComparisonReader | None, endpoint: str,
                     deployment: str) -> dict[str, int] | None:
    """The shadow-comparison counters of a mirror deployment, or None when not available."""
    if reader is None:
        return None
    counts = reader(endpoint, deployment)
    return {outcome: int(counts.get(outcome, 0)) for outcome in COMPARISON_OUTCOMES}
