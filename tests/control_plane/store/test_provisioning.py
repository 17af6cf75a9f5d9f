"""Provisioning states in the store: an operation starts in the same transaction as the change,
ends once (`finish_provisioning` names the operation it ends), and survives reopening."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.errors import Conflict, ValidationError
from control_plane.rollouts.rows import STORE_EXTENSION
from control_plane.specs.resources import DeploymentSpec, EndpointSpec
from control_plane.store.sqlite_store import Store

EP = "prov-endpoint"
KEY_BLUE, KEY_GREEN = f"{EP}/blue", f"{EP}/green"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "home", (STORE_EXTENSION,))
    opened.create_endpoint(EndpointSpec(EP))
    yield opened
    opened.close()


def state_of(store: Store, key: str) -> str:
    return store.state().status(key).state


def finish(store: Store, name: str, failure: str | None = None) -> None:
    state = store.state()
    key = f"{EP}/{name}"
    store.finish_provisioning(EP, name, state.deployments[key].etag, state.status(key).state,
                              failure)


def serving_blue(store: Store) -> None:
    store.create_deployment(DeploymentSpec("blue", EP), all_traffic=True)
    finish(store, "blue")


def test_all_traffic_waits_for_success(store: Store) -> None:
    store.create_deployment(DeploymentSpec("blue", EP), all_traffic=True)
    assert state_of(store, KEY_BLUE) == "Creating"
    assert store.endpoint(EP).spec.traffic == {"blue": 0}
    finish(store, "blue")
    assert state_of(store, KEY_BLUE) == "Succeeded"
    assert store.endpoint(EP).spec.traffic == {"blue": 100}


def test_a_failed_create_gets_no_traffic_ever(store: Store) -> None:
    serving_blue(store)
    store.create_deployment(DeploymentSpec("green", EP), all_traffic=True)
    with pytest.raises(ValidationError) as refused:
        store.set_traffic(EP, {"blue": 50, "green": 50})  # not while Creating either
    assert refused.value.rule == "traffic-not-provisioned"
    finish(store, "green", "init() failed\nTraceback ...")
    status = store.state().status(KEY_GREEN)
    assert (status.state, status.reason, status.runs) == ("Failed", "init() failed\nTraceback ...",
                                                          False)
    assert store.endpoint(EP).spec.traffic == {"blue": 100, "green": 0}
    with pytest.raises(ValidationError, match=r"is Failed \(init\(\) failed\)") as refused:
        store.set_traffic(EP, {"green": 100})
    assert refused.value.rule == "traffic-not-provisioned"
    store.delete_deployment(EP, "green")  # a failed deployment can be deleted


def test_a_failed_update_puts_the_working_spec_back(store: Store) -> None:
    serving_blue(store)
    working = store.deployment(EP, "blue").spec
    broken = working.with_changes(environment_variables={"BROKEN": "1"})
    store.update_deployment(broken)
    status = store.state().status(KEY_BLUE)
    assert (status.state, status.previous) == ("Updating", working)
    with pytest.raises(Conflict, match="Updating"):
        store.update_deployment(broken.with_changes(instance_count=2))
    store.update_deployment(broken)  # the same spec again is no new operation
    finish(store, "blue", "no instance became ready")
    assert store.deployment(EP, "blue").spec == working
    status = store.state().status(KEY_BLUE)
    assert (status.state, status.runs, status.can_take_traffic) == ("Failed", True, True)
    store.set_traffic(EP, {"blue": 100})  # the old version still serves
    store.update_deployment(working.with_changes(instance_count=2))  # a new update may start
    assert store.state().status(KEY_BLUE).previous == working


def test_an_update_after_a_failed_create_is_a_create_again(store: Store) -> None:
    store.create_deployment(DeploymentSpec("green", EP))
    finish(store, "green", "init() failed")
    store.update_deployment(DeploymentSpec("green", EP, instance_count=2))
    status = store.state().status(KEY_GREEN)
    assert (status.state, status.operation, status.previous) == ("Creating", "create", None)


def test_a_finish_for_another_operation_changes_nothing(store: Store) -> None:
    record = store.create_deployment(DeploymentSpec("blue", EP))
    store.apply([], [DeploymentSpec("blue", EP, instance_count=2)])  # YAML wins, a new create
    assert store.finish_provisioning(EP, "blue", record.etag, "Creating", None) is not None
    assert state_of(store, KEY_BLUE) == "Creating"  # still the later one's
    finish(store, "blue")
    assert state_of(store, KEY_BLUE) == "Succeeded"


def test_delete_goes_through_deleting(store: Store) -> None:
    serving_blue(store)
    with pytest.raises(ValidationError):
        store.begin_delete(EP, "blue")
    store.create_deployment(DeploymentSpec("green", EP))
    finish(store, "green")
    store.begin_delete(EP, "green")
    assert state_of(store, KEY_GREEN) == "Deleting"
    with pytest.raises(ValidationError):
        store.set_mirror(EP, {"green": 10})
    finish(store, "green")
    assert KEY_GREEN not in store.state().deployments


def test_external_deployments_have_nothing_to_wait_for(store: Store) -> None:
    store.create_deployment(DeploymentSpec("blue", EP, urls=("http://127.0.0.1:9/score",)),
                            all_traffic=True)
    assert state_of(store, KEY_BLUE) == "Succeeded"
    assert store.endpoint(EP).spec.traffic == {"blue": 100}


def test_states_survive_reopening(store: Store, tmp_path: Path) -> None:
    serving_blue(store)
    store.update_deployment(DeploymentSpec("blue", EP, instance_count=3))
    reopened = Store(tmp_path / "home", (STORE_EXTENSION,))
    try:
        assert reopened.state() == store.state()
        assert reopened.state().status(KEY_BLUE).previous == DeploymentSpec("blue", EP)
    finally:
        reopened.close()
