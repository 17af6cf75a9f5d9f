"""How the CLI prints answers: `--query` (JMESPath) then `-o json|yaml|tsv|table`, as `az` does.

`tsv` prints scalars bare (so `--query scoring_uri -o tsv` gives a URL a shell can use) and
one line per list item; like `az`, it leaves nested objects out of a row. `table` shows the
scalar fields of each item under a header.
"""

from __future__ import annotations

import json
from typing import Any

import jmespath
import jmespath.exceptions
import yaml

from control_plane.errors import ScoregateError

FORMATS = ("json", "yaml", "tsv", "table")


def query(data: Any, expression: str | None) -> Any:
    if not expression:
        return data
    try:
        return jmespath.search(expression, data)
    except jmespath.exceptions.JMESPathError as error:
        raise ScoregateError(f"--query {expression!r} is not valid JMESPath: {error}") from None


def render(data: Any, output: str) -> str:
    """The text to print (without the final newline)."""
    if output == "json":
        return json.dumps(data, indent=2, ensure_ascii=False)
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
    if output == "tsv":
        return "\n".join("\t".join(_scalar(value) for value in _row_values(row))
                         for row in _rows(data))
    if output == "table":
        return _table(_rows(data))
    raise ScoregateError(f"unknown output format {output!r} (use {', '.join(FORMATS)})")


def _rows(data: Any) -> list[Any]:
    return list(data) if isinstance(data, list) else [] if data is None else [data]


def _row_values(row: Any) -> list[Any]:
    if isinstance(row, dict):
        return [value for value in row.values() if not isinstance(value, (dict, list))]
    return [row]


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _table(rows: list[Any]) -> str:
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        if isinstance(row, dict):
            columns += [key for key, value in row.items()
                        if key not in columns and not isinstance(value, (dict, list))]
    if not columns:
        columns = ["Result"]
        rows = [{"Result": row} for row in rows]
    cells = [[_scalar(row.get(column)) if isinstance(row, dict) else "" for column in columns]
             for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells))
              for i, column in enumerate(columns)]
    lines = [columns, ["-" * width for width in widths], *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        for line in lines)
