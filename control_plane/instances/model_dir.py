"""AZUREML_MODEL_DIR for a managed deployment, laid out as Azure ML lays it out.

Azure mounts a model registered from `.../model/` so that the model folder keeps its name under
AZUREML_MODEL_DIR; scoring scripts open `os.path.join(AZUREML_MODEL_DIR, "model/<file>")`.
We get the same layout without copying: a folder holding one symlink named like the last
component of `model_path`. The folder is keyed by a hash of `model_path`, so a rolling
replace to a new model never changes the link that running instances use.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def prepare_model_dir(work_root: Path, endpoint: str, deployment: str,
                      model_path: str | None) -> Path:
    """Create (idempotently) and return the folder to pass as AZUREML_MODEL_DIR."""
    normalized = str(Path(model_path)) if model_path else ""
    digest = hashlib.sha256(normalized.encode()).hexdigest()[:12]
    folder = work_root / endpoint / deployment / digest
    folder.mkdir(parents=True, exist_ok=True)
    if model_path:
        target = Path(model_path)
        if not target.name:
            raise ValueError(f"model path {model_path!r} has no folder or file name to link")
        _replace_symlink(folder / target.name, target)
    return folder


def _replace_symlink(link: Path, target: Path) -> None:
    """Point `link` at `target`, atomically (a rename), whatever was there before."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(target, target_is_directory=target.is_dir())
    os.replace(temporary, link)
