"""Native batching for MLflow models: the requests of one batch (scoring_servers/batching.py)
are parsed one by one, those that fit together are stacked into one DataFrame (or one array),
`predict` is called once for them, and each request gets exactly its own rows of the answer.

What fits together (one "stack"): DataFrames with the same columns and dtypes, or arrays with
the same dtype and the same shape after the first axis, with equal `params`; a request may
carry any number of rows (not zero). Everything else — named tensors, a type-hinted model's raw
input, a frame of other columns or types — is predicted alone, so mixed schemas never meet.

Why a failure falls back: one bad request must never fail its neighbours. If the stacked call
raises, or its answer does not have one row per input row, every request of that stack is
predicted alone and gets the answer it would have got without batching. A request that cannot
even be parsed fails alone from the start.

This assumes what batching always assumes: the model scores each row independently of the
others in the call. Each frame keeps its own index (the stacked frame's index is theirs, one
after the other), and answers are encoded per request in the request's own format.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from scoring_servers.mlflow.loading import ServedModel
from scoring_servers.mlflow.numeric_frames import NumericRows
from scoring_servers.mlflow.payload import ScoringRequest
from scoring_servers.mlflow.prediction import encode_predictions, predict

logger = logging.getLogger("scoring_servers.mlflow")

if TYPE_CHECKING:  # annotations only (Python 3.8 cannot subscript these at run time)
    Parse = Callable[[bytes], ScoringRequest]  # raises ClientError; data may be NumericRows
    Answer = bytes | Exception  # the answer body (200), or what scoring this request raised


def score_batch(model: ServedModel, parse: Parse, bodies: Sequence[bytes]) -> list[Answer]:
    """One answer per body, in order."""
    answers: list[Answer | None] = [None] * len(bodies)
    requests: dict[int, ScoringRequest] = {}
    for index, body in enumerate(bodies):
        try:
            requests[index] = parse(body)
        except Exception as exc:  # a ClientError (4xx), or a parser bug: this request's alone
            answers[index] = exc
    for members in _stacks(requests).values():
        if len(members) > 1 and _predict_stacked(model, members, requests, answers):
            continue
        for index in members:
            answers[index] = _predict_alone(model, requests[index])
    return [answer if answer is not None else RuntimeError("not scored") for answer in answers]


def _stacks(requests: dict[int, ScoringRequest]) -> dict[object, list[int]]:
    """Request indexes grouped by what they can be stacked with (a unique key: alone)."""
    stacks: dict[object, list[int]] = {}
    for index, request in requests.items():
        stacks.setdefault(stack_key(request) or ("alone", index), []).append(index)
    return stacks


def stack_key(request: ScoringRequest) -> tuple[Any, ...] | None:
    """What must be equal for two requests to share a `predict` call; None: never shared."""
    try:
        params = None if request.params is None else json.dumps(request.params, sort_keys=True)
    except (TypeError, ValueError):
        return None
    data = request.data
    if isinstance(data, NumericRows):  # the common case, checked without building a frame
        return ("rows", tuple(data.columns), params)
    if isinstance(data, pd.DataFrame) and len(data) > 0 and data.columns.is_unique:
        return ("frame", tuple(data.columns), tuple(map(str, data.dtypes)), params)
    if isinstance(data, np.ndarray) and data.ndim >= 1 and len(data) > 0 \
            and data.dtype != object:
        return ("array", data.shape[1:], data.dtype.str, params)
    return None


def stack(parts: Sequence[Any]) -> Any:
    """One frame (each part's index kept, in order) or one array."""
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, NumericRows):
        index = np.concatenate([part.index if part.index is not None
                                else np.arange(len(part)) for part in parts])
        return pd.DataFrame(np.concatenate([part.values for part in parts]),
                            columns=first.columns, index=index)
    dtypes = set(first.dtypes)
    if len(dtypes) == 1 and getattr(next(iter(dtypes)), "kind", "") in "biuf":
        # one numeric block: join the values, not the frames (~3× cheaper than pd.concat)
        values = np.concatenate([part.to_numpy() for part in parts])
        index = np.concatenate([part.index.to_numpy() for part in parts])
        return pd.DataFrame(values, columns=first.columns, index=index)
    return pd.concat(parts)


def split(predictions: Any, counts: Sequence[int]) -> list[Any] | None:
    """Each request's rows of the stacked answer, or None when it has not one row per row."""
    if not isinstance(predictions, (np.ndarray, pd.DataFrame, pd.Series, list)):
        return None
    if len(predictions) != sum(counts):
        return None
    parts = []
    start = 0
    for count in counts:
        stop = start + count
        part = predictions[start:stop] if isinstance(predictions, (np.ndarray, list)) \
            else predictions.iloc[start:stop]
        parts.append(part)
        start = stop
    return parts


def _predict_stacked(model: ServedModel, members: list[int],
                     requests: dict[int, ScoringRequest], answers: list[Answer | None]) -> bool:
    """Answers for a whole stack from one call; False (nothing set) when it must fall back."""
    datas = [requests[index].data for index in members]
    try:
        predictions = predict(model, stack(datas), requests[members[0]].params)
    except Exception as exc:
        logger.warning("predicting a batch of %d requests failed (%s); predicting each alone",
                       len(members), exc)
        return False
    parts = split(predictions, [len(data) for data in datas])
    if parts is None:
        logger.warning("the model answered a batch of %d requests with %s rows for %d; "
                       "predicting each alone", len(members), _length(predictions),
                       sum(len(data) for data in datas))
        return False
    for index, part in zip(members, parts):
        try:
            answers[index] = encode_predictions(part, requests[index].mlflow_format)
        except Exception as exc:
            answers[index] = exc
    return True


def _predict_alone(model: ServedModel, request: ScoringRequest) -> Answer:
    data = request.data.frame() if isinstance(request.data, NumericRows) else request.data
    try:
        return encode_predictions(predict(model, data, request.params), request.mlflow_format)
    except Exception as exc:  # ClientError: 4xx; anything else: the runner's 500
        return exc


def _length(predictions: Any) -> str:
    try:
        return str(len(predictions))
    except TypeError:
        return f"no rows ({type(predictions).__name__})"

