"""Trains the two models of the blue-green example: blue (model-1) and green (model-2).

Both learn scikit-learn's bundled diabetes data set (no download) deterministically, and are
saved with joblib where the deployments' `model.path` points. The .pkl files are not committed
(scikit-learn pickles only load in the version that wrote them), so `serve` and the tests call
`ensure_models(folder)` first; it trains only what is missing.

    python config/examples/blue-green/train.py [--force]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODEL_FILE = "sklearn_regression_model.pkl"
HERE = Path(__file__).resolve().parent


def model_path(folder: Path, version: str) -> Path:
    """Where a version's model lives: `<folder>/<version>/model/sklearn_regression_model.pkl`."""
    return folder / version / "model" / MODEL_FILE


def _blue() -> Any:
    from sklearn.linear_model import Ridge

    return Ridge(alpha=0.1)


def _green() -> Any:
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0)


MODELS: dict[str, Callable[[], Any]] = {"model-1": _blue, "model-2": _green}


def train(folder: Path, version: str) -> Path:
    """Fits one version and writes it atomically (a reader never sees half a file)."""
    import joblib
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)
    model = MODELS[version]().fit(features, target)
    path = model_path(folder, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        joblib.dump(model, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def ensure_models(folder: Path | str = HERE) -> None:
    """Trains each model whose file is missing; does nothing when both exist."""
    for version in MODELS:
        if not model_path(Path(folder), version).is_file():
            train(Path(folder), version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the blue-green example's two models.")
    parser.add_argument("--force", action="store_true", help="retrain even if the files exist")
    args = parser.parse_args(argv)
    for version in MODELS:
        path = model_path(HERE, version)
        if args.force or not path.is_file():
            print(f"trained {train(HERE, version)}")
        else:
            print(f"kept {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
