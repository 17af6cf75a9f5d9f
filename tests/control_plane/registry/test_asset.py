from __future__ import annotations

import pytest

from control_plane.errors import ValidationError
from control_plane.registry.asset import (
    ModelVersion,
    parse_version,
    string_map,
    validate_model_name,
    validate_type,
)

MODEL = ModelVersion(
    name="heart-classifier", version=3, type="mlflow_model", path="/state/models/sha256/ab/model",
    digest="ab" * 32, size=1234, description="heart", tags={"team": "cardio"},
    properties={"auc": "0.9"}, stage="Production", archived=True,
    created_at="2026-01-01T00:00:00+00:00", modified_at="2026-01-02T00:00:00+00:00")


def test_to_dict_speaks_azures_field_names() -> None:
    data = MODEL.to_dict()
    assert data["id"] == "azureml:heart-classifier:3"
    assert data["version"] == "3"
    assert data["creation_context"] == {"created_at": "2026-01-01T00:00:00+00:00",
                                        "last_modified_at": "2026-01-02T00:00:00+00:00"}
    assert {k: data[k] for k in ("name", "type", "path", "description", "tags", "properties",
                                 "stage", "digest", "size", "archived")} == {
        "name": "heart-classifier", "type": "mlflow_model",
        "path": "/state/models/sha256/ab/model", "description": "heart",
        "tags": {"team": "cardio"}, "properties": {"auc": "0.9"}, "stage": "Production",
        "digest": "ab" * 32, "size": 1234, "archived": True}


def test_from_dict_reads_what_to_dict_wrote() -> None:
    assert ModelVersion.from_dict(MODEL.to_dict()) == MODEL


@pytest.mark.parametrize("name", ["a", "heart-classifier", "mir-sample-sklearn-ncd-model",
                                  "sklearn_model.v2", "7up", "x" * 255])
def test_azure_asset_names_are_accepted(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "_a", ".a", "a:b", "a@b", "a b", "a/b", "x" * 256,
                                  3])
def test_other_names_are_refused(name: object) -> None:
    with pytest.raises(ValidationError, match="starts with a letter or digit"):
        validate_model_name(name)


@pytest.mark.parametrize(("value", "number"), [(1, 1), ("1", 1), ("42", 42), (7, 7)])
def test_versions_are_whole_numbers_from_one(value: object, number: int) -> None:
    assert parse_version(value) == number


@pytest.mark.parametrize("value", [0, -1, "0", "01", "1.0", 1.0, True, "v1", "", None])
def test_other_versions_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="whole numbers from 1"):
        parse_version(value)


def test_types_are_azures_three() -> None:
    assert validate_type("triton_model") == "triton_model"
    with pytest.raises(ValidationError, match="custom_model, mlflow_model, triton_model"):
        validate_type("onnx_model")


def test_tags_are_text_to_text() -> None:
    assert string_map("tags", {"a": 1, "b": True, "c": "x", "d": 0.5}) == {
        "a": "1", "b": "true", "c": "x", "d": "0.5"}
    with pytest.raises(ValidationError, match="value of 'a'"):
        string_map("tags", {"a": {"nested": 1}})
    with pytest.raises(ValidationError, match="mapping"):
        string_map("tags", ["a=b"])
