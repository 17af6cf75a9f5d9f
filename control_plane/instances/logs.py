"""Where each instance's stdout+stderr goes, and reading back the last lines for get-logs.

Paths are built only from names checked here (the same rule as validation's names), and are
checked to stay under the log root, so no request can make get-logs read another file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from control_plane.errors import ValidationError

_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){1,30}[A-Za-z0-9]")
_INSTANCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,31}-[0-9]{1,6}")
ROTATE_BYTES = 32 * 1024 * 1024  # at instance start, a log larger than this moves to <id>.log.1
_CHUNK = 64 * 1024


def checked_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValidationError("name", f"invalid {kind} name {name!r}: 3-32 characters, a letter "
                                      "first, letters, digits and single dashes, ending in a "
                                      "letter or digit")
    return name


def deployment_log_dir(log_root: Path, endpoint: str, deployment: str) -> Path:
    folder = log_root / checked_name("endpoint", endpoint) / checked_name("deployment", deployment)
    _inside(log_root, folder)
    return folder


def instance_log_path(log_root: Path, endpoint: str, deployment: str, instance_id: str) -> Path:
    if not _INSTANCE_ID.fullmatch(instance_id):
        raise ValueError(f"invalid instance id {instance_id!r}")
    path = deployment_log_dir(log_root, endpoint, deployment) / f"{instance_id}.log"
    _inside(log_root, path)
    return path


def rotate_if_large(path: Path, limit: int = ROTATE_BYTES) -> None:
    """Bound what restarts accumulate: one previous generation is kept."""
    try:
        if path.stat().st_size > limit:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a file, reading only as much of its end as needed."""
    if lines <= 0:
        return []
    try:
        with open(path, "rb") as file:
            end = file.seek(0, os.SEEK_END)
            data = b""
            while end > 0 and data.count(b"\n") <= lines:
                start = max(0, end - _CHUNK)
                file.seek(start)
                data = file.read(end - start) + data
                end = start
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def deployment_logs(log_root: Path, endpoint: str, deployment: str, lines: int) -> str:
    """The last `lines` lines across the deployment's instance logs, each prefixed by its id.

    Grouped per instance (a line has no timestamp of its own to interleave by); the instance
    whose log was written last comes last, so the newest lines are at the end.
    """
    folder = deployment_log_dir(log_root, endpoint, deployment)
    if not folder.is_dir():
        return ""
    logs = [path for path in folder.glob("*.log")
            if _INSTANCE_ID.fullmatch(path.stem) and _is_inside(log_root, path)]
    logs.sort(key=lambda path: (path.stat().st_mtime, path.name))
    out: list[str] = []
    for path in logs:
        out.extend(f"[{path.stem}] {line}" for line in tail(path, lines))
    return "\n".join(out[-lines:]) + ("\n" if out and lines > 0 else "")


def _inside(root: Path, path: Path) -> None:
    if not _is_inside(root, path):
        raise ValueError(f"log path {path} is outside the log root {root}")


def _is_inside(root: Path, path: Path) -> bool:
    """After following symlinks: a link planted in the log folder cannot point elsewhere."""
    resolved_root, resolved = root.resolve(), path.resolve()
    return resolved == resolved_root or resolved_root in resolved.parents
