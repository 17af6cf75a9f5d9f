"""The state directory (`SCOREGATE_HOME`, default `~/.scoregate`) and what lives in it.

`server.json` tells the CLI and other tools where a running `serve` listens. It is written
atomically (temp file, fsync, rename) so a reader never sees half of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ADMIN_TOKEN_FILE = "admin_token"  # under the state directory; `admin/token.py` creates it
ADMIN_TOKEN_ENV = "SCOREGATE_ADMIN_TOKEN"  # overrides the file, for the server and the CLI


def default_home() -> Path:
    return Path(os.environ.get("SCOREGATE_HOME") or Path.home() / ".scoregate")


@dataclass(frozen=True)
class StateDir:
    path: Path

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def server_info(self) -> Path:
        return self.path / "server.json"

    def ensure(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)

    def read_server_info(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.server_info.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def refuse_if_running(self) -> None:
        info = self.read_server_info()
        pid = info.get("pid") if info else None
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            raise SystemExit(
                f"error: scoregate is already serving from {self.path} (pid {pid}, "
                f"{info.get('scoring_url') if info else ''}); stop it or use another --home"
            )

    def write_server_info(self, *, scoring_url: str, admin_url: str) -> None:
        data = {"scoring_url": scoring_url, "admin_url": admin_url, "pid": os.getpid()}
        write_atomically(self.server_info, json.dumps(data, indent=2).encode() + b"\n")

    def remove_server_info(self) -> None:
        info = self.read_server_info()
        if info and info.get("pid") == os.getpid():
            self.server_info.unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Makes a rename or link inside `folder` durable (the new name is in the folder's data)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


