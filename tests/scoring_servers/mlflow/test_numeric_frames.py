"""The fast split-frame path builds exactly the frame MLflow's parser builds, or declines."""

from __future__ import annotations

from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.types import ColSpec, Schema
from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

from scoring_servers.mlflow.numeric_frames import double_columns, numeric_split_frame

COLUMNS = ["age", "bmi", "bp"]
SCHEMA = Schema([ColSpec("double", name) for name in COLUMNS])

numbers = st.one_of(st.integers(-(2**63), 2**64 - 1),
                    st.floats(allow_nan=False, allow_infinity=False))
rows = st.lists(st.lists(numbers, min_size=3, max_size=3), min_size=1, max_size=6)


def mlflows_frame(value: dict[str, Any]) -> pd.DataFrame:
    return dataframe_from_parsed_json(value, "split", SCHEMA)  # type: ignore[no-untyped-call]


@given(rows, st.booleans())
def test_same_frame_as_mlflows_parser(data: list[list[float]], with_index: bool) -> None:
    value: dict[str, Any] = {"columns": COLUMNS, "data": data}
    if with_index:
        value["index"] = list(range(10, 10 + len(data)))
    frame = numeric_split_frame(value, COLUMNS)
    assert frame is not None
    pd.testing.assert_frame_equal(frame, mlflows_frame(value), check_exact=True)


@pytest.mark.parametrize("value", [
    {"columns": COLUMNS, "data": [[1.0, "2", 3.0]]},
    {"columns": COLUMNS, "data": [[True, False, True]]},
    {"columns": COLUMNS, "data": [[1.0, None, 3.0]]},
    {"columns": COLUMNS, "data": [[1.0, 2.0], [1.0, 2.0, 3.0]]},
    {"columns": COLUMNS, "data": [[1.0, 2.0]]},
    {"columns": COLUMNS, "data": [[[1.0], 2.0, 3.0]]},
    {"columns": COLUMNS, "data": [[2**64, 2.0, 3.0]]},
    {"columns": ["bmi", "age", "bp"], "data": [[1.0, 2.0, 3.0]]},
    {"columns": COLUMNS, "data": []},
    {"columns": COLUMNS, "data": [[1.0, 2.0, 3.0]], "index": ["a"]},
    {"columns": COLUMNS, "data": [[1.0, 2.0, 3.0]], "extra": 1},
    [[1.0, 2.0, 3.0]],
], ids=["string", "booleans", "null", "ragged", "short-row", "nested", "huge-int",
        "other-order", "no-rows", "text-index", "extra-key", "not-split"])
def test_anything_unusual_takes_mlflows_parser(value: Any) -> None:
    assert numeric_split_frame(value, COLUMNS) is None


def test_only_all_double_named_signatures_qualify() -> None:
    assert double_columns(SCHEMA) == COLUMNS
    assert double_columns(None) is None
    assert double_columns(Schema([ColSpec("double", "a"), ColSpec("long", "b")])) is None
    assert double_columns(Schema([ColSpec("double")])) is None
