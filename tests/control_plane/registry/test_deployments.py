"""Deployments meet the registry: references resolve once, at create or update, to one version;
inline models register on the fly (anonymously without a name); a version in use cannot be
deleted; a deployment whose version was deleted meanwhile cannot commit. Real store, real files."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.errors import Conflict, NotFound, ValidationError
from control_plane.registry import STORE_EXTENSION, ModelRegistry
from control_plane.registry.artifacts import tree_digest
from control_plane.registry.reference import parse_reference
from control_plane.registry.service import anonymous_name
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.sqlite_store import Store
from tests.control_plane.registry.conftest import make_model


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    store = Store(home, (STORE_EXTENSION,))
    try:
        store.create_endpoint(EndpointSpec("web"))
        yield store
    finally:
        store.close()


@pytest.fixture
def registry(store: Store, home: Path) -> ModelRegistry:
    registry = ModelRegistry(store, home)
    registry.recover()
    return registry


def source(tmp_path: Path, content: bytes, name: str = "model") -> Path:
    return make_model(tmp_path / content.hex()[:8] / name, {"model.pkl": content})


def deployment(name: str = "blue", **model: str | None) -> DeploymentSpec:
    return DeploymentSpec(name=name, endpoint_name="web", code_dir="/code",
                          scoring_script="score.py", **model)  # type: ignore[arg-type]


def test_latest_resolves_once_and_never_moves(registry: ModelRegistry, store: Store,
                                              tmp_path: Path) -> None:
    v1 = registry.create("m", source(tmp_path, b"one")).spec
    bound = registry.bind(deployment(model_ref="azureml:m@latest"))
    assert (bound.model_ref, bound.model_path, bound.model_type) == (
        "azureml:m:1", v1.path, "custom_model")
    store.create_deployment(bound)
    registry.create("m", source(tmp_path, b"two"))
    assert store.deployment("web", "blue").spec.model_ref == "azureml:m:1"
    assert registry.bind(deployment("green", model_ref="m@latest")).model_ref == "azureml:m:2"


@pytest.mark.parametrize("reference", ["azureml:m:1", "m:1", "azureml:m@latest", "m@latest"])
def test_every_reference_form_resolves(registry: ModelRegistry, tmp_path: Path,
                                       reference: str) -> None:
    registry.create("m", source(tmp_path, b"one"))
    assert registry.bind(deployment(model_ref=reference)).model_ref == "azureml:m:1"


def test_bad_references_name_what_exists_and_nothing_is_stored(
        registry: ModelRegistry, store: Store, tmp_path: Path) -> None:
    registry.create("m", source(tmp_path, b"one"))
    registry.create("m", source(tmp_path, b"two"))
    registry.archive("m", 2)
    revision = store.revision
    with pytest.raises(NotFound) as missing_name:
        registry.bind(deployment(model_ref="azureml:other:1"))
    assert "model 'other' is not registered; registered models: m" in missing_name.value.message
    with pytest.raises(NotFound) as missing_version:
        registry.bind(deployment(model_ref="azureml:m:7"))
    assert "model m has no version 7; its versions: 1, 2 (archived: 2)" == (
        missing_version.value.message)
    with pytest.raises(ValidationError) as archived:
        registry.bind(deployment(model_ref="azureml:m:2"))
    assert archived.value.rule == "model-archived" and "active versions (1)" in str(archived.value)
    with pytest.raises(ValidationError) as malformed:
        registry.bind(deployment(model_ref="azureml:m@newest"))
    assert malformed.value.rule == "model-reference"
    assert store.revision == revision and store.deployments("web") == {}
    assert [r.spec.version for r in registry.list("m", include_archived=True)] == [2, 1]


def test_an_inline_model_registers_as_its_name_and_version_once(
        registry: ModelRegistry, tmp_path: Path) -> None:
    path = source(tmp_path, b"ncd")
    inline = deployment(model_path=str(path), model_ref="azureml:ncd:2",
                        model_type="mlflow_model")
    bound = registry.bind(inline)
    shown = registry.show("ncd", version=2).spec
    assert (bound.model_ref, bound.model_path, shown.type) == ("azureml:ncd:2", shown.path,
                                                               "mlflow_model")
    assert registry.bind(inline) == bound  # the same file applied again reuses version 2
    assert registry.bind(bound) == bound  # a bound deployment (a PATCH's merge) stays bound
    other = deployment(model_path=str(source(tmp_path, b"changed")), model_ref="azureml:ncd:2")
    with pytest.raises(Conflict, match="azureml:ncd:2 exists with other content"):
        registry.bind(other)
    assert [r.spec.version for r in registry.list("ncd")] == [2]
    unversioned = registry.bind(deployment(model_path=str(path), model_ref="azureml:ncd",
                                           model_type="mlflow_model"))
    assert unversioned.model_ref == "azureml:ncd:2"


def test_a_type_that_contradicts_the_registered_one_is_refused(
        registry: ModelRegistry, tmp_path: Path) -> None:
    registry.create("m", source(tmp_path, b"one"), type="mlflow_model")
    with pytest.raises(ValidationError, match="registered as mlflow_model"):
        registry.bind(deployment(model_ref="m:1", model_type="custom_model"))


def test_an_inline_model_without_a_name_registers_anonymously_once(
        registry: ModelRegistry, store: Store, tmp_path: Path) -> None:
    path = source(tmp_path, b"anon")
    bound = registry.bind(deployment(model_path=str(path)))  # `model: ./path` or {path}
    name = anonymous_name(tree_digest(path).digest, "custom_model")
    shown = registry.show(name, version=1).spec
    assert (bound.model_ref, bound.model_path, bound.model_type) == (
        f"azureml:{name}:1", shown.path, "custom_model")
    assert str(uuid.UUID(name)) == name and shown.description.startswith("anonymous")
    assert Path(shown.path, "model.pkl").read_bytes() == b"anon"
    store.create_deployment(bound)
    assert registry.bind(deployment(model_path=str(path))) == bound  # re-applied: reused
    typed = registry.bind(deployment(model_path=str(path), model_type="mlflow_model"))
    assert typed.model_ref not in (None, bound.model_ref)  # another type, another asset
    assert sorted(c.name for c in registry.containers()) == sorted(
        [name, parse_reference(typed.model_ref or "").name])

    (path / "model.pkl").chmod(0o644)
    (path / "model.pkl").write_bytes(b"anon, retrained")
    changed = registry.bind(deployment(model_path=str(path)))
    assert changed.model_ref not in (None, bound.model_ref)
    assert Path(changed.model_path or "", "model.pkl").read_bytes() == b"anon, retrained"
    assert store.deployment("web", "blue").spec == bound  # keeps its own until updated
    with pytest.raises(Conflict, match="used by deployment"):
        registry.delete(name, 1)


def test_a_deployment_stored_before_anonymous_models_registers_when_bound_again(
        registry: ModelRegistry, store: Store, tmp_path: Path) -> None:
    path = source(tmp_path, b"old")
    store.create_deployment(deployment(model_path=str(path)))  # as stored before: no ref
    state = store.state()  # its create has finished, as it had for deployments stored then
    store.finish_provisioning("web", "blue", state.deployments["web/blue"].etag,
                              state.status("web/blue").state, None)
    assert store.deployment("web", "blue").spec.model_ref is None
    again = registry.bind(store.deployment("web", "blue").spec)  # its update, or serve FOLDER
    store.update_deployment(again)
    assert parse_reference(store.deployment("web", "blue").spec.model_ref or "").version == 1


def test_deployments_without_a_model_are_left_alone(registry: ModelRegistry) -> None:
    external = DeploymentSpec(name="ext", endpoint_name="web", urls=("http://127.0.0.1:9/",))
    assert registry.bind(external) is external
    with pytest.raises(ValidationError, match="does not exist"):
        registry.bind(deployment(model_path="/somewhere/model"))


def test_a_version_in_use_cannot_be_deleted_but_can_be_archived(
        registry: ModelRegistry, store: Store, tmp_path: Path) -> None:
    registry.create("m", source(tmp_path, b"one"))
    store.create_deployment(registry.bind(deployment(model_ref="m:1")))
    with pytest.raises(Conflict) as caught:
        registry.delete("m", 1)
    assert caught.value.message.startswith("model azureml:m:1 is used by deployment(s) web/blue;")
    assert registry.archive("m", 1)[0].spec.archived
    assert Path(store.deployment("web", "blue").spec.model_path or "").exists()
    store.delete_deployment("web", "blue")
    registry.delete("m", 1)
    with pytest.raises(NotFound):
        registry.show("m", version=1)


def test_a_deployment_whose_version_was_deleted_meanwhile_does_not_commit(
        registry: ModelRegistry, store: Store, tmp_path: Path) -> None:
    registry.create("m", source(tmp_path, b"one"))
    bound = registry.bind(deployment(model_ref="m:1"))  # resolved ...
    registry.delete("m", 1)  # ... then deleted before the deployment's transaction
    with pytest.raises(NotFound, match="model azureml:m:1 is not registered"):
        store.create_deployment(bound)
    assert store.deployments("web") == {}


def test_containers_list_each_name_with_its_latest_version(registry: ModelRegistry,
                                                          tmp_path: Path) -> None:
    for name in ("b", "a", "a", "c"):
        registry.create(name, source(tmp_path, name.encode()))
    registry.archive("a", 2)
    registry.archive("c")
    shown = {c.name: c.to_dict()["latest_version"] for c in registry.containers()}
    assert shown == {"a": "1", "b": "1"}
    assert [c.name for c in registry.containers(archived_only=True)] == ["c"]
    every = registry.containers(include_archived=True)
    assert [(c.name, c.versions, c.archived) for c in every] == [
        ("a", 2, False), ("b", 1, False), ("c", 1, True)]
