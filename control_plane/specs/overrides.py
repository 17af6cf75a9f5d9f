"""`--set`, `--add` and `--remove`, applied to a YAML file's raw mapping before the schema reads
it, as `az` does: azureml-examples' scripts keep placeholders in their YAML
(`endpoint_name: <endpoint_name>`) and override them with
`--set endpoint_name=$E --set model=azureml:name:$VERSION`, so validating the file first would
refuse what the command line fixes.

Paths are dotted keys (`request_settings.request_timeout_ms`); a value is read as JSON when it
is JSON (`2`, `true`, `{"a": 1}`), else kept as text (`azureml:m:3`), except under the
text-to-text maps (`tags`, `environment_variables`, `properties`), whose values stay text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from control_plane.errors import ScoregateError

TEXT_MAPS = ("environment_variables", "tags", "properties")
Action = Literal["set", "add", "remove"]


@dataclass(frozen=True)
class Override:
    """One `--set path=value`, `--add path value` or `--remove path [index]`."""

    action: Action
    path: tuple[str, ...]
    value: Any = None

    @property
    def flag(self) -> str:
        return f"--{self.action} {'.'.join(self.path)}"


def parse_set(text: str) -> Override:
    """`request_settings.request_timeout_ms=3000` → set (request_settings, ...) to 3000."""
    key, equals, raw = text.partition("=")
    path = _path(key, f"--set expects KEY=VALUE (e.g. instance_count=2), got {text!r}")
    if not equals:
        raise ScoregateError(f"--set expects KEY=VALUE (e.g. instance_count=2), got {text!r}")
    return Override("set", path, _value(path, raw))


def parse_add(path_text: str, raw: str) -> Override:
    """`--add tags owner=me` merges a key into a mapping; `--add urls http://x` appends to a
    list."""
    return Override("add", _path(path_text, f"--add expects a key path, got {path_text!r}"),
                    raw)


def parse_remove(path_text: str, index: str | None = None) -> Override:
    """`--remove tags.owner` deletes a key; `--remove urls 0` deletes a list item."""
    path = _path(path_text, f"--remove expects a key path, got {path_text!r}")
    if index is None:
        return Override("remove", path)
    if not index.isdigit():
        raise ScoregateError(f"--remove {path_text}: the list index must be a whole number, "
                             f"got {index!r}")
    return Override("remove", path, int(index))


def apply(data: Any, overrides: Sequence[Override], *, null_removes: bool = False) -> Any:
    """A copy of `data` (a mapping) with the overrides applied in order. `null_removes`: a
    removed key becomes null instead of vanishing (a JSON merge patch, for update verbs that
    send only what changes)."""
    if not overrides:
        return data
    if not isinstance(data, Mapping):
        raise ScoregateError(f"{overrides[0].flag}: the file holds no mapping of keys to "
                             "change")
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))  # a deep, plain copy
    for override in overrides:
        _apply_one(result, override, null_removes)
    return result


def _apply_one(data: dict[str, Any], override: Override, null_removes: bool) -> None:
    parent = data
    for key in override.path[:-1]:
        child = parent.get(key)
        if child is None and (override.action != "remove" or null_removes):
            child = parent[key] = {}
        if not isinstance(child, dict):
            raise ScoregateError(f"{override.flag}: {key!r} holds "
                                 f"{'nothing' if child is None else type(child).__name__}, "
                                 "not a mapping of keys")
        parent = child
    last = override.path[-1]
    if override.action == "set":
        parent[last] = override.value
    elif override.action == "add":
        _add(parent, last, override)
    else:
        _remove(parent, last, override, null_removes)


def _add(parent: dict[str, Any], last: str, override: Override) -> None:
    target = parent.get(last)
    raw = str(override.value)
    if isinstance(target, list):
        target.append(_value(override.path, raw))
        return
    key, equals, value = raw.partition("=")
    if (target is None or isinstance(target, dict)) and equals and key:
        parent[last] = {**(target or {}), key: _value((*override.path, key), value)}
        return
    raise ScoregateError(f"{override.flag}: add KEY=VALUE to a mapping, or a value to a list "
                         f"(found {'nothing' if target is None else type(target).__name__})")


def _remove(parent: dict[str, Any], last: str, override: Override, null_removes: bool) -> None:
    if override.value is not None:
        items = parent.get(last)
        if not isinstance(items, list) or not 0 <= override.value < len(items):
            raise ScoregateError(f"{override.flag} {override.value}: no such list item")
        del items[override.value]
        return
    if null_removes:
        parent[last] = None
    elif last in parent:
        del parent[last]
    else:
        raise ScoregateError(f"{override.flag}: there is no such key to remove")


def _path(text: str, message: str) -> tuple[str, ...]:
    path = tuple(part.strip() for part in text.strip().split("."))
    if not all(path):
        raise ScoregateError(message)
    return path


def _value(path: tuple[str, ...], raw: str) -> Any:
    if path[0] in TEXT_MAPS and len(path) > 1:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
