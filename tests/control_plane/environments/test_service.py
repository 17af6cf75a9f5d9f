"""Registered environments over a real store (a SQLite file under the test's folder)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.environments import rows
from control_plane.environments.interpreters import PythonRequest
from control_plane.environments.registered import EnvironmentSpec, load_environment_file
from control_plane.environments.service import EnvironmentService
from control_plane.errors import ConfigError, Conflict, NotFound, ValidationError
from control_plane.store.sqlite_store import Store

CONDA = "name: e\ndependencies:\n  - python=3.10\n  - numpy=1.26.4\n  - pip:\n    - six==1.16.0\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "home", extensions=(rows.STORE_EXTENSION,))
    yield store
    store.close()


@pytest.fixture
def service(store: Store) -> EnvironmentService:
    return EnvironmentService(store)


def spec(name: str = "sklearn-env", version: str | None = None) -> EnvironmentSpec:
    return EnvironmentSpec(name, version, CONDA)


def test_environment_yaml_keeps_the_conda_content_and_the_image(tmp_path: Path) -> None:
    (tmp_path / "conda.yml").write_text(CONDA)
    (tmp_path / "env.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
        "name: docker-image-plus-conda-example\nimage: mcr.microsoft.com/azureml/"
        "openmpi4.1.0-ubuntu20.04\nconda_file: conda.yml\ndescription: d\ntags: {a: 1}\n")
    loaded = load_environment_file(tmp_path / "env.yml")
    assert loaded.conda_file == CONDA and loaded.version is None
    assert loaded.tags == {"a": "1"} and loaded.description == "d"
    assert loaded.image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
    assert loaded.not_applied == {"image": loaded.image}


@pytest.mark.parametrize(("text", "key"), [
    ("name: e\nconda_file: missing.yml\n", "conda_file"),
    ("name: e\nimage: x\n", "conda_file"),
    ("name: bad name\nconda_file: conda.yml\n", "name"),
    ("name: e\nconda_file: conda.yml\nvolumes: []\n", "volumes"),
    ("name: e\nconda_file: {dependencies: [mkl]}\n", "dependencies"),
])
def test_bad_environment_files_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "conda.yml").write_text(CONDA)
    (tmp_path / "env.yml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_environment_file(tmp_path / "env.yml")
    assert caught.value.key == key


def test_versions_in_order_and_an_existing_one_refused(service: EnvironmentService) -> None:
    assert service.create(spec()).version == "1"
    assert service.create(spec()).version == "2"
    assert service.create(spec(version="7")).version == "7"
    assert service.create(spec()).version == "8"
    with pytest.raises(Conflict, match="version 7 exists already.*to get 9"):
        service.create(spec(version="7"))
    assert [e.version for e in service.versions("sklearn-env")] == ["1", "2", "7", "8"]


def test_latest_is_the_highest_not_archived(service: EnvironmentService) -> None:
    for version in ("1", "2", "10"):
        service.create(spec(version=version))
    assert service.resolve("azureml:sklearn-env@latest").version == "10"
    service.archive("sklearn-env", "10")
    assert service.resolve("sklearn-env@latest").version == "2"
    assert service.resolve("azureml:sklearn-env:10").archived  # exact references still work
    assert [e.version for e in service.versions()] == ["1", "2"]
    assert len(service.versions(include_archived=True)) == 3
    service.archive("sklearn-env")
    with pytest.raises(NotFound, match="no version left that is not archived"):
        service.resolve("sklearn-env@latest")
    service.restore("sklearn-env", "10")
    assert service.resolve("sklearn-env@latest").version == "10"


def test_unknowns_name_what_exists(service: EnvironmentService) -> None:
    service.create(spec("alpha"))
    with pytest.raises(NotFound, match="no environment named beta; registered: alpha"):
        service.resolve("azureml:beta:1")
    with pytest.raises(NotFound, match="alpha has no version 3; it has 1"):
        service.show("alpha", "3")
    with pytest.raises(ValidationError, match="unknown label @stable"):
        service.resolve("alpha@stable")
    with pytest.raises(ValidationError, match="not an environment reference"):
        service.resolve("azureml:alpha:1:2")


def test_a_registered_environment_tells_what_to_build(service: EnvironmentService) -> None:
    request = service.request(service.create(spec()))
    assert request.python == PythonRequest(3, 10)
    assert request.requirements == ("numpy==1.26.4", "six==1.16.0")
    assert request.source == "azureml:sklearn-env:1"


def test_registrations_survive_reopening(tmp_path: Path) -> None:
    first = Store(tmp_path / "h", extensions=(rows.STORE_EXTENSION,))
    EnvironmentService(first).create(spec())
    first.close()
    again = Store(tmp_path / "h", extensions=(rows.STORE_EXTENSION,))
    try:
        assert EnvironmentService(again).show("sklearn-env").spec.conda_file == CONDA
    finally:
        again.close()


def test_archiving_or_restoring_an_unknown_name_is_not_found(service: EnvironmentService) -> None:
    """Inside the write transaction (reading the names again outside it deadlocked)."""
    service.create(spec("known"))
    for change in (service.archive, service.restore):
        with pytest.raises(NotFound, match="no environment named ghost; registered: known"):
            change("ghost")
