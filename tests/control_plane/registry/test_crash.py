"""kill -9 during `create` of a large folder, at several points: after re-opening and
`recover`, no version is half-registered, no artifact folder is orphaned, and every committed
version's digest re-verifies."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from control_plane.errors import NotFound
from control_plane.registry import STORE_EXTENSION, ModelRegistry, Recovery
from control_plane.store.sqlite_store import Store
from tests.control_plane.registry.conftest import make_model
from tests.support.processes import ProcessGroup, Started, wait_until

FILES = 160  # × 32 KiB, in 8 folders: a create takes a fraction of a second here
KILLS = 5


def committed(worker: Started) -> int:
    return sum(line.startswith("committed ") for line in worker.log().splitlines())


def files_in(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))  # copes with folders vanishing


def kill_during_create(processes: ProcessGroup, home: Path, source: Path, commits: int,
                       copied: int) -> int:
    """Starts the worker, kills it once it has committed `commits` versions and copied
    `copied` files of the next one; returns how many commits it reported."""
    worker = processes.python("-m", "tests.control_plane.registry.create_loop", str(home),
                              str(source), name="create-loop")
    wait_until(lambda: committed(worker) >= commits or worker.proc.poll() is not None,
               timeout=120, what=f"{commits} commits")
    wait_until(lambda: files_in(home / "models" / "tmp") >= copied
               or worker.proc.poll() is not None, timeout=120, what=f"{copied} files copied")
    assert worker.proc.poll() is None, worker.log()
    processes.stop(worker, signal.SIGKILL)
    return committed(worker)


def check(home: Path, printed: int, kills: int) -> Recovery:
    store = Store(home, (STORE_EXTENSION,))
    try:
        registry = ModelRegistry(store, home)
        report = registry.recover()
        try:
            records = registry.list("big", include_archived=True)
        except NotFound:
            records = []
        numbers = sorted(r.spec.version for r in records)
        assert numbers == list(range(1, len(numbers) + 1))
        # each kill may land between a commit and its `committed` line
        assert printed <= len(numbers) <= printed + kills
        assert all(registry.verify("big", n) for n in numbers)
        models = home / "models"
        assert {p.name for p in (models / "sha256").iterdir()} == {r.spec.digest for r in records}
        assert list((models / "tmp").iterdir()) == []
        assert report.missing == ()
        return report
    finally:
        store.close()


def test_kill_9_during_create_leaves_only_whole_versions(tmp_path: Path,
                                                         processes: ProcessGroup) -> None:
    source = make_model(tmp_path / "src" / "model", {
        f"part-{i % 8}/shard-{i}.bin": random.Random(i).randbytes(32 * 1024)
        for i in range(FILES)})
    home = tmp_path / "home"
    rng = random.Random(20261127)
    printed, reports = 0, []
    for kill in range(1, KILLS + 1):
        printed += kill_during_create(processes, home, source, commits=rng.randint(0, 2),
                                      copied=rng.randint(1, FILES))
        reports.append(check(home, printed, kill))
    # the kills did land mid-copy: there were half-made copies to clean up
    assert sum(r.temp_removed for r in reports) >= 1
