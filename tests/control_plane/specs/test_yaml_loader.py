from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control_plane.errors import ConfigError
from control_plane.specs.loader import (
    describe_not_applied,
    load_deployment_text,
    load_endpoint_text,
    load_file,
    load_folder,
    load_text,
)
from control_plane.specs.resources import (
    DeploymentSpec,
    EndpointSpec,
    ProbeSettings,
    RequestSettings,
)
from control_plane.specs.schema import (
    DEPLOYMENT_CLOUD_KEYS,
    DEPLOYMENT_KEYS,
    ENDPOINT_CLOUD_KEYS,
    ENDPOINT_KEYS,
    deployment_from_mapping,
    endpoint_from_mapping,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "azureml-examples"
ONLINE = EXAMPLES / "cli" / "endpoints" / "online"

DEPLOYMENT = """\
name: blue
endpoint_name: my-endpoint
model:
  path: model/
code_configuration:
  code: code
  scoring_script: score.py
instance_type: Standard_DS3_v2
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A deployment's files: code/score.py and model/model.pkl beside the YAML."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(raw): return raw\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(b"\0")
    return tmp_path


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def line_of(content: str, needle: str) -> int:
    """The 1-based line where `needle` first appears, so tests never hard-code line numbers."""
    for number, line in enumerate(content.splitlines(), start=1):
        if needle in line:
            return number
    raise LookupError(needle)


def refused(call: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    return caught.value


def refused_file(folder: Path, content: str, name: str = "blue.yml") -> ConfigError:
    path = write(folder, name, content)
    error = refused(lambda: load_file(path))
    assert error.file == str(path) and str(path) in str(error)
    return error


# --- azureml-examples files load unchanged ------------------------------------------------

LOADABLE = {
    "managed/sample/endpoint.yml": ("endpoint", "my-endpoint"),
    "managed/sample/blue-deployment.yml": ("deployment", "blue"),
    "managed/sample/green-deployment.yml": ("deployment", "green"),
    "managed/sample/blue-deployment-with-curated-env.yml": ("deployment", "blue"),
    "kubernetes/kubernetes-endpoint.yml": ("endpoint", "my-endpoint"),
    "kubernetes/kubernetes-blue-deployment.yml": ("deployment", "blue"),
    "kubernetes/kubernetes-green-deployment.yml": ("deployment", "green"),
    "mlflow/create-endpoint.yaml": ("endpoint", "my-endpoint"),
    "mlflow/sklearn-deployment-with-script.yaml": ("deployment", "sklearn-deployment-script"),
}


@pytest.mark.parametrize("relative", sorted(LOADABLE))
def test_azureml_examples_load_unchanged(relative: str) -> None:
    kind, name = LOADABLE[relative]
    spec = load_file(ONLINE / relative)
    assert isinstance(spec, EndpointSpec if kind == "endpoint" else DeploymentSpec)
    assert spec.name == name
    if isinstance(spec, DeploymentSpec):
        assert spec.endpoint_name == "my-endpoint"
        for path in (spec.model_path, spec.code_dir):
            assert path is not None and os.path.isabs(path) and os.path.exists(path)
        assert spec.scoring_script and os.path.isfile(os.path.join(spec.code_dir or "",
                                                                   spec.scoring_script))


def test_sample_blue_deployment_fields_and_not_applied() -> None:
    spec = load_file(ONLINE / "managed/sample/blue-deployment.yml")
    assert isinstance(spec, DeploymentSpec)
    assert spec.model_path == str(ONLINE / "model-1" / "model")  # trailing slash dropped
    assert spec.code_dir == str(ONLINE / "model-1" / "onlinescoring")
    assert spec.not_applied["instance_type"] == "Standard_DS3_v2"
    assert "environment.conda_file" not in spec.not_applied  # built into its environment
    assert spec.environment["conda_file"] == str(ONLINE / "model-1/environment/conda.yaml")
    [line] = describe_not_applied(spec)
    assert line.startswith("deployment my-endpoint/blue: not applied here: ")
    assert "instance_type=Standard_DS3_v2" in line and "environment.image=mcr." in line
    assert "$schema" not in line


def test_kubernetes_sample_settings_apply_and_cloud_keys_do_not() -> None:
    spec = load_file(ONLINE / "kubernetes/kubernetes-blue-deployment.yml")
    assert isinstance(spec, DeploymentSpec)
    assert spec.request_settings == RequestSettings(3000, 1)
    assert spec.liveness_probe == ProbeSettings(5, 5, 10, 1, 1) == spec.readiness_probe
    assert spec.tags == {"tag1": "deployment-tag1-value"}
    assert spec.not_applied["request_settings.max_queue_wait_ms"] == 3000
    assert spec.not_applied["resources"]["limits"]["memory"] == "200Mi"
    assert "type" in spec.not_applied and spec.scale_settings is None  # type: default
    endpoint = load_file(ONLINE / "kubernetes/kubernetes-endpoint.yml")
    assert isinstance(endpoint, EndpointSpec)
    assert endpoint.auth_mode == "key"  # written `Key` there; the Azure CLI accepts it
    assert endpoint.not_applied == {"compute": "azureml:inferencecompute"}


def test_registered_model_references_are_kept_for_the_registry_to_resolve() -> None:
    spec = load_file(ONLINE / "managed/sample/blue-deployment-with-registered-assets.yml")
    assert isinstance(spec, DeploymentSpec)
    assert (spec.model_ref, spec.model_path) == ("azureml:my-model:1", None)


def test_inline_models_carry_the_name_and_version_they_register_as(folder: Path) -> None:
    named = DEPLOYMENT.replace("path: model/", "path: model/\n  name: m\n  version: 3\n"
                               "  type: custom_model")
    spec = load_text(named, "d.yml", folder)
    assert isinstance(spec, DeploymentSpec)
    assert (spec.model_ref, spec.model_type) == ("azureml:m:3", "custom_model")
    assert spec.model_path == str(folder / "model")
    anonymous = load_text(DEPLOYMENT, "d.yml", folder)
    assert isinstance(anonymous, DeploymentSpec) and anonymous.model_ref is None


@pytest.mark.parametrize("relative, name, folder, ref", [
    ("ncd/sklearn-deployment.yaml", "sklearn-deployment", "ncd/sklearn-diabetes/model",
     "azureml:mir-sample-sklearn-ncd-model:2"),
    ("ncd/lightgbm-deployment.yaml", "lightgbm-deployment", "ncd/lightgbm-iris/model",
     "azureml:mir-sample-lightgbm-ncd-model:3"),
])
def test_ncd_samples_load_as_mlflow_deployments_without_a_script(relative: str, name: str,
                                                                 folder: str, ref: str) -> None:
    spec = load_file(ONLINE / relative)
    assert isinstance(spec, DeploymentSpec)
    assert (spec.name, spec.endpoint_name) == (name, "my-endpoint")
    assert spec.model_path == str(ONLINE / folder) and spec.model_type == "mlflow_model"
    assert spec.code_dir is None and spec.scoring_script is None and spec.serves_mlflow_model
    assert spec.model_ref == ref and "instance_type" in spec.not_applied
    assert "model.type" not in spec.not_applied  # applied: it decides what serves the model
    assert DeploymentSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_mlflow_model_with_a_script_is_served_by_the_script() -> None:
    spec = load_file(ONLINE / "mlflow/sklearn-deployment-with-script.yaml")
    assert isinstance(spec, DeploymentSpec) and spec.model_type == "mlflow_model"
    assert spec.code_dir is not None and not spec.serves_mlflow_model


def test_model_type_is_none_unless_said_and_takes_any_case(folder: Path) -> None:
    spec = load_file(write(folder, "blue.yml", DEPLOYMENT))
    assert isinstance(spec, DeploymentSpec) and spec.model_type is None
    spec = load_file(write(folder, "blue.yml", DEPLOYMENT.replace(
        "path: model/", "path: model/\n  type: MLflow_Model")))
    assert isinstance(spec, DeploymentSpec) and spec.model_type == "mlflow_model"


def test_unknown_model_type_is_refused_with_its_line(folder: Path) -> None:
    text = DEPLOYMENT.replace("path: model/", "path: model/\n  type: pickle")
    error = refused_file(folder, text)
    assert error.key == "model.type" and error.line == line_of(text, "type: pickle")
    assert "custom_model, mlflow_model, triton_model" in str(error) and "'pickle'" in str(error)


def test_mlflow_model_without_mlmodel_and_without_script_is_refused(folder: Path) -> None:
    text = DEPLOYMENT.split("code_configuration")[0] + "  type: mlflow_model\n"
    error = refused_file(folder, text)
    assert error.key == "model.path" and error.line == line_of(text, "path: model/")
    assert "holds no MLmodel file" in str(error)
    (folder / "model" / "MLmodel").write_text("flavors: {}\n")
    spec = load_file(write(folder, "blue.yml", text))
    assert isinstance(spec, DeploymentSpec) and spec.serves_mlflow_model


@pytest.mark.parametrize("model_type, expected", [
    ("custom_model", "code_configuration {code, scoring_script} is required"),
    ("triton_model", "deployments of a triton_model without a scoring script are not "
                     "supported yet"),
])
def test_other_models_still_need_a_script(folder: Path, model_type: str, expected: str) -> None:
    text = DEPLOYMENT.split("code_configuration")[0] + f"  type: {model_type}\n"
    assert expected in str(refused_file(folder, text))


def test_a_reference_without_a_script_loads_and_its_type_decides_later(folder: Path) -> None:
    """Azure's MLflow walk deploys `model: azureml:heart-classifier@latest` with no code: the
    registered version's type is checked when the registry binds it (validation.py)."""
    text = DEPLOYMENT.split("model:")[0] + "model: azureml:heart-classifier@latest\n"
    spec = load_file(write(folder, "blue.yml", text))
    assert isinstance(spec, DeploymentSpec) and spec.code_dir is None
    assert (spec.model_ref, spec.model_path, spec.model_type) == (
        "azureml:heart-classifier@latest", None, None)


# --- defaults, paths, external servers --------------------------------------------------------

def test_defaults_are_azures(folder: Path) -> None:
    spec = load_file(write(folder, "blue.yml", DEPLOYMENT))
    assert isinstance(spec, DeploymentSpec)
    assert spec.instance_count == 1
    assert spec.request_settings == RequestSettings(5000, 1)
    assert spec.liveness_probe == ProbeSettings(10, 10, 2, 1, 30) == spec.readiness_probe
    assert spec.urls == () and spec.environment_variables == {} and spec.environment is None


def test_relative_paths_resolve_against_the_yaml_folder(
        folder: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    nested = folder / "deploy"
    nested.mkdir()
    text = DEPLOYMENT.replace("path: model/", "path: ../model").replace("code: code",
                                                                        "code: ../code")
    spec = load_file(write(nested, "blue.yml", text))
    assert isinstance(spec, DeploymentSpec)
    assert spec.model_path == str(folder / "model") and spec.code_dir == str(folder / "code")


def test_symlinked_model_folder_keeps_its_written_name(folder: Path) -> None:
    """AZUREML_MODEL_DIR/<folder name> must be the name the YAML wrote, not the link target."""
    (folder / "v3").mkdir()
    (folder / "current").symlink_to(folder / "v3")
    spec = load_file(write(folder, "blue.yml", DEPLOYMENT.replace("model/", "current")))
    assert isinstance(spec, DeploymentSpec) and spec.model_path == str(folder / "current")


def test_model_as_plain_path_string(folder: Path) -> None:
    spec = load_file(write(folder, "blue.yml",
                           DEPLOYMENT.replace("model:\n  path: model/", "model: model/model.pkl")))
    assert isinstance(spec, DeploymentSpec)
    assert spec.model_path == str(folder / "model" / "model.pkl")


@pytest.mark.parametrize("given_urls, expected", [
    ("url: http://127.0.0.1:8080", ("http://127.0.0.1:8080/score",)),
    ("url: https://models.example/v1/models/m:predict",
     ("https://models.example/v1/models/m:predict",)),
    ("urls: [http://127.0.0.1:1/a, 'http://[::1]:2']",
     ("http://127.0.0.1:1/a", "http://[::1]:2/score")),
])
def test_external_urls_need_no_code(tmp_path: Path, given_urls: str,
                                    expected: tuple[str, ...]) -> None:
    text = f"name: ext\nendpoint_name: my-endpoint\n{given_urls}\ninstance_count: 3\n"
    spec = load_file(write(tmp_path, "ext.yml", text))
    assert isinstance(spec, DeploymentSpec)
    assert spec.urls == expected and spec.is_external and spec.code_dir is None
    assert spec.not_applied["instance_count"] == 3


@pytest.mark.parametrize("given_urls, key, words", [
    ("url: ftp://host/x", "url", "http"),
    ("url: http://", "url", "host"),
    ("url: http://h:99999", "url", "not a valid URL"),
    ("url: http://h/score?x=1", "url", "query"),
    ("urls: []", "urls", "list"),
    ("urls: [http://h:1, 7]", "urls[1]", "URL"),
    ("url: http://h:1\nurls: [http://h:2]", "urls", "not both"),
    ("url: http://h:1\ncode_configuration: {code: ., scoring_script: x.py}",
     "code_configuration", "not both"),
])
def test_bad_external_urls(tmp_path: Path, given_urls: str, key: str, words: str) -> None:
    text = f"name: ext\nendpoint_name: my-endpoint\n{given_urls}\n"
    error = refused_file(tmp_path, text)
    assert error.key == key and words in str(error)
    assert error.line == line_of(text, key.split("[")[0] + ":")


def test_environment_forms(folder: Path) -> None:
    text = DEPLOYMENT + "environment: azureml:my-env:1\nenvironment_variables: {A: 1, B: false}\n"
    spec = load_file(write(folder, "blue.yml", text))
    assert isinstance(spec, DeploymentSpec)
    assert spec.environment == "azureml:my-env:1" and "environment" not in spec.not_applied
    assert spec.environment_variables == {"A": "1", "B": "false"}
    assert not any("environment" in line for line in describe_not_applied(spec))
    curated = DEPLOYMENT + "environment: azureml:AzureML-sklearn-1.0:1\n"
    (folder / "curated.yml").write_text(curated)
    spec = load_file(folder / "curated.yml")
    assert "environment=azureml:AzureML-sklearn-1.0:1" in describe_not_applied(spec)[0]


def test_fully_applied_spec_has_no_not_applied_line(folder: Path) -> None:
    text = DEPLOYMENT.replace("instance_type: Standard_DS3_v2\n", "")
    spec = load_file(write(folder, "blue.yml", text))
    assert spec.not_applied == {} and describe_not_applied(spec) == []


def test_cli_flags_override_names(folder: Path) -> None:
    text = "\n".join(line for line in DEPLOYMENT.splitlines() if "name:" not in line)
    spec = load_file(write(folder, "blue.yml", text), name="green", endpoint_name="other-ep")
    assert isinstance(spec, DeploymentSpec)
    assert (spec.name, spec.endpoint_name) == ("green", "other-ep")
    endpoint = load_endpoint_text("auth_mode: aml_token\n", "body", folder, name="my-ep")
    assert (endpoint.name, endpoint.auth_mode) == ("my-ep", "aml_token")


def test_kind_from_schema_keys_or_caller(folder: Path) -> None:
    minimal = load_file(write(folder, "endpoint.yml", "name: my-endpoint\n"))
    assert isinstance(minimal, EndpointSpec) and minimal.auth_mode == "key"
    text = "$schema: https://x/managedOnlineDeployment.schema.json\nname: my-endpoint\n"
    error = refused_file(folder, text)  # the schema says deployment: endpoint_name is missing
    assert error.key == "endpoint_name" and "required" in str(error)
    forced = refused(lambda: load_file(folder / "endpoint.yml", kind="deployment"))
    assert forced.key == "endpoint_name"
    external = load_file(write(folder, "ext.yml", "name: ext\nurl: http://h:1\n"),
                         endpoint_name="my-endpoint")
    assert isinstance(external, DeploymentSpec) and external.endpoint_name == "my-endpoint"


def test_json_bodies_share_rules_and_messages(folder: Path) -> None:
    body: dict[str, Any] = yaml.safe_load(DEPLOYMENT)
    spec = deployment_from_mapping(body, "request body", folder)
    assert spec == load_deployment_text(json.dumps(body), "request body", folder)
    body["request_settings"] = {"request_timeout_ms": "slow"}
    error = refused(lambda: deployment_from_mapping(body, "request body", folder))
    assert str(error).startswith("request body: key 'request_settings.request_timeout_ms'")
    assert error.line is None
    endpoint = endpoint_from_mapping({"name": "my-ep", "traffic": {"blue": 100}}, "body", folder)
    assert endpoint.traffic == {"blue": 100}


# --- every error kind names the file, the key and the line -------------------------------------

@pytest.mark.parametrize("change, key, words", [
    (("instance_type:", "instance_cout: 2\ninstance_type:"), "instance_cout",
     "did you mean 'instance_count'"),
    (("instance_type:", "request_settings:\n  request_timout_ms: 10\ninstance_type:"),
     "request_settings.request_timout_ms", "did you mean 'request_timeout_ms'"),
    (("instance_type:", "liveness_probe: {periodd: 3}\ninstance_type:"),
     "liveness_probe.periodd", "did you mean 'period'"),
    (("instance_type:", "instance_count: two\ninstance_type:"), "instance_count",
     "expected a whole number, got 'two'"),
    (("instance_type:", "instance_count: 0\ninstance_type:"), "instance_count", "at least 1"),
    (("instance_type:", "request_settings: {request_timeout_ms: 180001}\ninstance_type:"),
     "request_settings.request_timeout_ms", "from 1 to 180000"),
    (("instance_type:", "readiness_probe: {timeout: true}\ninstance_type:"),
     "readiness_probe.timeout", "whole number"),
    (("instance_type:", "tags: [a, b]\ninstance_type:"), "tags", "mapping"),
    (("instance_type:", "environment_variables: {A: [1]}\ninstance_type:"),
     "environment_variables.A", "text or a number"),
    (("instance_type:", "environment: {image: x, imagee: y}\ninstance_type:"),
     "environment.imagee", "did you mean 'image'"),
    (("instance_type:", "environment: 12\ninstance_type:"), "environment", "mapping"),
    (("code: code", "code: missing"), "code_configuration.code", "does not exist"),
    (("score.py", "nope.py"), "code_configuration.scoring_script", "does not exist"),
    (("path: model/", "path: gone/"), "model.path", "does not exist"),
    (("path: model/", "name: m"), "model", "model.path is required"),
    (("path: model/", "path: model/\n  type: onnx"), "model.type", "mlflow_model"),
    (("path: model/", "path: model/\n  version: 2"), "model.version", "needs a name"),
    (("path: model/", "path: azureml://datastores/x/paths/m"), "model.path", "not supported yet"),
    (("name: blue", "name: Blue_1"), "name", "not valid"),
    (("endpoint_name: my-endpoint", "endpoint_name: <ENDPOINT_NAME>"), "endpoint_name",
     "not valid"),
])
def test_deployment_errors_name_file_key_and_line(folder: Path, change: tuple[str, str], key: str,
                                                  words: str) -> None:
    text = DEPLOYMENT.replace(*change, 1)
    error = refused_file(folder, text)
    assert error.key == key, str(error)
    assert words in str(error) and f"key '{key}'" in str(error)
    assert error.line == line_of(text, key.rsplit(".", 1)[-1] + ":"), str(error)
    assert str(error).startswith(f"{error.file}:{error.line}: ")


def test_duplicate_keys_are_refused_at_the_second(folder: Path) -> None:
    text = DEPLOYMENT.replace("instance_type:", "request_settings: {}\nrequest_settings: {}\n"
                                                "instance_type:")
    error = refused_file(folder, text)
    assert error.key == "request_settings" and "appears twice" in str(error)
    assert error.line == line_of(text, "request_settings:") + 1


def test_code_configuration_missing(folder: Path) -> None:
    text = "name: blue\nendpoint_name: my-endpoint\nmodel: {path: model}\n"
    error = refused_file(folder, text)
    assert "code_configuration" in str(error) and "url" in str(error)


@pytest.mark.parametrize("content, key, words", [
    ("name: my-ep\nauth_mode: aad_token\n", "auth_mode", "not supported yet"),
    ("name: my-ep\nauth_mode: password\n", "auth_mode", "key, aml_token"),
    ("name: my-ep\ntraffic: {blue: 90}\n", "traffic", "total 0 or 100"),
    ("name: my-ep\ntraffic: {blue: 90.5, green: 10}\n", "traffic.blue", "whole number"),
    ("name: my-ep\nmirror_traffic: {green: 60}\n", "mirror_traffic", "at most 50"),
    ("name: my-ep\ntraffic: {green: 100}\nmirror_traffic: {green: 10}\n", "traffic",
     "live traffic"),
    ("name: my-ep\nauth_mode: key\nidentityy: {type: system_assigned}\n", "identityy",
     "did you mean 'identity'"),
    ("name: x\nauth_mode: key\n", "name", "not valid"),
])
def test_endpoint_errors(tmp_path: Path, content: str, key: str, words: str) -> None:
    error = refused_file(tmp_path, content, "endpoint.yml")
    assert error.key == key and words in str(error), str(error)
    assert error.line == line_of(content, key.rsplit(".", 1)[-1] + ":")


@pytest.mark.parametrize("content, words", [
    ("name: blue\nmodel: [unclosed\n", "not valid YAML"),
    ("name: blue\n  endpoint_name: x\n", "not valid YAML"),
    ("a: 2024-13-45\n", "not valid YAML"),
    ("", "is empty"),
    ("- just\n- a list\n", "mapping"),
    ("name: model-env\ndependencies: [python=3.11]\n", "neither"),
    ("$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json\nname: m\n",
     "not an online endpoint or online deployment schema"),
    ("---\nname: a\n---\nname: b\n", "not valid YAML"),
    ("a: &a [*a]\n", "nested too deeply"),
])
def test_unusable_files(tmp_path: Path, content: str, words: str) -> None:
    error = refused_file(tmp_path, content)
    assert words in str(error), str(error)


def test_syntax_error_line_comes_from_the_parser(tmp_path: Path) -> None:
    content = "name: blue\nendpoint_name: my-endpoint\nmodel: {path: x\ninstance_count: 1\n"
    error = refused_file(tmp_path, content)
    assert error.line is not None and error.line >= line_of(content, "model:")


def test_unreadable_files(tmp_path: Path) -> None:
    assert "cannot read" in str(refused(lambda: load_file(tmp_path / "missing.yml")))
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert "not UTF-8" in str(refused(lambda: load_file(binary)))


# --- folders ----------------------------------------------------------------------------------

def test_load_folder_sorted_and_ignores_other_files(folder: Path) -> None:
    write(folder, "b-green.yaml", DEPLOYMENT.replace("name: blue", "name: green"))
    write(folder, "a-blue.yml", DEPLOYMENT)
    write(folder, "endpoint.yml", "name: my-endpoint\nauth_mode: key\n")
    write(folder, "sample-request.json", '{"data": [[1]]}')
    write(folder, "notes.txt", "not yaml: [")
    endpoints, deployments = load_folder(folder)
    assert [e.name for e in endpoints] == ["my-endpoint"]
    assert [d.name for d in deployments] == ["blue", "green"]


def test_load_folder_of_the_azure_sample() -> None:
    endpoints, deployments = load_folder(ONLINE / "kubernetes")
    assert [e.name for e in endpoints] == ["my-endpoint"]
    assert [d.name for d in deployments] == ["blue", "green"]


def test_load_folder_names_the_bad_file(folder: Path) -> None:
    write(folder, "a-blue.yml", DEPLOYMENT)
    conda = write(folder, "conda.yml", "name: model-env\ndependencies: [python=3.11]\n")
    error = refused(lambda: load_folder(folder))
    assert error.file == str(conda)


def test_load_folder_refuses_the_same_deployment_twice(folder: Path) -> None:
    first = write(folder, "a.yml", DEPLOYMENT)
    second = write(folder, "b.yml", DEPLOYMENT)
    error = refused(lambda: load_folder(folder))
    assert error.file == str(second) and str(first) in str(error)


def test_load_folder_needs_yaml(tmp_path: Path) -> None:
    assert "no endpoint or deployment YAML" in str(refused(lambda: load_folder(tmp_path)))
    assert "not a folder" in str(refused(lambda: load_folder(tmp_path / "nothing")))


# --- only ConfigError ever comes out ------------------------------------------------------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 300_000), st.floats(),
                    st.text(max_size=12), st.sampled_from(["model", "code", "score.py",
                                                           "azureml:m:1", "http://h:1"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(
        ["path", "code", "scoring_script", "request_timeout_ms", "image", "period"])),
        inner, max_size=4)), max_leaves=12)
