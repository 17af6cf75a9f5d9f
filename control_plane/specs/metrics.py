"""The metrics of `online-endpoint evaluate` and of auto-deploy gates, in pure Python (no
scikit-learn at run time).

Labels and predictions meet as `Label`s: numbers (and text that parses as a number) become
floats, so `1`, `1.0` and `"1"` are the same class; other text stays text. F1 is binary when
the true labels have at most two values (the positive class is `pos_label`, else the larger
label), macro-averaged over every label seen otherwise, as scikit-learn's `f1_score` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from control_plane.errors import ScoregateError

Label = float | str
METRICS = ("accuracy", "f1", "rmse", "mae")
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "rmse": False, "mae": False}
MAX_CATEGORICAL_INTS = 20  # integer labels with at most this many values look like classes


def as_label(value: object) -> Label:
    """A CSV cell or a JSON prediction as a comparable label."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _sort_key(label: Label) -> tuple[int, float, str]:
    return (0, label, "") if isinstance(label, float) else (1, 0.0, label)


def looks_categorical(labels: Sequence[Label]) -> bool:
    """Text, or a few distinct integers: a classifier's labels rather than a regressor's."""
    if any(isinstance(label, str) for label in labels):
        return True
    distinct = set(labels)
    return len(distinct) <= MAX_CATEGORICAL_INTS and all(float(x).is_integer() for x in distinct)


def default_metric(labels: Sequence[Label]) -> str:
    return "accuracy" if looks_categorical(labels) else "rmse"


def accuracy(truth: Sequence[Label], predicted: Sequence[Label]) -> float:
    _check_pairs(truth, predicted)
    return sum(t == p for t, p in zip(truth, predicted, strict=False)) / len(truth)


def f1(truth: Sequence[Label], predicted: Sequence[Label], pos_label: Label | None = None) -> float:
    _check_pairs(truth, predicted)
    if pos_label is not None:
        return _class_f1(truth, predicted, pos_label)
    classes = sorted(set(truth), key=_sort_key)
    if len(classes) <= 2:
        return _class_f1(truth, predicted, classes[-1])
    seen = sorted(set(truth) | set(predicted), key=_sort_key)
    return sum(_class_f1(truth, predicted, label) for label in seen) / len(seen)


def _class_f1(truth: Sequence[Label], predicted: Sequence[Label], positive: Label) -> float:
    """2·TP / (2·TP + FP + FN); 0 when the class is never predicted nor true."""
    tp = sum(t == positive and p == positive for t, p in zip(truth, predicted, strict=False))
    fp = sum(t != positive and p == positive for t, p in zip(truth, predicted, strict=False))
    fn = sum(t == positive and p != positive for t, p in zip(truth, predicted, strict=False))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def check_pos_label(labels: Sequence[Label], pos_label: Label) -> None:
    if pos_label not in set(labels):
        shown = ", ".join(_show(c) for c in sorted(set(labels), key=_sort_key)[:10])
        raise ScoregateError(f"--pos-label {_show(pos_label)} is not one of the labels ({shown})")


def rmse(truth: Sequence[Label], predicted: Sequence[Label]) -> float:
    pairs = _numeric_pairs(truth, predicted)
    return math.sqrt(math.fsum((t - p) ** 2 for t, p in pairs) / len(pairs))


def mae(truth: Sequence[Label], predicted: Sequence[Label]) -> float:
    pairs = _numeric_pairs(truth, predicted)
    return math.fsum(abs(t - p) for t, p in pairs) / len(pairs)


def compute(metric: str, truth: Sequence[Label], predicted: Sequence[Label],
            pos_label: Label | None = None) -> float:
    if metric == "f1":
        return f1(truth, predicted, pos_label)
    functions: dict[str, Callable[[Sequence[Label], Sequence[Label]], float]] = {
        "accuracy": accuracy, "rmse": rmse, "mae": mae}
    if metric not in functions:
        raise ScoregateError(f"unknown metric {metric!r} (use {', '.join(METRICS)})")
    return functions[metric](truth, predicted)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _check_pairs(truth: Sequence[Label], predicted: Sequence[Label]) -> None:
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
    if not truth:
        raise ValueError("no labelled predictions to score")


def _numeric_pairs(truth: Sequence[Label], predicted: Sequence[Label]) -> list[tuple[float, float]]:
    _check_pairs(truth, predicted)
    pairs = []
    for t, p in zip(truth, predicted, strict=False):
        if isinstance(t, str) or isinstance(p, str):
            raise ScoregateError(f"rmse and mae need numbers, got label {_show(t)} "
                                 f"and prediction {_show(p)}")
        pairs.append((t, p))
    return pairs


def _show(label: Label) -> str:
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)
