"""The registry's admin API routes through real HTTP (the stand-in server of admin/test_admin_api:
the real admin app on a real store and a real registry), and model references in the
deployment create and update routes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from control_plane.registry.artifacts import tree_digest
from tests.control_plane.admin.test_admin_api import AdminServer, etag, make_endpoint
from tests.control_plane.registry.conftest import make_model


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_model(tmp_path / "src" / "model", {"MLmodel": b"x", "model.pkl": b"w" * 50})


def register(admin: AdminServer, name: str, path: Path, **fields: Any) -> dict[str, Any]:
    answer = admin.call("POST", f"/v1/models/{name}/versions", {"path": str(path), **fields})
    assert answer.status_code == 201, answer.text
    assert etag(answer) == f'"{answer.json()["etag"]}"'
    created: dict[str, Any] = answer.json()
    return created


def deployment(admin: AdminServer, name: str, **model: Any) -> dict[str, Any]:
    return {"name": name, "code_dir": str(admin.code_dir), "scoring_script": "score.py", **model}


def test_create_show_list_and_labels(admin: AdminServer, source: Path) -> None:
    first = register(admin, "routes-a", source, type="mlflow_model", tags={"k": "v"})
    assert (first["id"], first["version"], first["type"]) == ("azureml:routes-a:1", "1",
                                                              "mlflow_model")
    assert Path(first["path"]).name == "model" and first["size"] == 51
    register(admin, "routes-a", source, version=5, description="five")
    shown = admin.call("GET", "/v1/models/routes-a/versions/5")
    assert shown.status_code == 200 and shown.json()["description"] == "five"
    latest = admin.call("GET", "/v1/models/routes-a/labels/latest").json()
    assert latest["version"] == "5"
    versions = admin.call("GET", "/v1/models/routes-a/versions").json()
    assert [v["version"] for v in versions] == ["5", "1"]
    container = admin.call("GET", "/v1/models/routes-a").json()
    assert (container["name"], container["latest_version"]) == ("routes-a", "5")
    listed = {c["name"]: c["latest_version"] for c in admin.call("GET", "/v1/models").json()}
    assert listed["routes-a"] == "5"


def test_refusals_name_what_exists(admin: AdminServer, source: Path) -> None:
    register(admin, "routes-b", source)
    again = admin.call("POST", "/v1/models/routes-b/versions", {"path": str(source),
                                                                "version": "1"})
    assert again.status_code == 409 and "versions: 1" in again.json()["message"]
    relative = admin.call("POST", "/v1/models/routes-b/versions", {"path": "model"})
    assert relative.status_code == 400 and "absolute" in relative.json()["message"]
    unknown_key = admin.call("POST", "/v1/models/routes-b/versions", {"path": str(source),
                                                                      "flavor": "x"})
    assert unknown_key.status_code == 400 and "'flavor'" in unknown_key.json()["message"]
    bad_type = admin.call("POST", "/v1/models/routes-b/versions", {"path": str(source),
                                                                   "type": "onnx"})
    assert bad_type.status_code == 400 and bad_type.json()["rule"] == "model-type"
    missing = admin.call("GET", "/v1/models/routes-b/versions/9")
    assert missing.status_code == 404
    assert missing.json()["message"] == "model routes-b has no version 9; its versions: 1"
    nobody = admin.call("GET", "/v1/models/routes-nobody/versions")
    assert nobody.status_code == 404 and "routes-b" in nobody.json()["message"]


def test_update_archive_restore_with_etags(admin: AdminServer, source: Path) -> None:
    created = register(admin, "routes-c", source, tags={"a": "1", "b": "2"})
    path = "/v1/models/routes-c/versions/1"
    updated = admin.call("PATCH", path, {"stage": "Production", "tags": {"b": None, "c": "3"}},
                         headers={"If-Match": f'"{created["etag"]}"'})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["stage"], updated.json()["tags"]) == ("Production",
                                                                 {"a": "1", "c": "3"})
    stale = admin.call("PATCH", path, {"description": "x"},
                       headers={"If-Match": f'"{created["etag"]}"'})
    assert stale.status_code == 412
    no_artifact_change = admin.call("PATCH", path, {"path": "/elsewhere"})
    assert no_artifact_change.status_code == 400
    archived = admin.call("POST", f"{path}/archive", headers={"If-Match": etag(updated)})
    assert archived.status_code == 200 and archived.json()["archived"] is True
    assert admin.call("GET", "/v1/models/routes-c/versions").json() == []
    archived_only = admin.call("GET", "/v1/models?archived_only=true").json()
    assert "routes-c" in [c["name"] for c in archived_only]
    restored = admin.call("POST", f"{path}/restore")
    assert restored.status_code == 200 and restored.json()["archived"] is False
    every = admin.call("POST", "/v1/models/routes-c/archive")
    assert [v["archived"] for v in every.json()] == [True]


def test_download_writes_a_copy_once(admin: AdminServer, source: Path, tmp_path: Path) -> None:
    register(admin, "routes-d", source)
    body = {"download_path": str(tmp_path / "out")}
    written = admin.call("POST", "/v1/models/routes-d/versions/1/download", body)
    assert written.status_code == 200
    assert written.json()["path"] == str(tmp_path / "out" / "routes-d" / "model")
    assert (tmp_path / "out" / "routes-d" / "model" / "model.pkl").read_bytes() == b"w" * 50
    again = admin.call("POST", "/v1/models/routes-d/versions/1/download", body)
    assert again.status_code == 409 and "exists already" in again.json()["message"]


def test_deployments_bind_references_and_refuse_bad_ones(admin: AdminServer, source: Path,
                                                         tmp_path: Path) -> None:
    make_endpoint(admin, "routes-web")
    register(admin, "routes-e", source)
    path = "/v1/endpoints/routes-web/deployments"
    refused = admin.call("POST", path, deployment(admin, "blue", model_ref="routes-e:4"))
    assert refused.status_code == 404
    assert refused.json()["message"] == "model routes-e has no version 4; its versions: 1"
    assert admin.call("GET", path).json() == []
    blue = admin.call("POST", path, deployment(admin, "blue", model_ref="azureml:routes-e@latest"))
    assert blue.status_code == 201, blue.text
    assert (blue.json()["model_ref"], blue.json()["model"]) == ("azureml:routes-e:1",
                                                                "azureml:routes-e:1")
    v1_path = blue.json()["model_path"]
    register(admin, "routes-e", make_model(tmp_path / "v2" / "model", {"w": b"2"}))
    shown = admin.call("GET", f"{path}/blue").json()
    assert (shown["model_ref"], shown["model_path"]) == ("azureml:routes-e:1", v1_path)
    in_use = admin.call("DELETE", "/v1/models/routes-e/versions/1")
    assert in_use.status_code == 409 and "routes-web/blue" in in_use.json()["message"]
    scaled = admin.call("PATCH", f"{path}/blue", {"instance_count": 2})
    assert scaled.json()["model_ref"] == "azureml:routes-e:1"  # untouched model stays bound
    moved = admin.call("PATCH", f"{path}/blue", {"model_ref": "routes-e@latest"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["model_ref"] == "azureml:routes-e:2"
    assert admin.call("DELETE", "/v1/models/routes-e/versions/1").status_code == 200


def test_an_inline_model_with_a_name_registers_at_create(admin: AdminServer,
                                                         source: Path) -> None:
    make_endpoint(admin, "routes-inline")
    answer = admin.call("POST", "/v1/endpoints/routes-inline/deployments", deployment(
        admin, "blue", model_path=str(source), model_ref="azureml:routes-ncd:2",
        model_type="mlflow_model"))
    assert answer.status_code == 201, answer.text
    shown = admin.call("GET", "/v1/models/routes-ncd/versions/2").json()
    assert (shown["type"], answer.json()["model_path"]) == ("mlflow_model", shown["path"])


def test_an_inline_model_without_a_name_registers_anonymously_at_create(
        admin: AdminServer, source: Path) -> None:
    make_endpoint(admin, "routes-anon")
    path = "/v1/endpoints/routes-anon/deployments"
    answer = admin.call("POST", path, deployment(admin, "blue", model_path=str(source)))
    assert answer.status_code == 201, answer.text
    shown = admin.call("GET", f"{path}/blue").json()
    name, version = shown["model_ref"].removeprefix("azureml:").split(":")
    assert version == "1" and str(uuid.UUID(name)) == name
    model = admin.call("GET", f"/v1/models/{name}/versions/1").json()
    assert (model["path"], model["digest"]) == (shown["model_path"], tree_digest(source).digest)
    again = admin.call("POST", path, deployment(admin, "green", model_path=str(source)))
    assert again.json()["model_ref"] == shown["model_ref"]  # same content: same version
