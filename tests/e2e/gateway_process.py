"""Start `scoregate serve` as a real process and talk to it the way a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import REPO_ROOT, ProcessGroup, Started, http_ok, wait_until

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"


@dataclass
class RunningGateway:
    started: Started
    home: Path

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.home / "server.json").read_text())

    @property
    def scoring_url(self) -> str:
        return str(self.info["scoring_url"])

    @property
    def admin_url(self) -> str:
        return str(self.info["admin_url"])

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SCOREGATE_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env.pop("SCOREGATE_URL", None)
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "control_plane", *args], env=self.env(),
                                capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"scoregate {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "-o", "json").stdout)

    def key(self, endpoint: str) -> str:
        return str(self.cli_json("online-endpoint", "get-credentials", "-n", endpoint)["primaryKey"])

    def score(self, endpoint: str, body: bytes, key: str, deployment: str | None = None,
              client: httpx.Client | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if deployment:
            headers["azureml-model-deployment"] = deployment
        url = f"{self.scoring_url}/endpoints/{endpoint}/score"
        if client is not None:
            return client.post(url, content=body, headers=headers)
        return httpx.post(url, content=body, headers=headers, timeout=30)


def start_gateway(processes: ProcessGroup, home: Path, *sources: str, ready: str | None = None,
                  extra: tuple[str, ...] = ()) -> RunningGateway:
    """Start `scoregate serve`, wait until it wrote server.json and (optionally) `ready` answers."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"SCOREGATE_HOME": str(home)}
    started = processes.python("-m", "control_plane", "serve", *sources, "--port", "0",
                               "--admin-port", "0", "--log-format", "json", *extra,
                               env=env, name="gateway")
    gateway = RunningGateway(started, home)

    def up() -> bool:
        if started.proc.poll() is not None:
            raise AssertionError(f"serve exited with {started.proc.returncode}:\n{started.log()}")
        try:
            info = gateway.info
        except (OSError, ValueError):
            return False
        return info.get("pid") == started.proc.pid and http_ok(f"{info['scoring_url']}/healthz")

    wait_until(up, timeout=90, what="scoregate serve to start")
    return gateway


def ensure_example_models() -> None:
    subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True, cwd=REPO_ROOT,
                   capture_output=True, timeout=300)
