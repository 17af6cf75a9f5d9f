"""A registered model version, and the rules its fields follow.

`to_dict` answers with the field names of `az ml model show` where Azure has them (`id` as
`azureml:name:version`, `version` as text, `creation_context`), plus what scoregate adds:
`digest` (sha256 of the artifact tree, see `artifacts.py`), `size` (bytes) and `archived`.
The artifact never changes after creation, so `path`, `digest` and `size` never do either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control_plane.errors import ValidationError

MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")
DEFAULT_TYPE = "custom_model"
DEFAULT_STAGE = "Development"  # what Azure shows when no stage was given
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_VERSION = re.compile(r"[1-9][0-9]{0,17}")


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    type: str
    path: str  # absolute path of the stored artifact (a file or a folder, read-only)
    digest: str  # sha256 of the artifact tree, hex
    size: int  # bytes of file content
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    stage: str = DEFAULT_STAGE
    archived: bool = False
    created_at: str = ""  # ISO 8601, UTC
    modified_at: str = ""

    @property
    def id(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "version": str(self.version), "type": self.type,
            "path": self.path, "description": self.description, "tags": dict(self.tags),
            "properties": dict(self.properties), "stage": self.stage,
            "creation_context": {"created_at": self.created_at,
                                 "last_modified_at": self.modified_at},
            "archived": self.archived, "digest": self.digest, "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelVersion:
        context = data.get("creation_context") or {}
        return cls(
            name=str(data["name"]), version=parse_version(data["version"]),
            type=str(data["type"]), path=str(data["path"]), digest=str(data["digest"]),
            size=int(data["size"]), description=str(data.get("description") or ""),
            tags=string_map("tags", data.get("tags")),
            properties=string_map("properties", data.get("properties")),
            stage=str(data.get("stage") or DEFAULT_STAGE), archived=bool(data.get("archived")),
            created_at=str(context.get("created_at", "")),
            modified_at=str(context.get("last_modified_at", "")),
        )


@dataclass(frozen=True)
class ModelContainer:
    """A model name with its versions, as `az ml model list` without `--name` shows it:
    `latest_version` is the highest version that is not archived (None when all are, and then
    the container itself counts as archived)."""

    name: str
    latest_version: int | None
    versions: int
    description: str = ""  # of the latest version (else the highest)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""  # of its first version
    modified_at: str = ""  # of its most recent change

    @property
    def archived(self) -> bool:
        return self.latest_version is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": None if self.latest_version is None else str(self.latest_version),
            "description": self.description, "tags": dict(self.tags),
            "creation_context": {"created_at": self.created_at,
                                 "last_modified_at": self.modified_at},
            "archived": self.archived, "versions": self.versions,
        }

    @classmethod
    def of(cls, versions: list[ModelVersion]) -> ModelContainer:
        """`versions`: every version of one name, highest first."""
        active = [v for v in versions if not v.archived]
        shown = (active or versions)[0]
        return cls(name=shown.name, latest_version=active[0].version if active else None,
                   versions=len(versions), description=shown.description, tags=dict(shown.tags),
                   created_at=min(v.created_at for v in versions),
                   modified_at=max(v.modified_at for v in versions))


def validate_model_name(name: object) -> str:
    """Azure's asset names: a letter or digit, then letters, digits, `-`, `_` or `.` (at most
    255). `:` and `@` never occur, so `name:version` and `name@label` read one way only."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            "model-name", f"model name {name!r} is not valid: a model name starts with a letter "
            "or digit and has up to 255 letters, digits, '-', '_' or '.'")
    return name


def parse_version(value: object) -> int:
    """A version is a whole number from 1 (`3` or `"3"`); `"03"` is refused, not read as 3,
    because Azure compares versions as text."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 10**18:
        return value
    if isinstance(value, str) and _VERSION.fullmatch(value):
        return int(value)
    raise ValidationError(
        "model-version", f"model version {value!r} is not valid: versions are whole numbers "
        "from 1, like 3")


def validate_type(value: object) -> str:
    if value not in MODEL_TYPES:
        raise ValidationError(
            "model-type", f"model type {value!r} is not valid; use one of {', '.join(MODEL_TYPES)}")
    return str(value)


def string_map(kind: str, value: object) -> dict[str, str]:
    """Tags and properties are text to text, as in Azure: numbers and booleans given in YAML
    become their text; nested values are refused."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"model-{kind}", f"model {kind} must be a mapping of text to "
                              f"text, got {value!r}")
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"model-{kind}", f"model {kind}: key {key!r} is not text")
        if isinstance(item, bool):
            result[key] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            result[key] = str(item)
        else:
            raise ValidationError(f"model-{kind}", f"model {kind}: value of {key!r} must be "
                                  f"text or a number, got {item!r}")
    return result


def validate_text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"model-{kind}", f"model {kind} must be text, got {value!r}")
    return value
