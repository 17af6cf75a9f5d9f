"""One builder per environment key, across threads and processes: `flock` on `<key>.lock`.

Each holder opens the file itself, so two threads of one process conflict as two processes do
(flock locks belong to the open file). The kernel drops the lock when its holder dies, even by
kill -9, so a crashed build never blocks the next one. Should the lock file be replaced while
we waited on the old one (garbage collection removes it), we lock again: the lock that counts
is the one on the file now at that path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def held(path: Path, wait: bool = True) -> Iterator[bool]:
    """Yields True once the lock is held; with `wait=False`, yields False at once when another
    holder has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            if not _same_file(fd, path):
                continue
            yield True
            return
        finally:
            os.close(fd)  # closing releases the lock


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
