"""Real builds with uv (small pure-Python packages at pinned versions; the session's uv cache
makes the second build of a package a copy)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from control_plane.environments.builder import Builder, BuildFailed, BuiltEnvironment
from control_plane.environments.interpreters import Interpreter
from control_plane.environments.progress import Progress
from tests.control_plane.environments.conftest import interpreter_of
from tests.support.processes import ProcessGroup, Started, free_port, http_ok, wait_until

SIX = "six==1.16.0"
WORKER = "tests.control_plane.environments.build_worker"


def inside(env: BuiltEnvironment, code: str) -> str:
    """Runs code with the environment's interpreter alone: isolated mode ignores PYTHONPATH and
    the user's site-packages, and the working folder is the environment's."""
    done = subprocess.run([str(env.python), "-I", "-c", code], capture_output=True, text=True,
                          cwd=env.path, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_builds_once_then_finds_it(builder: Builder, gateway_python: Interpreter) -> None:
    seen: list[Progress] = []
    env = builder.build(gateway_python, [SIX], seen.append)
    assert env.built_now and env.path == builder.root / env.key
    assert inside(env, "import six; print(six.__version__)") == "1.16.0"
    assert inside(env, "import scoring_servers.azureml, uvicorn; print(scoring_servers."
                       "azureml.__file__)").startswith(str(env.path))
    assert inside(env, "import sys; print(sys.version_info[:3])") == str(gateway_python.version)
    phases = [p.phase for p in seen]
    assert phases[0] == "creating" and phases[-1] == "ready"
    assert {"resolving", "downloading", "installing", "compiling", "checking"} <= set(phases)
    assert seen[-1].packages == len(env.ready["packages"])
    assert SIX in env.ready["packages"] and env.ready["size_bytes"] > 0
    assert env.ready["python"] == gateway_python.version_text
    assert "Installed" in builder.log_path(env.key).read_text()
    assert not list(builder.root.glob(".build-*"))

    again = builder.build(gateway_python, [SIX])
    assert (again.key, again.path, again.built_now) == (env.key, env.path, False)


def test_a_different_pin_is_a_different_environment(builder: Builder,
                                                    gateway_python: Interpreter) -> None:
    old = builder.build(gateway_python, [SIX])
    new = builder.build(gateway_python, ["six==1.17.0"])
    assert old.key != new.key
    assert inside(old, "import six; print(six.__version__)") == "1.16.0"
    assert inside(new, "import six; print(six.__version__)") == "1.17.0"


def test_two_threads_one_build(builder: Builder, gateway_python: Interpreter) -> None:
    results: list[BuiltEnvironment] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def build() -> None:
        start.wait()
        try:
            results.append(builder.build(gateway_python, ["idna==3.6"]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert sorted(r.built_now for r in results) == [False, True]
    assert len({r.path for r in results}) == 1
    assert inside(results[0], "import idna; print(idna.__version__)") == "3.6"


def finished(worker: Started) -> dict[str, object]:
    assert worker.proc.wait(120) == 0, worker.log()
    return dict(json.loads(worker.log().strip().splitlines()[-1]))


def test_two_processes_one_build(processes: ProcessGroup, builder: Builder,
                                 gateway_python: Interpreter) -> None:
    args = ["-m", WORKER, str(builder.root), str(builder.cache_dir), str(gateway_python.path),
            "idna==3.6"]
    workers = [processes.python(*args, name=f"worker{n}") for n in range(2)]
    results = [finished(w) for w in workers]
    assert sorted(bool(r["built_now"]) for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    assert builder.find(str(results[0]["key"])) is not None


def test_unsatisfiable_pin_fails_with_uvs_message_and_leaves_nothing_ready(
        builder: Builder, gateway_python: Interpreter) -> None:
    with pytest.raises(BuildFailed) as caught:
        builder.build(gateway_python, ["six==99.0"])
    message = str(caught.value)
    assert "six==99.0" in message and "unsatisfiable" in message
    assert f"Python {gateway_python.version_text}" in message
    assert "Traceback" not in message
    key = builder.key_for(gateway_python, ["six==99.0"])
    assert caught.value.key == key and caught.value.log == builder.log_path(key)
    assert builder.find(key) is None
    assert not (builder.root / key).exists() and not list(builder.root.glob(".build-*"))
    assert "six==99.0" in builder.log_path(key).read_text()


def test_a_python_too_old_for_the_pin_is_named(builder: Builder,
                                               installed: tuple[Interpreter, ...]) -> None:
    python38 = interpreter_of(installed, (3, 8))
    with pytest.raises(BuildFailed, match=r"(?s)Python 3\.8\.\d+ .*Python>=3\.10"):
        builder.build(python38, ["scikit-learn==1.7.0"])


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_kill_9_mid_build_then_the_next_build_starts_cleanly(
        processes: ProcessGroup, builder: Builder, gateway_python: Interpreter) -> None:
    # An index that accepts connections and never answers holds uv in its resolution.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        index = f"http://127.0.0.1:{silent.getsockname()[1]}/simple"
        worker = processes.python("-m", WORKER, str(builder.root), str(builder.cache_dir),
                                  str(gateway_python.path), "idna==3.7",
                                  env={"UV_INDEX_URL": index, "UV_HTTP_TIMEOUT": "600"})
        key = builder.key_for(gateway_python, ["idna==3.7"])
        wait_until(lambda: "pip install" in _text(builder.log_path(key)) and
                   bool(children(worker.proc.pid)), timeout=60, what="uv pip install running")
        uv = children(worker.proc.pid)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(30)
        wait_until(lambda: all(gone(pid) for pid in uv), timeout=30, what="uv gone with it")
    assert (builder.root / f".build-{key}").is_dir()  # what the crash left
    assert builder.find(key) is None

    env = builder.build(gateway_python, ["idna==3.7"])
    assert env.built_now
    assert inside(env, "import idna; print(idna.__version__)") == "3.7"
    assert not list(builder.root.glob(".build-*"))


def test_recover_removes_dead_builds_only(builder: Builder) -> None:
    builder.root.mkdir(parents=True)
    dead = builder.root / ".build-deadbeef"
    (dead / "bin").mkdir(parents=True)
    assert builder.recover() == [dead]
    assert not dead.exists()


SCORE = """
import json, sys
import six


