"""Servers for the MLflow tests: one per model for the whole session, shared by test_formats,
test_errors and test_swagger (a start costs a model save plus ~2 s of MLflow import, ~10 s on a
busy machine; the tests only score, so they cannot disturb each other).

`mlflow.pyfunc` is imported here first with its import-time UserWarning silenced (an
`Any` type hint inside MLflow itself); pytest turns warnings into errors.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    import mlflow.pyfunc  # noqa: F401

from collections.abc import Callable, Iterator, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.scoring_servers.mlflow import models  # noqa: E402
from tests.scoring_servers.server_helpers import ScoringServer, wait_ready  # noqa: E402
from tests.support.processes import ProcessGroup  # noqa: E402


def server_args(model_dir: Path | None = None) -> list[str]:
    args = ["-m", "scoring_servers.mlflow"]
    return args + ["--model_dir", str(model_dir)] if model_dir is not None else args


def start_mlflow_server(group: ProcessGroup, model_dir: Path | None,
                        env: Mapping[str, str] | None = None) -> ScoringServer:
    """`--port 0`; returns once `GET /` answered (fails with the log if the process exits)."""
    started = group.python(*server_args(model_dir), "--port", "0", env=env, name="mlflow")
    return ScoringServer(started, wait_ready(started))


def _served(factory: Callable[[Path], Path], name: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScoringServer, Path]]:
    root = tmp_path_factory.mktemp(name)
    model_dir = factory(root / "model")
    with ProcessGroup(root / "logs") as group:
        yield start_mlflow_server(group, model_dir), model_dir


@pytest.fixture(scope="session")
def sklearn_server(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScoringServer, Path]]:
    yield from _served(models.save_sklearn_model, "sklearn", tmp_path_factory)


@pytest.fixture(scope="session")
def tensor_server(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScoringServer, Path]]:
    yield from _served(models.save_tensor_model, "tensor", tmp_path_factory)


@pytest.fixture(scope="session")
def named_tensor_server(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScoringServer, Path]]:
    yield from _served(models.save_named_tensor_model, "named-tensor", tmp_path_factory)


@pytest.fixture(scope="session")
def frame_server(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ScoringServer, Path]]:
    yield from _served(models.save_frame_model, "frame", tmp_path_factory)
