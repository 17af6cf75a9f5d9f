"""Managed instances are reachable only through the gateway (issue 10, bug 1).

A real `scoregate serve` with two managed deployments (real scoring server) and an admin token
in its environment: no instance opens a TCP listener (another local user could otherwise POST
to `/score` without a key), the instances' environments carry no SCOREGATE_* variable, and
walking up from AZUREML_MODEL_DIR reaches neither the state folder nor another deployment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "iso"
DEPLOYMENTS = ("blue", "green")
ADMIN_TOKEN = "admin-token-that-must-not-leak-0123456789"
SCRIPT = """\
import json
import os


def init():
    pass


def run(raw_data):
    return {"model_dir": os.environ["AZUREML_MODEL_DIR"],
            "ours": sorted(k for k in os.environ if k.startswith("SCOREGATE")),
            "token_in_env": any("TOKEN_VALUE" in v for v in os.environ.values())}
""".replace("TOKEN_VALUE", ADMIN_TOKEN)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("isolation")
    folder, code, model, temp = tmp / "config", tmp / "code", tmp / "model", tmp / "t"
    for made in (folder, code, model, temp):
        made.mkdir()
    (code / "score.py").write_text(SCRIPT)
    (model / "weights.txt").write_text("42")
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\ntraffic: {{blue: 100}}\n")
    for name in DEPLOYMENTS:
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {E}\nmodel: {{path: {model}}}\n"
            f"code_configuration: {{code: {code}, scoring_script: score.py}}\n"
            "instance_count: 1\n")
    with pytest.MonkeyPatch.context() as patch, ProcessGroup(tmp / "process-logs") as group:
        patch.setenv("SCOREGATE_ADMIN_TOKEN", ADMIN_TOKEN)  # serve and the CLI both read it
        patch.setenv("TMPDIR", str(temp))  # where serve makes the instances' folders
        running = start_serve(group, tmp / "home", str(folder))
        for name in DEPLOYMENTS:
            _wait_ready(running, name)
        yield running


def _wait_ready(gateway: RunningGateway, name: str) -> None:
    wait_until(lambda: all(i["state"] == "ready" for i in _instances(gateway, name)),
               timeout=90, what=f"{name} ready")


def _instances(gateway: RunningGateway, name: str) -> list[dict[str, Any]]:
    shown = gateway.cli_json("online-deployment", "show", "--name", name, "--endpoint-name", E)
    return list(shown["instances"])


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _tcp_listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes.add(fields[9])
    return inodes


def _score(gateway: RunningGateway, deployment: str) -> dict[str, Any]:
    reply = gateway.score(E, b'{"data": [1]}', gateway.key(E), deployment=deployment)
    assert reply.status_code == 200, reply.text
    return dict(json.loads(reply.text))


def test_managed_instances_open_no_tcp_listener(gateway: RunningGateway) -> None:
    listening = _tcp_listening_inodes()
    for name in DEPLOYMENTS:
        for instance in _instances(gateway, name):
            assert instance["url"].startswith("unix:"), instance
            assert not _socket_inodes(instance["pid"]) & listening, instance
            socket_path = Path(instance["url"][len("unix:"):])
            assert socket_path.stat().st_mode & 0o077 == 0
            assert socket_path.parent.stat().st_mode & 0o077 == 0  # owner-only folder
    assert _score(gateway, "blue")  # and the gateway still reaches them


def test_instance_env_carries_no_scoregate_secret(gateway: RunningGateway) -> None:
    for name in DEPLOYMENTS:
        seen = _score(gateway, name)
        assert seen["ours"] == [] and seen["token_in_env"] is False, seen


def test_walking_up_from_the_model_dir_reaches_no_state_and_no_other_deployment(
        gateway: RunningGateway) -> None:
    home = gateway.home.resolve()
    dirs = {name: Path(_score(gateway, name)["model_dir"]) for name in DEPLOYMENTS}
    temp = Path(os.environ["TMPDIR"]).resolve()
    for name, model_dir in dirs.items():
        assert (model_dir / "model" / "weights.txt").read_text() == "42"
        ancestors = model_dir.resolve().parents
        assert home not in ancestors and all(not (a / "state.db").exists() for a in ancestors)
        # scoregate's own folders on the way up (below the system temp folder) hold this
        # instance's files only
        ours = [a for a in ancestors if temp in a.parents]
        assert ours, (model_dir, temp)
        others = {str(d.resolve()) for n, d in dirs.items() if n != name}
        for folder in ours:
            for root, subdirs, files in os.walk(folder):
                assert "state.db" not in files and "admin_token" not in files
                assert not {os.path.join(root, d) for d in subdirs} & others
