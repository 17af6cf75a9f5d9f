"""A registered environment: Azure's environment YAML (`name`, `version`, `conda_file`,
`image`, `description`, `tags`), kept with the conda file's content rather than its path, so
the environment means the same thing after the file moved or changed.

`image` is kept and shown, but not applied: scoregate runs no containers. Azure's other
build keys (`build`, `os_type`, `inference_config`) are kept as not applied too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from control_plane.environments.conda import parse_conda_text
from control_plane.errors import ConfigError

KNOWN_KEYS = ("$schema", "name", "version", "conda_file", "image", "description", "tags")
NOT_APPLIED_KEYS = ("image", "build", "os_type", "inference_config")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,29}$")


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str
    version: str | None  # None: the next one (1, 2, ...)
    conda_file: str  # the file's content
    image: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    not_applied: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredEnvironment:
    spec: EnvironmentSpec
    version: str
    archived: bool
    created_at: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def reference(self) -> str:
        return f"azureml:{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Azure's field names, plus what scoregate does not apply."""
        return {"name": self.name, "version": self.version, "conda_file": self.spec.conda_file,
                "image": self.spec.image, "description": self.spec.description,
                "tags": dict(self.spec.tags), "archived": self.archived,
                "created_at": self.created_at, "not_applied": dict(self.spec.not_applied)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegisteredEnvironment:
        spec = EnvironmentSpec(data["name"], data["version"], data["conda_file"],
                               data.get("image"), data.get("description") or "",
                               dict(data.get("tags") or {}), dict(data.get("not_applied") or {}))
        return cls(spec, data["version"], bool(data["archived"]), float(data["created_at"]))

    def with_archived(self, archived: bool) -> RegisteredEnvironment:
        return replace(self, archived=archived)


def load_environment_file(path: Path, name: str | None = None,
                          version: str | None = None) -> EnvironmentSpec:
    """`scoregate environment create -f env.yml [--name] [--version]`: the file's
    `conda_file` is read relative to the YAML file (or given inline, as a mapping)."""
    file = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(file, None, f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(file, None, "an environment file is a mapping with 'name' and "
                                      "'conda_file'")
    return environment_spec(data, file, path.parent, name=name, version=version)


def environment_spec(data: Mapping[str, Any], file: str, folder: Path | None,
                     name: str | None = None, version: str | None = None) -> EnvironmentSpec:
    unknown = sorted(set(data) - set(KNOWN_KEYS) - set(NOT_APPLIED_KEYS))
    if unknown:
        raise ConfigError(file, unknown[0], f"unknown key; an environment has "
                                            f"{', '.join(KNOWN_KEYS + NOT_APPLIED_KEYS[1:])}")
    name = name or data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(file, "name", f"{name!r} is not an environment name (letters, digits, "
                                        "'-', '_', '.'; up to 255, letter or digit first)")
    version = version if version is not None else _text(data.get("version"))
    if version is not None and not _VERSION.match(version):
        raise ConfigError(file, "version", f"{version!r} is not a version (letters, digits, "
                                           "'-', '_', '.'; up to 30)")
    conda = _conda_content(data.get("conda_file"), file, folder)
    parse_conda_text(conda, f"{file} (conda_file)")  # refused now, not at the first deploy
    tags = data.get("tags") or {}
    if not isinstance(tags, dict):
        raise ConfigError(file, "tags", "must be a mapping of strings")
    not_applied = {k: data[k] for k in NOT_APPLIED_KEYS if data.get(k) is not None}
    image = data.get("image")
    return EnvironmentSpec(name, version, conda, image if isinstance(image, str) else None,
                           str(data.get("description") or ""),
                           {str(k): str(v) for k, v in tags.items()}, not_applied)


def _conda_content(value: object, file: str, folder: Path | None) -> str:
    if isinstance(value, dict):
        return yaml.safe_dump(value, sort_keys=False)
    if not isinstance(value, str) or not value:
        raise ConfigError(file, "conda_file", "required: the path of a conda environment file "
                                              "(or its content as a mapping); images alone are "
                                              "not applied here")
    path = Path(value) if folder is None else folder / value
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(file, "conda_file", f"cannot read {path}: {exc.strerror}") from None


def _text(value: object) -> str | None:
    return None if value is None else str(value)
