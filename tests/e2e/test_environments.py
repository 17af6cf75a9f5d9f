"""Each deployment runs in its own environment (issue 12), through `scoregate serve` and the CLI,
with real uv builds (the session's shared uv cache: see tests/conftest.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "env-endpoint"
VERSIONS = """\
import json, os, sys

import six


def init():
    pass


def run(raw_data):
    return {"six": six.__version__, "python": sys.executable,
            "deployment": os.environ.get("DEPLOYMENT")}
"""


def conda_file(folder: Path, name: str, pins: list[str], python: str | None = None) -> Path:
    lines = ["name: " + name, "dependencies:"]
    lines += [f"  - python={python}"] if python else []
    lines += ["  - pip", "  - pip:"] + [f"    - {pin}" for pin in pins]
    path = folder / "envs" / f"{name}.conda.yml"  # apart: serve reads every YAML of a folder
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def deployment_yaml(folder: Path, name: str, conda: Path | None, code: str = "code",
                    extra: str = "") -> Path:
    text = (f"name: {name}\nendpoint_name: {E}\ninstance_count: 1\n"
            f"code_configuration: {{code: {code}, scoring_script: score.py}}\n"
            f"environment_variables: {{DEPLOYMENT: {name}}}\n"
            "readiness_probe: {initial_delay: 0, period: 1, failure_threshold: 3}\n" + extra)
    if conda is not None:
        text += (f"environment:\n  conda_file: envs/{conda.name}\n"
                 "  image: mcr.microsoft.com/x:1\n")
    path = folder / f"{name}.yml"
    path.write_text(text)
    return path


def setup_folder(tmp_path: Path, score: str = VERSIONS) -> Path:
    folder = tmp_path / "config"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "score.py").write_text(score)
    (folder / "endpoint.yml").write_text(f"name: {E}\nauth_mode: key\n")
    return folder


def answer(gateway: RunningGateway, key: str, deployment: str | None = None) -> dict[str, Any]:
    response = gateway.score(E, b"{}", key, deployment)
    assert response.status_code == 200, response.text
    return dict(response.json())


def show(gateway: RunningGateway, name: str) -> dict[str, Any]:
    return dict(gateway.cli_json("online-deployment", "show", "--name", name,
                                 "--endpoint-name", E))


def test_two_deployments_two_environments_weighted_traffic(processes: ProcessGroup,
                                                           tmp_path: Path) -> None:
    folder = setup_folder(tmp_path)
    blue = deployment_yaml(folder, "blue", conda_file(folder, "old", ["six==1.15.0"]))
    green = deployment_yaml(folder, "green", conda_file(folder, "new", ["six==1.16.0"]))
    gateway = start_serve(processes, tmp_path / "home")
    gateway.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
    created = gateway.cli("online-deployment", "create", "-f", str(blue), "--all-traffic")
    assert json.loads(created.stdout)["provisioning_state"] == "Succeeded"
    progress = created.stderr.splitlines()  # the build as a person watching sees it
    phases = ("creating", "resolving", "downloading", "installing", "compiling")  # seen at
    assert any(line.startswith(f"environment: {phase}")  # the poll's pace: not every one
               for line in progress for phase in phases), progress
    assert any(line.startswith("environment: ready: ") and " packages, Python " in line
               and "built in" in line for line in progress), progress
    gateway.cli("online-deployment", "create", "-f", str(green))
    gateway.cli("online-endpoint", "update", "--name", E, "--traffic", "blue=70 green=30")
    key = gateway.key(E)

    assert answer(gateway, key, "blue")["six"] == "1.15.0"
    assert answer(gateway, key, "green")["six"] == "1.16.0"
    pythons = {name: answer(gateway, key, name)["python"] for name in ("blue", "green")}
    assert pythons["blue"] != pythons["green"] and sys.executable not in pythons.values()
    seen = Counter((a["deployment"], a["six"]) for a in (answer(gateway, key)
                                                         for _ in range(60)))
    assert set(seen) == {("blue", "1.15.0"), ("green", "1.16.0")}, seen
    assert seen["blue", "1.15.0"] > seen["green", "1.16.0"]  # 70/30 (wrong way: p < 0.1%)

    # the conda files were copied at create: deleting or editing them now changes nothing
    (folder / "envs" / "old.conda.yml").unlink()
    (folder / "envs" / "new.conda.yml").write_text("dependencies:\n  - pip:\n    - six==999\n")
    stored = show(gateway, "blue")["environment"]["conda_file"]
    assert stored.startswith(str(tmp_path / "home" / "conda-files")), stored
    assert stored.endswith("/old.conda.yml") and "six==1.15.0" in Path(stored).read_text()

    # an MLflow model folder without a deployment environment: the model's own files count
    model = folder / "mlflow-model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    (model / "requirements.txt").write_text("six==1.14.0\n")
    grey = deployment_yaml(folder, "grey", None, extra="model: {path: mlflow-model}\n")
    gateway.cli("online-deployment", "create", "-f", str(grey))
    assert answer(gateway, key, "grey")["six"] == "1.14.0"
    assert show(gateway, "grey")["environment_status"]["source"].endswith("requirements.txt")
    assert answer(gateway, key, "blue")["six"] == "1.15.0"  # after the writes grey made

    status = show(gateway, "green")
    assert status["provisioning_state"] == "Succeeded"
    environment = status["environment_status"]
    assert environment["state"] == "ready" and environment["source"].endswith("new.conda.yml")
    assert environment["packages"] >= 4 and environment["interpreter"] == pythons["green"]


def test_a_failed_build_is_failed_with_the_resolvers_message_and_traffic_stays(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = setup_folder(tmp_path)
    blue = deployment_yaml(folder, "blue", conda_file(folder, "good", ["six==1.16.0"]))
    gateway = start_serve(processes, tmp_path / "home")
    gateway.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
    gateway.cli("online-deployment", "create", "-f", str(blue), "--all-traffic")
    key = gateway.key(E)
    assert answer(gateway, key)["six"] == "1.16.0"

    bad = deployment_yaml(folder, "blue", conda_file(folder, "bad", ["six==999.0.0"]))
    updated = gateway.cli("online-deployment", "update", "-n", "blue", "-e", E, "-f", str(bad),
                          check=False)
    assert updated.returncode != 0
    assert "six==999.0.0" in updated.stderr and "No solution found" in updated.stderr
    status = show(gateway, "blue")
    assert status["provisioning_state"] == "Failed"
    assert "six==999.0.0" in status["provisioning_message"]
    for _ in range(20):  # the old instances still serve all of blue's traffic
        assert answer(gateway, key)["six"] == "1.16.0"
    endpoint = gateway.cli_json("online-endpoint", "show", "--name", E)
    assert endpoint["traffic"] == {"blue": 100}

    green = deployment_yaml(folder, "green", conda_file(folder, "bad2", ["six==998.0.0"]))
    created = gateway.cli("online-deployment", "create", "-f", str(green), check=False)
    assert created.returncode != 0 and "six==998.0.0" in created.stderr
    assert show(gateway, "green")["provisioning_state"] == "Failed"
    assert show(gateway, "green")["instances"] == []
    logs = gateway.cli("online-deployment", "get-logs", "--name", "green", "--endpoint-name",
                       E).stdout
    assert "environment build log" in logs and "six==998.0.0" in logs
    assert all(answer(gateway, key)["six"] == "1.16.0" for _ in range(10))

    processes.stop(gateway.started)  # the build log of the failed create outlives serve
    gateway = start_serve(processes, tmp_path / "home")
    logs = gateway.cli("online-deployment", "get-logs", "--name", "green", "--endpoint-name",
                       E).stdout
    assert "environment build log" in logs and "six==998.0.0" in logs


def test_kill_9_during_a_build_then_restart_builds_again_and_serves(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = setup_folder(tmp_path)
    blue = deployment_yaml(folder, "blue", conda_file(folder, "slow", ["six==1.14.0", "idna==3.4",
                                                                       "certifi==2023.7.22"]))
    home = tmp_path / "home"
    environments = tmp_path / "environments"  # its own: this build is never there already
    flags = ("--environments", str(environments))
    gateway = start_serve(processes, home, extra=flags)
    gateway.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
    # the deployment is committed before its build starts; watched from the create on
    processes.python("-m", "control_plane", "online-deployment", "create", "-f", str(blue),
                     "--all-traffic", env=gateway.env(), name="create")
    wait_until(lambda: list(environments.glob(".build-*")) != [], timeout=60,
               what="the build to start")
    processes.stop(gateway.started, signal.SIGKILL)
    [left] = list(environments.glob(".build-*"))
    assert not list(environments.glob("*/ready.json"))

    gateway = start_serve(processes, home, extra=flags)
    assert f"removed an unfinished environment build: {left}" in gateway.started.log()
    key = gateway.key(E)
    wait_until(partial(_answers, gateway, key), timeout=180, what="blue to come up")
    assert answer(gateway, key)["six"] == "1.14.0"
    assert show(gateway, "blue")["provisioning_state"] == "Succeeded"  # the create resumed
    assert not list(environments.glob(".build-*"))


def test_registered_environments_and_with_package(processes: ProcessGroup,
                                                 tmp_path: Path) -> None:
    folder = setup_folder(tmp_path)
    conda_file(folder, "v1", ["six==1.15.0"])
    conda_file(folder, "v2", ["six==1.16.0"])
    env_file = folder / "envs" / "six-env.yml"
    env_file.write_text("$schema: https://azuremlschemas.azureedge.net/latest/environment."
                        "schema.json\nname: six-env\nconda_file: v1.conda.yml\n"
                        "image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n")
    own = ("--environments", str(tmp_path / "environments"))  # gc below sees only these
    gateway = start_serve(processes, tmp_path / "home", extra=own)
    first = gateway.cli_json("environment", "create", "-f", str(env_file))
    assert (first["version"], first["image"]) == ("1", "mcr.microsoft.com/azureml/openmpi4.1.0-"
                                                       "ubuntu20.04:latest")
    assert "six==1.15.0" in first["conda_file"]
    env_file.write_text(env_file.read_text().replace("v1.conda", "v2.conda"))
    gateway.cli("environment", "create", "-f", str(env_file), "--set", "tags.stage=new")
    again = gateway.cli("environment", "create", "-f", str(env_file), "--version", "2",
                        check=False)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert [e["version"] for e in gateway.cli_json("environment", "list", "-n", "six-env")] == [
        "1", "2"]
    assert gateway.cli_json("environment", "show", "-n", "six-env")["tags"] == {"stage": "new"}

    gateway.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
    latest = deployment_yaml(folder, "blue", None, extra="environment: azureml:six-env@latest\n")
    gateway.cli("online-deployment", "create", "-f", str(latest), "--all-traffic")
    pinned = deployment_yaml(folder, "green", None, extra="environment: azureml:six-env:1\n")
    packaged = gateway.cli("online-deployment", "create", "-f", str(pinned), "--with-package")
    assert "environment: packaged: " in packaged.stderr
    key = gateway.key(E)
    assert answer(gateway, key, "blue")["six"] == "1.16.0"
    assert answer(gateway, key, "green")["six"] == "1.15.0"
    assert show(gateway, "green")["environment_status"]["source"] == "azureml:six-env:1"

    gateway.cli("environment", "archive", "-n", "six-env", "--version", "2")
    assert gateway.cli_json("environment", "show", "-n", "six-env")["version"] == "1"
    gateway.cli("environment", "restore", "-n", "six-env", "--version", "2")
    assert gateway.cli_json("environment", "show", "-n", "six-env", "--label",
                            "latest")["version"] == "2"

    bad = conda_file(folder, "bad", ["six==997.0.0"])
    doomed = deployment_yaml(folder, "red", bad)
    refused = gateway.cli("online-deployment", "create", "-f", str(doomed), "--with-package",
                          check=False)
    assert refused.returncode == 1 and "six==997.0.0" in refused.stderr
    missing = gateway.cli("online-deployment", "show", "-n", "red", "-e", E, check=False)
    assert missing.returncode == 1  # packaging failed: nothing was created

    unused = gateway.cli_json("environment", "build", "--conda-file",
                              str(conda_file(folder, "spare", ["six==1.14.0"])))
    built = {b["key"]: b for b in gateway.cli_json("environment", "built")}
    assert len(built) == 3 and all(b["size_bytes"] > 0 for b in built.values())
    assert [k for k, b in built.items() if not b["in_use"]] == [unused["key"]]
    assert gateway.cli_json("environment", "gc") == {"removed": []}  # within the grace period
    assert gateway.cli_json("environment", "gc", "--grace-hours", "0") == {
        "removed": [unused["key"]]}
    assert answer(gateway, key, "green")["six"] == "1.15.0"


def test_a_missing_python_takes_the_nearest_newer_and_says_so_unless_strict(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = setup_folder(tmp_path)
    old = conda_file(folder, "py37", ["six==1.16.0"], python="3.7")  # older than any served
    path = deployment_yaml(folder, "blue", old)
    gateway = start_serve(processes, tmp_path / "home")
    gateway.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
    created = gateway.cli("online-deployment", "create", "-f", str(path), "--all-traffic")
    assert json.loads(created.stdout)["provisioning_state"] == "Succeeded"
    status = show(gateway, "blue")["environment_status"]
    assert status["python"].startswith("3.8.") and "Python 3.7 asked" in status["note"]
    assert answer(gateway, gateway.key(E))["six"] == "1.16.0"
    processes.stop(gateway.started)

    strict = start_serve(processes, tmp_path / "home", extra=("--strict-python",))
    green = deployment_yaml(folder, "green", old)
    refused = strict.cli("online-deployment", "create", "-f", str(green), check=False)
    assert refused.returncode == 1 and "no Python 3.7 installed (strict" in refused.stderr


def _answers(gateway: RunningGateway, key: str) -> bool:
    return gateway.score(E, b"{}", key).status_code == 200


OLD_SKLEARN = ["scikit-learn==1.3.2", "numpy<2"]
TRAIN = """\
import pickle, sys
import sklearn
from sklearn.linear_model import LogisticRegression
model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
with open(sys.argv[1], "wb") as f:
    pickle.dump(model, f)
