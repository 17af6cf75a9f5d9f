"""The bundled example: each deployment's score.py answers exactly what its model predicts."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import joblib

from tests.scoring_servers.server_helpers import ScoringServer, start_server
from tests.support.gateway import trained_example
from tests.support.processes import REPO_ROOT, ProcessGroup, wait_until

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"


def _train_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("blue_green_train", EXAMPLE / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start_version(processes: ProcessGroup, tmp_path: Path, example: Path,
                   version: str) -> ScoringServer:
    """AZUREML_MODEL_DIR as the supervisor lays it out: an entry named `model` → model folder."""
    model_dir = tmp_path / version
    model_dir.mkdir()
    (model_dir / "model").symlink_to(example / version / "model", target_is_directory=True)
    return start_server(processes, example / version / "onlinescoring",
                        {"AZUREML_MODEL_DIR": str(model_dir)})


def test_blue_and_green_predict_what_their_models_predict(
        processes: ProcessGroup, tmp_path: Path) -> None:
    train = _train_module()
    example = trained_example(tmp_path / "example")  # never trains into the checkout
    request = (example / "sample-request.json").read_text()
    rows = json.loads(request)["data"]
    answers = {}
    for version in ("model-1", "model-2"):
        server = _start_version(processes, tmp_path, example, version)
        reply = server.score(request)
        assert reply.status == 200, reply.body
        expected = joblib.load(train.model_path(example, version)).predict(rows).tolist()
        assert reply.json() == expected
        answers[version] = reply.json()
        marker = f"model {version[-1]}: request received"
        wait_until(lambda marker=marker, server=server: marker in server.started.log(), 10,
                   what="the script's log line")
    assert len(answers["model-1"]) == len(rows) == 2
    assert answers["model-1"] != answers["model-2"]


def test_ensure_models_trains_only_what_is_missing(tmp_path: Path) -> None:
    train = _train_module()
    train.ensure_models(tmp_path)
    blue, green = (train.model_path(tmp_path, version) for version in ("model-1", "model-2"))
    blue_written = blue.stat().st_mtime_ns
    green.unlink()
    train.ensure_models(tmp_path)
    assert blue.stat().st_mtime_ns == blue_written
    assert green.is_file()
    rows = [[0.01 * i for i in range(10)]]
    again = joblib.load(green).predict(rows).tolist()
    train.train(tmp_path, "model-2")
    assert joblib.load(green).predict(rows).tolist() == again  # deterministic
