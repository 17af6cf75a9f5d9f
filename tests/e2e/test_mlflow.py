"""MLflow deployments through the real CLI and `scoregate serve`: azureml-examples' no-code
walk (cli/deploy-managed-online-endpoint-ncd.sh, `az ml` replaced by `scoregate`) on its two
sample models, a model trained here, a DataFrame-output model, bad payloads, a missing flavour
package, and a scoring script that loads its MLflow model from AZUREML_MODEL_DIR itself.

Every answer is compared with `mlflow.pyfunc.load_model(path).predict(df)` of the same folder.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd  # type: ignore[import-untyped]
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # an import-time advice inside MLflow
    import mlflow.pyfunc  # noqa: F401

from tests.scoring_servers.mlflow.models import (  # noqa: E402
    COLUMNS,
    fake_flavour_model,
    pyfunc_predict,
    save_frame_model,
    save_sklearn_model,
)
from tests.support.gateway import RunningGateway, start_serve  # noqa: E402
from tests.support.processes import ProcessGroup  # noqa: E402

NCD = Path(__file__).resolve().parents[1] / "data" / "azureml-examples" / "cli" / "endpoints" \
    / "online" / "ncd"
ROWS = [[1.0, 2.0, 3.0], [-0.5, 0.25, 4.0]]
SCRIPT = '''\
import json
import os

import mlflow
import pandas as pd


def init():
    global model
    # as azureml-examples' mlflow/sklearn-diabetes/src/score.py opens it
    model = mlflow.pyfunc.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))


def run(raw_data):
    frame = pd.DataFrame(**json.loads(raw_data)["input_data"])
    return model.predict(frame).tolist()
'''


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("mlflow-e2e")
    with ProcessGroup(root / "process-logs") as group:
        yield start_serve(group, root / "home")


def request_frame(body: str) -> pd.DataFrame:
    return pd.DataFrame(**json.loads(body)["input_data"])


def split_body(rows: list[list[float]], columns: list[str]) -> str:
    return json.dumps({"input_data": {"columns": columns, "index": list(range(len(rows))),
                                      "data": rows}})


def show(gateway: RunningGateway, *args: str) -> str:
    return gateway.cli(*args, "--query", "provisioning_state", "-o", "tsv").stdout.strip()


def invoke(gateway: RunningGateway, endpoint: str, request_file: Path,
           deployment: str | None = None) -> Any:
    extra = ("--deployment", deployment) if deployment else ()
    answer = gateway.cli("online-endpoint", "invoke", "--name", endpoint, "--request-file",
                         str(request_file), *extra)
    return json.loads(answer.stdout)


def deployment_yaml(folder: Path, model: Path, registered_as: str, script: bool = False) -> Path:
    """A deployment file beside `model`, inline model as the ncd samples write it (registered
    as `registered_as` version 1 when the deployment is created)."""
    text = textwrap.dedent(f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
        name: placeholder
        endpoint_name: placeholder
        model:
          name: {registered_as}
          version: 1
          path: {model.name}
          type: mlflow_model
        instance_type: Standard_DS3_v2
        instance_count: 1
        """)
    if script:
        (folder / "src").mkdir(exist_ok=True)
        (folder / "src" / "score.py").write_text(SCRIPT)
        text += "code_configuration:\n  code: src\n  scoring_script: score.py\n"
    path = folder / f"{model.name}-deployment.yaml"
    path.write_text(text)
    return path


