"""Registered versions become runs: only for a policy of that model, only versions registered
after the policy was set, one run at a time per endpoint, the newest waiting version wins and
the overtaken ones are recorded as skipped; a deleted endpoint takes its policy along. On a real
store and registry (the outbox's `ModelRegistered`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from control_plane.autodeploy import STORE_EXTENSION as AUTODEPLOY
from control_plane.autodeploy import rows
from control_plane.autodeploy.service import _next_run, _queue_new_versions
from control_plane.registry import STORE_EXTENSION as REGISTRY
from control_plane.registry import ModelRegistry
from control_plane.specs.autodeploy import Policy
from control_plane.specs.resources import EndpointSpec
from control_plane.specs.rollout import RolloutRequest
from control_plane.store import outbox
from control_plane.store.sqlite_store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home", (REGISTRY, AUTODEPLOY))


@pytest.fixture
def registry(store: Store, tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(store, tmp_path / "home")
    registry.recover()
    return registry


def register(registry: ModelRegistry, tmp_path: Path, name: str = "m") -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    registry.create(name, model)


def set_policy(store: Store, endpoint: str = "ep1", model: str = "m") -> None:
    def write(conn: sqlite3.Connection) -> None:
        rows.save_policy(conn, Policy(endpoint=endpoint, model=model,
                                      rollout=RolloutRequest(endpoint=endpoint, target=""),
                                      after_seq=outbox.last_seq(conn)))
        if rows.cursor(conn) is None:
            rows.move_cursor(conn, 0)

    store.feature_write(write)


def states(store: Store) -> list[tuple[int, str, str]]:
    runs = store.feature_read(lambda conn: rows.runs(conn, "ep1"))
    return sorted((run.version, run.state, run.reason) for run in runs)


def test_newest_waiting_version_wins(store: Store, registry: ModelRegistry,
                                     tmp_path: Path) -> None:
    store.create_endpoint(EndpointSpec(name="ep1"))
    register(registry, tmp_path)  # v1: before the policy, never deployed by it
    set_policy(store)
    register(registry, tmp_path)  # v2
    register(registry, tmp_path, "other")  # another model: not this policy's
    assert store.feature_write(_queue_new_versions) == (["ep1"], False)
    running = store.feature_write(lambda conn: _next_run(conn, "ep1"))
    assert running is not None and (running.version, running.state) == (2, "running")
    assert running.candidate == "m-v2"
    register(registry, tmp_path)  # v3 and v4 wait; v4 overtakes v3
    register(registry, tmp_path)
    store.feature_write(_queue_new_versions)
    assert store.feature_write(_queue_new_versions) == ([], False)  # nothing twice
    assert states(store) == [
        (2, "running", ""),
        (3, "skipped", "version 4 was registered after it (newest wins)"),
        (4, "queued", ""),
    ]
    again = store.feature_write(lambda conn: _next_run(conn, "ep1"))
    assert again is not None and again.version == 2  # still running: resumed, not replaced
    kinds = [(e.type.rsplit(".", 1)[1], e.data.get("modelVersion")) for e in store.events()
             if e.type.startswith("io.scoregate.autodeploy.")]
    assert kinds == [("queued", "2"), ("started", "2"), ("queued", "3"), ("queued", "4"),
                     ("skipped", "3")]


def test_an_older_version_than_one_waiting_is_skipped_at_once(
        store: Store, registry: ModelRegistry, tmp_path: Path) -> None:
    store.create_endpoint(EndpointSpec(name="ep1"))
    set_policy(store)
    model = tmp_path / "model.bin"
    model.write_bytes(b"w")
    registry.create("m", model, version=5)
    store.feature_write(_queue_new_versions)
    registry.create("m", model, version=3)
    store.feature_write(_queue_new_versions)
    assert states(store) == [(3, "skipped", "version 5 is already queued"), (5, "queued", "")]


def test_a_deleted_endpoint_takes_its_policy_along(store: Store) -> None:
    store.create_endpoint(EndpointSpec(name="ep1"))
    set_policy(store)
    store.delete_endpoint("ep1")
    store.create_endpoint(EndpointSpec(name="ep1"))
    assert store.feature_read(lambda conn: rows.policy(conn, "ep1")) is None


def test_an_idle_watcher_writes_nothing(store: Store, registry: ModelRegistry,
                                       tmp_path: Path) -> None:
    """The watcher is woken by every commit, its own included: it writes only when the outbox
    has something after its cursor, or it would wake itself forever (a busy loop)."""
    import asyncio

    from control_plane.autodeploy.service import AutoDeploy

    commits: list[int] = []
    store.on_commit(lambda: commits.append(1))

    async def scenario() -> tuple[int, int]:
        service = AutoDeploy(store, None, None, None)  # type: ignore[arg-type]  # no run here
        await service.start()
        register(registry, tmp_path)  # one event: the cursor moves past it, once
        for _ in range(500):
            if store.feature_read(rows.cursor) == store.feature_read(outbox.last_seq):
                break
            await asyncio.sleep(0.01)
        settled = len(commits)
        await asyncio.sleep(0.5)  # a window in which an idle watcher must not commit at all
        await service.close()
        return settled, len(commits)

    settled, later = asyncio.run(scenario())
    assert later == settled, f"{later - settled} commits while idle"
