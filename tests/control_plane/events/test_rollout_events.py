"""Rollout transitions are outbox events committed with the transition, and a --webhook is a
subscription to the rollout's subject created in the start's transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from control_plane.errors import ScoregateError
from control_plane.events import STORE_EXTENSION as EVENTS
from control_plane.events import EventSubscriptions
from control_plane.rollouts.engine import RolloutEngine
from control_plane.rollouts.events import RolloutEvents
from control_plane.rollouts.rows import STORE_EXTENSION as ROLLOUTS
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.specs.rollout import RolloutRequest
from control_plane.store.sqlite_store import Store

E = "roll-events"


def make_store(home: Path) -> Store:
    store = Store(home, (ROLLOUTS, EVENTS))
    store.create_endpoint(EndpointSpec(E))
    for name in ("blue", "green"):
        store.create_deployment(DeploymentSpec(name, E, urls=("http://127.0.0.1:9/score",)))
    store.set_traffic(E, {"blue": 100})
    return store


async def no_publish() -> int:
    return 0


def test_transitions_are_events_and_the_webhook_a_subscription(tmp_path: Path) -> None:
    store = make_store(tmp_path / "home")
    subscriptions = EventSubscriptions(store)
    engine = RolloutEngine(store, no_publish, RolloutEvents(subscriptions.subscribe_in))
    first = store.events()[-1].seq

    async def scenario() -> str:
        started = await engine.start(RolloutRequest(E, "green", steps=(10,), bake_s=3600,
                                                    webhook="http://127.0.0.1:9/hook"))
        await engine.pause(E)
        await engine.abort(E)
        await engine.close()
        return started.id

    rollout_id = asyncio.run(scenario())
    events = [e for e in store.events() if e.seq > first]
    subject = f"endpoints/{E}/rollouts/{rollout_id}"
    assert [(e.type, e.subject) for e in events] == [
        ("io.scoregate.rollout.started", subject),
        ("io.scoregate.traffic.changed", f"endpoints/{E}"),
        ("io.scoregate.rollout.paused", subject),
        ("io.scoregate.rollout.aborted", subject),
        ("io.scoregate.traffic.changed", f"endpoints/{E}"),
    ]
    assert events[1].data["changedBy"] == "rollouts"
    assert events[1].data["current"] == {"blue": 90, "green": 10}
    assert events[3].data["state"] == "aborted" and events[3].data["rollout"] == rollout_id
    [hook] = subscriptions.every()
    assert hook.subscription.name == f"rollout-{rollout_id}"
    assert hook.subscription.subject_begins_with == subject
    assert hook.cursor < events[0].seq  # created before its started event: it gets it


def test_a_webhook_without_a_dispatcher_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    store = make_store(tmp_path / "home")
    engine = RolloutEngine(store, no_publish, RolloutEvents())
    before = store.events()

    async def scenario() -> None:
        with pytest.raises(ScoregateError, match="webhook"):
            await engine.start(RolloutRequest(E, "green", webhook="http://127.0.0.1:9/hook"))
        await engine.close()

    asyncio.run(scenario())
    assert store.events() == before
    assert store.endpoint(E).spec.traffic == {"blue": 100, "green": 0}
