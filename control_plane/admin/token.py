"""The admin API's token: `SCOREGATE_ADMIN_TOKEN`, else `home/admin_token` (created at first use).

The file is created 0600 and atomically (temp file, fsync, hard link): two processes starting
at once both end up with the one token that won, never with a half-written file.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from control_plane.home import ADMIN_TOKEN_ENV as ENV_VAR
from control_plane.home import ADMIN_TOKEN_FILE as TOKEN_FILE
from control_plane.home import fsync_folder

__all__ = ["ENV_VAR", "TOKEN_FILE", "load_admin_token"]


def load_admin_token(home: Path, environ: Mapping[str, str] | None = None) -> str:
    """The environment variable wins; otherwise the stored token, created if missing."""
    override = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if override:
        return override
    path = Path(home) / TOKEN_FILE
    if not path.exists():
        _create(path, secrets.token_urlsafe(32))
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path} is empty: delete it to get a new admin token")
    return token


def _create(path: Path, token: str) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temp, path)  # fails if another process created the token first: keep theirs
    except FileExistsError:
        pass
    finally:
        temp.unlink()
    fsync_folder(path.parent)
