"""A real `scoregate serve` in front of the fake upstream's faults, configured by YAML files.

Endpoint `faults` (key auth) has one external deployment per fault mode of
tests/support/fake_upstream.py; `other` (key auth) and `tokens` (aml_token) exist so that
credentials can be tried across endpoints. Tests name a deployment with the
`azureml-model-deployment` header, so the split never decides which fault a request meets.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.gateway import RunningGateway, start_serve, start_upstream
from tests.support.processes import ProcessGroup, free_port, wait_until

FAULTS = "faults"
MODES = ("good", "echo", "big", "slow", "pause", "hang", "reset", "truncated", "malformed",
         "flaky", "switch", "hop", "many", "huge", "cut")
MIRRORED = "mirrored"
SHADOWS = ("hang", "reset", "malformed", "slow", "flaky", "refused", "big")
HANG_TIMEOUT_MS = 1500


def start_fault_backend(processes: ProcessGroup, tmp: Path) -> str:
    """The fake upstream, recording what it sees (`Stack.seen`)."""
    return start_upstream(processes, tmp, "faults", record=True)


def deployment_yaml(name: str, endpoint: str, urls: list[str], timeout_ms: int = 5000) -> str:
    listed = "".join(f"  - {url}\n" for url in urls)
    return (f"name: {name}\nendpoint_name: {endpoint}\nurls:\n{listed}"
            f"request_settings:\n  request_timeout_ms: {timeout_ms}\n"
            "  max_concurrent_requests_per_instance: 64\n")


def write_config(folder: Path, backend: str) -> None:
    """The YAML folder: every fault mode, a refused URL, and a refused-then-ok pair."""
    folder.mkdir(parents=True, exist_ok=True)
    dead = f"http://127.0.0.1:{free_port()}/score"
    (folder / "faults.yml").write_text(f"name: {FAULTS}\nauth_mode: key\ntraffic: {{good: 100}}\n")
    for mode in MODES:
        timeout = HANG_TIMEOUT_MS if mode == "hang" else 5000
        (folder / f"{mode}.yml").write_text(
            deployment_yaml(mode, FAULTS, [f"{backend}/{mode}/score"], timeout))
    (folder / "refused.yml").write_text(deployment_yaml("refused", FAULTS, [dead]))
    (folder / "retried.yml").write_text(
        deployment_yaml("retried", FAULTS, [dead, f"{backend}/good/score"]))
    (folder / "resetpair.yml").write_text(
        deployment_yaml("resetpair", FAULTS, [f"{backend}/reset/score", f"{backend}/good/score"]))
    _write_mirrored(folder, backend, dead)
    (folder / "other.yml").write_text("name: other\nauth_mode: key\ntraffic: {mine: 100}\n")
    (folder / "mine.yml").write_text(deployment_yaml("mine", "other", [f"{backend}/echo/score"]))
    (folder / "tokens.yml").write_text("name: tokens\nauth_mode: aml_token\n"
                                       "traffic: {tokened: 100}\n")
    (folder / "tokened.yml").write_text(
        deployment_yaml("tokened", "tokens", [f"{backend}/echo/score"]))


def _write_mirrored(folder: Path, backend: str, dead: str) -> None:
    """Endpoint `mirrored`: live traffic to `primary`, and one shadow per fault mode."""
    (folder / "mirrored.yml").write_text(f"name: {MIRRORED}\nauth_mode: key\n"
                                         "traffic: {primary: 100}\n")
    (folder / "m-primary.yml").write_text(
        deployment_yaml("primary", MIRRORED, [f"{backend}/good/score"]))
    for mode in SHADOWS:
        url = dead if mode == "refused" else f"{backend}/{mode}/score"
        (folder / f"m-{mode}.yml").write_text(
            deployment_yaml(mode, MIRRORED, [url], HANG_TIMEOUT_MS))


@dataclass
class Stack:
    gateway: RunningGateway
    backend: str
    keys: dict[str, str]

    @property
    def port(self) -> int:
        return int(self.gateway.scoring_url.rsplit(":", 1)[1])

    def log_has_no_traceback(self) -> bool:
        return "Traceback" not in self.gateway.started.log()

    @property
    def score_url(self) -> str:
        return f"{self.gateway.scoring_url}/endpoints/{FAULTS}/score"

    def headers(self, deployment: str | None = None, endpoint: str = FAULTS) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.keys[endpoint]}",
                   "Content-Type": "application/json"}
        if deployment is not None:
            headers["azureml-model-deployment"] = deployment
        return headers

    def post(self, deployment: str | None, body: bytes = b'{"data": [1]}',
             timeout: float = 30.0) -> httpx.Response:
        return httpx.post(self.score_url, content=body, headers=self.headers(deployment),
                          timeout=timeout)

    def seen(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.backend + "/__requests", timeout=10) as answer:
            return list(json.loads(answer.read()))

    def settled(self) -> list[str]:
        """Bodies of `flaky` requests whose connection the upstream has closed or kept."""
        with urllib.request.urlopen(self.backend + "/__settled", timeout=10) as answer:
            return list(json.loads(answer.read()))

    def wait_settled(self, body: str) -> None:
        wait_until(lambda: body in self.settled(), timeout=10,
                   what=f"the upstream to close or keep the connection of {body}")

    def forget(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.backend + "/__reset", method="POST",
                                                      data=b""), timeout=10).close()

    def admin(self, method: str, path: str, headers: dict[str, bytes] | None = None,
              **kwargs: Any) -> httpx.Response:
        sent = {k.encode(): v for k, v in (headers or {}).items()}
        sent[b"Authorization"] = f"Bearer {self.admin_token}".encode()
        return httpx.request(method, self.gateway.admin_url + path, headers=sent,
                             timeout=60, **kwargs)

    @property
    def admin_token(self) -> str:
        return (self.gateway.home / "admin_token").read_text().strip()


def start_stack(processes: ProcessGroup, tmp: Path, extra: tuple[str, ...] = ()) -> Stack:
    backend = start_fault_backend(processes, tmp)
    folder = tmp / "config"
    write_config(folder, backend)
    gateway = start_serve(processes, tmp / "home", str(folder), extra=extra)
    keys = {name: gateway.key(name) for name in (FAULTS, "other", MIRRORED)}
    return Stack(gateway, backend, keys)
