"""The `scoregate` CLI against the admin API stand-in (a real uvicorn process on a real Store,
see test_admin_api.py), found through `$SCOREGATE_HOME/server.json`.

`test_the_command_itself` runs `python -m control_plane` as real subprocesses; the other tests
call `main(argv)` in this process, because interpreter start-up costs seconds on a busy box.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from control_plane.cli.main import build_parser, main
from tests.control_plane.admin.test_admin_api import ADMIN_TOKEN, AdminServer
from tests.support.processes import REPO_ROOT, free_port

ENDPOINT_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: name-from-file
auth_mode: {auth_mode}
"""
DEPLOYMENT_YAML = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: name-from-file
endpoint_name: endpoint-from-file
model:
  path: model/
code_configuration:
  code: code/
  scoring_script: score.py
instance_type: Standard_DS3_v2
instance_count: 1
"""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def _environment(admin: AdminServer, env: dict[str, str] | None, home: Path | None
                 ) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items()
            if k not in ("SCOREGATE_URL", "SCOREGATE_ADMIN_TOKEN")}
    full.update(PYTHONPATH=str(REPO_ROOT), SCOREGATE_HOME=str(home or admin.home))
    full.update(env or {})
    return full


def run_process(admin: AdminServer, *args: str, env: dict[str, str] | None = None,
                home: Path | None = None) -> Result:
    """`python -m control_plane ...`: the real command, as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "control_plane", *args],
                          env=_environment(admin, env, home), capture_output=True, text=True,
                          timeout=120, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    return Result(done.returncode, done.stdout, done.stderr)


@dataclass
class Cli:
    """`main(argv)` in this process (fast on a busy machine); the same code path as the
    command, minus interpreter start-up, which `test_the_command_itself` covers."""

    admin: AdminServer
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 home: Path | None = None) -> Result:
        with self.monkeypatch.context() as patch:
            for name in ("SCOREGATE_URL", "SCOREGATE_ADMIN_TOKEN"):
                patch.delenv(name, raising=False)
            for name, value in _environment(self.admin, env, home).items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO(""))
            self.capsys.readouterr()
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors
                code = int(exit_.code or 0)
            out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))

    def fails(self, *args: str, code: int = 1, **kwargs: Any) -> str:
        return failed(self(*args, **kwargs), code)


def failed(result: Result, code: int = 1) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.fixture
def cli(admin: AdminServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(admin, monkeypatch, capsys)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.pkl").write_bytes(b"0")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init():\n    pass\n\n"
                                                "def run(raw):\n    return raw\n")
    paths = {"endpoint": tmp_path / "endpoint.yml", "token": tmp_path / "token-endpoint.yml",
             "deployment": tmp_path / "deployment.yml", "request": tmp_path / "request.json"}
    paths["endpoint"].write_text(ENDPOINT_YAML.format(auth_mode="key"))
    paths["token"].write_text(ENDPOINT_YAML.format(auth_mode="aml_token"))
    paths["deployment"].write_text(DEPLOYMENT_YAML)
    paths["request"].write_text(json.dumps({"data": [[1, 2, 3]]}))
    return paths


def test_the_safe_rollout_commands(cli: Cli, files: dict[str, Path]) -> None:
    e, deployment = "cli-walk", str(files["deployment"])
    created = cli.json("online-endpoint", "create", "--name", e, "-f", str(files["endpoint"]))
    assert created["name"] == e and created["not_applied"]["$schema"].startswith("https://")
    blue = cli.json("online-deployment", "create", "--name", "blue", "--endpoint", e,
                   "-f", deployment, "--all-traffic")
    assert (blue["name"], blue["endpoint_name"]) == ("blue", e)
    assert blue["model_ref"].startswith("azureml:") and blue["model_ref"].endswith(":1")
    assert "/models/sha256/" in blue["model_path"]  # the inline model, registered anonymously
    assert blue["not_applied"]["instance_type"] == "Standard_DS3_v2"
    answer = json.loads(cli.ok("online-endpoint", "invoke", "--name", e,
                           "--request-file", str(files["request"])))
    assert answer == {"endpoint": e, "deployment": None, "body": {"data": [[1, 2, 3]]}}

    cli.ok("online-deployment", "update", "--name", "blue", "--endpoint-name", e,
       "--set", "instance_count=2")
    shown = cli.json("online-deployment", "show", "--name", "blue", "--endpoint-name", e)
    assert [i["state"] for i in shown["instances"]] == ["ready", "ready"]
    cli.ok("online-deployment", "create", "--name", "green", "--endpoint", e, "-f", deployment)
    assert cli.json("online-endpoint", "show", "-n", e, "--query", "traffic") == {
        "blue": 100, "green": 0}
    for flag in ("--deployment-name", "--deployment", "-d"):
        direct = json.loads(cli.ok("online-endpoint", "invoke", "--name", e, flag, "green",
                               "--request-file", str(files["request"])))
        assert direct["deployment"] == "green"

    cli.ok("online-endpoint", "update", "--name", e, "--mirror-traffic", "green=10")
    assert cli.json("online-endpoint", "show", "-n", e)["mirror_traffic"] == {"green": 10}
    cli.ok("online-endpoint", "update", "--name", e, "--mirror-traffic", "green=0")
    assert cli.json("online-endpoint", "show", "-n", e)["mirror_traffic"] == {}
    cli.ok("online-endpoint", "update", "--name", e, "--traffic", "blue=90 green=10")
    assert cli.json("online-endpoint", "show", "-n", e, "--query", "traffic") == {
        "blue": 90, "green": 10}
    cli.ok("online-endpoint", "update", "--name", e, "--traffic", "blue=0,green=100")
    cli.ok("online-deployment", "delete", "--name", "blue", "--endpoint", e, "--yes")
    assert [d["name"] for d in cli.json("online-deployment", "list", "-e", e)] == ["green"]
    cli.ok("online-endpoint", "delete", "--name", e, "--yes")
    assert e not in [item["name"] for item in cli.json("online-endpoint", "list")]


