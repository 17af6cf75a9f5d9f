"""Each instance's private files: its Unix socket and its AZUREML_MODEL_DIR, and nothing else.

Azure mounts a model registered from `.../model/` so that the model folder keeps its name under
AZUREML_MODEL_DIR; scoring scripts open `os.path.join(AZUREML_MODEL_DIR, "model/<file>")`.
We get the same layout without copying: a folder holding one real folder named like the last
component of `model_path`, whose files are hard links to the model's. Not a symlink: MLflow 3
refuses to load a model reached through one ("resolved path is outside the artifact
directory"), and scripts load MLflow models from `AZUREML_MODEL_DIR/<folder>` with
`mlflow.pyfunc.load_model`. Hard links cost no space and keep the files' read-only modes;
where one cannot be made (another filesystem), the file is copied.

Where these live is a security decision (docs/security.md, "Managed instances"). Each
instance gets its own folder, `sg-XXXXXXXX` made by `mkdtemp` (random name, mode 0700) in the
temp folder, *outside* the state folder:

    $TMPDIR/sg-XXXXXXXX/sock       its listening Unix socket (0600): no TCP port any local
                                   user could connect to; the gateway and probes connect here
    $TMPDIR/sg-XXXXXXXX/m/         AZUREML_MODEL_DIR: one folder, named like the model's

So `AZUREML_MODEL_DIR/..` holds only the instance's own socket and `../..` is the system's
temp folder: the state folder (`state.db`, the keys, the admin token, the logs) is not above
it, and no folder of scoregate's above it holds another deployment's files. The instance runs
as the server's user, so this keeps secrets out of its way, not out of its reach: it is no
sandbox against a hostile script (docs/security.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from control_plane.errors import ValidationError

_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL


@dataclass(frozen=True)
class InstancePaths:
    """One instance's folder, socket and model folder; fixed for its whole life (restarts
    included), so a rolling replace to a new model never changes what a running one uses."""

    root: Path
    socket: Path
    model_dir: Path


class InstanceFolders:
    """Makes and removes the instances' private folders under `parent` (the temp folder when
    None)."""

    def __init__(self, parent: Path | None = None) -> None:
        self.parent = parent

    def allocate(self, model_path: str | None) -> InstancePaths:
        """A fresh folder with a socket path and a model folder in it."""
        if self.parent is not None:
            self.parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="sg-", dir=self.parent))
        paths = InstancePaths(root, root / "sock", root / "m")
        try:
            if len(os.fsencode(paths.socket)) > _MAX_SOCKET_PATH:
                raise ValidationError("instance-socket", f"the instance socket path "
                                                         f"{paths.socket} is longer than Unix "
                                                         "sockets allow; set TMPDIR to a shorter "
                                                         "folder")
            paths.model_dir.mkdir(mode=0o700)
            if model_path:
                target = Path(model_path)
                if not target.name:
                    raise ValueError(f"model path {model_path!r} has no folder or file name "
                                     "to link")
                link_tree(target, paths.model_dir / target.name)
        except BaseException:
            self.release(paths)
            raise
        return paths

    def release(self, paths: InstancePaths) -> None:
        """Remove what `allocate` made (the instance's process has stopped); the model itself
        is only linked, never removed."""
        shutil.rmtree(paths.root, ignore_errors=True)


def link_tree(source: Path, destination: Path, _above: frozenset[Path] = frozenset()) -> None:
    """A real folder tree at `destination` (new) with `source`'s files hard-linked (or copied
    across filesystems); symlinks inside the model are followed, as a mount would show them."""
    if source.is_dir():
        real = source.resolve()
        if real in _above:
            raise ValueError(f"{source} leads back to {real} (a symlink loop in the model "
                             "folder)")
        destination.mkdir(mode=0o700)
        for child in sorted(source.iterdir()):
            link_tree(child, destination / child.name, _above | {real})
    elif source.exists():  # a dangling symlink inside the model is left out
        try:  # resolved: Linux's link(2) would link a symlink itself
            os.link(source.resolve(), destination)
        except OSError:  # another filesystem, or a file the kernel will not link for us
            shutil.copy2(source, destination)
