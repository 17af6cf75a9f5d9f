"""`--set/--add/--remove` change a YAML file's mapping before the schema validates it, as `az`
does (azureml-examples override placeholders such as `endpoint_name: <endpoint_name>`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import ConfigError
from control_plane.specs.loader import load_file
from control_plane.specs.model import load_model_file
from control_plane.specs.overrides import parse_add, parse_remove, parse_set
from control_plane.specs.resources import DeploymentSpec

PLACEHOLDERS = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: <endpoint_name>
model: azureml:<model_name>:<version>
code_configuration:
  code: code
  scoring_script: score.py
instance_type: Standard_DS3_v2
instance_count: 1
tags:
  team: a
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(raw): return raw\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(b"\0")
    (tmp_path / "deployment.yml").write_text(PLACEHOLDERS)
    return tmp_path


def test_placeholders_overridden_on_the_command_line_load(folder: Path) -> None:
    spec = load_file(folder / "deployment.yml", overrides=[
        parse_set("endpoint_name=my-endpoint"), parse_set("model=azureml:heart:3"),
        parse_set("instance_count=2"), parse_set("tags.build=007")])
    assert isinstance(spec, DeploymentSpec)
    assert (spec.endpoint_name, spec.model_ref, spec.instance_count) == (
        "my-endpoint", "azureml:heart:3", 2)
    assert spec.tags == {"team": "a", "build": "007"}  # values of text maps stay text


def test_without_the_override_the_placeholder_is_refused_with_its_line(folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(folder / "deployment.yml")
    assert caught.value.key == "endpoint_name" and caught.value.line == 3


def test_a_bad_overridden_value_names_the_key_not_a_line(folder: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(folder / "deployment.yml", overrides=[
            parse_set("endpoint_name=Not_Valid"), parse_set("model=azureml:m:1")])
    assert caught.value.key == "endpoint_name" and caught.value.line is None
    assert "not valid" in str(caught.value)


def test_add_and_remove(folder: Path) -> None:
    spec = load_file(folder / "deployment.yml", overrides=[
        parse_set("endpoint_name=e1x"), parse_set("model=m@latest"),
        parse_add("tags", "owner=me"), parse_remove("tags.team"),
        parse_set("environment_variables={\"A\": \"1\"}"),
        parse_add("environment_variables", "B=2")])
    assert isinstance(spec, DeploymentSpec)
    assert spec.tags == {"owner": "me"}
    assert spec.environment_variables == {"A": "1", "B": "2"}
    with pytest.raises(ConfigError, match="no such key to remove"):
        load_file(folder / "deployment.yml", overrides=[parse_remove("tags.nobody")])
    with pytest.raises(ConfigError, match="'name' holds str, not a mapping"):
        load_file(folder / "deployment.yml", overrides=[parse_set("name.x=1")])


def test_model_files_take_overrides_and_resolve_paths_against_their_folder(
        folder: Path) -> None:
    (folder / "sub").mkdir()
    model_file = folder / "sub" / "model.yml"
    model_file.write_text("$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json"
                          "\nname: heart\nversion: <version>\npath: ../model\n"
                          "type: mlflow_model\ntags: {k: 1}\n")
    body = load_model_file(model_file, overrides=[parse_set("version=4")])
    assert body == {"name": "heart", "version": "4", "path": str(folder / "model"),
                    "type": "mlflow_model", "tags": {"k": "1"}}
    model_file.write_text("name: heart\npath: ../model\nflavour: x\n")
    with pytest.raises(ConfigError) as caught:
        load_model_file(model_file)
    assert (caught.value.key, caught.value.line) == ("flavour", 3)
