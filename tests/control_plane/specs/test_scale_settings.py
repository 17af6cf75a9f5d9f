"""Azure's `scale_settings` in deployment YAML: read with Azure's defaults, every mistake named
by file, key and line (docs/autoscaling.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import ConfigError
from control_plane.specs.loader import load_file
from control_plane.specs.resources import DeploymentSpec, ScaleSettings
from tests.support.processes import REPO_ROOT

KUBERNETES = REPO_ROOT / "tests/data/azureml-examples/cli/endpoints/online/kubernetes"
HEAD = ("name: blue\nendpoint_name: my-endpoint\n"
        "code_configuration: {code: code, scoring_script: score.py}\n")


def _load(tmp_path: Path, text: str) -> DeploymentSpec:
    (tmp_path / "code").mkdir(exist_ok=True)
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    path = tmp_path / "blue.yml"
    path.write_text(HEAD + text)
    spec = load_file(path)
    assert isinstance(spec, DeploymentSpec)
    return spec


def test_azures_kubernetes_sample_loads_as_target_utilization() -> None:
    spec = load_file(KUBERNETES / "kubernetes-green-deployment.yml")
    assert isinstance(spec, DeploymentSpec)
    assert spec.scale_settings == ScaleSettings(min_instances=1, max_instances=3,
                                                polling_interval=10,
                                                target_utilization_percentage=70)
    assert "scale_settings" not in spec.not_applied and spec.instance_count == 1
    assert DeploymentSpec.from_dict(spec.to_dict()) == spec


def test_defaults_and_first_count(tmp_path: Path) -> None:
    spec = _load(tmp_path, "scale_settings: {type: target_utilization, min_instances: 2, "
                           "max_instances: 5}\n")
    assert spec.autoscaled and spec.instance_count == 2  # starts at the lower bound
    assert spec.scale_settings == ScaleSettings(min_instances=2, max_instances=5)
    zero = _load(tmp_path, "scale_settings: {type: target_utilization, min_instances: 0, "
                           "max_instances: 2}\ninstance_count: 2\n")
    assert zero.instance_count == 2 and zero.scale_settings is not None
    assert not _load(tmp_path, "scale_settings: {type: default}\n").autoscaled


@pytest.mark.parametrize(("text", "key", "line", "words"), [
    ("scale_settings:\n  type: target_utilization\n  min_instances: 3\n  max_instances: 2\n",
     "scale_settings.min_instances", 6, "above max_instances"),
    ("scale_settings:\n  type: target_utilization\n  polling_intervall: 2\n",
     "scale_settings.polling_intervall", 6, "did you mean 'polling_interval'"),
    ("scale_settings:\n  type: fast\n", "scale_settings.type", 5, "target_utilization"),
    ("scale_settings:\n  type: default\n  max_instances: 3\n", "scale_settings.max_instances", 6,
     "unknown key"),
    ("scale_settings:\n  type: target_utilization\n  target_utilization_percentage: 150\n",
     "scale_settings.target_utilization_percentage", 6, "from 1 to 100"),
    ("scale_settings:\n  type: target_utilization\n  scale_in_cooldown: -1\n",
     "scale_settings.scale_in_cooldown", 6, "from 0 to 86400"),
    ("scale_settings: {type: target_utilization, max_instances: 2}\ninstance_count: 3\n",
     "instance_count", 5, "first count: from max(1, min_instances) to max_instances (1 to 2)"),
])
def test_mistakes_name_file_key_and_line(tmp_path: Path, text: str, key: str, line: int,
                                         words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert raised.value.key == key and raised.value.line == line, str(raised.value)
    assert words in str(raised.value) and "blue.yml" in str(raised.value)


def test_external_servers_cannot_be_scaled(tmp_path: Path) -> None:
    path = tmp_path / "ext.yml"
    path.write_text("name: blue\nendpoint_name: my-endpoint\nurl: http://127.0.0.1:9/score\n"
                    "scale_settings: {type: target_utilization, max_instances: 2}\n")
    with pytest.raises(ConfigError, match="cannot be scaled"):
        load_file(path)
