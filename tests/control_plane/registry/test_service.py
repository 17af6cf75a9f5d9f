"""ModelRegistry on a real store and real files: versions, labels, archive rules, conflicts,
durability against source changes, download, delete, ETags."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from control_plane.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from control_plane.registry import STORE_EXTENSION, ModelRegistry
from control_plane.registry.artifacts import tree_digest
from control_plane.store.sqlite_store import Store
from tests.control_plane.registry.conftest import make_model

FILES = {"MLmodel": b"flavors: {}\n", "model.pkl": b"weights" * 100}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "src" / "model", FILES)


def versions(registry: ModelRegistry, name: str, **kwargs: bool) -> list[int]:
    return [r.spec.version for r in registry.list(name, **kwargs)]


def test_versions_are_assigned_in_order_per_name(registry: ModelRegistry, model: Path) -> None:
    assert [registry.create("a", model).spec.version for _ in range(3)] == [1, 2, 3]
    assert registry.create("b", model).spec.version == 1
    assert registry.create("a", model, version=10).spec.version == 10
    assert registry.create("a", model).spec.version == 11
    assert versions(registry, "a") == [11, 10, 3, 2, 1]


def test_archived_versions_count_when_assigning(registry: ModelRegistry, model: Path) -> None:
    registry.create("a", model)
    registry.create("a", model)
    registry.archive("a", 2)
    assert registry.create("a", model).spec.version == 3


def test_an_existing_explicit_version_is_refused_naming_the_versions(
        registry: ModelRegistry, model: Path, home: Path) -> None:
    registry.create("a", model)
    registry.create("a", model, version="2")
    registry.archive("a", 1)
    with pytest.raises(Conflict) as caught:
        registry.create("a", model, version=2, description="other")
    assert caught.value.message == (
        "model a version 2 exists already (versions: 1, 2 (archived: 1)); a registered version "
        "never changes: leave the version out to create version 3, or update the description, "
        "tags or stage of version 2")
    assert registry.show("a", version=2).spec.description == ""
    assert list((home / "models" / "tmp").iterdir()) == []


def test_create_records_what_was_given(registry: ModelRegistry, model: Path) -> None:
    created = registry.create("heart", model, type="mlflow_model", description="d",
                              tags={"team": "x", "n": 3}, properties={"auc": 0.9},
                              stage="Production").spec
    assert registry.show("heart", version=1).spec == created
    assert (created.type, created.description, created.tags, created.properties,
            created.stage) == ("mlflow_model", "d", {"team": "x", "n": "3"}, {"auc": "0.9"},
                               "Production")
    assert created.digest == tree_digest(model).digest
    assert created.size == sum(len(v) for v in FILES.values())
    assert created.created_at == created.modified_at != ""
    assert Path(created.path).name == "model"


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"name": "bad name"}, "model-name"), ({"type": "onnx"}, "model-type"),
    ({"version": 0}, "model-version"), ({"stage": " "}, "model-stage"),
    ({"tags": {"a": [1]}}, "model-tags"),
])
def test_bad_input_is_refused_before_anything_is_stored(
        registry: ModelRegistry, model: Path, home: Path, kwargs: dict[str, object],
        rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        registry.create(**{"name": "a", "path": model, **kwargs})  # type: ignore[arg-type]
    assert caught.value.rule == rule
    assert registry.list(include_archived=True) == []
    assert list((home / "models" / "tmp").iterdir()) == []


def test_latest_is_the_highest_version_not_archived(registry: ModelRegistry, model: Path) -> None:
    for _ in range(3):
        registry.create("a", model)
    assert registry.show("a", label="latest").spec.version == 3
    assert registry.resolve("azureml:a@latest").version == 3
    registry.archive("a", 3)
    assert registry.show("a", label="latest").spec.version == 2
    assert registry.resolve("a@latest").version == 2
    registry.restore("a", 3)
    assert registry.resolve("a@latest").version == 3


def test_all_versions_archived_leave_no_latest(registry: ModelRegistry, model: Path) -> None:
    registry.create("a", model)
    registry.create("a", model)
    assert [r.spec.archived for r in registry.archive("a")] == [True, True]
    with pytest.raises(ValidationError, match=r"model a has no version that is not archived "
                                              r"\(archived: 1, 2\)"):
        registry.resolve("azureml:a@latest")
    assert [r.spec.version for r in registry.restore("a")] == [2, 1]
    assert registry.resolve("azureml:a@latest").version == 2


def test_show_needs_a_version_or_a_label(registry: ModelRegistry, model: Path) -> None:
    registry.create("a", model)
    with pytest.raises(ValidationError, match="not both or neither"):
        registry.show("a")
    with pytest.raises(ValidationError, match="not both or neither"):
        registry.show("a", version=1, label="latest")
    with pytest.raises(ValidationError, match="labels: latest"):
        registry.show("a", label="newest")


def test_archived_versions_show_but_do_not_resolve(registry: ModelRegistry, model: Path) -> None:
    registry.create("a", model)
    registry.create("a", model)
    registry.archive("a", 1)
    assert registry.show("a", version=1).spec.archived
    with pytest.raises(ValidationError) as caught:
        registry.resolve("azureml:a:1")
    assert caught.value.rule == "model-archived"
    assert caught.value.message == (
        "model azureml:a:1 is archived; use one of its active versions (2) or restore it with "
        "`scoregate model restore --name a --version 1`")


def test_missing_names_and_versions_are_refused_naming_what_exists(
        registry: ModelRegistry, model: Path) -> None:
    with pytest.raises(NotFound, match="model 'a' is not registered; no model is registered"):
        registry.resolve("azureml:a:1")
    registry.create("a", model)
    registry.create("b", model)
    registry.create("b", model)
    registry.archive("b", 1)
    with pytest.raises(NotFound, match="model 'c' is not registered; registered models: a, b"):
        registry.resolve("c@latest")
    with pytest.raises(NotFound, match=r"model b has no version 7; its versions: 1, 2 "
                                       r"\(archived: 1\)"):
        registry.resolve("azureml:b:7")
    with pytest.raises(NotFound, match="model b has no version 7"):
        registry.show("b", version=7)
    with pytest.raises(NotFound, match="registered models: a, b"):
        registry.list("c")


def test_list_filters_archived_versions(registry: ModelRegistry, model: Path) -> None:
    for _ in range(3):
        registry.create("a", model)
    registry.create("b", model)
    registry.archive("a", 3)
    registry.archive("b", 1)
    assert versions(registry, "a") == [2, 1]
    assert versions(registry, "a", include_archived=True) == [3, 2, 1]
    assert versions(registry, "a", archived_only=True) == [3]
    assert [r.spec.id for r in registry.list()] == ["azureml:a:2"]
    assert [r.spec.id for r in registry.list(include_archived=True)] == ["azureml:a:3",
                                                                         "azureml:b:1"]
    assert [r.spec.id for r in registry.list(archived_only=True)] == ["azureml:a:3",
                                                                      "azureml:b:1"]
    with pytest.raises(ValidationError, match="not both"):
        registry.list(archived_only=True, include_archived=True)


def test_update_changes_metadata_never_the_artifact(registry: ModelRegistry, model: Path) -> None:
    created = registry.create("a", model, tags={"old": "1"}, description="before")
    updated = registry.update("a", 1, description="after", tags={"new": "2"}, stage="Production")
    assert (updated.spec.description, updated.spec.tags, updated.spec.stage) == (
        "after", {"new": "2"}, "Production")
    assert (updated.spec.path, updated.spec.digest, updated.spec.size, updated.spec.created_at) \
        == (created.spec.path, created.spec.digest, created.spec.size, created.spec.created_at)
    assert registry.update("a", 1, stage="Staging").spec.description == "after"
    assert registry.show("a", version=1).spec.stage == "Staging"


def test_etags_change_on_every_write_and_guard_updates(registry: ModelRegistry,
                                                       model: Path) -> None:
    first = registry.create("a", model)
    second = registry.update("a", 1, description="x", if_match=f'"{first.etag}"')
    assert second.etag != first.etag
    assert registry.show("a", version=1).etag == second.etag
    with pytest.raises(PreconditionFailed, match="changed"):
        registry.update("a", 1, description="y", if_match=first.etag)
    with pytest.raises(PreconditionFailed):
        registry.archive("a", 1, if_match=first.etag)
    assert registry.archive("a", 1, if_match="*")[0].spec.archived
    registry.delete("a", 1)
    again = registry.create("a", model, version=1)
    assert again.etag not in (first.etag, second.etag)


def test_a_registered_model_survives_its_source_being_changed_or_deleted(
        registry: ModelRegistry, model: Path) -> None:
    first = registry.create("a", model).spec
    (model / "model.pkl").write_bytes(b"retrained")
    second = registry.create("a", model).spec
    assert second.digest != first.digest
    assert (Path(first.path) / "model.pkl").read_bytes() == FILES["model.pkl"]
    shutil.rmtree(model)
    assert registry.verify("a", 1) and registry.verify("a", 2)
    assert (Path(second.path) / "model.pkl").read_bytes() == b"retrained"


def test_versions_with_equal_content_share_one_folder(registry: ModelRegistry, model: Path,
                                                      tmp_path: Path, home: Path) -> None:
    a = registry.create("a", model).spec
    b = registry.create("b", make_model(tmp_path / "elsewhere" / "model", FILES)).spec
    assert (a.digest, a.path) == (b.digest, b.path)
    assert [p.name for p in (home / "models" / "sha256").iterdir()] == [a.digest]


def test_download_round_trips(registry: ModelRegistry, model: Path, tmp_path: Path) -> None:
    (model / "run.sh").write_bytes(b"#!/bin/sh\n")
    (model / "run.sh").chmod(0o755)
    registry.create("a", model)
    copy = registry.download("a", 1, tmp_path / "out")
    assert copy == tmp_path / "out" / "a" / "model"
    assert tree_digest(copy) == tree_digest(model)
    (copy / "model.pkl").write_bytes(b"a writable copy")
    assert registry.verify("a", 1)
    with pytest.raises(Conflict, match="exists already"):
        registry.download("a", 1, tmp_path / "out")


def test_a_single_file_registers_and_downloads_as_a_file(registry: ModelRegistry,
                                                         tmp_path: Path) -> None:
    single = make_model(tmp_path / "src", {"model.onnx": b"onnx"}) / "model.onnx"
    stored = registry.create("a", single).spec
    assert Path(stored.path).is_file() and Path(stored.path).name == "model.onnx"
    assert registry.download("a", 1, tmp_path / "out").read_bytes() == b"onnx"


def test_delete_keeps_shared_artifacts_and_frees_the_last_one(
        registry: ModelRegistry, model: Path, home: Path) -> None:
    registry.create("a", model)
    registry.create("a", model)
    objects = home / "models" / "sha256"
    registry.delete("a", 1)
    assert len(list(objects.iterdir())) == 1 and registry.verify("a", 2)
    registry.delete("a", 2)
    assert list(objects.iterdir()) == []
    with pytest.raises(NotFound, match="model 'a' is not registered"):
        registry.delete("a", 2)


def test_the_registry_lives_in_the_store_across_reopening(home: Path, model: Path) -> None:
    store = Store(home, (STORE_EXTENSION,))
    try:
        ModelRegistry(store, home).create("a", model, tags={"k": "v"})
    finally:
        store.close()
    store = Store(home, (STORE_EXTENSION,))
    try:
        registry = ModelRegistry(store, home)
        assert registry.recover().orphans_removed == ()
        assert registry.show("a", label="latest").spec.tags == {"k": "v"}
        assert registry.verify("a", 1)
    finally:
        store.close()


def test_recover_removes_leftovers_and_orphans(registry: ModelRegistry, model: Path,
                                               tmp_path: Path, home: Path) -> None:
    kept = registry.create("a", model).spec
    artifacts_root = home / "models"
    half_copy = make_model(artifacts_root / "tmp" / "0123", {"model/MLmodel": b"half"})
    orphan = make_model(artifacts_root / "sha256" / ("f" * 64), {"model/x": b"x"})
    orphan.chmod(0o555)
    report = registry.recover()
    assert (report.temp_removed, report.orphans_removed, report.missing) == (1, ("f" * 64,), ())
    assert not half_copy.exists() and not orphan.exists()
    assert [p.name for p in (artifacts_root / "sha256").iterdir()] == [kept.digest]


def test_concurrent_creates_get_distinct_versions(registry: ModelRegistry, tmp_path: Path) -> None:
    sources = [make_model(tmp_path / f"src{i}" / "model", {"w": bytes([i]) * 64})
               for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda s: registry.create("a", s).spec, sources * 2))
    assert sorted(m.version for m in created) == list(range(1, 9))
    assert all(registry.verify("a", m.version) for m in created)


def test_the_public_surface() -> None:
    import control_plane.registry as package

    assert sorted(package.__all__) == ["MODEL_TYPES", "ModelContainer", "ModelReference",
                                       "ModelRegistry", "ModelVersion", "Recovery",
                                       "STORE_EXTENSION", "parse_reference"]
    assert STORE_EXTENSION.name == "registry" and STORE_EXTENSION.version == 1
