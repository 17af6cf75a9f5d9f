"""What a deployment's `model:` may name: one version, or the version a label points to.

Accepted, as Azure's CLI reads them: `azureml:<name>:<version>`, `azureml:<name>@latest`,
and the same without the `azureml:` prefix. `latest` is the only label (the highest version
that is not archived); resolving is the registry's job (`ModelRegistry.resolve`).
"""

from __future__ import annotations

from dataclasses import dataclass

from control_plane.errors import ValidationError
from control_plane.registry.asset import parse_version, validate_model_name

PREFIX = "azureml:"
LATEST = "latest"
LABELS = (LATEST,)
FORMS = ("azureml:<name>:<version>", "azureml:<name>@latest", "<name>:<version>",
         "<name>@latest")


@dataclass(frozen=True)
class ModelReference:
    """Exactly one of `version` and `label` is set."""

    name: str
    version: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if (self.version is None) == (self.label is None):
            raise ValueError("a model reference has a version or a label, not both or neither")

    def __str__(self) -> str:
        if self.version is not None:
            return f"{PREFIX}{self.name}:{self.version}"
        return f"{PREFIX}{self.name}@{self.label}"


def parse_reference(text: object) -> ModelReference:
    if not isinstance(text, str):
        raise _malformed(text, "it is not text")
    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    if "@" in body:
        name, _, label = body.partition("@")
        if label not in LABELS:
            raise _malformed(text, f"label {label!r} is unknown (labels: {', '.join(LABELS)})")
        return ModelReference(_name(text, name), label=label)
    if ":" in body:
        name, _, version = body.partition(":")
        try:
            number = parse_version(version)
        except ValidationError as error:
            raise _malformed(text, error.message) from None
        return ModelReference(_name(text, name), version=number)
    raise _malformed(text, "it names no version or label")


def _name(text: str, name: str) -> str:
    try:
        return validate_model_name(name)
    except ValidationError as error:
        raise _malformed(text, error.message) from None


def _malformed(text: object, why: str) -> ValidationError:
    return ValidationError(
        "model-reference", f"model reference {text!r} is not valid: {why}; a reference is one of "
        f"{', '.join(FORMS)}")
