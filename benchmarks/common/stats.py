"""Medians and ratios that tolerate missing figures (a target without a proxy has no CPU)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
