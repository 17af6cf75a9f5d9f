"""The registered-model walk of issue 11, typed as `scoregate` commands against a real server
(`scoregate serve`, real instances) on two models trained in the test: register v1, an
endpoint, a deployment from `@latest` with all traffic, invoke, register v2, a second
deployment from `@latest`, the first still serves v1, traffic 90/10 then 0/100, delete the
first deployment (and then its version, no longer in use).

The endpoint is created with `--local`, as azureml-examples' `deploy-local-endpoint.sh` does,
so its scoring URI answers without a key (an ordinary endpoint beside it still needs one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from tests.support.gateway import EXAMPLE, RunningGateway, start_serve
from tests.support.processes import ProcessGroup, wait_until

E = "walk-models"
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: <deployment_name>
endpoint_name: <endpoint_name>
model: azureml:walk-model@latest
code_configuration:
  code: code/
  scoring_script: score.py
instance_type: Standard_DS3_v2
instance_count: 1
"""


def train(folder: Path, alpha: float) -> list[float]:
    """A Ridge regression on scikit-learn's bundled diabetes data, saved where the example's
    score.py loads it (`<AZUREML_MODEL_DIR>/model/sklearn_regression_model.pkl`); returns
    its predictions for the sample request."""
    import joblib
    import numpy
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    features, target = load_diabetes(return_X_y=True)
    model = Ridge(alpha=alpha).fit(features, target)
    (folder / "model").mkdir(parents=True)
    joblib.dump(model, folder / "model" / "sklearn_regression_model.pkl")
    rows = numpy.array(json.loads((EXAMPLE / "sample-request.json").read_text())["data"])
    return [float(value) for value in model.predict(rows)]


def invoke(gateway: RunningGateway, request: Path, deployment: str | None = None) -> list[float]:
    extra = ("--deployment-name", deployment) if deployment else ()
    answer = gateway.cli("online-endpoint", "invoke", "--name", E, "--local",
                         "--request-file", str(request), *extra)
    return [float(value) for value in json.loads(answer.stdout)]


def close(found: list[float], expected: list[float]) -> bool:
    return len(found) == len(expected) and all(abs(a - b) <= 1e-9 * max(1.0, abs(b))
                                               for a, b in zip(found, expected, strict=True))