def test_the_command_itself(admin: AdminServer, files: dict[str, Path]) -> None:  # noqa: F811
    e = "cli-process"
    created = run_process(admin, "online-endpoint", "create", "--name", e, "-f",
                          str(files["endpoint"]))
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == e
    uri = run_process(admin, "online-endpoint", "show", "-n", e, "--query", "scoring_uri",
                      "-o", "tsv")
    assert uri.stdout == f"{admin.url}/scoring/endpoints/{e}/score\n"
    assert "nope-endpoint" in failed(run_process(admin, "online-endpoint", "show", "-n",
                                                 "nope-endpoint"))
    assert "invalid choice" in failed(run_process(admin, "online-endpoint", "frobnicate"), 2)
    served = run_process(admin, "serve", "--help")
    assert served.returncode == 0 and "--admin-port" in served.stdout


def test_output_formats_and_query(cli: Cli, admin: AdminServer) -> None:
    e = "cli-output"
    cli.ok("online-endpoint", "create", "-n", e, "--set", "tags.team=ml")
    uri = cli.ok("online-endpoint", "show", "-n", e, "--query", "scoring_uri", "-o", "tsv")
    assert uri == f"{admin.url}/scoring/endpoints/{e}/score\n"
    as_yaml = yaml.safe_load(cli.ok("online-endpoint", "show", "-n", e, "-o", "yaml"))
    assert as_yaml == cli.json("online-endpoint", "show", "-n", e)
    table = cli.ok("online-endpoint", "list", "-o", "table", "--query",
               "[?name=='cli-output'].{name: name, auth: auth_mode}").splitlines()
    assert table[0].split() == ["name", "auth"] and set(table[1]) <= {"-", " "}
    assert table[2].split() == [e, "key"]
    names = cli.ok("online-endpoint", "list", "--query", "[].name", "-o", "tsv").split("\n")
    assert e in names
    assert cli.json("online-endpoint", "show", "-n", e, "--query", "tags") == {"team": "ml"}


def test_set_keeps_text_where_text_belongs(cli: Cli, files: dict[str, Path]) -> None:
    e = "cli-set"
    cli.ok("online-endpoint", "create", "-n", e)
    cli.ok("online-deployment", "create", "-n", "blue", "-e", e, "-f", str(files["deployment"]),
       "--set", "environment_variables.WORKERS=2")
    updated = cli.json("online-deployment", "update", "-n", "blue", "-e", e,
                      "--set", "request_settings.request_timeout_ms=3000",
                      "--set", "environment_variables.DEBUG=true", "--set", "tags.tier=1")
    assert updated["request_settings"] == {"request_timeout_ms": 3000,
                                           "max_concurrent_requests_per_instance": 1}
    assert updated["environment_variables"] == {"WORKERS": "2", "DEBUG": "true"}
    assert updated["tags"] == {"tier": "1"}
    assert isinstance(updated["snapshot_version"], int) and updated["effective_at"]


