"""Shadow comparison rules: is the shadow's answer the same as the live one? (pure)

The rules, in order:
1. The live request got no answer from its model (timeout, refused, 429/503) → `incomparable`.
2. The shadow gave no answer (failed, timed out) → `shadow_error`.
3. Either status is not 2xx: the same status on both sides → `match` (both refused the input the
   same way; error bodies carry messages and tracebacks, so they are not compared); the shadow
   not 2xx otherwise → `shadow_error`; the live one not 2xx (shadow 2xx) → `mismatch`.
4. Different 2xx statuses → `mismatch`.
5. A body above `max_body_bytes`, or one that is not JSON → `incomparable`.
6. The JSON values are walked together; any difference is a `mismatch`:
   - objects need the same keys, lists the same length, and each value the same type;
   - strings, booleans, null and pairs of integers (class labels) are compared exactly;
   - other numbers match within `rel_tolerance`: |a - b| <= rel_tolerance * max(|a|, |b|),
     or |a - b| <= abs_tolerance (for values near zero);
   - classifier probabilities: two lists of the same length (at least 2) whose numbers all lie
     in [0, 1] and each sum to 1 (± 0.001) match when their argmax (the predicted label) is
     the same, whatever the probabilities' own differences.
The relative difference of two numbers is |a - b| / max(|a|, |b|) (0 when both are 0), so it
lies in [0, 2]; a verdict carries the largest one seen over every number compared (0 for two
byte-identical bodies, None when no number was compared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import SettingsError

MATCH, MISMATCH, SHADOW_ERROR, INCOMPARABLE = "match", "mismatch", "shadow_error", "incomparable"
OUTCOMES = (MATCH, MISMATCH, SHADOW_ERROR, INCOMPARABLE)
_SUM_SLACK = 1e-3  # how far from 1 a probability vector's sum may be


@dataclass(frozen=True, slots=True)
class CompareSettings:
    """How comparisons are sampled, judged and stored (one set for the whole gateway)."""

    sample_percent: float = 100.0  # share of mirror copies compared (0 turns comparison off)
    rel_tolerance: float = 1e-6  # tight: a changed model shows; loosen for float32 pipelines
    abs_tolerance: float = 1e-12
    max_body_bytes: int = 64 * 1024  # larger answers are `incomparable`, never held
    max_pending: int = 128  # comparisons waiting for their second answer; more are skipped
    keep_mismatches: int = 50  # last mismatching pairs kept per deployment
    stored_body_bytes: int = 4096  # each kept body is cut to this many bytes

    def __post_init__(self) -> None:
        checks = (
            (0.0 <= self.sample_percent <= 100.0, "sample_percent must be from 0 to 100"),
            (self.rel_tolerance >= 0.0, "rel_tolerance must be 0 or more"),
            (self.abs_tolerance >= 0.0, "abs_tolerance must be 0 or more"),
            (self.max_body_bytes >= 1, "max_body_bytes must be at least 1"),
            (self.max_pending >= 1, "max_pending must be at least 1"),
            (self.keep_mismatches >= 0, "keep_mismatches must be 0 or more"),
            (self.stored_body_bytes >= 0, "stored_body_bytes must be 0 or more"),
        )
        for ok, message in checks:
            if not ok:
                raise SettingsError(f"{message} (comparison settings)")

    @property
    def enabled(self) -> bool:
        return self.sample_percent > 0.0

    @property
    def memory_limit_per_deployment(self) -> int:
        """Bytes the kept mismatching pairs of one deployment may hold (two bodies each)."""
        return self.keep_mismatches * 2 * self.stored_body_bytes

    @property
    def pending_memory_limit(self) -> int:
        """Bytes the comparisons waiting for their second answer may hold (two bodies each)."""
        return self.max_pending * 2 * self.max_body_bytes


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str
    relative_difference: float | None  # largest over the numbers compared; None when none
    reason: str  # why it is not a match (empty for a match)


@dataclass(frozen=True, slots=True)
class Side:
    """One answer: the model's status (None when it gave none) and its body. `oversize`: the
    body was larger than the limit and was not kept."""

    status: int | None
    body: bytes = b""
    oversize: bool = False


def _ok(status: int) -> bool:
    return 200 <= status < 300


def compare_answers(live: Side, shadow: Side, settings: CompareSettings) -> Verdict:
    if live.status is None:
        return Verdict(INCOMPARABLE, None, "the live request got no answer from its model")
    if shadow.status is None:
        return Verdict(SHADOW_ERROR, None, "the shadow gave no answer (failed or timed out)")
    if not (_ok(live.status) and _ok(shadow.status)) or live.status != shadow.status:
        return _by_status(live.status, shadow.status)
    for name, side in (("live", live), ("shadow", shadow)):
        if side.oversize or len(side.body) > settings.max_body_bytes:
            return Verdict(INCOMPARABLE, None, f"the {name} body is larger than "
                                               f"{settings.max_body_bytes} bytes")
    try:
        live_value = orjson.loads(live.body)
        if live.body == shadow.body:
            return Verdict(MATCH, 0.0, "")  # identical: no need to walk them
        shadow_value = orjson.loads(shadow.body)
    except orjson.JSONDecodeError:
        return Verdict(INCOMPARABLE, None, "an answer is not JSON")
    walk = _Walk(settings)
    difference = walk.value(live_value, shadow_value, "$")
    if difference is None:
        return Verdict(MATCH, walk.largest, "")
    return Verdict(MISMATCH, walk.largest, difference)


def _by_status(live: int, shadow: int) -> Verdict:
    if live == shadow:
        return Verdict(MATCH, None, "")
    reason = f"status {live} (live) vs {shadow} (shadow)"
    return Verdict(SHADOW_ERROR if not _ok(shadow) else MISMATCH, None, reason)


def relative_difference(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0.0 else abs(a - b) / scale


def _is_number(value: Any) -> bool:
    return type(value) is float or type(value) is int  # not bool; JSON has no subclasses


def _all_numbers(values: list[Any]) -> bool:
    return all(type(v) is float or type(v) is int for v in values)


def _probabilities(values: list[Any]) -> bool:
    """Numbers only (checked by the caller), at least 2, each in [0, 1], summing to 1."""
    if len(values) < 2 or not all(0.0 <= v <= 1.0 for v in values):
        return False
    return abs(math.fsum(values) - 1.0) <= _SUM_SLACK


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


class _Walk:
    """Walks two JSON values together; `largest` is the largest relative difference seen.
    Paths are formatted only for the first difference, so a long list costs a tight loop."""

    def __init__(self, settings: CompareSettings) -> None:
        self.rel = settings.rel_tolerance
        self.absolute = settings.abs_tolerance
        self.largest: float | None = None

    def value(self, live: Any, shadow: Any, path: str) -> str | None:
        """The first difference as text, or None when the two values match."""
        if _is_number(live) and _is_number(shadow):
            return self._numbers([live], [shadow], path, single=True)
        if type(live) is not type(shadow):
            return (f"{path}: {type(live).__name__} (live) vs {type(shadow).__name__} "
                    "(shadow)")
        if isinstance(live, dict):
            return self._object(live, shadow, path)
        if isinstance(live, list):
            return self._list(live, shadow, path)
        if live != shadow:
            return f"{path}: {_short(live)} (live) vs {_short(shadow)} (shadow)"
        return None

    def _numbers(self, live: list[Any], shadow: list[Any], path: str,
                 single: bool = False) -> str | None:
        """Numbers pairwise; two integers must be equal, other pairs within the tolerance."""
        rel, absolute = self.rel, self.absolute
        largest = -1.0 if self.largest is None else self.largest
        first = -1
        for index, (a, b) in enumerate(zip(live, shadow, strict=False)):
            if a == b:
                continue
            gap = a - b if a > b else b - a
            scale = a if a > -a else -a
            if b > scale or -b > scale:
                scale = b if b > -b else -b
            difference = gap / scale
            if difference > largest:
                largest = difference
            if first < 0 and ((type(a) is int and type(b) is int)
                              or (gap > absolute and gap > rel * scale)):
                first = index
        if largest < 0.0 and live:
            largest = 0.0
        if largest >= 0.0:
            self.largest = largest
        if first < 0:
            return None
        a, b = live[first], shadow[first]
        where = path if single else f"{path}[{first}]"
        return (f"{where}: {a!r} (live) vs {b!r} (shadow), relative difference "
                f"{relative_difference(a, b):.3g} > {rel:g}")

    def _object(self, live: dict[str, Any], shadow: dict[str, Any], path: str) -> str | None:
        if live.keys() != shadow.keys():
            only_live = sorted(live.keys() - shadow.keys())[:5]
            only_shadow = sorted(shadow.keys() - live.keys())[:5]
            return f"{path}: keys only in live {only_live}, only in shadow {only_shadow}"
        first: str | None = None
        for key, item in live.items():
            found = self.value(item, shadow[key], f"{path}.{key}")
            first = first or found
        return first

    def _list(self, live: list[Any], shadow: list[Any], path: str) -> str | None:
        if len(live) != len(shadow):
            return f"{path}: {len(live)} items (live) vs {len(shadow)} items (shadow)"
        if _all_numbers(live) and _all_numbers(shadow):
            if _probabilities(live) and _probabilities(shadow):
                self._numbers(live, shadow, path)  # only for `largest`: the label decides
                label_live, label_shadow = _argmax(live), _argmax(shadow)
                if label_live != label_shadow:
                    return (f"{path}: predicted class {label_live} (live) vs {label_shadow} "
                            "(shadow)")
                return None
            return self._numbers(live, shadow, path)
        first: str | None = None
        for index, (a, b) in enumerate(zip(live, shadow, strict=False)):
            found = self.value(a, b, f"{path}[{index}]")
            first = first or found
        return first


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."
