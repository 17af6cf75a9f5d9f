"""Where each instance's stdout+stderr goes, and reading back the last lines for get-logs.

Paths are built only from names checked here (the same rule as validation's names), and are
checked to stay under the log root, so no request can make get-logs read another file.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from control_plane.errors import ValidationError

_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-)){1,30}[A-Za-z0-9]")
_INSTANCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,31}-[0-9]{1,6}")
ROTATE_BYTES = 32 * 1024 * 1024  # an instance log past this moves to <id>.log.1 (one kept)
TAIL_MAX_LINES = 100_000  # get-logs returns at most this many lines...
TAIL_MAX_BYTES = 4 * 1024 * 1024  # ...and this many bytes, whatever it asks for
_CHUNK = 64 * 1024
_MEMORY_ERROR = b"MemoryError"


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


class RotatingLog:
    """One instance's log file, rotated by size while the instance runs.

    Everything the instance prints comes through `write` (from its pipe, see `pump`), so the
    file never grows past `limit`: it is renamed to `<id>.log.1` (replacing the previous one)
    and a new file begins. At most 2 × `limit` bytes per instance stay on disk. The lock is
    held only by the pump thread and the supervisor's own notes, never by the hot path.
    """

    def __init__(self, path: Path, limit: int = ROTATE_BYTES) -> None:
        if limit < 1:
            raise ValueError(f"a log size limit must be at least 1 byte, got {limit}")
        self.path = path
        self.limit = limit
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(path, "ab")  # closed in close()
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        """Append `data`; a file that would pass the limit is rotated after its last whole
        line that fits (a line longer than the limit is cut)."""
        with self._lock:
            while len(data) > self.limit - self._size:
                room = self.limit - self._size
                cut = data.rfind(b"\n", 0, room) + 1
                if cut == 0 and self._size == 0:
                    cut = room
                self._append(data[:cut])
                data = data[cut:]
                self._rotate()
            self._append(data)

    def _append(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        try:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except OSError:  # cannot keep the old part: start over rather than pass the cap
            self._file = open(self.path, "wb")
        else:
            self._file = open(self.path, "ab")
        self._size = 0


def pump(pipe: IO[bytes], log: RotatingLog,
         on_memory_error: Callable[[], None] | None = None) -> threading.Thread:
    """A thread copying an instance's output pipe into its log until the pipe closes (the
    process group is gone). With `on_memory_error`, it is called (from the thread) when the
    output shows a Python `MemoryError`: the instance hit its memory limit."""
    def copy() -> None:
        tail = b""
        with pipe:
            while chunk := os.read(pipe.fileno(), _CHUNK):
                try:
                    log.write(chunk)
                except (OSError, ValueError):  # disk full, or the log closed: keep draining
                    pass
                if on_memory_error is not None and _MEMORY_ERROR in tail + chunk:
                    on_memory_error()
                tail = chunk[-len(_MEMORY_ERROR):]

    thread = threading.Thread(target=copy, name=f"log {log.path.name}", daemon=True)
    thread.start()
    return thread


def tail(path: Path, lines: int, max_bytes: int = TAIL_MAX_BYTES) -> list[str]:
    """The last `lines` lines of a file, reading its end once and at most `max_bytes` of it
    (a longer first line is cut at the start)."""
    if lines <= 0 or max_bytes <= 0:
        return []
    try:
        with open(path, "rb") as file:
            data = _read_tail(file, lines, max_bytes)
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def _read_tail(file: BinaryIO, lines: int, max_bytes: int) -> bytes:
    end = file.seek(0, os.SEEK_END)
    chunks: list[bytes] = []
    newlines = read = 0
    while end > 0 and newlines <= lines and read < max_bytes:
        start = max(0, end - min(_CHUNK, max_bytes - read))
        file.seek(start)
        chunk = file.read(end - start)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")  # only the new chunk is counted: linear, not quadratic
        read += len(chunk)
        end = start
    return b"".join(reversed(chunks))


def instance_tail(path: Path, lines: int, max_bytes: int) -> list[str]:
    """The last lines of an instance's log, reaching into the rotated `<id>.log.1` when the
    current file holds fewer than asked (a rotation just happened)."""
    current = tail(path, lines, max_bytes)
    wanted = lines - len(current)
    budget = max_bytes - sum(len(line) + 1 for line in current)
    if wanted <= 0 or budget <= 0:
        return current
    return tail(path.with_name(path.name + ".1"), wanted, budget) + current


def deployment_logs(log_root: Path, endpoint: str, deployment: str, lines: int) -> str:
    """The last `lines` lines across the deployment's instance logs, each prefixed by its id;
    at most TAIL_MAX_LINES lines and about TAIL_MAX_BYTES bytes.

    Grouped per instance (a line has no timestamp of its own to interleave by); the instance
    whose log was written last comes last, so the newest lines are at the end.
    """
    folder = deployment_log_dir(log_root, endpoint, deployment)
    lines = min(lines, TAIL_MAX_LINES)
    if not folder.is_dir() or lines <= 0:
        return ""
    logs = [path for path in folder.glob("*.log")
            if _INSTANCE_ID.fullmatch(path.stem) and _is_inside(log_root, path)]
    logs.sort(key=lambda path: (_mtime(path), path.name), reverse=True)
    out: list[str] = []
    budget = TAIL_MAX_BYTES
    for path in logs:  # newest first, so the byte budget goes to the newest lines
        found = [f"[{path.stem}] {line}" for line in instance_tail(path, lines, budget)]
        out[:0] = found
        budget -= sum(len(line) + 1 for line in found)
        if budget <= 0 or len(out) >= lines:
            break
    return "\n".join(out[-lines:]) + ("\n" if out else "")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # renamed by a rotation since it was listed
        return 0.0


def _inside(root: Path, path: Path) -> None:
    if not _is_inside(root, path):
        raise ValueError(f"log path {path} is outside the log root {root}")


def _is_inside(root: Path, path: Path) -> bool:
    """After following symlinks: a link planted in the log folder cannot point elsewhere."""
    resolved_root, resolved = root.resolve(), path.resolve()
    return resolved == resolved_root or resolved_root in resolved.parents
