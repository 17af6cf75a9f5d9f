"""The MLflow server serves on an inherited, listening Unix socket (`--fd N`), as managed
instances get one since issue 10."""

from __future__ import annotations

import json
from pathlib import Path

from tests.scoring_servers.mlflow.conftest import server_args
from tests.scoring_servers.mlflow.models import COLUMNS, save_sklearn_model
from tests.support import unix_http
from tests.support.processes import ProcessGroup

ONE_ROW = json.dumps({"input_data": {"columns": COLUMNS, "data": [[1.0, 2.0, 3.0]]}}).encode()


def test_serves_on_an_inherited_unix_socket(processes: ProcessGroup, tmp_path: Path) -> None:
    model = save_sklearn_model(tmp_path / "model")
    url = unix_http.serve_on_unix_socket(processes, tmp_path / "s.sock", server_args(model))
    assert f"listening on {url}" in processes.started[-1].log()
    status, body = unix_http.request(url, "POST", "/score", ONE_ROW)
    assert status == 200, body
