"""The two servers under test, each started as its own process group on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from this folder
    sys.path.append(str(REPO_ROOT))

from control_plane.instances.launch import signal_group  # noqa: E402

VENV = HERE / ".venv-azmlinfsrv"
AZMLINFSRV_VERSION = "1.5.1"
# azmlinfsrv always binds 0.0.0.0; this launcher makes it bind loopback, like everything here.
AZMLINFSRV_LAUNCHER = (
    "import sys; import azureml_inference_server_http.constants as c; "
    "c.DEFAULT_HOST = '127.0.0.1'; "
    "from azureml_inference_server_http.amlserver import run; "
    "sys.argv[0] = 'azmlinfsrv'; sys.exit(run())"
)


@dataclass(frozen=True)
class Workload:
    name: str
    code_dir: Path
    entry: str
    body_file: Path
    model_dir: Path | None = None


CommandBuilder = Callable[[Workload, int], list[str]]


@dataclass(frozen=True)
class Target:
    name: str
    command: CommandBuilder
    env: Mapping[str, str]


def scoregate_command(workload: Workload, port: int) -> list[str]:
    return [sys.executable, "-m", "scoring_servers.azureml", "--code", str(workload.code_dir),
            "--entry", workload.entry, "--host", "127.0.0.1", "--port", str(port)]


def azmlinfsrv_command(workload: Workload, port: int) -> list[str]:
    return [str(VENV / "bin" / "python"), "-c", AZMLINFSRV_LAUNCHER,
            "--entry_script", str(workload.code_dir / workload.entry),
            "--port", str(port), "--worker_count", "1"]


SCOREGATE = Target("scoregate", scoregate_command, {"PYTHONPATH": str(REPO_ROOT)})
AZMLINFSRV = Target("azmlinfsrv", azmlinfsrv_command, {})


def ensure_azmlinfsrv_venv() -> None:
    """Its own virtualenv, so Flask/gunicorn pins never touch ours; the model stack is pinned to
    our versions, because scikit-learn pickles only load in the version that wrote them."""
    if (VENV / "bin" / "azmlinfsrv").exists():
        return
    import joblib
    import numpy
    import sklearn

    print(f"creating {VENV} (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet",
                    f"azureml-inference-server-http=={AZMLINFSRV_VERSION}",
                    f"scikit-learn=={sklearn.__version__}", f"numpy=={numpy.__version__}",
                    f"joblib=={joblib.__version__}"], check=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunningServer:
    """A server process group; leaving the `with` stops it and every child, even on errors."""

    def __init__(self, target: Target, workload: Workload, log_dir: Path) -> None:
        self.name = target.name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{target.name}-{workload.name}.log"
        self._argv = target.command(workload, self.port)
        self._env = {**_server_env(workload), **target.env}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def __enter__(self) -> RunningServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self._argv, env=self._env, cwd=REPO_ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout_s=120.0)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); "
                                   f"see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s; see {self.log_path}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        signal_group(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def _server_env(workload: Workload) -> Mapping[str, str]:
    env = dict(os.environ)
    env.update({"WORKER_COUNT": "1", "PYTHONUNBUFFERED": "1"})
    if workload.model_dir is not None:
        env["AZUREML_MODEL_DIR"] = str(workload.model_dir)
    return env