DEPLOYMENT_DATA = st.dictionaries(
    st.sampled_from(sorted(DEPLOYMENT_KEYS | DEPLOYMENT_CLOUD_KEYS) + ["x"]), VALUES, max_size=8)
ENDPOINT_DATA = st.dictionaries(
    st.sampled_from(sorted(ENDPOINT_KEYS | ENDPOINT_CLOUD_KEYS) + ["x"]), VALUES, max_size=6)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def only_config_errors(call: Callable[[], object]) -> None:
    try:
        call()
    except ConfigError as error:
        assert str(error) and error.file
    # any other exception fails the test


@FUZZ
@given(data=DEPLOYMENT_DATA)
def test_random_deployment_mappings_give_only_config_errors(folder: Path,
                                                           data: dict[str, Any]) -> None:
    only_config_errors(lambda: deployment_from_mapping(data, "fuzz", folder))
    only_config_errors(lambda: load_text(yaml.safe_dump(data), "fuzz.yml", folder))


@FUZZ
@given(data=ENDPOINT_DATA)
def test_random_endpoint_mappings_give_only_config_errors(folder: Path,
                                                         data: dict[str, Any]) -> None:
    only_config_errors(lambda: endpoint_from_mapping(data, "fuzz", folder))


@FUZZ
@given(content=st.text(max_size=200))
def test_random_text_gives_only_config_errors(folder: Path, content: str) -> None:
    only_config_errors(lambda: load_text(content, "fuzz.yml", folder))


@FUZZ
@given(position=st.integers(0, 10_000), insert=st.text(max_size=3), cut=st.integers(0, 4))
def test_damaged_sample_files_give_only_config_errors(position: int, insert: str,
                                                      cut: int) -> None:
    path = ONLINE / "kubernetes/kubernetes-blue-deployment.yml"
    original = path.read_text()
    at = position % len(original)
    damaged = original[:at] + insert + original[at + cut:]
    only_config_errors(lambda: load_text(damaged, str(path), path.parent))
