"""The outbox: events commit with the change that raised them, and only then."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from control_plane.environments.registered import EnvironmentSpec
from control_plane.environments.rows import STORE_EXTENSION as ENVIRONMENTS
from control_plane.environments.service import EnvironmentService
from control_plane.errors import ScoregateError, ValidationError
from control_plane.events import STORE_EXTENSION as EVENTS
from control_plane.registry import STORE_EXTENSION as REGISTRY
from control_plane.registry import ModelRegistry
from control_plane.rollouts.rows import STORE_EXTENSION as ROLLOUTS
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store import outbox
from control_plane.store.sqlite_store import Store

URL = ("http://127.0.0.1:9/score",)
AZ = "Microsoft.MachineLearningServices."


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home", (ROLLOUTS, REGISTRY, EVENTS))


def kinds(store: Store) -> list[tuple[str, str]]:
    return [(e.type, e.subject) for e in store.events()]


def test_core_changes_are_events_in_order(store: Store) -> None:
    store.create_endpoint(EndpointSpec("epx"))
    store.create_deployment(DeploymentSpec("blue", "epx", urls=URL), all_traffic=True)
    store.create_deployment(DeploymentSpec("green", "epx", urls=URL))
    store.update_deployment(DeploymentSpec("green", "epx", urls=URL, instance_count=2))
    store.set_traffic("epx", {"blue": 90, "green": 10})
    store.set_mirror("epx", {"green": 0})  # no change: no event
    store.set_traffic("epx", {"blue": 100})
    store.delete_deployment("epx", "green")
    store.delete_endpoint("epx")
    assert kinds(store) == [
        ("io.scoregate.endpoint.created", "endpoints/epx"),
        (AZ + "ModelDeployed", "endpoints/epx/deployments/blue"),
        ("io.scoregate.traffic.changed", "endpoints/epx"),
        (AZ + "ModelDeployed", "endpoints/epx/deployments/green"),
        (AZ + "ModelDeployed", "endpoints/epx/deployments/green"),
        ("io.scoregate.traffic.changed", "endpoints/epx"),
        ("io.scoregate.traffic.changed", "endpoints/epx"),
        ("io.scoregate.deployment.deleted", "endpoints/epx/deployments/green"),
        ("io.scoregate.deployment.deleted", "endpoints/epx/deployments/blue"),
        ("io.scoregate.endpoint.deleted", "endpoints/epx"),
    ]
    events = store.events()
    deployed = events[3].data
    assert deployed["serviceName"] == "epx" and deployed["change"] == "created"
    assert events[4].data["change"] == "updated"
    assert events[5].data == {"endpointName": "epx", "previous": {"blue": 100},
                              "current": {"blue": 90, "green": 10}, "changedBy": "user"}
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(e.id for e in events)) == len(events)


def test_model_deployed_names_the_registered_model(tmp_path: Path) -> None:
    store = Store(tmp_path / "plain")  # no registry guard: only the event's data is checked
    store.create_endpoint(EndpointSpec("epx"))
    store.create_deployment(DeploymentSpec("blue", "epx", urls=URL,
                                           model_ref="azureml:heart-classifier:2"))
    assert store.events()[-1].data["modelIds"] == "heart-classifier:2"


def test_a_refused_change_leaves_no_event(store: Store) -> None:
    store.create_endpoint(EndpointSpec("epx"))
    before = kinds(store)
    with pytest.raises(ValidationError):
        store.set_traffic("epx", {"ghost": 100})
    with pytest.raises(ScoregateError):
        store.create_endpoint(EndpointSpec("epx"))
    assert kinds(store) == before


def test_an_event_commits_or_rolls_back_with_its_transaction(store: Store) -> None:
    class Boom(Exception):
        pass

    def write(conn: sqlite3.Connection) -> None:
        outbox.emit(conn, "io.scoregate.test", "things/1", {"n": 1})
        raise Boom

    with pytest.raises(Boom):
        store.feature_write(write)
    assert store.events() == []
    store.feature_write(lambda conn: outbox.emit(conn, "io.scoregate.test", "things/2", {}))
    assert kinds(store) == [("io.scoregate.test", "things/2")]


def test_emit_outside_a_transaction_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.executescript(outbox.CREATE_TABLE)
    with pytest.raises(ScoregateError, match="outside a write transaction"):
        outbox.emit(conn, "io.scoregate.test", "x", {})


def test_model_registered_follows_event_grid(store: Store, tmp_path: Path) -> None:
    registry = ModelRegistry(store, tmp_path / "home")
    registry.recover()
    model = tmp_path / "model.pkl"
    model.write_bytes(b"weights")
    registry.create("heart-classifier", model, tags={"area": "cardio"},
                    properties={"accuracy": "0.91"})
    registry.create("heart-classifier", model)
    registry.archive("heart-classifier", 1)
    registry.archive("heart-classifier", 1)  # already archived: nothing changes, no event
    events = store.events()
    assert [(e.type, e.subject) for e in events] == [
        (AZ + "ModelRegistered", "models/heart-classifier:1"),
        (AZ + "ModelRegistered", "models/heart-classifier:2"),
        ("io.scoregate.model.archived", "models/heart-classifier:1"),
    ]
    assert events[0].data == {"modelName": "heart-classifier", "modelVersion": "1",
                              "modelTags": {"area": "cardio"},
                              "modelProperties": {"accuracy": "0.91"}}


def test_environment_registered(tmp_path: Path) -> None:
    store = Store(tmp_path / "home", (ENVIRONMENTS,))
    service = EnvironmentService(store)
    service.create(EnvironmentSpec("sklearn-env", None, "dependencies: [python=3.11]",
                                   tags={"team": "a"}))
    [event] = store.events()
    assert (event.type, event.subject) == ("io.scoregate.environment.registered",
                                           "environments/sklearn-env:1")
    assert event.data == {"environmentName": "sklearn-env", "environmentVersion": "1",
                          "environmentTags": {"team": "a"}}


def test_listing_filters_by_time_and_type(store: Store) -> None:
    store.create_endpoint(EndpointSpec("epx"))
    middle = time.time()
    store.create_deployment(DeploymentSpec("blue", "epx", urls=URL), all_traffic=True)
    assert [e.type for e in store.events(since=middle)] == [
        AZ + "ModelDeployed", "io.scoregate.traffic.changed"]
    assert [e.subject for e in store.events(types=["io.scoregate.traffic.changed"])] == [
        "endpoints/epx"]
    assert len(store.events(limit=1)) == 1 and store.events(limit=1)[0].type.endswith(
        "traffic.changed")


def test_prune_by_count_and_age_keeps_what_is_still_owed(store: Store) -> None:
    for n in range(10):
        store.feature_write(lambda conn, n=n: outbox.emit(conn, "io.scoregate.test", f"t/{n}",
                                                          {}))
    # By count the newest 4 stay, but a subscriber still owes everything after seq 3.
    gone = store.feature_write(lambda conn: outbox.prune(conn, 0.0, 4, up_to_seq=3))
    assert gone == 3 and [e.seq for e in store.events()][0] == 4
    gone = store.feature_write(lambda conn: outbox.prune(conn, 0.0, 4, up_to_seq=100))
    assert gone == 3 and [e.seq for e in store.events()] == [7, 8, 9, 10]
    gone = store.feature_write(lambda conn: outbox.prune(conn, time.time() + 1, 100,
                                                         up_to_seq=100))
    assert gone == 4 and store.events() == []
    # seq never repeats, even after everything was pruned
    store.feature_write(lambda conn: outbox.emit(conn, "io.scoregate.test", "t/x", {}))
    assert store.events()[0].seq == 11


def test_a_failed_create_is_an_event_in_the_transaction_that_stores_failed(store: Store) -> None:
    store.create_endpoint(EndpointSpec("epx"))
    store.create_deployment(DeploymentSpec("blue", "epx"), all_traffic=True)
    state = store.state()
    key = "epx/blue"
    assert not [e for e in store.events() if e.type.endswith("deployment.failed")]
    store.finish_provisioning("epx", "blue", state.deployments[key].etag,
                              state.status(key).state, "init() raised ValueError")
    failed = [e for e in store.events() if e.type == "io.scoregate.deployment.failed"]
    assert [(e.subject, e.data) for e in failed] == [
        ("endpoints/epx/deployments/blue",
         {"endpointName": "epx", "deploymentName": "blue", "operation": "create",
          "reason": "init() raised ValueError"})]
    assert store.state().status(key).state == "Failed"
    # the held-back --all-traffic was not applied, so no traffic event follows the failure
    assert store.events()[-1].type == "io.scoregate.deployment.failed"
