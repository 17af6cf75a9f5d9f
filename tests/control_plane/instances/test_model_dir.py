"""AZUREML_MODEL_DIR as instances see it: the model folder's name kept, real folders (no
symlink on the way, which MLflow 3 refuses), the model's current files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

from control_plane.instances.model_dir import InstanceFolders, link_tree

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # an import-time advice inside MLflow
    import mlflow.pyfunc

from tests.scoring_servers.mlflow.models import (  # noqa: E402
    COLUMNS,
    mlflow_advice_silenced,
    save_sklearn_model,
)


def prepare_model_dir(work: Path, model_path: str) -> Path:
    """AZUREML_MODEL_DIR of a fresh instance folder under `work`."""
    return InstanceFolders(work).allocate(model_path).model_dir


def no_symlink_on_the_way(path: Path) -> bool:
    return all(not part.is_symlink() for part in [path, *path.parents])


def test_the_model_folder_is_real_and_shares_the_files(tmp_path: Path) -> None:
    model = tmp_path / "models" / "model"
    (model / "sub").mkdir(parents=True)
    (model / "m.pkl").write_text("x")
    (model / "sub" / "w.bin").write_bytes(b"\1\2")
    model_dir = prepare_model_dir(tmp_path / "work", str(model))
    placed = model_dir / "model"
    assert no_symlink_on_the_way(placed / "sub" / "w.bin")
    assert (placed / "m.pkl").read_text() == "x"
    assert (placed / "sub" / "w.bin").read_bytes() == b"\1\2"
    assert os.stat(placed / "m.pkl").st_ino == os.stat(model / "m.pkl").st_ino  # no copy


def test_a_new_start_shows_the_models_current_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "m.pkl").write_text("v1")
    first = prepare_model_dir(tmp_path / "work", str(model))
    (model / "m.pkl").unlink()
    (model / "m.pkl").write_text("v2")  # retrained in place: a new file, a new inode
    (model / "extra.txt").write_text("new")
    second = prepare_model_dir(tmp_path / "work", str(model))
    assert (second / "model" / "m.pkl").read_text() == "v2"
    assert (first / "model" / "m.pkl").read_text() == "v1"  # a running instance keeps its own
    assert sorted(p.name for p in second.iterdir()) == ["model"]


def test_a_single_model_file_is_linked_under_its_name(tmp_path: Path) -> None:
    model_file = tmp_path / "sklearn_regression_model.pkl"
    model_file.write_bytes(b"\0")
    model_dir = prepare_model_dir(tmp_path / "work", str(model_file))
    placed = model_dir / "sklearn_regression_model.pkl"
    assert placed.is_file() and not placed.is_symlink()


def test_symlinks_inside_the_model_are_followed_and_loops_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "weights.bin").write_bytes(b"w")
    (model / "weights.bin").symlink_to(tmp_path / "weights.bin")
    (model / "gone").symlink_to(tmp_path / "missing")
    link_tree(model, tmp_path / "copy")
    assert (tmp_path / "copy" / "weights.bin").read_bytes() == b"w"
    assert not (tmp_path / "copy" / "weights.bin").is_symlink()
    assert not (tmp_path / "copy" / "gone").exists()
    (model / "loop").symlink_to(model)
    with pytest.raises(ValueError, match="symlink loop"):
        link_tree(model, tmp_path / "again")


def test_mlflow_loads_the_model_from_azureml_model_dir(tmp_path: Path) -> None:
    """The with-script pattern: `mlflow.pyfunc.load_model(AZUREML_MODEL_DIR/model)`. MLflow 3
    refuses the symlink this folder used to be."""
    model = save_sklearn_model(tmp_path / "registered" / "model")
    model_dir = prepare_model_dir(tmp_path / "work", str(model))
    frame = pd.DataFrame([[1.0, 2.0, 3.0]], columns=COLUMNS)
    with mlflow_advice_silenced():
        expected = mlflow.pyfunc.load_model(str(model)).predict(frame)
        got = mlflow.pyfunc.load_model(os.path.join(model_dir, "model")).predict(frame)
    assert list(got) == list(expected)
