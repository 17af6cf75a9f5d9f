"""Content-addressed, immutable artifact storage under `<home>/models/`.

    models/sha256/<digest>/<entry>   a registered artifact: `<entry>` is the file or folder
                                     given to `model create`, under its own name
    models/tmp/<random>/             copies being made, and folders being deleted

The digest is the sha256 of the tree's description: for each file or folder, in an order
fixed by the names' bytes (a folder before what it holds), its kind (folder, file, executable
file), its path relative to the tree (starting with `<entry>`, since scoring scripts find their
files by it), and for a file its size and the sha256 of its contents. Timestamps, owners and
other mode bits do not count. So equal content gets one folder, whichever versions share it.

Symbolic links are followed: the copy holds what they point to, so a registered model cannot
change when a link's target does. A link that points nowhere, a folder that contains itself,
and anything that is neither file nor folder (sockets, devices, fifos) are refused.

No half-made copy is ever visible under `sha256/`: `stage` copies into `tmp/`, hashing what it
writes, fsyncs every file and folder and makes them read-only (files 0444, executables 0555,
folders 0555); `place` renames the finished folder to `sha256/<digest>` (if another version
already stored equal content, the copy is dropped) and fsyncs both parents. Deleting renames
the folder back into `tmp/` first. After a crash, `tmp/` holds only leftovers (`purge_temp`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from control_plane.errors import Conflict, ValidationError
from control_plane.home import fsync_folder

_CHUNK = 1 << 20
FOLDER_MODE, FILE_MODE, EXECUTABLE_MODE = 0o555, 0o444, 0o555


@dataclass(frozen=True)
class TreeDigest:
    digest: str  # sha256, hex
    size: int  # bytes of file content


@dataclass(frozen=True)
class Staged:
    """A complete, durable, read-only copy in `tmp/`, not yet visible under `sha256/`."""

    folder: Path
    entry: str
    tree: TreeDigest


class ArtifactStore:
    def __init__(self, home: Path) -> None:
        self.root = Path(home) / "models"
        self.objects = self.root / "sha256"
        self.temp = self.root / "tmp"

    def ensure(self) -> None:
        for folder in (self.root, self.objects, self.temp):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def location(self, digest: str, entry: str) -> Path:
        return self.objects / digest / entry

    def stage(self, source: Path) -> Staged:
        """Copies `source` (a file or folder) into `tmp/`; the digest describes what was
        written, even if `source` changes meanwhile."""
        given = Path(os.path.abspath(source))
        if not given.name:
            raise ValidationError("model-path", f"model path {str(source)!r} names no file or "
                                  "folder; give the model's own file or folder")
        if not given.exists():
            raise ValidationError("model-path", f"model path {str(source)!r} does not exist")
        self.ensure()
        folder = self.temp / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        try:
            tree = _Tree()
            _copy(given, folder / given.name, given.name, tree, frozenset())
            fsync_folder(folder)
        except BaseException:
            remove_tree(folder)
            raise
        return Staged(folder, given.name, tree.result())

    def place(self, staged: Staged) -> bool:
        """Makes the staged copy visible as `sha256/<digest>`; False (and the copy dropped)
        when that folder exists already, equal content stored by another version."""
        target = self.objects / staged.tree.digest
        try:
            os.rename(staged.folder, target)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            self.discard(staged)
            return False
        fsync_folder(self.objects)
        fsync_folder(self.temp)
        os.chmod(target, FOLDER_MODE)
        return True

    def discard(self, staged: Staged) -> None:
        remove_tree(staged.folder)

    def remove(self, digest: str) -> None:
        """Renames `sha256/<digest>` into `tmp/` (so it never shows half-deleted), then
        deletes it."""
        target = self.objects / digest
        if not target.exists():
            return
        trash = self.temp / uuid.uuid4().hex
        os.chmod(target, 0o700)  # moving a folder to another parent rewrites its `..`
        os.rename(target, trash)
        fsync_folder(self.objects)
        remove_tree(trash)

    def digests(self) -> set[str]:
        return {p.name for p in self.objects.iterdir()} if self.objects.exists() else set()

    def purge_temp(self) -> int:
        """Deletes what a crash left in `tmp/`; only safe while nothing else writes here."""
        if not self.temp.exists():
            return 0
        leftovers = list(self.temp.iterdir())
        for path in leftovers:
            remove_tree(path)
        return len(leftovers)

    def seal(self, digest: str) -> None:
        """Read-only again: a crash between `place`'s rename and its chmod leaves 0700."""
        os.chmod(self.objects / digest, FOLDER_MODE)

    def verify(self, digest: str, entry: str) -> TreeDigest:
        """The digest and size of what is stored now (equal to `digest` unless tampered)."""
        tree = _Tree()
        path = self.location(digest, entry)
        _copy(path, None, entry, tree, frozenset())
        return tree.result()

    def copy_out(self, digest: str, entry: str, destination: Path) -> Path:
        """A writable copy of the artifact as `destination/<entry>`; refused if it exists."""
        target = Path(destination) / entry
        if target.exists() or target.is_symlink():
            raise Conflict(f"{target} exists already; remove it or download somewhere else")
        Path(destination).mkdir(parents=True, exist_ok=True)
        _copy_writable(self.location(digest, entry), target)
        return target