def test_credentials_rotation_and_tokens(cli: Cli, files: dict[str, Path]) -> None:
    e = "cli-keys"
    cli.ok("online-endpoint", "create", "-n", e)
    before = cli.json("online-endpoint", "get-credentials", "-n", e)
    cli.ok("online-endpoint", "regenerate-keys", "-n", e, "--key-type", "secondary")
    after = cli.json("online-endpoint", "get-credentials", "-n", e)
    assert after["primaryKey"] == before["primaryKey"]
    assert after["secondaryKey"] != before["secondaryKey"]
    cli.ok("online-deployment", "create", "-n", "blue", "-e", e, "-f", str(files["deployment"]),
       "--all-traffic")
    assert json.loads(cli.ok("online-endpoint", "invoke", "-n", e, "--request-file",
                         str(files["request"])))["endpoint"] == e

    t = "cli-token"
    cli.ok("online-endpoint", "create", "--name", t, "-f", str(files["token"]))
    token = cli.json("online-endpoint", "get-credentials", "-n", t)
    assert set(token) == {"accessToken", "tokenType", "expiryTimeUtc", "refreshAfterTimeUtc"}
    answer = json.loads(cli.ok("online-endpoint", "invoke", "-n", t, "-d", "blue",
                           "--request-file", str(files["request"])))
    assert answer["endpoint"] == t


def test_get_logs_prints_the_last_lines(cli: Cli, files: dict[str, Path]) -> None:
    e = "cli-logs"
    cli.ok("online-endpoint", "create", "-n", e)
    cli.ok("online-deployment", "create", "-n", "green", "-e", e, "-f", str(files["deployment"]))
    logs = cli.ok("online-deployment", "get-logs", "--name", "green", "--endpoint-name", e,
              "--lines", "3")
    assert logs.splitlines() == [f"{e}/green line {i}" for i in (9998, 9999, 10000)]


def test_user_errors_are_one_line(cli: Cli, files: dict[str, Path],
                                  tmp_path: Path) -> None:
    e = "cli-errors"
    cli.ok("online-endpoint", "create", "-n", e)
    assert "nope-endpoint" in cli.fails("online-endpoint", "show", "-n", "nope-endpoint")
    assert "[rule: traffic-unknown-deployment]" in cli.fails(
        "online-endpoint", "update", "-n", e, "--traffic", "ghost=100")
    assert "[rule: traffic-integers]" in cli.fails("online-endpoint", "update", "-n", e,
                                               "--traffic", "blue=ninety")
    assert "without --yes" in cli.fails("online-endpoint", "delete", "-n", e)
    assert cli.json("online-endpoint", "show", "-n", e)["name"] == e
    assert "needs a deployment" in cli.fails("online-deployment", "create", "-n", "blue",
                                         "-e", e, "-f", str(files["endpoint"]))
    assert "cannot read" in cli.fails("online-endpoint", "invoke", "-n", e,
                                  "--request-file", str(tmp_path / "missing.json"))
    assert "update it instead" in cli.fails("online-endpoint", "create", "-n", e)
    assert "not valid JMESPath" in cli.fails("online-endpoint", "show", "-n", e,
                                         "--query", "traffic[")
    assert "KEY=VALUE" in cli.fails("online-deployment", "update", "-n", "blue", "-e", e,
                                "--set", "instance_count", code=2)
    assert "required" in cli.fails("online-endpoint", "regenerate-keys", "-n", e, code=2)


def test_finding_the_server_and_its_token(cli: Cli, admin: AdminServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty-home"
    empty.mkdir()
    assert "scoregate serve" in cli.fails("online-endpoint", "list", home=empty)
    dead = f"http://127.0.0.1:{free_port()}"
    assert "scoregate serve" in cli.fails("online-endpoint", "list", "--url", dead)
    assert "admin token" in cli.fails("online-endpoint", "list", "--url", admin.url,
                                  home=empty)
    wrong = cli.fails("online-endpoint", "list", env={"SCOREGATE_ADMIN_TOKEN": "nope"})
    assert "SCOREGATE_ADMIN_TOKEN" in wrong
    by_env = cli("online-endpoint", "list", home=empty,
                 env={"SCOREGATE_URL": admin.url, "SCOREGATE_ADMIN_TOKEN": ADMIN_TOKEN})
    assert by_env.returncode == 0 and isinstance(json.loads(by_env.stdout), list)


def _options(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Every leaf command ("online-deployment create") with its long options."""
    found: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for leaf, options in _options(sub).items():
                    found[f"{name} {leaf}".strip()] = options
    if not found:
        found[""] = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    return found


def test_abbreviated_flags_name_exactly_one_option() -> None:
    commands = _options(build_parser())
    for command, options in commands.items():
        for prefix in ("--endpoint", "--deployment"):
            matches = [o for o in options if o.startswith(prefix)]
            assert len(matches) <= 1, (command, matches)
    assert "--endpoint-name" in commands["online-deployment create"]
    assert "--deployment-name" in commands["online-endpoint invoke"]
    args = build_parser().parse_args(["online-deployment", "update", "--name", "b",
                                      "--endpoint", "e", "--set", "instance_count=2"])
    assert args.endpoint_name == "e"
    assert [(o.action, o.path, o.value) for o in args.overrides] == [
        ("set", ("instance_count",), 2)]