def test_ncd_walk_on_both_samples(gateway: RunningGateway, tmp_path: Path) -> None:
    """deploy-managed-online-endpoint-ncd.sh, then traffic moves and deletes."""
    pytest.importorskip("lightgbm")
    e = "endpt-ncd-1"
    gateway.cli("online-endpoint", "create", "--name", e, "-f", str(NCD / "create-endpoint.yaml"))
    assert show(gateway, "online-endpoint", "show", "--name", e).lower() == "succeeded"

    gateway.cli("online-deployment", "create", "--name", "sklearn-deployment", "--endpoint", e,
                "-f", str(NCD / "sklearn-deployment.yaml"), "--all-traffic")
    assert show(gateway, "online-deployment", "show", "--name", "sklearn-deployment",
                "--endpoint", e).lower() == "succeeded"
    sklearn_request = NCD / "sample-request-sklearn.json"
    sklearn_expected = pyfunc_predict(NCD / "sklearn-diabetes/model",
                                      request_frame(sklearn_request.read_text())).tolist()
    assert invoke(gateway, e, sklearn_request) == sklearn_expected
    assert sklearn_expected == pytest.approx([11633.100167144921, 8522.117402884991], rel=1e-12)
    wrong = gateway.score(e, b'{"input_data": [[1.0, 2.0, 3.0]]}', gateway.key(e))
    assert wrong.status_code == 424 and wrong.headers["ms-azureml-model-error-statuscode"] == "400"
    assert "Model is missing inputs ['age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', " \
           "'s6']" in wrong.json()["message"]

    gateway.cli("online-deployment", "create", "--name", "lightgbm-deployment", "--endpoint", e,
                "-f", str(NCD / "lightgbm-deployment.yaml"))
    assert show(gateway, "online-deployment", "show", "--name", "lightgbm-deployment",
                "--endpoint", e).lower() == "succeeded"
    lightgbm_request = NCD / "sample-request-lightgbm.json"
    lightgbm_expected = pyfunc_predict(NCD / "lightgbm-iris/model",
                                       request_frame(lightgbm_request.read_text())).tolist()
    assert invoke(gateway, e, lightgbm_request, "lightgbm-deployment") == lightgbm_expected
    assert len(lightgbm_expected) == 2 and len(lightgbm_expected[0]) == 3  # class probabilities

    # the OpenAPI document of the live deployment, generated from the model's signature
    swagger = httpx.get(f"{gateway.scoring_url}/endpoints/{e}/swagger.json",
                        headers={"Authorization": f"Bearer {gateway.key(e)}"}, timeout=30)
    assert swagger.status_code == 200, swagger.text
    assert "/score" in swagger.json()["paths"]
    assert "s6" in swagger.text and "sepal_length" not in swagger.text

    gateway.cli("online-endpoint", "update", "--name", e, "--traffic",
                "sklearn-deployment=0 lightgbm-deployment=100")
    assert invoke(gateway, e, lightgbm_request) == lightgbm_expected
    gateway.cli("online-deployment", "delete", "--name", "sklearn-deployment", "--endpoint", e,
                "--yes")
    assert invoke(gateway, e, lightgbm_request) == lightgbm_expected
    gateway.cli("online-endpoint", "delete", "--name", e, "--yes")
    gone = gateway.cli("online-endpoint", "show", "--name", e, check=False)
    assert gone.returncode != 0


def test_trained_model_and_dataframe_output(gateway: RunningGateway, tmp_path: Path) -> None:
    e = "trained-mlflow"
    regression = save_sklearn_model(tmp_path / "regression")
    frame_model = save_frame_model(tmp_path / "frames")
    gateway.cli("online-endpoint", "create", "--name", e)
    gateway.cli("online-deployment", "create", "--name", "regression", "--endpoint-name", e,
                "-f", str(deployment_yaml(tmp_path, regression, "e2e-regression")), "--all-traffic")
    gateway.cli("online-deployment", "create", "--name", "frames", "--endpoint-name", e,
                "-f", str(deployment_yaml(tmp_path, frame_model, "e2e-frames")))

    request = tmp_path / "request.json"
    request.write_text(split_body(ROWS, COLUMNS))
    expected = pyfunc_predict(regression, pd.DataFrame(ROWS, columns=COLUMNS)).tolist()
    assert invoke(gateway, e, request) == expected  # a JSON array for array output

    frames_request = tmp_path / "frames.json"
    frames_request.write_text(split_body([[1.0, 2.0], [3.0, 5.0]], ["a", "b"]))
    records = pyfunc_predict(frame_model, pd.DataFrame([[1.0, 2.0], [3.0, 5.0]],
                                                       columns=["a", "b"]))
    assert invoke(gateway, e, frames_request, "frames") == records.to_dict(orient="records")

    # MLflow's own request formats, as `mlflow models serve` answers them
    mlflow_body = json.dumps({"dataframe_records": [dict(zip(COLUMNS, ROWS[0], strict=True))]})
    answer = gateway.score(e, mlflow_body.encode(), gateway.key(e))
    assert answer.status_code == 200 and answer.json() == {"predictions": expected[:1]}


@pytest.mark.parametrize("body, says", [
    (split_body([[1.0, 2.0]], ["age", "bmi"]), "Model is missing inputs ['bp']"),
    (json.dumps({"input_data": {"columns": COLUMNS, "data": [["x", 1.0, 2.0]]}}),
     "could not convert string to float"),
    (json.dumps({"inputs": [1.0], "dataframe_split": {}}), "exactly one"),
])
def test_bad_payloads_get_the_models_400_through_424(gateway: RunningGateway, tmp_path: Path,
                                                     body: str, says: str) -> None:
    """Azure's rule: a model's non-2xx answer is 424 with its status in headers; the model's
    message (MLflow's) is in the body, never a traceback."""
    e = "bad-payloads"
    if gateway.cli("online-endpoint", "show", "--name", e, check=False).returncode != 0:
        model = save_sklearn_model(tmp_path / "model")
        gateway.cli("online-endpoint", "create", "--name", e)
        gateway.cli("online-deployment", "create", "--name", "blue", "--endpoint-name", e,
                    "-f", str(deployment_yaml(tmp_path, model, "e2e-bad-payloads")),
                    "--all-traffic")
    answer = gateway.score(e, body.encode(), gateway.key(e))
    assert answer.status_code == 424, answer.text
    assert answer.headers["ms-azureml-model-error-statuscode"] == "400"
    message = answer.json()["message"]
    assert message.startswith("the model in deployment 'blue' answered 400")
    assert says in message and "Traceback" not in message