def tree_digest(path: Path) -> TreeDigest:
    """The digest a file or folder would be stored under (see the module's docstring)."""
    given = Path(os.path.abspath(path))
    tree = _Tree()
    _copy(given, None, given.name, tree, frozenset())
    return tree.result()


def remove_tree(path: Path) -> None:
    """Deletes a folder this module made read-only (its folders need write permission)."""
    if not path.exists():
        return
    for folder, _, _ in os.walk(path):
        os.chmod(folder, 0o700)
    shutil.rmtree(path)


class _Tree:
    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def folder(self, relative: str) -> None:
        self._hash.update(b"D\0" + os.fsencode(relative) + b"\0")

    def file(self, relative: str, executable: bool, size: int, digest: str) -> None:
        kind = b"X" if executable else b"F"
        self._hash.update(kind + b"\0" + os.fsencode(relative) + b"\0"
                          + str(size).encode() + b"\0" + digest.encode() + b"\0")
        self._size += size

    def result(self) -> TreeDigest:
        return TreeDigest(self._hash.hexdigest(), self._size)


def _copy(source: Path, target: Path | None, relative: str, tree: _Tree,
          ancestors: frozenset[tuple[int, int]]) -> None:
    """Walks `source` (following links), hashing into `tree`; copies durably into `target`
    unless it is None (then only hashes)."""
    info = _stat(source, relative)
    if stat.S_ISDIR(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if key in ancestors:
            raise ValidationError("model-path", f"model path: folder {relative!r} contains "
                                  "itself (a symbolic link loop); remove the link")
        tree.folder(relative)
        if target is not None:
            target.mkdir(mode=0o700)
        for name in sorted(os.listdir(source), key=os.fsencode):
            _copy(source / name, None if target is None else target / name,
                  f"{relative}/{name}", tree, ancestors | {key})
        if target is not None:
            fsync_folder(target)
            os.chmod(target, FOLDER_MODE)
    elif stat.S_ISREG(info.st_mode):
        executable = bool(info.st_mode & 0o111)
        digest, size = _copy_file(source, target, EXECUTABLE_MODE if executable else FILE_MODE)
        tree.file(relative, executable, size, digest)
    else:
        raise ValidationError("model-path", f"model path: {relative!r} is neither a file nor a "
                              "folder (a socket, device or fifo); only files and folders are "
                              "stored")


def _stat(source: Path, relative: str) -> os.stat_result:
    try:
        return os.stat(source)
    except FileNotFoundError:
        if os.path.islink(source):
            raise ValidationError("model-path", f"model path: {relative!r} is a symbolic link "
                                  f"to nothing ({os.readlink(source)!r})") from None
        raise ValidationError("model-path", f"model path: {relative!r} disappeared while it "
                              "was being copied") from None
    except OSError as error:
        raise ValidationError("model-path", f"model path: cannot read {relative!r}: "
                              f"{error.strerror}") from None


def _copy_file(source: Path, target: Path | None, mode: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reader:
        writer = None if target is None else open(target, "xb")  # noqa: SIM115
        try:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if writer is not None:
                    writer.write(chunk)
            if writer is not None:
                writer.flush()
                os.fsync(writer.fileno())
                os.fchmod(writer.fileno(), mode)
        finally:
            if writer is not None:
                writer.close()
    return digest.hexdigest(), size


def _copy_writable(source: Path, target: Path) -> None:
    if source.is_dir():
        target.mkdir(mode=0o755)
        for child in sorted(source.iterdir()):
            _copy_writable(child, target / child.name)
    else:
        shutil.copyfile(source, target)
        os.chmod(target, 0o755 if source.stat().st_mode & 0o111 else 0o644)
