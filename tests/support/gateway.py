"""Start a gateway, or the fake upstream it forwards to, and wait until it answers: the one way
every test does it.

The gateway comes in two forms. `start_serve` runs `scoregate serve`, the whole product (YAML,
store, managed instances, admin API), as a user would. `start_snapshot` runs the data plane
alone (`ScoringApp`) on a routing snapshot written as JSON (`snapshot_gateway.py`), for tests
of the hot path that need no control plane. `start_upstream` runs the one fake upstream
(`fake_upstream.py`). Every process belongs to the test's `ProcessGroup`, so none outlives it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common.serve import ServeHome
from tests.support.processes import REPO_ROOT, ProcessGroup, Started, free_port, http_ok, wait_until

EXAMPLE = REPO_ROOT / "config" / "examples" / "blue-green"
# A bound on waits that include building a deployment's environment with a cold uv cache (the
# first sklearn or MLflow environment of a session downloads its wheels): only a hang hits it.
PROVISION_TIMEOUT_S = 900.0


def wait_port_file(path: Path, started: Started, what: str) -> int:
    """The port a child wrote to `path` once it listens; fails at once if the child died."""
    def written() -> bool:
        if started.proc.poll() is not None:
            raise AssertionError(f"{what} exited with {started.proc.returncode}:\n"
                                 f"{started.log()}")
        return path.exists() and path.read_text().strip() != ""

    wait_until(written, timeout=30, what=f"{what} port file")
    return int(path.read_text())


def _start_listening(processes: ProcessGroup, tmp: Path, module: str, args: list[str],
                     what: str, health: str) -> tuple[str, Started]:
    """Start `python -m module args --port-file F` and wait until `health` answers 2xx."""
    port_file = tmp / f"{what.replace(' ', '-')}-{len(processes.started)}.port"
    started = processes.python("-m", module, *args, "--port-file", str(port_file),
                               name=what.replace(" ", "-"))
    url = f"http://127.0.0.1:{wait_port_file(port_file, started, what)}"
    wait_until(lambda: http_ok(url + health), timeout=30, what=f"{what} {health}")
    return url, started


# --- the fake upstream -----------------------------------------------------------------------

def start_upstream(processes: ProcessGroup, tmp: Path, name: str = "backend",
                   delay: float = 0.0, status: int = 200, echo: bool = False,
                   record: bool = False) -> str:
    """A fake scoring server (see fake_upstream.py); its base URL."""
    args = ["--name", name, "--delay", str(delay), "--status", str(status)]
    args += ["--echo"] * echo + ["--record"] * record
    url, _ = _start_listening(processes, tmp, "tests.support.fake_upstream", args,
                              f"upstream {name}", "/")
    return url


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


# --- the data plane alone, on a JSON snapshot ------------------------------------------------

@dataclass(frozen=True)
class SnapshotGateway:
    url: str
    started: Started

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.started.log().splitlines()
                if line.startswith("{")]


def start_snapshot(processes: ProcessGroup, tmp: Path, endpoints: list[dict[str, Any]],
                   settings: Mapping[str, Any] | None = None, *flags: str) -> SnapshotGateway:
    """`ScoringApp` on the routes `endpoints` (the JSON format of snapshot_gateway.py)."""
    config = tmp / f"snapshot-{len(processes.started)}.json"
    config.write_text(json.dumps({"version": 1, "settings": dict(settings or {}),
                                  "endpoints": endpoints}))
    url, started = _start_listening(processes, tmp, "tests.support.snapshot_gateway",
                                    [str(config), *flags], "gateway", "/healthz")
    return SnapshotGateway(url, started)


def metrics_text(gateway_url: str) -> str:
    return httpx.get(gateway_url + "/metrics", timeout=10).text


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{(.*)\}})? (\S+)$")
    for line in text.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


# --- scoregate serve -------------------------------------------------------------------------

@dataclass(frozen=True)
class RunningGateway(ServeHome):
    """`scoregate serve` started by a test (its home-folder view, the CLI and scoring are
    `ServeHome`'s)."""

    started: Started

    def cli(self, *args: str, check: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """`scoregate ARGS`; the timeout only bounds a hang: a deployment's create or update
        waits for its provisioning state, which includes a cold environment build."""
        if timeout is None:
            timeout = PROVISION_TIMEOUT_S if args[:1] == ("online-deployment",) and \
                args[1:2] in (("create",), ("update",)) else 120
        return super().cli(*args, check=check, timeout=timeout)


def start_serve(processes: ProcessGroup, home: Path, *sources: str,
                extra: tuple[str, ...] = (), launcher: tuple[str, ...] = ()) -> RunningGateway:
    """Start `scoregate serve` with its state in `home`; wait until it wrote server.json and its
    scoring listener answers. With `sources`, serve writes it once their deployments are
    provisioned, their environments built (see PROVISION_TIMEOUT_S). `launcher` goes before the
    interpreter (e.g. `prlimit ...`)."""
    home.mkdir(parents=True, exist_ok=True)
    started = processes.start([*launcher, sys.executable, "-m", "control_plane", "serve",
                               *sources, "--port", "0", "--admin-port", "0", "--log-format",
                               "json", *extra], env={"SCOREGATE_HOME": str(home)},
                              name="gateway")
    gateway = RunningGateway(home, started)

    def up() -> bool:
        if started.proc.poll() is not None:
            raise AssertionError(f"serve exited with {started.proc.returncode}:\n{started.log()}")
        return gateway.answers(started.proc.pid)

    wait_until(up, timeout=PROVISION_TIMEOUT_S if sources else 90,
               what="scoregate serve to start")
    return gateway


def trained_example(folder: Path) -> Path:
    """A copy of the blue-green example in `folder`, with its two models trained there, so a
    test never writes into the checkout."""
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.pkl", "*.tmp",
                                                                    "__pycache__"))
    subprocess.run([sys.executable, str(folder / "train.py")], check=True, cwd=folder,
                   capture_output=True, timeout=300)
    return folder
