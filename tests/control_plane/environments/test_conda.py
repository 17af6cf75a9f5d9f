from __future__ import annotations

import pytest

from control_plane.environments.conda import conda_to_pypi, parse_conda_text
from control_plane.environments.interpreters import PythonRequest
from control_plane.errors import ConfigError

NCD_SKLEARN = """
name: sklearn-env
channels:
  - conda-forge
dependencies:
  - python=3.12
  - pip=24.0
  - scikit-learn=1.7.0
  - numpy=2.3.1
  - conda-forge::pandas>=2.2
  - pip:
    - mlflow-skinny==2.22.0
    - azureml-inference-server-http
"""


def test_maps_conda_packages_and_keeps_pip_list_as_is() -> None:
    env = parse_conda_text(NCD_SKLEARN, "conda.yaml")
    assert env.name == "sklearn-env"
    assert env.channels == ("conda-forge",)
    assert env.python == PythonRequest(3, 12)
    assert env.requirements == ("scikit-learn==1.7.0", "numpy==2.3.1", "pandas>=2.2",
                                "mlflow-skinny==2.22.0", "azureml-inference-server-http")


@pytest.mark.parametrize(("spec", "expected"), [
    ("numpy", "numpy"),
    ("numpy=1.26", "numpy==1.26.*"),  # conda's `=1.26` is a prefix match
    ("numpy=1.26.4", "numpy==1.26.4"),
    ("numpy==1.26.4", "numpy==1.26.4"),
    ("numpy>=1.24", "numpy>=1.24"),
    ("numpy=1.26.4=py312h8753938_0", "numpy==1.26.4"),  # build string dropped
    ("numpy 1.26.4", "numpy==1.26.4"),
    ("py-xgboost=1.4.2", "xgboost==1.4.2"),
    ("pip", None),
    ("pip=23.0", None),
])
def test_one_spec(spec: str, expected: str | None) -> None:
    assert conda_to_pypi(spec) == expected


def test_bare_python_asks_for_no_version() -> None:
    assert parse_conda_text("dependencies: [python, six]", "c.yml").python is None


def test_python_pin_with_patch() -> None:
    env = parse_conda_text("dependencies: [python=3.8.5, pip]", "c.yml")
    assert env.python == PythonRequest(3, 8, 5)
    assert str(env.python) == "3.8.5"
    assert env.requirements == ()


def test_refuses_every_unmappable_package_in_one_message() -> None:
    text = "dependencies: [python=3.10, numpy, cudatoolkit=11.8, libgcc-ng, mkl]"
    with pytest.raises(ConfigError) as caught:
        parse_conda_text(text, "env/conda.yml")
    message = str(caught.value)
    assert message.startswith("env/conda.yml: key 'dependencies': ")
    for name in ("cudatoolkit=11.8", "libgcc-ng", "mkl"):
        assert name in message
    assert "numpy," not in message.split("it maps")[0]  # the mappable one is not blamed
    assert "scikit-learn" in message  # says what it maps


@pytest.mark.parametrize(("text", "key"), [
    ("- a list", None),
    ("dependencies: {numpy: 1}", "dependencies"),
    ("dependencies: [python=three]", "dependencies"),
    ("dependencies: [{pip: numpy}]", "dependencies.pip"),
    ("channels: conda-forge\ndependencies: []", "channels"),
])
def test_bad_files_name_the_key(text: str, key: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_conda_text(text, "c.yml")
    assert caught.value.key == key
