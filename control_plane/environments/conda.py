"""Azure ML / conda environment files, turned into what uv can install.

Azure builds a conda environment from `conda_file`; scoregate builds a Python virtual
environment with uv instead, so a conda dependency is usable only when conda and PyPI ship
the same package under a known name. The `pip:` list is installed as is. Everything else is
refused in one message that lists every package we cannot map, so the author fixes the file
once instead of once per package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from control_plane.environments.interpreters import PythonRequest, parse_python_request
from control_plane.errors import ConfigError

# conda name -> PyPI name, only where both ship the same package. `None`: nothing to install.
CONDA_TO_PYPI: dict[str, str | None] = {
    "pip": None,
    "setuptools": "setuptools",
    "wheel": "wheel",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "joblib": "joblib",
    "xgboost": "xgboost",
    "py-xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "mlflow": "mlflow",
    "mlflow-skinny": "mlflow-skinny",
    "cloudpickle": "cloudpickle",
    "pyyaml": "pyyaml",
    "requests": "requests",
    "six": "six",
    "matplotlib": "matplotlib",
    "statsmodels": "statsmodels",
    "pyarrow": "pyarrow",
    "psutil": "psutil",
    "tqdm": "tqdm",
    "typing_extensions": "typing-extensions",
    "typing-extensions": "typing-extensions",
}

_SPEC = re.compile(
    r"^(?:[\w.-]+::)?(?P<name>[A-Za-z0-9_.-]+)\s*"
    r"(?:(?P<op>==|>=|<=|!=|>|<|=)?\s*(?P<version>[0-9][0-9A-Za-z.*+!-]*))?"
    r"(?:[ =](?P<build>\S+))?\s*$")


@dataclass(frozen=True)
class CondaEnvironment:
    name: str | None
    channels: tuple[str, ...]
    python: PythonRequest | None
    requirements: tuple[str, ...]  # PyPI requirement strings: mapped conda ones, then pip's


def parse_conda_text(text: str, file: str) -> CondaEnvironment:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(file, None, "a conda environment file is a mapping with "
                                      "'dependencies' (and optionally 'name', 'channels')")
    return parse_conda(data, file)


def parse_conda(data: dict[str, Any], file: str) -> CondaEnvironment:
    name = data.get("name")
    channels = data.get("channels") or []
    deps = data.get("dependencies") or []
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ConfigError(file, "channels", "must be a list of channel names")
    if not isinstance(deps, list):
        raise ConfigError(file, "dependencies", "must be a list")
    python: PythonRequest | None = None
    mapped: list[str] = []
    pip: list[str] = []
    refused: list[str] = []
    for dep in deps:
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            pip.extend(_pip_list(dep["pip"], file))
        elif isinstance(dep, str | int | float):
            text = str(dep).strip()
            if re.match(r"^python(?![\w-])", text):
                if text != "python":  # a bare `python`: any version (the gateway's)
                    python = parse_python_request(text, file)
                continue
            try:
                converted = conda_to_pypi(text)
            except KeyError:
                refused.append(text)
                continue
            if converted is not None:
                mapped.append(converted)
        else:
            raise ConfigError(file, "dependencies", f"entry {dep!r} is neither a conda package "
                                                    "nor a 'pip:' list")
    if refused:
        raise ConfigError(
            file, "dependencies",
            f"conda packages with no known PyPI equivalent: {', '.join(refused)}; scoregate "
            f"installs from PyPI, so list them under 'pip:' by their PyPI names (conda packages "
            f"it maps: {', '.join(sorted(k for k, v in CONDA_TO_PYPI.items() if v))})")
    return CondaEnvironment(name if isinstance(name, str) else None, tuple(channels), python,
                            tuple(mapped + pip))


def conda_to_pypi(spec: str) -> str | None:
    """One conda match spec as a PyPI requirement; None: nothing to install (pip itself).
    KeyError: not a package we know on both sides, or a spec we cannot read."""
    match = _SPEC.match(spec)
    if not match or match["name"].lower() not in CONDA_TO_PYPI:
        raise KeyError(spec)
    pypi = CONDA_TO_PYPI[match["name"].lower()]
    if pypi is None:
        return None
    op, version = match["op"], match["version"]
    if version is None:
        return pypi
    if op in (None, "="):
        # conda's `=1.26` means 1.26.*; a full X.Y.Z is the same as an exact pin
        exact = version.count(".") >= 2 or version.endswith("*")
        return f"{pypi}=={version}" if exact else f"{pypi}=={version}.*"
    return f"{pypi}{op}{version}"


def _pip_list(value: object, file: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(file, "dependencies.pip", "must be a list of pip requirement strings")
    return [v.strip() for v in value if v.strip()]
