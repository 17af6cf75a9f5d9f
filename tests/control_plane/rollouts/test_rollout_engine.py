"""The rollout state machine against a real store: commands, refusals, restarts.

No gateway here: `apply_change` is counted, not published, and no request reaches the
deployments, so every bake window has too few requests (which these tests rely on).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from control_plane.errors import Conflict, ValidationError
from control_plane.rollouts.engine import RolloutEngine
from control_plane.rollouts.events import RolloutEvents
from control_plane.rollouts.rows import STORE_EXTENSION
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.specs.rollout import Guardrails, RolloutRequest
from control_plane.store.sqlite_store import Store

EXTENSIONS = (STORE_EXTENSION,)  # the rollouts' table and guard, as `serve` wires them

E = "eng-endpoint"


def make_store(home: Path) -> Store:
    store = Store(home, EXTENSIONS)
    store.create_endpoint(EndpointSpec(E))
    for name in ("blue", "red", "green", "teal"):
        store.create_deployment(DeploymentSpec(name, E, urls=("http://127.0.0.1:9/score",)))
    store.set_traffic(E, {"blue": 70, "red": 30})
    store.set_mirror(E, {"teal": 10})
    return store


def engine_for(store: Store, published: list[int]) -> RolloutEngine:
    async def apply_change() -> int:
        published.append(store.revision)
        return store.revision

    return RolloutEngine(store, apply_change, RolloutEvents(), comparisons=None)


def live(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    spec = store.endpoint(E).spec
    return {k: v for k, v in spec.traffic.items() if v}, spec.mirror_traffic


def test_commands_refusals_and_an_exact_abort(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    published: list[int] = []

    async def scenario() -> None:
        engine = engine_for(store, published)
        guards = Guardrails(min_requests=5)
        started = await engine.start(RolloutRequest(E, "green", "linear", step=20, bake_s=30,
                                                    guardrails=guards))
        assert started.state == "running" and [s.percent for s in started.steps] == \
            [20, 40, 60, 80, 100]
        assert live(store) == ({"blue": 56, "red": 24, "green": 20}, {"teal": 10})
        with pytest.raises(Conflict, match=started.id):
            await engine.start(RolloutRequest(E, "green", bake_s=30))
        for write in (lambda: store.set_traffic(E, {"blue": 100}),
                      lambda: store.set_mirror(E, {"teal": 20}),
                      lambda: store.delete_endpoint(E),
                      lambda: store.apply([EndpointSpec(E, traffic={"blue": 100})], [])):
            with pytest.raises(Conflict, match=f"rollout {started.id}"):
                write()
        store.update_endpoint(store.endpoint(E).spec.with_changes(description="still fine"))
        paused = await engine.pause(E)
        assert paused.state == "paused"
        with pytest.raises(Conflict, match="paused"):
            await engine.pause(E)
        resumed = await engine.resume(E)
        assert resumed.state == "running" and resumed.step.started_at is not None
        aborted = await engine.abort(E)
        assert aborted.state == "aborted" and aborted.finished_at is not None
        with pytest.raises(Conflict, match="ended: aborted"):
            await engine.promote(E)
        await engine.close()

    asyncio.run(scenario())
    assert live(store) == ({"blue": 70, "red": 30}, {"teal": 10})  # exactly the start
    store.set_traffic(E, {"blue": 100})  # allowed again once the rollout ended
    assert len(published) >= 4


def test_promote_at_once_and_too_few_requests_fail_as_configured(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    async def scenario() -> None:
        engine = engine_for(store, [])
        await engine.start(RolloutRequest(E, "green", "canary", bake_s=30))
        promoted = await engine.promote(E)
        assert promoted.state == "succeeded"
        assert live(store) == ({"green": 100}, {"teal": 10})
        store.set_traffic(E, {"blue": 70, "red": 30})
        failing = Guardrails(min_requests=5, on_too_few="fail")
        await engine.start(RolloutRequest(E, "green", "canary", bake_s=0.5, guardrails=failing))
        for _ in range(100):
            shown = await engine.show(E)
            if shown.state != "running":
                break
            await asyncio.sleep(0.1)
        assert shown.state == "rolled_back"
        assert "too few requests to judge: 0 < 5" in shown.reason
        await engine.close()

    asyncio.run(scenario())
    assert live(store) == ({"blue": 70, "red": 30}, {"teal": 10})


def test_a_restart_rolls_back_when_the_target_is_gone(tmp_path: Path) -> None:
    store = make_store(tmp_path)

    async def start_one() -> str:
        engine = engine_for(store, [])
        started = await engine.start(RolloutRequest(E, "green", bake_s=60))
        await engine.close()  # the "crash": the row stays running
        return started.id

    rollout_id = asyncio.run(start_one())
    with sqlite3.connect(tmp_path / "state.db") as conn:  # the target vanishes meanwhile
        conn.execute("DELETE FROM deployments WHERE name = 'green'")
    store.close()
    store = Store(tmp_path, EXTENSIONS)

    async def restart() -> None:
        engine = engine_for(store, [])
        (found,) = await engine.resume_all()
        assert found.id == rollout_id and found.state == "rolled_back"
        assert "green is gone" in found.reason
        await engine.close()

    asyncio.run(restart())
    assert live(store) == ({"blue": 70, "red": 30}, {"teal": 10})


def test_bad_requests_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    revision = store.revision

    async def scenario() -> None:
        engine = engine_for(store, [])
        for request, rule in (
            (RolloutRequest(E, "green", bake_s=0.1), "rollout-bake"),
            (RolloutRequest(E, "green", mirror_percent=60), "rollout-mirror"),
            (RolloutRequest(E, "green", guardrails=Guardrails(min_agreement=0.9)),
             "rollout-agreement"),
            (RolloutRequest(E, "green", webhook="ftp://x"), "rollout-webhook"),
            (RolloutRequest(E, "blue", mirror_percent=10), "rollout-mirror"),
        ):
            with pytest.raises(ValidationError) as caught:
                await engine.start(request)
            assert caught.value.rule == rule

    asyncio.run(scenario())
    assert store.revision == revision


def test_a_window_opens_only_once_its_deployments_serve(tmp_path: Path) -> None:
    """After a restart the instances start again; the bake window must not count that gap."""
    store = make_store(tmp_path)
    asked: list[tuple[str, str]] = []
    ready = {"blue", "red"}  # green's instances are not ready yet

    def serving(endpoint: str, deployment: str) -> bool:
        asked.append((endpoint, deployment))
        return deployment in ready

    async def scenario() -> str:
        engine = RolloutEngine(store, _count, RolloutEvents(), comparisons=None, serving=serving)
        failing = Guardrails(min_requests=5, on_too_few="fail")
        await engine.start(RolloutRequest(E, "green", "canary", bake_s=0.5, guardrails=failing))
        for _ in range(3000):  # several bake periods while green is not ready: still running
            if asked.count((E, "green")) >= 20:
                break
            await asyncio.sleep(0.01)
        assert asked.count((E, "green")) >= 20
        assert (await engine.show(E)).state == "running"
        ready.add("green")
        for _ in range(600):
            shown = await engine.show(E)
            if shown.state != "running":
                break
            await asyncio.sleep(0.05)
        await engine.close()
        return shown.state

    assert asyncio.run(scenario()) == "rolled_back"  # judged (too few requests) once ready


async def _count() -> int:
    return 0
