"""Removing environments no deployment uses, and the disk each one takes.

An environment is kept while any deployment uses it (`in_use` gives the keys) and for a grace
period after it was last seen in use (a deployment deleted and re-created soon after finds it
still built). Each pass notes "seen in use" as the mtime of `<key>.used`; without that file
the environment's build time counts. Removal first renames `<key>/` to the builder's
temporary name under the key's lock, so a crash mid-removal leaves nothing that looks ready
(`Builder.recover` finishes it), and a build of the same key waits instead of racing.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from control_plane.environments import locks
from control_plane.environments.builder import READY, Builder, disk_usage
from control_plane.home import fsync_folder

DEFAULT_GRACE_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class EnvironmentUsage:
    key: str
    path: Path
    size_bytes: int
    in_use: bool
    last_used: float  # epoch seconds: last seen in use, or built


def usage(builder: Builder, in_use: Callable[[], set[str]]) -> list[EnvironmentUsage]:
    """Every ready environment with its disk use (for `environment list --built` and status)."""
    used = in_use()
    return [EnvironmentUsage(key, builder.root / key, disk_usage(builder.root / key),
                             key in used, _last_used(builder, key)) for key in ready_keys(builder)]


def collect(builder: Builder, in_use: Callable[[], set[str]], grace_s: float = DEFAULT_GRACE_S,
            now: float | None = None) -> list[str]:
    """Removes the environments unused for `grace_s` (0: every unused one); returns their
    keys. An environment being built or removed by someone else is left alone."""
    now = time.time() if now is None else now
    used = in_use()
    removed: list[str] = []
    for key in ready_keys(builder):
        if key in used:
            _mark_used(builder, key, now)
        elif now - _last_used(builder, key) >= grace_s and remove(builder, key):
            removed.append(key)
    return removed


def remove(builder: Builder, key: str) -> bool:
    """Removes one environment now (the caller knows it is unused); False if absent or busy."""
    with locks.held(builder.lock_path(key), wait=False) as mine:
        final = builder.root / key
        if not mine or not final.is_dir():
            return False
        doomed = builder.root / f".build-{key}"
        shutil.rmtree(doomed, ignore_errors=True)
        os.rename(final, doomed)
        fsync_folder(builder.root)
        shutil.rmtree(doomed, ignore_errors=True)
        for leftover in (builder.log_path(key), _used_path(builder, key)):
            leftover.unlink(missing_ok=True)
        return True


def ready_keys(builder: Builder) -> list[str]:
    if not builder.root.is_dir():
        return []
    return sorted(p.parent.name for p in builder.root.glob(f"*/{READY}")
                  if not p.parent.name.startswith("."))


def _used_path(builder: Builder, key: str) -> Path:
    return builder.root / f"{key}.used"


def _mark_used(builder: Builder, key: str, now: float) -> None:
    path = _used_path(builder, key)
    path.touch()
    os.utime(path, (now, now))


def _last_used(builder: Builder, key: str) -> float:
    for path in (_used_path(builder, key), builder.root / key / READY):
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            continue
    return 0.0
