"""The state directory (`SCOREGATE_HOME`, default `~/.scoregate`) and what lives in it.

`server.json` tells the CLI and other tools where a running `serve` listens. It is written
atomically (temp file, fsync, rename) so a reader never sees half of it.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ADMIN_TOKEN_FILE = "admin_token"  # under the state directory; `admin/token.py` creates it
ADMIN_TOKEN_ENV = "SCOREGATE_ADMIN_TOKEN"  # overrides the file, for the server and the CLI
LOCK_FILE = "serve.lock"  # held (flock) by the one `serve` of a state directory


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

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def lock(self) -> IO[bytes]:
        """Takes the state directory for this process, before anything in it is written, or
        refuses (SystemExit naming the holder): two servers on one store would split the brain
        (a change through one is stored, the other keeps routing the old way). The lock is an
        `flock` on an open file the caller keeps for its whole life; the kernel drops it when
        the process ends, even by kill -9, so a crash never leaves a stale lock behind."""
        handle = open(self.lock_file, "a+b")  # noqa: SIM115 - held until the process ends
        os.fchmod(handle.fileno(), 0o600)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).decode(errors="replace").strip()
            handle.close()
            raise SystemExit(self._busy_message(holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        return handle

    def lost_state_warning(self) -> str | None:
        """A warning when `state.db` is missing but the admin token (written beside it on the
        first start) is there: the store was deleted or moved, and starting now creates an
        empty one with new endpoint keys. A warning, not a refusal: deleting state.db is also
        how a user resets the store on purpose."""
        if (self.path / "state.db").exists() or not (self.path / ADMIN_TOKEN_FILE).exists():
            return None
        return (f"WARNING: {self.path / 'state.db'} is missing but {ADMIN_TOKEN_FILE} is there: "
                "this state folder held a store before. Starting with an EMPTY store: every "
                "endpoint, deployment and endpoint key of before is gone (clients' keys stop "
                "working). Stop now and restore state.db from a backup to keep them.")

    def _busy_message(self, holder: str) -> str:
        info = self.read_server_info()
        urls = "still starting (no server.json yet)"
        if info and str(info.get("pid")) == holder:
            urls = f"scoring {info.get('scoring_url')}, admin {info.get('admin_url')}"
        return (f"error: another scoregate serve (pid {holder or 'unknown'}; {urls}) holds the "
                f"state directory {self.path}; stop it, or give this one another --home")

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
