"""What changed between two versions of a spec, in words: `instance_count 1 → 2`.

`Store.apply` says what a YAML apply did with one line per resource; this builds the part in
parentheses. Environment variable values are not shown (they often hold credentials).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_HIDDEN = ("environment_variables",)
_MAX_VALUE = 60
_ABSENT = object()


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """`"instance_count 1 → 2, traffic.green 0 → 10"`; empty when nothing changed."""
    return ", ".join(_changes(before, after, ""))


def _changes(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str) -> Iterator[str]:
    for key in list(before) + [key for key in after if key not in before]:
        old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
        if old == new:
            continue
        path = f"{prefix}{key}"
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            if key in _HIDDEN:
                yield f"{path} changed"
            else:
                yield from _changes(old, new, f"{path}.")
        else:
            yield f"{path} {_show(old)} → {_show(new)}"


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(none)"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"
