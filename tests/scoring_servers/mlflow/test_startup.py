"""Start and stop: where the model is found, --fd mode, exit codes, a missing flavour package."""

from __future__ import annotations

import json
import shutil
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.scoring_servers.mlflow.conftest import server_args, start_mlflow_server
from tests.scoring_servers.mlflow.models import COLUMNS, fake_flavour_model, save_sklearn_model
from tests.scoring_servers.server_helpers import ScoringServer
from tests.support.processes import ProcessGroup, http_ok, wait_until

ONE_ROW = json.dumps({"input_data": {"columns": COLUMNS, "data": [[1.0, 2.0, 3.0]]}})


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sklearn_model(tmp_path_factory.mktemp("saved") / "model")


def test_missing_flavour_package_fails_start_naming_it(processes: ProcessGroup,
                                                       tmp_path: Path) -> None:
    model_dir = fake_flavour_model(tmp_path / "model", "scoregate_absent_flavour.loader",
                                   "scoregate-absent-flavour==1.2.3")
    started = processes.python(*server_args(model_dir), "--port", "0")
    assert started.proc.wait(60) == 3
    log = started.log()
    last = log.strip().splitlines()[-1]
    assert last.startswith("scoring server: cannot load the MLflow model in ")
    assert "'scoregate-absent-flavour==1.2.3' (module 'scoregate_absent_flavour')" in last
    assert f"pip install -r {model_dir / 'requirements.txt'}" in last
    assert "Traceback" not in log
    assert "listening on" not in log


def test_missing_flavour_without_requirements_names_the_module(processes: ProcessGroup,
                                                               tmp_path: Path) -> None:
    model_dir = fake_flavour_model(tmp_path / "model", "scoregate_absent_flavour", None)
    started = processes.python(*server_args(model_dir), "--port", "0")
    assert started.proc.wait(60) == 3
    last = started.log().strip().splitlines()[-1]
    assert "needs the Python module 'scoregate_absent_flavour'" in last
    assert "the model lists no requirements" in last


def test_a_broken_model_file_exits_3_with_the_cause(processes: ProcessGroup, saved_model: Path,
                                                    tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(saved_model, broken)
    (broken / "model.pkl").write_bytes(b"not a pickle")
    started = processes.python(*server_args(broken), "--port", "0")
    assert started.proc.wait(60) == 3
    last = started.log().strip().splitlines()[-1]
    assert "scoring server: cannot load the MLflow model in" in last


@pytest.mark.parametrize(("args", "env", "message"), [
    ([], {}, "no model: pass --model_dir DIR or set AZUREML_MODEL_DIR"),
    (["--model_dir", "/nonexistent/model"], {}, "no such folder"),
    (["--model_dir", "."], {}, "has no MLmodel file"),
    (["--model_dir", "."], {"WORKER_COUNT": "two"}, "WORKER_COUNT must be a whole number"),
])
def test_bad_settings_exit_2(processes: ProcessGroup, tmp_path: Path, args: list[str],
                             env: dict[str, str], message: str) -> None:
    started = processes.python("-m", "scoring_servers.mlflow", *args, "--port", "0", env=env,
                               cwd=tmp_path)
    assert started.proc.wait(60) == 2
    assert message in started.log()


def test_model_found_from_azureml_model_dir(processes: ProcessGroup, saved_model: Path,
                                            tmp_path: Path) -> None:
    """Laid out as the control plane lays AZUREML_MODEL_DIR out: one link named like the model
    folder; then with MLFLOW_MODEL_FOLDER naming it, as Azure's no-code deployment sets it."""
    base = tmp_path / "azureml-models"
    base.mkdir()
    (base / "model").symlink_to(saved_model, target_is_directory=True)
    alone = start_mlflow_server(processes, None, env={"AZUREML_MODEL_DIR": str(base)})
    named = start_mlflow_server(processes, None, env={"AZUREML_MODEL_DIR": str(base),
                                                      "MLFLOW_MODEL_FOLDER": "model"})
    for server in (alone, named):
        assert server.score(ONE_ROW).status == 200


def test_fd_mode_and_a_clean_stop(processes: ProcessGroup, saved_model: Path) -> None:
    """As the supervisor starts instances: it binds, passes the fd, probes GET /."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        started = processes.python(*server_args(saved_model), "--fd", str(sock.fileno()),
                                   pass_fds=[sock.fileno()], name="fd")
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        wait_until(lambda: http_ok(url + "/") or started.proc.poll() is not None, 60,
                   what="GET / on the passed socket")
        assert started.proc.poll() is None, started.log()
        server = ScoringServer(started, url)
        assert server.score(ONE_ROW).status == 200
        assert server.request("GET", "/").body == b"Healthy"
        log = started.log()
        assert log.index("model loaded") < log.index("listening on")
        assert processes.stop(started, signal.SIGTERM) == 0


def test_several_predict_threads_answer_concurrent_requests(processes: ProcessGroup,
                                                            saved_model: Path) -> None:
    server = start_mlflow_server(processes, saved_model, env={"WORKER_COUNT": "3"})
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda _: server.score(ONE_ROW), range(24)))
    assert {reply.status for reply in replies} == {200}
    assert len({reply.body for reply in replies}) == 1
    assert "3 worker thread(s) for predict" in server.started.log()
