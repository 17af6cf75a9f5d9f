"""`scoregate model ...`, `--set/--add/--remove` before validation, and `--local`, against the
admin API stand-in (the real admin app on a real store and a real registry, see
admin/test_admin_api.py). Most tests call `main(argv)` in this process (see test_cli.py);
`test_model_commands_as_processes` runs the real `python -m control_plane`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from control_plane.cli.main import build_parser
from tests.control_plane.admin.test_admin_api import AdminServer
from tests.control_plane.cli.test_cli import (  # noqa: F401  (the cli and files fixtures)
    Cli,
    cli,
    failed,
    files,
    run_process,
)

PLACEHOLDER_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: <endpoint_name>
model: azureml:<model>:<version>
code_configuration:
  code: code/
  scoring_script: score.py
instance_type: Standard_DS3_v2
instance_count: 1
"""


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "trained" / "model"
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"weights")
    (folder / "MLmodel").write_text("flavors: {}\n")
    return folder


def test_every_model_verb(cli: Cli, model: Path, tmp_path: Path) -> None:  # noqa: F811
    name = "cli-model"
    created = cli.json("model", "create", "--name", name, "--path", str(model), "--type",
                       "mlflow_model", "--tags", "team=a", "owner=me", "--description", "first")
    assert (created["id"], created["type"], created["tags"]) == (
        f"azureml:{name}:1", "mlflow_model", {"team": "a", "owner": "me"})
    assert created["path"] != str(model) and Path(created["path"]).name == "model"
    cli.ok("model", "create", "-n", name, "-p", str(model), "-v", "3", "--stage", "Production")
    latest = cli.json("model", "show", "--name", name, "--label", "latest")
    assert (latest["version"], latest["stage"]) == ("3", "Production")
    assert cli.json("model", "show", "-n", name, "-v", "1")["description"] == "first"
    assert cli.json("model", "list", "--name", name, "--query", "[].version") == ["3", "1"]
    listed = cli.json("model", "list", "--query", f"[?name=='{name}'].latest_version")
    assert listed == ["3"]

    updated = cli.json("model", "update", "-n", name, "-v", "1", "--stage", "Archived-ish",
                       "--set", "description=changed", "--remove", "tags.owner",
                       "--set", "tags.build=007")
    assert (updated["description"], updated["stage"], updated["tags"]) == (
        "changed", "Archived-ish", {"team": "a", "build": "007"})
    assert "artifact never changes" in cli.fails("model", "update", "-n", name, "-v", "1",
                                                 "--set", "path=/elsewhere")

    cli.ok("model", "archive", "-n", name, "-v", "3")
    assert cli.json("model", "show", "-n", name, "--label", "latest")["version"] == "1"
    assert cli.json("model", "list", "-n", name, "--query", "[].version") == ["1"]
    assert cli.json("model", "list", "-n", name, "--archived-only",
                    "--query", "[].version") == ["3"]
    assert cli.json("model", "list", "-n", name, "--include-archived",
                    "--query", "[].version") == ["3", "1"]
    cli.ok("model", "restore", "-n", name, "-v", "3")
    cli.ok("model", "archive", "-n", name)  # every version
    assert name in cli.json("model", "list", "--archived-only", "--query", "[].name")
    assert name not in cli.json("model", "list", "--query", "[].name")
    cli.ok("model", "restore", "-n", name)

    out = tmp_path / "downloads"
    written = cli.json("model", "download", "-n", name, "-v", "1", "--download-path", str(out))
    assert (out / name / "model" / "model.pkl").read_bytes() == b"weights"
    assert written["path"] == str(out / name / "model")
    assert "exists already" in cli.fails("model", "download", "-n", name, "-v", "1",
                                         "--download-path", str(out))

    cli.ok("model", "delete", "-n", name, "-v", "3", "--yes")
    assert "its versions: 1" in cli.fails("model", "show", "-n", name, "-v", "3")


def test_output_formats_and_errors(cli: Cli, model: Path) -> None:  # noqa: F811
    name = "cli-model-out"
    cli.ok("model", "create", "-n", name, "-p", str(model))
    tsv = cli.ok("model", "show", "-n", name, "-v", "1", "--query", "id", "-o", "tsv")
    assert tsv == f"azureml:{name}:1\n"
    as_yaml = yaml.safe_load(cli.ok("model", "show", "-n", name, "-v", "1", "-o", "yaml"))
    assert as_yaml["digest"] == cli.json("model", "show", "-n", name, "-v", "1")["digest"]
    table = cli.ok("model", "list", "-n", name, "-o", "table").splitlines()
    assert table[0].split()[:3] == ["id", "name", "version"]
    assert "versions: 1" in cli.fails("model", "create", "-n", name, "-p", str(model),
                                      "-v", "1")
    assert "does not exist" in cli.fails("model", "create", "-n", name, "-p",
                                         str(model.parent / "gone"))
    assert "--version or --label" in cli.fails("model", "show", "-n", name)
    assert "invalid choice" in cli.fails("model", "create", "-n", name, "-p", str(model),
                                         "-t", "onnx", code=2)
    assert "not registered" in cli.fails("model", "show", "-n", "cli-nobody", "-v", "1")


