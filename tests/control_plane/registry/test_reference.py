from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.errors import ValidationError
from control_plane.registry.reference import FORMS, ModelReference, parse_reference

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,40}", fullmatch=True)
versions = st.integers(min_value=1, max_value=10**12)


@given(names, versions, st.booleans())
def test_a_version_reference_reads_back(name: str, version: int, prefixed: bool) -> None:
    text = f"{'azureml:' if prefixed else ''}{name}:{version}"
    ref = parse_reference(text)
    assert ref == ModelReference(name, version=version)
    assert parse_reference(str(ref)) == ref
    assert str(ref) == f"azureml:{name}:{version}"


@given(names, st.booleans())
def test_latest_reads_back(name: str, prefixed: bool) -> None:
    ref = parse_reference(f"{'azureml:' if prefixed else ''}{name}@latest")
    assert ref == ModelReference(name, label="latest")
    assert str(ref) == f"azureml:{name}@latest"


@pytest.mark.parametrize("text", [
    "", "azureml:", "heart", "azureml:heart", "heart:", "heart:0", "heart:01", "heart:-1",
    "heart:1.5", "heart:v2", "heart@", "heart@newest", "heart@latest:2", "azureml:heart:2:3",
    ":2", "@latest", "-heart:2", "he art:2", "héart:2", "azureml:azureml:heart:2",
    "azureml:/subscriptions/x/models/heart/versions/2",
])
def test_malformed_references_are_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_reference(text)
    assert caught.value.rule == "model-reference"
    assert repr(text) in caught.value.message
    assert all(form in caught.value.message for form in FORMS)


@given(st.text(max_size=30))
def test_any_text_parses_or_is_refused_clearly(text: str) -> None:
    try:
        ref = parse_reference(text)
    except ValidationError as error:
        assert error.rule == "model-reference"
    else:
        assert parse_reference(str(ref)) == ref


def test_a_reference_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValidationError, match="not text"):
        parse_reference({"path": "model"})


def test_a_reference_has_a_version_or_a_label() -> None:
    with pytest.raises(ValueError):
        ModelReference("heart")
    with pytest.raises(ValueError):
        ModelReference("heart", version=1, label="latest")
