"""Typed reads from one YAML (or JSON) mapping, each failure naming file, key and line.

`Source` carries what a message needs: the file name, the folder relative paths resolve
against, and the line of every dotted key (empty for JSON bodies, where lines mean nothing).
The builders in `yaml_schema` read every field through these helpers, so a wrong value never
escapes as a `TypeError` and every message has the same shape.
"""

from __future__ import annotations

import datetime
import difflib
import math
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from control_plane.errors import ConfigError, ValidationError

MAX_DEPTH = 64  # deeper than any real Azure ML file; keeps recursive YAML anchors out


@dataclass(frozen=True)
class Source:
    file: str
    base_dir: Path
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def error(self, key: str | None, message: str) -> ConfigError:
        return ConfigError(self.file, key or None, message, self.lines.get(key or ""))

    def invalid(self, key: str, error: ValidationError) -> ConfigError:
        return self.error(key, f"{error.message} (rule: {error.rule})")


def dotted(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def describe(value: Any) -> str:
    """A short picture of a bad value for a message: `'two' (text)`."""
    kind = {bool: "true/false", int: "a number", float: "a number", str: "text",
            list: "a list", dict: "a mapping", type(None): "nothing"}.get(type(value), "a value")
    shown = repr(value)
    return f"{shown[:60]}… ({kind})" if len(shown) > 60 else f"{shown} ({kind})"


def mapping(src: Source, value: Any, key: str) -> dict[str, Any]:
    """A mapping whose keys are all text (YAML also allows numbers, lists, dates as keys)."""
    if not isinstance(value, dict):
        what = "the file" if not key else "this key"
        raise src.error(key, f"{what} must hold a mapping of keys, got {describe(value)}")
    for name in value:
        if not isinstance(name, str):
            raise src.error(key, f"keys must be text, got {describe(name)}")
    return value


def check_keys(src: Source, data: Mapping[str, Any], prefix: str, known: Collection[str],
               cloud_only: Collection[str], not_applied: dict[str, Any], what: str) -> None:
    """Unknown keys are fatal (with a suggestion); cloud-only keys are kept as not applied."""
    for name, value in data.items():
        if name in cloud_only:
            not_applied[dotted(prefix, name)] = plain(src, value, dotted(prefix, name))
        elif name not in known:
            close = difflib.get_close_matches(name, [*known, *cloud_only], n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else (
                f"; known keys: {', '.join(sorted(known))}")
            raise src.error(dotted(prefix, name), f"unknown key in {what}{hint}")


def text(src: Source, data: Mapping[str, Any], key: str, prefix: str = "",
         default: str | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise src.error(dotted(prefix, key), f"expected text, got {describe(value)}")
    return value


def required_text(src: Source, data: Mapping[str, Any], key: str, prefix: str = "") -> str:
    value = text(src, data, key, prefix)
    if value is None or not value.strip():
        raise src.error(dotted(prefix, key), "is required and missing or empty")
    return value


def integer(src: Source, data: Mapping[str, Any], key: str, prefix: str, default: int,
            lowest: int, highest: int | None = None) -> int:
    value = data.get(key)
    where = dotted(prefix, key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise src.error(where, f"expected a whole number, got {describe(value)}")
    if value < lowest or (highest is not None and value > highest):
        bound = f"from {lowest} to {highest}" if highest is not None else f"of at least {lowest}"
        raise src.error(where, f"must be a whole number {bound}, got {value}")
    return value


def text_map(src: Source, data: Mapping[str, Any], key: str) -> dict[str, str]:
    """tags / environment_variables: scalar values become text, as the Azure CLI sends them."""
    value = data.get(key)
    if value is None:
        return {}
    result: dict[str, str] = {}
    for name, item in mapping(src, value, key).items():
        if isinstance(item, bool):
            result[name] = "true" if item else "false"
        elif item is None:
            result[name] = ""
        elif isinstance(item, (str, int, float)):
            result[name] = str(item)
        else:
            raise src.error(dotted(key, name), f"expected text or a number, got {describe(item)}")
    return result


def percent_map(src: Source, data: Mapping[str, Any], key: str) -> dict[str, int]:
    value = data.get(key)
    if value is None:
        return {}
    result: dict[str, int] = {}
    for name in mapping(src, value, key):
        result[name] = integer(src, value, name, key, 0, 0, 100)
    return result


def local_path(src: Source, raw: str, key: str, kind: str) -> str:
    """An absolute, normalised path (symlinks kept, so folder names stay as written)."""
    if raw.startswith(("azureml:", "http://", "https://", "wasbs://", "abfss://")):
        raise src.error(key, f"remote and registered assets are not supported yet ({raw!r}); "
                             "give a local path")
    resolved = os.path.abspath(os.path.join(src.base_dir, os.path.expanduser(raw)))
    exists = {"file": os.path.isfile, "folder": os.path.isdir, "any": os.path.exists}[kind]
    if not exists(resolved):
        noun = "file or folder" if kind == "any" else kind
        raise src.error(key, f"{noun} {raw!r} does not exist (looked for {resolved})")
    return resolved


def plain(src: Source, value: Any, key: str, depth: int = 0) -> Any:
    """A JSON-safe copy of a kept value: dates become text; recursive anchors are refused."""
    if depth > MAX_DEPTH:
        raise src.error(key, "is nested too deeply (a recursive YAML anchor?)")
    if isinstance(value, dict):
        return {str(k): plain(src, v, key, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(src, item, key, depth + 1) for item in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