def test_missing_flavour_package_reaches_logs_and_status(gateway: RunningGateway,
                                                         tmp_path: Path) -> None:
    """The model's requirements build its environment (issue 12): a flavour package that does
    not exist fails the build, with uv's words naming it, in the create, status and logs."""
    e = "no-flavour"
    model = fake_flavour_model(tmp_path / "model", "scoregate_absent_flavour.loader",
                               "scoregate-absent-flavour==1.2.3")
    gateway.cli("online-endpoint", "create", "--name", e)
    created = gateway.cli("online-deployment", "create", "--name", "blue", "--endpoint-name", e,
                          "-f", str(deployment_yaml(tmp_path, model, "e2e-no-flavour")),
                          check=False)
    assert "Traceback" not in created.stderr, created.stderr
    assert created.returncode != 0
    assert "scoregate-absent-flavour==1.2.3" in created.stderr, created.stderr
    status = gateway.cli_json("online-deployment", "show", "--name", "blue",
                              "--endpoint-name", e)
    assert status["provisioning_state"] == "Failed", status
    assert "scoregate-absent-flavour" in status["provisioning_message"]
    assert status["environment_status"]["source"].endswith("/requirements.txt")
    logs = gateway.cli("online-deployment", "get-logs", "--name", "blue", "--endpoint-name",
                       e).stdout
    assert "environment build log" in logs and "scoregate-absent-flavour==1.2.3" in logs


def test_scoring_script_loads_its_mlflow_model_from_azureml_model_dir(
        gateway: RunningGateway, tmp_path: Path) -> None:
    """sklearn-deployment-with-script.yaml's pattern; MLflow 3 refused the symlinked folder."""
    e = "mlflow-script"
    model = save_sklearn_model(tmp_path / "model")
    gateway.cli("online-endpoint", "create", "--name", e)
    gateway.cli("online-deployment", "create", "--name", "scripted", "--endpoint-name", e,
                "-f", str(deployment_yaml(tmp_path, model, "e2e-scripted", script=True)),
                "--all-traffic")
    request = tmp_path / "request.json"
    request.write_text(split_body(ROWS, COLUMNS))
    expected = pyfunc_predict(model, pd.DataFrame(ROWS, columns=COLUMNS)).tolist()
    assert invoke(gateway, e, request) == expected


def test_registered_mlflow_model_from_latest_without_a_script(gateway: RunningGateway,
                                                              tmp_path: Path) -> None:
    """Azure's MLflow rollout walk: `model create --type mlflow_model`, then a deployment of
    `azureml:name@latest` with no code_configuration; a custom_model so deployed is refused."""
    e = "heart-walk"
    model = save_sklearn_model(tmp_path / "model")
    gateway.cli("model", "create", "--name", "heart-classifier", "--type", "mlflow_model",
                "--path", str(model))
    deployment = tmp_path / "deployment.yml"
    deployment.write_text("name: blue\nendpoint_name: heart-walk\n"
                          "model: azureml:heart-classifier@latest\ninstance_count: 1\n")
    gateway.cli("online-endpoint", "create", "--name", e)
    gateway.cli("online-deployment", "create", "-f", str(deployment), "--all-traffic")
    shown = gateway.cli_json("online-deployment", "show", "--name", "blue", "--endpoint-name", e)
    assert (shown["model_ref"], shown["model_type"]) == ("azureml:heart-classifier:1",
                                                         "mlflow_model")
    request = tmp_path / "request.json"
    request.write_text(split_body(ROWS, COLUMNS))
    assert invoke(gateway, e, request) == pyfunc_predict(
        model, pd.DataFrame(ROWS, columns=COLUMNS)).tolist()

    gateway.cli("model", "create", "--name", "heart-custom", "--path", str(model))
    custom = tmp_path / "custom.yml"
    custom.write_text(deployment.read_text().replace("heart-classifier", "heart-custom")
                      .replace("name: blue", "name: green"))
    refused = gateway.cli("online-deployment", "create", "-f", str(custom), check=False)
    assert refused.returncode != 0
    assert "azureml:heart-custom:1 is a custom_model" in refused.stderr, refused.stderr
    assert gateway.cli("online-deployment", "show", "--name", "green", "--endpoint-name", e,
                       check=False).returncode != 0