def init():
    pass


def run(raw_data):
    return {"python": list(sys.version_info[:2]), "six": six.__version__}
"""


def test_python_38_environment_serves_with_the_scoring_server(
        processes: ProcessGroup, tmp_path: Path, builder: Builder,
        installed: tuple[Interpreter, ...]) -> None:
    env = builder.build(interpreter_of(installed, (3, 8)), [SIX])
    assert inside(env, "import sys; print(sys.version_info[:2])") == "(3, 8)"
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SCORE)
    port = free_port()
    server = processes.start([str(env.python), "-I", "-m", "scoring_servers.azureml", "--code",
                              str(code), "--entry", "score.py", "--port", str(port)],
                             cwd=env.path, name="server38")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(url + "/") or server.proc.poll() is not None, timeout=60,
               what="the scoring server on Python 3.8")
    assert server.proc.poll() is None, server.log()
    request = urllib.request.Request(url + "/score", b'{"data": [1]}',
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"python": [3, 8], "six": "1.16.0"}
    # the MLflow server's modules that need no mlflow import and parse settings on 3.8 too
    # (an MLflow model's environment may ask for it: azureml-examples' heart classifier)
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    argv, environ = ["--model_dir", str(tmp_path), "--port", "0"], {"AZUREML_LOG_LEVEL": "debug"}
    level = inside(env, "import logging, scoring_servers.mlflow.runner;"
                        "from scoring_servers.mlflow.settings import parse_settings as p;"
                        f"s = p({argv!r}, {environ!r});"
                        "print(logging.getLevelName(s.log_level))")
    assert level == "DEBUG"


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