def test_model_files_with_overrides(cli: Cli, model: Path) -> None:  # noqa: F811
    spec = model.parent / "spec" / "model.yml"
    spec.parent.mkdir()
    spec.write_text("$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\n"
                    "name: cli-model-file\nversion: <version>\npath: ../model\n"
                    "type: custom_model\ndescription: from the file\n")
    created = cli.json("model", "create", "-f", str(spec), "--set", "version=7")
    assert (created["version"], created["description"]) == ("7", "from the file")
    assert cli.json("model", "show", "-n", "cli-model-file", "-v", "7")["size"] == 19
    named = cli.json("model", "create", "-f", str(spec), "--name", "cli-model-file-2",
                     "--set", "version=1", "--description", "flag wins")
    assert (named["name"], named["description"]) == ("cli-model-file-2", "flag wins")
    refused = cli.fails("model", "create", "-f", str(spec))  # the placeholder stays
    assert "version" in refused


def test_placeholders_overridden_by_set_deploy_a_registered_model(
        cli: Cli, files: dict[str, Path], model: Path) -> None:  # noqa: F811
    e = "cli-placeholders"
    version = cli.json("model", "create", "-n", "cli-deployed", "-p", str(model))["version"]
    cli.ok("online-endpoint", "create", "-n", e)
    deployment = files["deployment"].parent / "placeholder.yml"
    deployment.write_text(PLACEHOLDER_DEPLOYMENT)
    refused = cli.fails("online-deployment", "create", "-f", str(deployment))
    assert "endpoint_name" in refused and ":3:" in refused  # the file's line names the key
    created = cli.json("online-deployment", "create", "-f", str(deployment),
                       "--set", f"endpoint_name={e}",
                       "--set", f"model=azureml:cli-deployed:{version}")
    assert (created["endpoint_name"], created["model"]) == (e, "azureml:cli-deployed:1")
    in_use = cli.fails("model", "delete", "-n", "cli-deployed", "-v", "1", "--yes")
    assert f"{e}/blue" in in_use
    missing = cli.fails("online-deployment", "update", "-n", "blue", "-e", e,
                        "--set", "model=azureml:cli-deployed:9")
    assert "cli-deployed has no version 9; its versions: 1" in missing
    cli.ok("model", "create", "-n", "cli-deployed", "-p", str(files["deployment"].parent / "model"))
    moved = cli.json("online-deployment", "update", "-n", "blue", "-e", e,
                     "--set", "model=cli-deployed@latest")
    assert moved["model"] == "azureml:cli-deployed:2"


def test_local_is_accepted_on_every_endpoint_and_deployment_verb(
        cli: Cli, files: dict[str, Path]) -> None:  # noqa: F811
    parser = build_parser()
    groups = {action.dest: action for action in parser._actions if action.dest == "command"}
    for group in ("online-endpoint", "online-deployment"):
        verbs = groups["command"].choices[group]._actions  # type: ignore[attr-defined]
        for verb, sub in next(a for a in verbs if a.dest == "verb").choices.items():
            if verb in ("rollout", "evaluate", "auto-deploy"):
                continue
            options = [o for a in sub._actions for o in a.option_strings]
            assert "--local" in options, (group, verb)
    e = "cli-local"
    created = cli.json("online-endpoint", "create", "-n", e, "--local")
    assert (created["auth_mode"], created["local"]) == ("none", True)
    shown = cli.json("online-endpoint", "show", "-n", e, "--local")
    assert shown["openapi_uri"] == shown["scoring_uri"].replace("/score", "/swagger.json")
    cli.ok("online-deployment", "create", "-n", "blue", "-e", e, "-f", str(files["deployment"]),
           "--local", "--all-traffic")
    answer = json.loads(cli.ok("online-endpoint", "invoke", "-n", e, "--local",
                               "--request-file", str(files["request"])))
    assert answer["endpoint"] == e
    cli.ok("online-deployment", "get-logs", "-n", "blue", "-e", e, "--local")
    cli.ok("online-endpoint", "delete", "-n", e, "--local", "--yes")


def test_model_commands_as_processes(admin: AdminServer, model: Path) -> None:
    created = run_process(admin, "model", "create", "--name", "cli-process-model", "--path",
                          str(model), "--type", "custom_model")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["id"] == "azureml:cli-process-model:1"
    shown = run_process(admin, "model", "show", "--name", "cli-process-model", "--label",
                        "latest", "--query", "version", "-o", "tsv")
    assert shown.stdout == "1\n"
    assert "its versions: 1" in failed(run_process(admin, "model", "show", "--name",
                                                   "cli-process-model", "--version", "2"))


def test_the_ncd_samples_inline_model_is_registered_at_create(
        cli: Cli, files: dict[str, Path]) -> None:  # noqa: F811
    """azureml-examples' ncd sample names its inline model (mir-sample-sklearn-ncd-model,
    version 2); creating the deployment registers it, so `model show` finds it. (A scoring
    script is set here: serving MLflow models without one is another part of issue 11.)"""
    from tests.support.processes import REPO_ROOT

    ncd = REPO_ROOT / "tests/data/azureml-examples/cli/endpoints/online/ncd"
    e = "cli-ncd"
    cli.ok("online-endpoint", "create", "-n", e, "-f", str(ncd / "create-endpoint.yaml"))
    code = files["deployment"].parent / "code"
    created = cli.json("online-deployment", "create", "-f", str(ncd / "sklearn-deployment.yaml"),
                       "--set", f"endpoint_name={e}",
                       "--set", f"code_configuration={{\"code\": \"{code}\", "
                                "\"scoring_script\": \"score.py\"}")
    assert created["model"] == "azureml:mir-sample-sklearn-ncd-model:2"
    shown = cli.json("model", "show", "--name", "mir-sample-sklearn-ncd-model", "--version", "2")
    assert (shown["type"], created["model_path"]) == ("mlflow_model", shown["path"])
    assert {p.name for p in Path(shown["path"]).iterdir()} == {
        "MLmodel", "conda.yaml", "model.pkl", "requirements.txt"}
