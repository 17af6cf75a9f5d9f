"""Hypothesis strategies from an OpenAPI 3 document: schemathesis's idea, small enough to read.

`operations(document)` lists (method, path template, body schema, query parameters);
`from_schema` draws values that mostly follow a schema (so requests get past the first check)
and sometimes break it (wrong types, extra keys, out-of-range numbers, strings with controls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

FINITE = st.floats(allow_nan=False, allow_infinity=False)  # JSON has no infinity to send
JSON = st.recursive(st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
NASTY_TEXT = st.sampled_from(["", "..", "../../etc/passwd", "a\x00b", "\u202e", "x" * 5000,
                              "%2e%2e%2f", "/etc/passwd", "NaN", "-1", "1e309"]) | st.text()


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body: dict[str, Any] | None
    query: tuple[dict[str, Any], ...]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = operation.get("requestBody", {}).get("content", {}).get(
                "application/json", {}).get("schema")
            query = tuple(p for p in (resolve(document, p) for p in operation.get("parameters", []))
                          if p.get("in") == "query")
            found.append(Operation(method.upper(), path,
                                   resolve(document, body) if body else None, query))
    return found


def from_schema(document: dict[str, Any], schema: dict[str, Any], depth: int = 0
                ) -> st.SearchStrategy[Any]:
    """Mostly valid values of `schema`, one in five anything at all."""
    schema = resolve(document, schema)
    valid = _valid(document, schema, depth)
    return st.one_of(valid, valid, valid, valid, JSON if depth else st.just({}) | JSON)


def _valid(document: dict[str, Any], schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(low - 1 if low is not None else None,
                           high + 1 if high is not None else None)
    if kind == "number":
        return FINITE
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True) | NASTY_TEXT
        return NASTY_TEXT
    if kind == "array":
        return st.lists(from_schema(document, schema.get("items", {}), depth + 1), max_size=3)
    if kind == "object" or "properties" in schema:
        properties = {name: from_schema(document, sub, depth + 1)
                      for name, sub in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties")
        values = from_schema(document, extra, depth + 1) if isinstance(extra, dict) else JSON
        keys = st.text(max_size=8)
        if properties:
            keys = st.sampled_from(sorted(properties)) | keys
        return st.fixed_dictionaries({}, optional=properties) | st.dictionaries(
            keys, values, max_size=4)
    return JSON
