"""Requirement lists: one normal form (so the same packages give the same environment key),
and what an MLflow model folder asks for.

MLflow writes three files beside `MLmodel`: `python_env.yaml` (the Python version and build
tools, pointing at `requirements.txt`), `requirements.txt`, and `conda.yaml`. MLflow's own
`virtualenv` manager prefers `python_env.yaml` + `requirements.txt` and falls back to
`conda.yaml`; so do we.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from control_plane.environments.conda import parse_conda_text
from control_plane.environments.interpreters import PythonRequest, parse_python_request
from control_plane.errors import ConfigError


@dataclass(frozen=True)
class EnvironmentRequest:
    """What to build: a Python version (None: the gateway's own) and PyPI requirements."""

    python: PythonRequest | None
    requirements: tuple[str, ...]
    source: str  # where it came from, for messages and the status


def normalize(lines: Iterable[str], file: str = "requirements") -> tuple[str, ...]:
    """Canonical names, sorted, duplicates dropped; comments, blanks and `-r`/`--` options
    refused or skipped. Two spellings of one requirement give one entry."""
    found: dict[str, str] = {}
    for raw in lines:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ConfigError(file, None, f"pip option {line!r} is not supported in a "
                                          "requirement list; list packages only")
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise ConfigError(file, None, f"not a requirement: {line!r} ({exc})") from None
        requirement.name = canonicalize_name(requirement.name)
        text = str(requirement)
        found[text] = text
    return tuple(sorted(found))


def read_requirements_file(path: Path) -> tuple[str, ...]:
    return normalize(path.read_text().splitlines(), str(path))


def read_conda_file(path: Path) -> EnvironmentRequest:
    conda = parse_conda_text(path.read_text(), str(path))
    return EnvironmentRequest(conda.python, normalize(conda.requirements, str(path)), str(path))


def read_mlflow_model(folder: Path) -> EnvironmentRequest | None:
    """The environment an MLflow model folder asks for; None when it names none."""
    python_env = folder / "python_env.yaml"
    requirements = folder / "requirements.txt"
    if python_env.is_file() and requirements.is_file():
        return EnvironmentRequest(_python_of(python_env), read_requirements_file(requirements),
                                  str(python_env))
    if (folder / "conda.yaml").is_file():
        return read_conda_file(folder / "conda.yaml")
    if requirements.is_file():
        return EnvironmentRequest(None, read_requirements_file(requirements), str(requirements))
    return None


def _python_of(path: Path) -> PythonRequest | None:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), None, f"not valid YAML: {exc}") from None
    version = data.get("python") if isinstance(data, dict) else None
    return None if version is None else parse_python_request(f"python={version}", str(path))
