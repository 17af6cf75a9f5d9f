from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.environments.interpreters import PythonRequest
from control_plane.environments.requirements import normalize, read_mlflow_model
from control_plane.errors import ConfigError

# As MLflow 2.x writes them beside MLmodel
CONDA = """channels:
- conda-forge
dependencies:
- python=3.8.5
- pip<=23.0
- pip:
  - mlflow<3,>=2.1
  - scikit-learn==1.1.2
name: mlflow-env
"""
PYTHON_ENV = """python: 3.9.18
build_dependencies:
- pip==23.0
dependencies:
- -r requirements.txt
"""
REQUIREMENTS = "mlflow<3,>=2.1\nscikit-learn==1.1.2\nxgboost==1.4.2\n"


def test_normalize_sorts_canonicalises_and_dedupes() -> None:
    assert normalize(["Scikit_Learn==1.1.2", "# comment", "", "six", "scikit-learn==1.1.2",
                      "numpy<2  # pinned for the pickle", "six"]) == (
        "numpy<2", "scikit-learn==1.1.2", "six")


def test_normalize_refuses_options_and_garbage() -> None:
    with pytest.raises(ConfigError, match="pip option '-r other.txt'"):
        normalize(["-r other.txt"], "requirements.txt")
    with pytest.raises(ConfigError, match="not a requirement: 'numpy=='"):
        normalize(["numpy=="])


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_mlflow_prefers_python_env_and_requirements(tmp_path: Path) -> None:
    model = write(tmp_path / "m", {"conda.yaml": CONDA, "python_env.yaml": PYTHON_ENV,
                                   "requirements.txt": REQUIREMENTS})
    request = read_mlflow_model(model)
    assert request is not None
    assert request.python == PythonRequest(3, 9, 18)
    assert request.requirements == ("mlflow<3,>=2.1", "scikit-learn==1.1.2", "xgboost==1.4.2")
    assert request.source.endswith("python_env.yaml")


def test_mlflow_falls_back_to_conda_yaml(tmp_path: Path) -> None:
    model = write(tmp_path / "m", {"conda.yaml": CONDA, "requirements.txt": REQUIREMENTS})
    request = read_mlflow_model(model)
    assert request is not None
    assert request.python == PythonRequest(3, 8, 5)
    assert request.requirements == ("mlflow<3,>=2.1", "scikit-learn==1.1.2")


def test_mlflow_requirements_alone_and_nothing(tmp_path: Path) -> None:
    alone = read_mlflow_model(write(tmp_path / "a", {"requirements.txt": "six\n"}))
    assert alone is not None and alone.python is None and alone.requirements == ("six",)
    assert read_mlflow_model(write(tmp_path / "b", {})) is None
