"""scoregate as a target: `scoregate serve` on a folder of Azure ML YAML written here.

The deployments are external (`url:`), so serve launches nothing and the gateway process is
the only process accounted. The endpoint key comes from `get-credentials`, as a user gets it.
`launcher="runner"` starts the data plane alone on a JSON snapshot instead
(benchmarks/common/snapshot_gateway.py): a development fallback for when `serve` or the CLI is
broken, never the reported figure.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common.backends import Backend
from benchmarks.common.children import Children, http_get, wait_until
from benchmarks.common.proc_stats import CpuProbe
from benchmarks.common.serve import REPO_ROOT, start_serve
from benchmarks.gateway.backends import Backends
from benchmarks.gateway.target import JSON_HEADERS, Target

SNAPSHOT_GATEWAY = REPO_ROOT / "benchmarks" / "common" / "snapshot_gateway.py"
ENDPOINT = "bench"
LAUNCHERS = ("serve", "runner")


@dataclass(frozen=True)
class ScoregateConfig:
    label: str = "scoregate"
    mirror_percent: int = 0
    metrics: bool = True
    access_log: bool = True

    def flags(self) -> list[str]:
        return ([] if self.metrics else ["--no-metrics"]) + \
            ([] if self.access_log else ["--no-access-log"])


def write_folder(folder: Path, backends: Backends, mirror_percent: int) -> Path:
    """The endpoint and deployment YAML files, in Azure ML's own format."""
    folder.mkdir(parents=True, exist_ok=True)
    mirror = f"mirror_traffic:\n  shadow: {mirror_percent}\n" if mirror_percent > 0 else ""
    (folder / "endpoint.yml").write_text(
        f"name: {ENDPOINT}\nauth_mode: key\ntraffic:\n  blue: 90\n  green: 10\n{mirror}")
    for backend in (backends.blue, backends.green, backends.shadow):
        (folder / f"{backend.name}.yml").write_text(_deployment_yaml(backend))
    return folder


def _deployment_yaml(backend: Backend) -> str:
    # Enough concurrency that Azure's 429 rule (2 × this × instances) never bites at c=32.
    return (f"name: {backend.name}\nendpoint_name: {ENDPOINT}\nurl: {backend.score_url}\n"
            "request_settings:\n  request_timeout_ms: 5000\n"
            "  max_concurrent_requests_per_instance: 1000\n")


def start_scoregate(children: Children, work: Path, backends: Backends, config: ScoregateConfig,
                    launcher: str = "serve") -> Target:
    if launcher == "runner":
        return _start_runner(children, work, backends, config)
    folder = write_folder(work / "config", backends, config.mirror_percent)
    serve = start_serve(children, work / "home", str(folder), flags=tuple(config.flags()),
                        name=config.label.replace(":", "-"))
    key = serve.key(ENDPOINT)
    return Target(config.label, f"{serve.scoring_url}/score",
                  {**JSON_HEADERS, "Authorization": f"Bearer {key}"},
                  CpuProbe((serve.child.pid,)), serve.child)


def _start_runner(children: Children, work: Path, backends: Backends,
                  config: ScoregateConfig) -> Target:
    key = "bench-key-" + os.urandom(8).hex()
    deployments = [{"name": b.name, "request_timeout_s": 5.0,
                    "max_concurrent_requests_per_instance": 1000,
                    "instances": [{"id": b.base_url, "url": b.base_url}]}
                   for b in (backends.blue, backends.green, backends.shadow)]
    endpoint = {"name": ENDPOINT, "auth_mode": "key", "keys": [key],
                "traffic": {"blue": 90, "green": 10}, "deployments": deployments,
                "mirror": {"shadow": config.mirror_percent} if config.mirror_percent else {}}
    work.mkdir(parents=True, exist_ok=True)
    snapshot, port_file = work / "snapshot.json", work / "port"
    snapshot.write_text(json.dumps({"version": 1, "endpoints": [endpoint]}))
    port_file.unlink(missing_ok=True)
    child = children.start([sys.executable, str(SNAPSHOT_GATEWAY), str(snapshot),
                            "--port-file", str(port_file), *config.flags()],
                           name=config.label.replace(":", "-"), cwd=REPO_ROOT,
                           env={"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})

    def up() -> bool:
        child.check_alive()
        return port_file.exists() and port_file.read_text().strip() != "" and http_get(
            f"http://127.0.0.1:{port_file.read_text().strip()}/healthz", 0.5) is not None

    wait_until(up, 60, f"{config.label} (data plane on a snapshot) to start")
    url = f"http://127.0.0.1:{port_file.read_text().strip()}/score"
    return Target(config.label, url, {**JSON_HEADERS, "Authorization": f"Bearer {key}"},
                  CpuProbe((child.pid,)), child)


def mirror_copies(target: Target) -> dict[str, float]:
    """scoregate_mirror_copies_total by outcome (sent, completed, failed, dropped)."""
    answer = http_get(target.url.rsplit("/", 1)[0] + "/metrics")
    if answer is None or answer[0] != 200:
        return {}
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(answer[1].decode()):
        for sample in family.samples:
            if sample.name == "scoregate_mirror_copies_total":
                outcome = sample.labels.get("outcome", "?")
                totals[outcome] = totals.get(outcome, 0.0) + sample.value
    return totals
