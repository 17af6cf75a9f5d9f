"""`scoregate serve` as a benchmark's child: started on a folder of YAML with its state in a
home folder of its own, waited for until it answers, and driven through the CLI as a user
would drive it.

`ServeHome` (a running `serve` seen through its home folder: server.json, the CLI, scoring)
is also the base of the tests' `RunningGateway` (tests/support/gateway.py): benchmarks import
nothing from tests/, so the one copy lives here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common.children import Child, Children, http_get, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


class CliFailed(AssertionError):
    """A `scoregate` command that should have succeeded did not (an AssertionError, so a test
    reports it as a failed check)."""


@dataclass(frozen=True)
class ServeHome:
    """A `scoregate serve` found through its state folder `home`."""

    home: Path

    @property
    def info(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "server.json").read_text()))

    @property
    def scoring_url(self) -> str:
        return str(self.info["scoring_url"])

    @property
    def admin_url(self) -> str:
        return str(self.info["admin_url"])

    def answers(self, pid: int) -> bool:
        """Whether the serve with this pid wrote server.json and its scoring listener answers."""
        try:
            info = self.info
        except (OSError, ValueError):
            return False
        if info.get("pid") != pid:
            return False
        answer = http_get(f"{info['scoring_url']}/healthz", timeout_s=1.0)
        return answer is not None and 200 <= answer[0] < 300

    def env(self) -> dict[str, str]:
        env = dict(os.environ, SCOREGATE_HOME=str(self.home), PYTHONPATH=str(REPO_ROOT),
                   PYTHONUNBUFFERED="1")
        env.pop("SCOREGATE_URL", None)
        return env

    def cli(self, *args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "control_plane", *args], env=self.env(),
                                capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
        if check and result.returncode != 0:
            raise CliFailed(f"scoregate {' '.join(args)} failed ({result.returncode}):\n"
                            f"{result.stdout}\n{result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def key(self, endpoint: str) -> str:
        """The endpoint's primary key, from `get-credentials` as a user gets it."""
        credentials = self.cli_json("online-endpoint", "get-credentials", "-n", endpoint)
        return str(credentials["primaryKey"])

    def score(self, endpoint: str, body: bytes, key: str, deployment: str | None = None,
              client: httpx.Client | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if deployment:
            headers["azureml-model-deployment"] = deployment
        url = f"{self.scoring_url}/endpoints/{endpoint}/score"
        if client is not None:
            return client.post(url, content=body, headers=headers)
        return httpx.post(url, content=body, headers=headers, timeout=30)


@dataclass(frozen=True)
class Serve(ServeHome):
    child: Child


def start_serve(children: Children, home: Path, *sources: str, flags: tuple[str, ...] = (),
                name: str = "scoregate") -> Serve:
    """Start `scoregate serve`; return once it wrote server.json and its listener answers."""
    home.mkdir(parents=True, exist_ok=True)
    child = children.start([sys.executable, "-m", "control_plane", "serve", *sources,
                            "--port", "0", "--admin-port", "0", "--home", str(home),
                            "--log-format", "json", *flags],
                           name=name, env={"SCOREGATE_HOME": str(home),
                                           "PYTHONPATH": str(REPO_ROOT),
                                           "PYTHONUNBUFFERED": "1",
                                           # one process (comparable with earlier figures)
                                           # unless `flags` asks for --workers
                                           "SCOREGATE_WORKERS": "1"}, cwd=REPO_ROOT)
    serve = Serve(home, child)

    def up() -> bool:
        child.check_alive()
        return serve.answers(child.pid)

    wait_until(up, 90, f"{name} (scoregate serve) to start")
    return serve
