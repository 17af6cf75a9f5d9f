"""Each instance's private files: its Unix socket and its AZUREML_MODEL_DIR, and nothing else.

Azure mounts a model registered from `.../model/` so that the model folder keeps its name under
AZUREML_MODEL_DIR; scoring scripts open `os.path.join(AZUREML_MODEL_DIR, "model/<file>")`.
We get the same layout without copying: a folder holding one symlink named like the last
component of `model_path`.

Where these live is a security decision (docs/security.md, "Managed instances"):
- one root per supervisor, `sg-XXXXXXXX` made by `mkdtemp` in the temp folder (owner only),
  *outside* the state folder, so `AZUREML_MODEL_DIR/..` never leads to `state.db`, the keys,
  the admin token or the logs;
- the root is then made unlistable (mode 0300: the owner may create and open names it knows,
  but not list them), and each instance's names are random, so walking up from one instance's
  folder finds no other deployment's folder or socket;
- the sockets (mode 0600 in an owner-only root) are how the gateway reaches its instances:
  there is no TCP port another local user could connect to.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from control_plane.errors import ValidationError

_UNLISTABLE = 0o300  # write + search for the owner: names can be created and opened, not listed
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL


@dataclass(frozen=True)
class InstancePaths:
    """One instance's socket and model folder; fixed for its whole life (restarts included)."""

    socket: Path
    model_dir: Path


class InstanceFolders:
    """The supervisor's private root and the per-instance paths in it."""

    def __init__(self, parent: Path | None = None) -> None:
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="sg-", dir=parent))
        self.root.chmod(_UNLISTABLE)

    def allocate(self, model_path: str | None) -> InstancePaths:
        """A fresh socket path and model folder, both under random names."""
        token = secrets.token_hex(6)  # short: a socket path has at most 107 bytes
        paths = InstancePaths(self.root / f"{token}.sock", self.root / token)
        if len(os.fsencode(paths.socket)) > _MAX_SOCKET_PATH:
            raise ValidationError("instance-socket", f"the instance socket path {paths.socket} is "
                                                     "longer than Unix sockets allow; set TMPDIR "
                                                     "to a shorter folder")
        paths.model_dir.mkdir(mode=0o700)
        if model_path:
            target = Path(model_path)
            if not target.name:
                raise ValueError(f"model path {model_path!r} has no folder or file name to link")
            (paths.model_dir / target.name).symlink_to(target, target_is_directory=target.is_dir())
        return paths

    def release(self, paths: InstancePaths) -> None:
        """Remove what `allocate` made (the instance's process has stopped)."""
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()
        shutil.rmtree(paths.model_dir, ignore_errors=True)

    def close(self) -> None:
        """Remove the root and whatever is left in it (made listable again first)."""
        with contextlib.suppress(FileNotFoundError):
            self.root.chmod(0o700)
        shutil.rmtree(self.root, ignore_errors=True)
