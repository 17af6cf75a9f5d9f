"""Labelled rows (a CSV with a label column) and the JSON that carries them to a model.

Pure and shared: `online-endpoint evaluate` scores them from the CLI, and an auto-deploy
policy's accuracy gate scores them inside the server (docs/autodeploy.md), so both read a
CSV, build request bodies and read predictions the same way.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from typing import Any

from control_plane.errors import ScoregateError
from control_plane.specs.metrics import Label, as_label


@dataclass(frozen=True)
class LabelledData:
    columns: tuple[str, ...]  # feature columns, in file order
    rows: tuple[tuple[Any, ...], ...]
    labels: tuple[Label, ...]


def read_csv(path: str, label_column: str, flag: str = "--data") -> LabelledData:
    """Feature cells become floats where they parse (empty ones `null`), others stay text."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            lines = [line for line in csv.reader(file) if line]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        reason = getattr(error, "strerror", None) or error
        raise ScoregateError(f"cannot read {flag} {path}: {reason}") from None
    if not lines:
        raise ScoregateError(f"{flag} {path} is empty: it needs a header line and rows")
    header = [name.strip() for name in lines[0]]
    if label_column not in header:
        raise ScoregateError(f"label column {label_column!r} is not in {path} "
                             f"(its columns: {', '.join(header)})")
    if len(lines) == 1:
        raise ScoregateError(f"{flag} {path} has a header but no rows")
    at = header.index(label_column)
    rows, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(header):
            raise ScoregateError(f"{path}:{number}: {len(line)} values, but the header has "
                                 f"{len(header)} columns")
        if not line[at].strip():
            raise ScoregateError(f"{path}:{number}: no value in label column {label_column!r}")
        labels.append(as_label(line[at]))
        rows.append(tuple(_feature(cell) for i, cell in enumerate(line) if i != at))
    columns = tuple(name for i, name in enumerate(header) if i != at)
    return LabelledData(columns, tuple(rows), tuple(labels))


def _feature(cell: str) -> Any:
    text = cell.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return cell


def request_body(data: LabelledData, start: int, stop: int, fmt: str) -> bytes:
    rows = [list(row) for row in data.rows[start:stop]]
    if fmt == "mlflow":
        return json.dumps({"input_data": {"columns": list(data.columns), "data": rows}}).encode()
    return json.dumps({"data": rows}).encode()


def read_predictions(body: bytes, expected: int, numeric: bool) -> list[Label]:
    """A JSON list (or `{"predictions": [...]}`, or either as a JSON string) of one per row."""
    try:
        answer = json.loads(body)
        if isinstance(answer, str):  # scripts that return json.dumps(...) get quoted twice
            answer = json.loads(answer)
    except ValueError:
        raise ValueError(f"the answer is not JSON: {body[:120]!r}") from None
    if isinstance(answer, dict) and "predictions" in answer:
        answer = answer["predictions"]
    if not isinstance(answer, list) or len(answer) != expected:
        raise ValueError(f"expected a list of {expected} predictions, got {_short(answer)}")
    labels = [as_label(_scalar(item)) for item in answer]
    for label in labels:
        if numeric and isinstance(label, str):
            raise ValueError(f"prediction {label!r} is not a number")
    return labels


def _scalar(item: Any) -> Any:
    if isinstance(item, list) and len(item) == 1:
        item = item[0]
    if isinstance(item, (dict, list)) or item is None:
        raise ValueError(f"a prediction must be one value, got {_short(item)}")
    return item


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."
