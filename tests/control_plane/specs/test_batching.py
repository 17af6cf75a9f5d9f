"""The deployment's `batching:` block: loaded, validated (file, key, line), stored, launched."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import ConfigError, ValidationError
from control_plane.instances.launch import instance_env
from control_plane.specs.diff import describe_changes
from control_plane.specs.loader import load_file
from control_plane.specs.resources import BatchingSettings, DeploymentSpec, RequestSettings
from control_plane.specs.validation import validate_deployment

BASE = """\
name: blue
endpoint_name: my-endpoint
code_configuration:
  code: code
  scoring_script: score.py
request_settings:
  max_concurrent_requests_per_instance: 16
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "score.py").write_text("def init(): pass\ndef run(raw): return raw\n")
    return tmp_path


def _load(folder: Path, text: str) -> DeploymentSpec:
    path = folder / "blue.yml"
    path.write_text(text)
    spec = load_file(path)
    assert isinstance(spec, DeploymentSpec)
    return spec


def _line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_the_block_is_read_defaults_fill_it_and_absent_means_off(folder: Path) -> None:
    assert _load(folder, BASE).batching is None
    assert _load(folder, BASE + "batching: null\n").batching is None
    spec = _load(folder, BASE + "batching:\n  max_batch_size: 32\n  max_latency_ms: 5\n")
    assert spec.batching == BatchingSettings(32, 5)
    assert _load(folder, BASE + "batching: {max_batch_size: 8}\n").batching == \
        BatchingSettings(8, 10)
    assert DeploymentSpec.from_dict(spec.to_dict()) == spec  # as the store keeps it
    assert spec.to_dict()["batching"] == {"max_batch_size": 32, "max_latency_ms": 5}


@pytest.mark.parametrize("block, key, words", [
    ("batching: 32", "batching", "must hold a mapping"),
    ("batching: {max_batch: 32}", "batching.max_batch", "did you mean 'max_batch_size'"),
    ("batching: {max_batch_size: two}", "batching.max_batch_size", "whole number"),
    ("batching: {max_batch_size: 0}", "batching.max_batch_size", "from 1 to 1024"),
    ("batching: {max_batch_size: 1025}", "batching.max_batch_size", "from 1 to 1024"),
    ("batching: {max_batch_size: true}", "batching.max_batch_size", "whole number"),
    ("batching: {max_latency_ms: 0}", "batching.max_latency_ms", "from 1 to 1000"),
    ("batching: {max_latency_ms: 2.5}", "batching.max_latency_ms", "whole number"),
    ("batching: {max_batch_size: 33}", "batching.max_batch_size",
     "max_concurrent_requests_per_instance to at least 17"),
])
def test_bad_values_name_file_key_and_line(folder: Path, block: str, key: str,
                                           words: str) -> None:
    text = BASE + block + "\n"
    with pytest.raises(ConfigError) as caught:
        _load(folder, text)
    error = caught.value
    assert error.key == key and words in str(error), str(error)
    assert error.file.endswith("blue.yml")
    assert error.line == _line_of(text, "batching")


def test_the_latency_must_stay_below_the_request_timeout(folder: Path) -> None:
    text = BASE.replace("request_settings:\n", "request_settings:\n  request_timeout_ms: 500\n")
    text += "batching:\n  max_batch_size: 4\n  max_latency_ms: 500\n"
    with pytest.raises(ConfigError) as caught:
        _load(folder, text)
    assert caught.value.key == "batching.max_latency_ms"
    assert "(rule: batching-latency)" in str(caught.value)
    assert caught.value.line == _line_of(text, "max_latency_ms")


def test_external_deployments_cannot_batch(tmp_path: Path) -> None:
    text = "name: ext\nendpoint_name: my-endpoint\nurl: http://127.0.0.1:1/score\n" \
           "batching: {max_batch_size: 2}\n"
    with pytest.raises(ConfigError, match="batching-external"):
        _load(tmp_path, text)


@pytest.mark.parametrize("batching, rule", [
    (BatchingSettings(0, 10), "batching"),
    (BatchingSettings(8, 1001), "batching"),
    (BatchingSettings("8", 10), "batching"),  # type: ignore[arg-type]  # as decoded JSON may be
    (BatchingSettings(8, 10), "batching-concurrency"),
    (BatchingSettings(2, 5000), "batching"),
])
def test_validate_deployment_names_the_rule(batching: BatchingSettings, rule: str) -> None:
    spec = DeploymentSpec("blue", "my-endpoint", batching=batching)
    with pytest.raises(ValidationError) as caught:
        validate_deployment(spec)
    assert caught.value.rule == rule


def test_instances_get_the_setting_and_a_change_is_described(tmp_path: Path) -> None:
    plain = DeploymentSpec("blue", "my-endpoint",
                           request_settings=RequestSettings(5000, 4))
    batched = plain.with_changes(batching=BatchingSettings(8, 5))
    validate_deployment(batched)
    assert instance_env(batched, tmp_path, base={})["SCOREGATE_BATCHING"] == "8,5"
    assert "SCOREGATE_BATCHING" not in instance_env(plain, tmp_path, base={})
    assert describe_changes(plain.to_dict(), batched.to_dict()) == \
        "batching None → {'max_batch_size': 8, 'max_latency_ms': 5}"