print(sklearn.__version__)
"""
SCORE_MODEL = """\
import json, os, pickle

import sklearn


def init():
    global model
    root = os.environ["AZUREML_MODEL_DIR"]  # the model folder sits under it, by its own name
    [path] = [os.path.join(d, "model.pkl") for d, _, files in os.walk(root, followlinks=True)
            if "model.pkl" in files]
    with open(path, "rb") as f:
        model = pickle.load(f)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return {"sklearn": sklearn.__version__,
            "proba": [round(p, 6) for p in model.predict_proba(rows)[:, 1].tolist()]}
"""


def test_a_model_pickled_with_an_old_scikit_learn_beside_a_current_one(
        processes: ProcessGroup, tmp_path: Path) -> None:
    folder = setup_folder(tmp_path, SCORE_MODEL)
    old = conda_file(folder, "sk13", OLD_SKLEARN, python="3.10")
    new = conda_file(folder, "sknew", ["scikit-learn", "numpy"])
    gateway = start_serve(processes, tmp_path / "home")
    built = gateway.cli_json("environment", "build", "--conda-file", str(old))
    python = built["interpreter"]
    for name in ("old", "new"):
        (folder / f"model-{name}").mkdir()
    trained = subprocess.run([python, "-I", "-c", TRAIN, str(folder / "model-old" / "model.pkl")],
                             capture_output=True, text=True, timeout=120, check=True)
    assert trained.stdout.strip() == "1.3.2"
    built_new = gateway.cli_json("environment", "build", "--conda-file", str(new))
    subprocess.run([built_new["interpreter"], "-I", "-c", TRAIN,
                    str(folder / "model-new" / "model.pkl")], check=True, timeout=120,
                   capture_output=True)
    gateway.cli("online-endpoint", "create", "-f", str(folder / "endpoint.yml"))
    for name, conda in (("old", old), ("new", new)):
        path = deployment_yaml(folder, name, conda, extra=f"model: {{path: model-{name}}}\n")
        gateway.cli("online-deployment", "create", "-f", str(path))
    key = gateway.key(E)
    body = json.dumps({"data": [[0.5], [2.5]]}).encode()
    answers = {name: gateway.score(E, body, key, name).json() for name in ("old", "new")}
    assert all("sklearn" in a for a in answers.values()), (answers, gateway.cli(
        "online-deployment", "get-logs", "-n", "old", "-e", E, "--lines", "40").stdout)
    assert answers["old"]["sklearn"] == "1.3.2"
    assert answers["new"]["sklearn"] != "1.3.2" and int(answers["new"]["sklearn"][0]) >= 1
    assert len(answers["old"]["proba"]) == 2 and answers["old"]["proba"][1] > 0.5
    # the old pickle does not load in the current environment: that is why each has its own
    check = subprocess.run([built_new["interpreter"], "-I", "-W", "error", "-c",
                            "import pickle,sys; pickle.load(open(sys.argv[1],'rb'))",
                            str(folder / "model-old" / "model.pkl")], capture_output=True,
                           text=True, timeout=120, check=False)
    assert check.returncode != 0, "a 1.3.2 pickle loaded without a warning in " + \
        answers["new"]["sklearn"]


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCOREGATE_URL", raising=False)
