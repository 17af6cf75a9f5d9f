"""Which environment a deployment gets (Azure's precedence), and what `prepare` answers the
runtime: real builds (the session's uv cache) and registered environments in a real store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.environments import rows
from control_plane.environments.builder import Builder
from control_plane.environments.deployments import (
    FAILED,
    GATEWAY,
    READY,
    DeploymentEnvironments,
    Prepared,
)
from control_plane.environments.interpreters import Interpreter, PythonRequest
from control_plane.environments.registered import EnvironmentSpec
from control_plane.environments.service import EnvironmentService
from control_plane.errors import NotFound, ScoregateError
from control_plane.specs.resources import DeploymentSpec
from control_plane.store.sqlite_store import Store
from tests.support.processes import wait_until

SIX = "name: e\ndependencies:\n  - pip:\n    - six==1.16.0\n"
MLMODEL = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "home", extensions=(rows.STORE_EXTENSION,))
    yield store
    store.close()


@pytest.fixture
def registered(store: Store) -> EnvironmentService:
    return EnvironmentService(store)


@pytest.fixture
def environments(builder: Builder, registered: EnvironmentService,
                 installed: tuple[Interpreter, ...]) -> DeploymentEnvironments:
    return DeploymentEnvironments(builder, registered, interpreters=lambda: installed)


def deployment(name: str = "blue", **fields: object) -> DeploymentSpec:
    return DeploymentSpec(name, "ep", code_dir="/code", scoring_script="score.py",
                          **fields)  # type: ignore[arg-type]


def test_precedence_environment_then_mlflow_model_then_the_gateway(
        tmp_path: Path, environments: DeploymentEnvironments,
        registered: EnvironmentService) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text(MLMODEL)
    (model / "requirements.txt").write_text("six==1.15.0\n")
    conda = tmp_path / "conda.yml"
    conda.write_text("name: e\ndependencies:\n  - python=3.10\n  - pip:\n    - six==1.16.0\n")
    registered.create(EnvironmentSpec("six-env", None, SIX))

    inline = environments.request_for(deployment(model_path=str(model),
                                                 environment={"conda_file": str(conda)}))
    assert inline is not None and inline.requirements == ("six==1.16.0",)
    assert inline.python == PythonRequest(3, 10)
    reference = environments.request_for(deployment(model_path=str(model),
                                                    environment="azureml:six-env@latest"))
    assert reference is not None and reference.source == "azureml:six-env:1"
    from_model = environments.request_for(deployment(model_path=str(model)))
    assert from_model is not None and from_model.requirements == ("six==1.15.0",)
    assert environments.request_for(deployment()) is None
    assert environments.request_for(deployment(environment={"image": "mcr/x:1"})) is None
    assert environments.request_for(deployment(
        environment="azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:1")) is None
    with pytest.raises(NotFound, match="no environment named missing"):
        environments.request_for(deployment(environment="azureml:missing:1"))


def test_prepare_builds_once_and_answers_each_deployments_python(
        tmp_path: Path, environments: DeploymentEnvironments) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text(SIX)
    wanted = {"ep/blue": deployment(environment={"conda_file": str(conda)}),
              "ep/green": deployment("green", environment={"conda_file": str(conda)}),
              "ep/plain": deployment("plain"),
              "ep/far": deployment("far", urls=("http://127.0.0.1:1",))}
    prepared = environments.prepare(wanted)
    assert set(prepared.pythons) == {"ep/blue", "ep/green"} and not prepared.failed
    assert prepared.pythons["ep/blue"] == prepared.pythons["ep/green"]  # one key, one build
    blue = environments.status("ep/blue")
    assert blue is not None and blue.state == READY and blue.packages
    assert environments.status("ep/plain").state == GATEWAY  # type: ignore[union-attr]
    assert environments.in_use() == {blue.key}
    assert "Installed" in environments.build_log("ep/blue")

    del wanted["ep/blue"], wanted["ep/green"]
    environments.prepare(wanted)
    assert environments.status("ep/blue") is None and environments.in_use() == set()


def test_an_unbuildable_environment_fails_once_until_the_deployment_changes(
        tmp_path: Path, environments: DeploymentEnvironments, builder: Builder,
        installed: tuple[Interpreter, ...]) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text(SIX.replace("1.16.0", "999.0.0"))
    bad = deployment(environment={"conda_file": str(conda)})
    first = environments.prepare({"ep/blue": bad})
    assert "six==999.0.0" in first.failed["ep/blue"] and not first.pythons
    status = environments.status("ep/blue")
    assert status is not None and status.state == FAILED and status.message
    log = Path(status.log or "")
    built_at = log.stat().st_mtime_ns
    again = environments.prepare({"ep/blue": bad})
    assert again.failed == first.failed and log.stat().st_mtime_ns == built_at  # not rebuilt
    restarted = DeploymentEnvironments(builder, interpreters=lambda: installed)
    assert restarted.build_log("ep/blue") == ""  # nothing in memory: the spec finds the log
    assert "six==999.0.0" in restarted.build_log("ep/blue", spec=bad)
    assert restarted.build_log("ep/plain", spec=deployment("plain")) == ""

    conda.write_text(SIX)
    changed = bad.with_changes(description="pinned right")
    assert "ep/blue" in environments.prepare({"ep/blue": changed}).pythons


def test_build_false_leaves_missing_environments_pending(
        tmp_path: Path, environments: DeploymentEnvironments) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text(SIX.replace("1.16.0", "1.14.0"))
    wanted = {"ep/blue": deployment(environment={"conda_file": str(conda)})}
    pending = environments.prepare(wanted, build=False)
    assert pending.pending == {"ep/blue"} and not pending.pythons
    assert environments.status("ep/blue").phase == "waiting"  # type: ignore[union-attr]
    assert "ep/blue" in environments.prepare(wanted).pythons


def test_a_missing_minor_version_takes_the_nearest_newer_unless_strict(
        tmp_path: Path, builder: Builder, registered: EnvironmentService,
        gateway_python: Interpreter) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text("dependencies:\n  - python=3.7\n  - pip:\n    - six==1.16.0\n")
    wanted = {"ep/blue": deployment(environment={"conda_file": str(conda)})}
    only = (gateway_python,)
    lenient = DeploymentEnvironments(builder, registered, interpreters=lambda: only)
    assert "ep/blue" in lenient.prepare(wanted).pythons
    note = lenient.status("ep/blue").note  # type: ignore[union-attr]
    assert note and "Python 3.7 asked" in note and gateway_python.version_text in note
    strict = DeploymentEnvironments(builder, registered, strict=True, interpreters=lambda: only)
    failed = strict.prepare(wanted).failed["ep/blue"]
    assert "no Python 3.7 installed (strict" in failed


def test_a_build_in_progress_is_not_waited_for_by_another_caller(
        tmp_path: Path, environments: DeploymentEnvironments) -> None:
    conda = tmp_path / "conda.yml"
    conda.write_text(SIX.replace("1.16.0", "1.13.0"))
    wanted = {"ep/blue": deployment(environment={"conda_file": str(conda)})}
    first: list[Prepared] = []
    builder = threading.Thread(target=lambda: first.append(environments.prepare(wanted)))
    builder.start()
    try:
        wait_until(lambda: bool(list(environments.builder.root.glob(".build-*"))),
                   timeout=60, what="the first build to start")
        meanwhile = environments.prepare(wanted)  # another write: answers at once
        assert meanwhile.waiting == {"ep/blue"} and not meanwhile.pythons
        assert environments.prepare(wanted, build=False).waiting == {"ep/blue"}
    finally:
        builder.join(120)
    assert "ep/blue" in first[0].pythons
    assert environments.prepare(wanted).pythons == first[0].pythons


def test_an_inline_conda_file_is_captured_once_by_name_and_content(
        tmp_path: Path, environments: DeploymentEnvironments) -> None:
    conda = tmp_path / "env.yml"
    conda.write_text(SIX)
    spec = deployment(environment={"conda_file": str(conda), "image": "x:1"})
    stored = environments.capture(spec)
    copy = Path(stored.environment["conda_file"])
    assert copy.parent.parent == environments.conda_files and copy.name == "env.yml"
    assert copy.read_text() == SIX and stored.environment["image"] == "x:1"
    assert environments.capture(stored) == stored  # captured already: left alone
    assert environments.capture(spec) == stored  # the same file again: the same spec
    conda.unlink()  # the deployment no longer needs it
    assert environments.request_for(stored) is not None
    conda.write_text(SIX.replace("1.16.0", "1.15.0"))
    assert environments.capture(spec) != stored  # new content: a new copy


def test_a_bad_or_missing_conda_file_is_refused_at_capture_naming_it(
        tmp_path: Path, environments: DeploymentEnvironments) -> None:
    missing = tmp_path / "absent.yml"
    with pytest.raises(ScoregateError, match="absent.yml"):
        environments.capture(deployment(environment={"conda_file": str(missing)}))
    bad = tmp_path / "bad.yml"
    bad.write_text("dependencies:\n  - cudatoolkit=11\n")
    with pytest.raises(ScoregateError, match="bad.yml"):
        environments.capture(deployment(environment={"conda_file": str(bad)}))
    assert not environments.conda_files.exists()
    reference = deployment(environment="azureml:six-env@latest")
    assert environments.capture(reference) is reference
