"""Delivery against real HTTP receivers on loopback: order, retries, dead letters, replay,
filters, signatures, isolation of a dead receiver, and a restart of the dispatcher."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from control_plane.events import (
    SIGNATURE_HEADER,
    DeliveryPolicy,
    Dispatcher,
    EventSubscriptions,
    Retention,
    Subscription,
    verify,
)
from control_plane.events import STORE_EXTENSION as EVENTS
from control_plane.store import outbox
from control_plane.store.sqlite_store import Store
from tests.support.event_receiver import Receiver, running_receiver
from tests.support.loops import run_bounded

FAST = DeliveryPolicy(timeout_s=5.0, first_retry_s=0.05, max_retry_s=0.2, poll_s=1.0)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home", (EVENTS,))


def emit(store: Store, count: int, type: str = "io.scoregate.test",
         subject: str = "things/{n}") -> list[str]:
    ids = []
    for n in range(count):
        event = store.feature_write(lambda conn, n=n: outbox.emit(
            conn, type, subject.format(n=n), {"n": n}))
        ids.append(event.id)
    return ids


async def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def with_dispatcher(store: Store, body: Callable[[Dispatcher], Awaitable[None]],
                    policy: DeliveryPolicy = FAST) -> None:
    async def main() -> None:
        dispatcher = Dispatcher(store, policy, Retention(every_s=3600))
        await dispatcher.start()
        try:
            await body(dispatcher)
        finally:
            await dispatcher.close()

    run_bounded(main(), timeout_s=90)


def subscribe(store: Store, receiver: Receiver, name: str = "hook-one",
              **fields: object) -> str:
    sub = Subscription(name, receiver.url, **fields)  # type: ignore[arg-type]
    return EventSubscriptions(store).create(sub).secret


def test_a_receiver_failing_the_first_deliveries_gets_every_event_once_in_order(
        store: Store) -> None:
    with running_receiver(fail_first=3) as receiver:
        subscribe(store, receiver)
        ids = emit(store, 20)

        async def body(dispatcher: Dispatcher) -> None:
            await until(lambda: len(receiver.accepted) == 20, "20 deliveries")

        with_dispatcher(store, body)
    assert [e["id"] for e in receiver.events()] == ids
    assert receiver.attempts == 23
    assert [d.headers["scoregate-delivery-attempt"] for d in receiver.accepted[:2]] == ["4", "1"]


def test_the_signature_verifies_with_the_secret_shown_at_create(store: Store) -> None:
    with running_receiver() as receiver:
        secret = subscribe(store, receiver)
        emit(store, 1)

        async def body(dispatcher: Dispatcher) -> None:
            await until(lambda: len(receiver.accepted) == 1, "a delivery")

        with_dispatcher(store, body)
    delivery = receiver.accepted[0]
    assert delivery.headers["content-type"] == "application/cloudevents+json"
    assert verify(secret, delivery.body, delivery.headers[SIGNATURE_HEADER])
    assert not verify(secret, delivery.body + b" ", delivery.headers[SIGNATURE_HEADER])
    assert not verify("another-secret-of-16", delivery.body, delivery.headers[SIGNATURE_HEADER])
    event = delivery.json
    assert event["specversion"] == "1.0" and event["source"] == "/scoregate"
    assert event["subject"] == "things/0" and event["data"] == {"n": 0}


def test_filters_pick_types_and_subjects(store: Store) -> None:
    with (running_receiver() as by_type, running_receiver() as by_prefix,
          running_receiver() as by_suffix, running_receiver() as grid):
        subscribe(store, by_type, "by-type", event_types=("io.scoregate.b",))
        subscribe(store, by_prefix, "by-prefix", subject_begins_with="models/heart")
        subscribe(store, by_suffix, "by-suffix", subject_ends_with=":2")
        subscribe(store, grid, "grid", schema="eventgrid", event_types=("io.scoregate.a",),
                  subject_begins_with="models/", subject_ends_with=":1")
        emit(store, 1, "io.scoregate.a", "models/heart:1")
        emit(store, 1, "io.scoregate.b", "models/heart:2")
        emit(store, 1, "io.scoregate.a", "models/lung:2")
        emit(store, 1, "io.scoregate.b", "endpoints/heart")

        async def body(dispatcher: Dispatcher) -> None:
            await until(lambda: (len(by_type.accepted), len(by_prefix.accepted),
                                 len(by_suffix.accepted), len(grid.accepted)) == (2, 2, 2, 1),
                        "the filtered deliveries")

        with_dispatcher(store, body)
    assert [e["subject"] for e in by_type.events()] == ["models/heart:2", "endpoints/heart"]
    assert [e["subject"] for e in by_prefix.events()] == ["models/heart:1", "models/heart:2"]
    assert [e["subject"] for e in by_suffix.events()] == ["models/heart:2", "models/lung:2"]
    [batch] = grid.events()  # Event Grid's schema: an array of events
    assert grid.accepted[0].headers["content-type"] == "application/json"
    assert [(e["eventType"], e["subject"], e["dataVersion"]) for e in batch] == [
        ("io.scoregate.a", "models/heart:1", "1")]


def test_dead_letters_and_replay(store: Store) -> None:
    service = EventSubscriptions(store)
    with running_receiver(fail_first=2) as receiver:
        subscribe(store, receiver, max_attempts=2)
        ids = emit(store, 2)

        async def body(dispatcher: Dispatcher) -> None:
            await until(lambda: len(receiver.accepted) == 1, "the second event")
            letters = service.dead_letters("hook-one")
            assert [(d.event.id, d.attempts, d.error) for d in letters] == [
                (ids[0], 2, "HTTP 503")]
            assert service.replay("hook-one") == 1
            dispatcher.wake()
            await until(lambda: len(receiver.accepted) == 2, "the replayed event")
            await until(lambda: service.dead_letters("hook-one") == [], "the letter to go")

        with_dispatcher(store, body)
    assert [e["id"] for e in receiver.events()] == [ids[1], ids[0]]


def test_a_dead_receiver_does_not_hold_up_another_subscription(store: Store) -> None:
    with running_receiver(hang=True) as dead, running_receiver() as alive:
        subscribe(store, dead, "dead-one")
        subscribe(store, alive, "alive-one")
        ids = emit(store, 5)

        async def body(dispatcher: Dispatcher) -> None:
            await until(lambda: len(alive.accepted) == 5, "the healthy receiver's events")
            assert dead.attempts == 1 and dead.accepted == []  # its first is still pending
            dead.release()  # its first POST times out, the retry and the rest get through
            await until(lambda: len(dead.accepted) == 5, "the dead receiver to catch up")

        with_dispatcher(store, body, DeliveryPolicy(timeout_s=5, first_retry_s=0.05))
    assert [e["id"] for e in alive.events()] == ids == [e["id"] for e in dead.events()]


def test_a_restarted_dispatcher_sends_what_is_owed_and_nothing_twice(store: Store) -> None:
    with running_receiver() as receiver:
        subscribe(store, receiver)
        first = emit(store, 3)

        async def deliver_three(dispatcher: Dispatcher) -> None:
            await until(lambda: len(receiver.accepted) == 3, "the first three")

        with_dispatcher(store, deliver_three)
        second = emit(store, 2)  # committed while no dispatcher runs

        async def deliver_two(dispatcher: Dispatcher) -> None:
            await until(lambda: len(receiver.accepted) == 5, "the two owed")

        with_dispatcher(store, deliver_two)
    assert [e["id"] for e in receiver.events()] == first + second


def test_a_subscription_with_final_types_ends_after_one(store: Store) -> None:
    service = EventSubscriptions(store)
    with running_receiver() as receiver:
        store.feature_write(lambda conn: service.subscribe_in(
            conn, name="rollout-abc", url=receiver.url, subject_begins_with="r/abc",
            final_types=("io.scoregate.end",), max_attempts=3))
        emit(store, 1, "io.scoregate.step", "r/abc")
        emit(store, 1, "io.scoregate.step", "r/other")
        emit(store, 1, "io.scoregate.end", "r/abc")

        async def body(dispatcher: Dispatcher) -> None:
            await until(lambda: len(receiver.accepted) == 2, "both events")
            await until(lambda: service.every() == [], "the subscription to end")

        with_dispatcher(store, body)
    assert receiver.types() == ["io.scoregate.step", "io.scoregate.end"]


def test_retention_prunes_by_count_but_keeps_what_a_subscriber_owes(store: Store) -> None:
    emit(store, 5)

    def run_with(retention: Retention) -> None:  # start() prunes once
        async def main() -> None:
            dispatcher = Dispatcher(store, FAST, retention)
            await dispatcher.start()
            await dispatcher.close()

        run_bounded(main(), timeout_s=60)

    run_with(Retention(max_count=3, every_s=3600))
    assert [e.data["n"] for e in store.events()] == [2, 3, 4]
    with running_receiver(hang=True) as dead:
        subscribe(store, dead)  # owes everything after this point
        emit(store, 4)
        run_with(Retention(max_count=1, every_s=3600))
    assert [e.data["n"] for e in store.events()] == [0, 1, 2, 3]  # the four it owes
    run_with(Retention(max_age_s=0.0, max_count=100, every_s=3600))
    assert len(store.events()) == 4  # by age too: still owed


def test_serve_refuses_a_wrong_retention_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control_plane", "serve", "--home", str(tmp_path / "home"),
         "--event-retention", "soon"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--event-retention" in result.stderr and "soon" in result.stderr
