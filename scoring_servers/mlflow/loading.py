"""Loading the model once at start, with `mlflow.pyfunc.load_model`, and what the server needs
to know about it afterwards (its signature, whether `predict` takes params, its input example).

Why a missing package gets its own message: a model's flavour (e.g. `mlflow.lightgbm`) imports
its framework only when the model is loaded, so a deployment whose environment lacks it fails
here with a bare `ModuleNotFoundError` deep in MLflow. The operator needs to know which package
is missing and where the model lists what it needs (`requirements.txt`, `conda.yaml`).
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
from mlflow.models import Model
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PyFuncModel

from scoring_servers.mlflow.errors import ModelLoadError

logger = logging.getLogger("scoring_servers.mlflow")

ENVIRONMENT_FILES = ("requirements.txt", "conda.yaml", "python_env.yaml")


@dataclass(frozen=True)
class ServedModel:
    pyfunc: PyFuncModel
    model_dir: Path
    loader_module: str
    signature: ModelSignature | None
    input_example: Any  # as MLflow loads it (DataFrame, ndarray, dict, ...), or None
    takes_params: bool  # predict(data, params=...) exists (MLflow ≥ 2.6)
    hinted: bool  # signature from type hints: MLflow passes `inputs` through unparsed


def load_served_model(model_dir: Path) -> ServedModel:
    metadata = _read_mlmodel(model_dir)
    loader_module = str(metadata.flavors.get("python_function", {}).get("loader_module", "?"))
    try:
        pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    except ModuleNotFoundError as exc:
        raise ModelLoadError(missing_package_message(model_dir, loader_module, exc)) from exc
    except Exception as exc:
        raise ModelLoadError(f"cannot load the MLflow model in {model_dir} "
                             f"(loader {loader_module}): {type(exc).__name__}: {exc}") from exc
    hinted_check = getattr(pyfunc.metadata, "_is_signature_from_type_hint", None)
    return ServedModel(
        pyfunc=pyfunc,
        model_dir=model_dir,
        loader_module=loader_module,
        signature=pyfunc.metadata.signature,
        input_example=_input_example(pyfunc.metadata, model_dir),
        takes_params="params" in inspect.signature(pyfunc.predict).parameters,
        hinted=bool(hinted_check()) if callable(hinted_check) else False,
    )


def _read_mlmodel(model_dir: Path) -> Model:
    try:
        return Model.load(str(model_dir / "MLmodel"))
    except Exception as exc:
        raise ModelLoadError(
            f"{model_dir / 'MLmodel'} is not a readable MLmodel file: {exc}") from exc


def _input_example(metadata: Model, model_dir: Path) -> Any:
    """The saved input example, for the swagger document only: a broken one is logged, not fatal."""
    if not metadata.saved_input_example_info:
        return None
    try:
        return metadata.load_input_example(str(model_dir))
    except Exception as exc:
        logger.warning("the model's input example could not be read (%s); "
                       "/swagger.json will show none", exc)
        return None


def missing_package_message(model_dir: Path, loader_module: str, exc: ModuleNotFoundError) -> str:
    module = (exc.name or str(exc)).split(".")[0]
    requirement = _requirement_for(model_dir, module)
    needs = f"the Python package {requirement!r} (module {module!r})" if requirement \
        else f"the Python module {module!r}"
    listed = [name for name in ENVIRONMENT_FILES if (model_dir / name).is_file()]
    if listed and listed[0] == "requirements.txt":
        fix = f"install the model's requirements: pip install -r {model_dir / 'requirements.txt'}"
    elif listed:
        fix = f"install the packages listed in {model_dir / listed[0]}"
    else:
        files = ", ".join(ENVIRONMENT_FILES)
        fix = f"install {module!r}; the model lists no requirements ({files})"
    return (f"cannot load the MLflow model in {model_dir}: its flavour {loader_module} needs "
            f"{needs}, which is not installed in this Python environment; {fix}")


def _requirement_for(model_dir: Path, module: str) -> str | None:
    """The model's requirements.txt line for `module`, when one names it (`lightgbm==3.3.2`)."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return None
    wanted = _normalized(module)
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        requirement = line.split("#", 1)[0].strip()
        name = re.split(r"[\s\[<>=!~;@]", requirement, maxsplit=1)[0]
        if name and _normalized(name) == wanted:
            return requirement
    return None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