def test_registered_model_walk(processes: ProcessGroup, tmp_path: Path) -> None:
    v1, v2 = train(tmp_path / "v1", alpha=0.1), train(tmp_path / "v2", alpha=10.0)
    assert not close(v1, v2)
    shutil.copytree(EXAMPLE / "model-1" / "onlinescoring", tmp_path / "code")
    request = tmp_path / "sample-request.json"
    shutil.copyfile(EXAMPLE / "sample-request.json", request)
    deployment_yml = tmp_path / "deployment.yml"
    deployment_yml.write_text(DEPLOYMENT)
    home = tmp_path / "home"  # what a kill -9 mid-create leaves: a copy, an unused artifact
    (home / "models" / "tmp" / "interrupted" / "model").mkdir(parents=True)
    (home / "models" / "sha256" / ("0" * 64) / "model").mkdir(parents=True)
    gateway = start_serve(processes, home)
    assert list((home / "models" / "tmp").iterdir()) == []  # serve recovered the registry
    assert list((home / "models" / "sha256").iterdir()) == []

    # register v1; the endpoint; blue from @latest with all traffic; invoke
    first = gateway.cli_json("model", "create", "--name", "walk-model", "--path",
                             str(tmp_path / "v1" / "model"), "--type", "custom_model")
    assert first["id"] == "azureml:walk-model:1"
    endpoint = gateway.cli_json("online-endpoint", "create", "--name", E, "--local")
    assert (endpoint["auth_mode"], endpoint["local"]) == ("none", True)
    blue = gateway.cli_json("online-deployment", "create", "-f", str(deployment_yml),
                            "--set", "name=blue", "--set", f"endpoint_name={E}",
                            "--all-traffic", "--local")
    assert blue["model"] == "azureml:walk-model:1"
    assert close(invoke(gateway, request), v1)

    # register v2: blue keeps v1; green from @latest gets v2
    second = gateway.cli_json("model", "create", "--name", "walk-model", "--path",
                              str(tmp_path / "v2" / "model"))
    assert second["version"] == "2"
    green = gateway.cli_json("online-deployment", "create", "-f", str(deployment_yml),
                             "--set", "name=green", "--set", f"endpoint_name={E}")
    assert green["model"] == "azureml:walk-model:2"
    shown = gateway.cli_json("online-deployment", "show", "-n", "blue", "-e", E, "--local")
    assert shown["model"] == "azureml:walk-model:1"
    assert close(invoke(gateway, request, "blue"), v1)
    assert close(invoke(gateway, request, "green"), v2)
    assert close(invoke(gateway, request), v1)  # all live traffic still on blue

    # 90/10, then 0/100 (keyless requests: the endpoint is --local)
    scoring_uri = gateway.cli_json("online-endpoint", "show", "-n", E)["scoring_uri"]
    body = request.read_bytes()

    def served_by() -> str:
        answer = httpx.post(scoring_uri, content=body, timeout=30,
                            headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        return answer.headers["azureml-model-deployment"]

    gateway.cli("online-endpoint", "update", "--name", E, "--traffic", "blue=90 green=10")
    wait_until(lambda: served_by() == "green", timeout=120, what="green to get live traffic")
    gateway.cli("online-endpoint", "update", "--name", E, "--traffic", "blue=0 green=100")
    assert {served_by() for _ in range(20)} == {"green"}
    assert close(invoke(gateway, request), v2)

    # delete blue; its version is then free to delete, green's is not
    gateway.cli("online-deployment", "delete", "--name", "blue", "--endpoint-name", E,
                "--yes", "--local")
    in_use = gateway.cli("model", "delete", "-n", "walk-model", "-v", "2", "--yes", check=False)
    assert in_use.returncode == 1 and f"{E}/green" in in_use.stderr
    gateway.cli("model", "delete", "-n", "walk-model", "-v", "1", "--yes")
    versions = gateway.cli_json("model", "list", "-n", "walk-model", "--query", "[].version")
    assert versions == ["2"]

    # an ordinary endpoint beside it still needs its key
    gateway.cli("online-endpoint", "create", "--name", "walk-keyed")
    keyed_uri = gateway.cli_json("online-endpoint", "show", "-n", "walk-keyed")["scoring_uri"]
    assert httpx.post(keyed_uri, content=body, timeout=30).status_code == 401

    # YAML applied by `serve FOLDER` binds its references the same way, and a bad one stops
    # the start with a message naming the versions
    processes.stop(gateway.started)
    folder = tmp_path / "applied"
    folder.mkdir()
    shutil.copytree(tmp_path / "code", folder / "code")
    (folder / "deployment.yml").write_text(DEPLOYMENT.replace("<deployment_name>", "applied")
                                           .replace("<endpoint_name>", E))
    restarted = start_serve(processes, home, str(folder))
    applied = restarted.cli_json("online-deployment", "show", "-n", "applied", "-e", E)
    assert applied["model"] == "azureml:walk-model:2"
    assert close(invoke(restarted, request, "applied"), v2)
    processes.stop(restarted.started)
    (folder / "deployment.yml").write_text(
        (folder / "deployment.yml").read_text().replace("@latest", ":1"))
    refused = processes.python("-m", "control_plane", "serve", str(folder), "--port", "0",
                               "--admin-port", "0", env={"SCOREGATE_HOME": str(home)},
                               name="refused")
    wait_until(lambda: refused.proc.poll() is not None, timeout=60, what="serve to refuse")
    assert refused.proc.returncode == 1
    assert "model walk-model has no version 1; its versions: 2" in refused.log()
