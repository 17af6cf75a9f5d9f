from __future__ import annotations

import functools
import os
import random
import signal
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from control_plane.admin.token import load_admin_token
from control_plane.errors import Conflict, NotFound, PreconditionFailed, ValidationError
from control_plane.rollouts.rows import STORE_EXTENSION
from control_plane.specs.resources import DeploymentSpec, EndpointSpec, RequestSettings
from control_plane.store.sqlite_store import Store
from tests.control_plane.store.store_support.rmw_worker import increment_once
from tests.support.processes import ProcessGroup, Started, wait_until

EXTENSIONS = (STORE_EXTENSION,)  # the rollouts' table and guard, as `serve` wires them

SUPPORT = Path(__file__).parent / "store_support"
EP = "my-endpoint"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store(home, EXTENSIONS)
    yield opened
    opened.close()


def created(store: Store, spec: DeploymentSpec, all_traffic: bool = False) -> None:
    """Create, then report it ready as the runtime does once an instance answers."""
    record = store.create_deployment(spec, all_traffic=all_traffic)
    store.finish_provisioning(spec.endpoint_name, spec.name, record.etag, "Creating", None)


def rollout(store: Store) -> None:
    """The safe-rollout starting point: blue with all traffic, green at 0."""
    store.create_endpoint(EndpointSpec(EP))
    created(store, DeploymentSpec("blue", EP), all_traffic=True)
    created(store, DeploymentSpec("green", EP))


def refused(error: type[Exception], call: Callable[[], object], rule: str | None = None) -> str:
    with pytest.raises(error) as caught:
        call()
    if rule is not None:
        assert isinstance(caught.value, ValidationError) and caught.value.rule == rule, caught.value
    return str(caught.value)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# Permissions and the admin token --------------------------------------------------------


def test_state_directory_and_database_are_private(store: Store, home: Path) -> None:
    rollout(store)
    assert mode(home) == 0o700
    files = [home / name for name in ("state.db", "state.db-wal", "state.db-shm")]
    assert all(path.exists() for path in files)
    assert [mode(path) for path in files] == [0o600] * 3


def test_database_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        opened = Store(tmp_path / "open-home", EXTENSIONS)
        opened.create_endpoint(EndpointSpec(EP))
        opened.close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "open-home") == 0o700
    assert mode(tmp_path / "open-home" / "state.db") == 0o600


def test_admin_token_file_is_private_and_stable(home: Path) -> None:
    token = load_admin_token(home, environ={})
    assert len(token) >= 32 and mode(home / "admin_token") == 0o600
    assert load_admin_token(home, environ={}) == token
    assert load_admin_token(home, environ={"SCOREGATE_ADMIN_TOKEN": "from-env"}) == "from-env"
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def test_admin_token_created_once_by_racing_processes(home: Path, processes: ProcessGroup) -> None:
    readers = [
        processes.python(str(SUPPORT / "token_reader.py"), str(home), name="token")
        for _ in range(4)
    ]
    for reader in readers:
        assert reader.proc.wait(60) == 0, reader.log()
    tokens = {reader.log().split()[-1] for reader in readers}
    assert tokens == {(home / "admin_token").read_text().strip()}


# Creating, reading, updating and deleting -------------------------------------------------


def test_traffic_lists_every_deployment(store: Store) -> None:
    rollout(store)
    assert store.endpoint(EP).spec.traffic == {"blue": 100, "green": 0}
    assert set(store.deployments()) == {f"{EP}/blue", f"{EP}/green"}
    assert set(store.deployments(EP)) == {f"{EP}/blue", f"{EP}/green"}
    created(store, DeploymentSpec("red", EP), all_traffic=True)
    assert store.endpoint(EP).spec.traffic == {"blue": 0, "green": 0, "red": 100}


def test_create_existing_is_a_conflict(store: Store) -> None:
    rollout(store)
    assert "exists; update it instead" in refused(
        Conflict, lambda: store.create_endpoint(EndpointSpec(EP))
    )
    assert "exists; update it instead" in refused(
        Conflict, lambda: store.create_deployment(DeploymentSpec("blue", EP))
    )


def test_missing_resources_are_not_found(store: Store) -> None:
    rollout(store)
    refused(NotFound, lambda: store.endpoint("other-endpoint"))
    refused(NotFound, lambda: store.update_endpoint(EndpointSpec("other-endpoint")))
    refused(NotFound, lambda: store.deployment(EP, "red"))
    refused(NotFound, lambda: store.update_deployment(DeploymentSpec("red", EP)))
    refused(NotFound, lambda: store.delete_deployment(EP, "red"))
    refused(NotFound, lambda: store.create_deployment(DeploymentSpec("red", "other-endpoint")))
    refused(NotFound, lambda: store.secrets("other-endpoint"))
    refused(NotFound, lambda: store.deployments("other-endpoint"))


def test_etags_and_revision_change_with_each_write(store: Store) -> None:
    rollout(store)
    revision = store.revision
    before = store.deployment(EP, "blue")
    after = store.update_deployment(before.spec.with_changes(instance_count=2))
    assert after.etag != before.etag and store.revision == revision + 1
    assert store.deployment(EP, "blue") == after
    assert int(after.etag) == store.revision  # the ETag names the commit that made it
    assert store.update_deployment(after.spec) == after  # nothing changed: no new version
    assert store.revision == revision + 1


def test_etags_never_repeat_after_delete_and_recreate(store: Store) -> None:
    first = store.create_endpoint(EndpointSpec(EP))
    store.delete_endpoint(EP)
    second = store.create_endpoint(EndpointSpec(EP))
    assert first.etag != second.etag
    refused(
        PreconditionFailed, lambda: store.update_endpoint(EndpointSpec(EP), if_match=first.etag)
    )


def test_delete_endpoint_drops_deployments_and_keys(store: Store) -> None:
    rollout(store)
    store.delete_endpoint(EP)
    assert store.endpoints() == {} and store.deployments() == {}
    refused(NotFound, lambda: store.secrets(EP))


def test_delete_deployment_with_live_traffic_is_refused(store: Store) -> None:
    rollout(store)
    refused(ValidationError, lambda: store.delete_deployment(EP, "blue"), "delete-live-traffic")
    store.set_mirror(EP, {"green": 10})
    refused(ValidationError, lambda: store.delete_deployment(EP, "green"), "delete-live-traffic")
    store.set_mirror(EP, {"green": 0})
    store.delete_deployment(EP, "green")
    assert store.endpoint(EP).spec.traffic == {"blue": 100}


def test_traffic_and_mirror_follow_the_walkthrough(store: Store) -> None:
    rollout(store)
    assert store.set_mirror(EP, {"green": 10}).spec.mirror_traffic == {"green": 10}
    assert store.set_mirror(EP, {"green": 0}).spec.mirror_traffic == {}
    assert store.set_traffic(EP, {"blue": 90, "green": 10}).spec.traffic == {
        "blue": 90,
        "green": 10,
    }
    assert store.set_traffic(EP, {"green": 100}).spec.traffic == {"blue": 0, "green": 100}
    store.delete_deployment(EP, "blue")
    store.delete_endpoint(EP)


def test_every_rule_is_enforced_by_the_store(store: Store) -> None:
    rollout(store)
    revision = store.revision
    refused(
        ValidationError, lambda: store.set_traffic(EP, {"blue": 90, "green": 20}), "traffic-total"
    )
    refused(
        ValidationError,
        lambda: store.set_traffic(EP, {"blue": 90, "red": 10}),
        "traffic-unknown-deployment",
    )
    refused(
        ValidationError,
        lambda: store.set_traffic(EP, {"blue": 99.5, "green": 0.5}),  # type: ignore[dict-item]
        "traffic-integers",
    )
    refused(ValidationError, lambda: store.set_mirror(EP, {"green": 60}), "mirror-max-50")
    refused(ValidationError, lambda: store.set_mirror(EP, {"blue": 10}), "mirror-has-live-traffic")
    refused(ValidationError, lambda: store.set_mirror(EP, {"red": 10}), "mirror-unknown-deployment")
    store.create_deployment(DeploymentSpec("red", EP))
    refused(
        ValidationError, lambda: store.set_mirror(EP, {"green": 10, "red": 10}), "mirror-single"
    )
    store.set_mirror(EP, {"green": 10})
    refused(
        ValidationError,
        lambda: store.set_traffic(EP, {"blue": 50, "green": 50}),
        "mirror-has-live-traffic",
    )
    refused(ValidationError, lambda: store.create_endpoint(EndpointSpec("x")), "name")
    refused(
        ValidationError,
        lambda: store.create_endpoint(EndpointSpec("other", auth_mode="aad")),
        "auth-mode",
    )
    refused(ValidationError, lambda: store.create_deployment(DeploymentSpec("b", EP)), "name")
    refused(
        ValidationError,
        lambda: store.update_deployment(
            DeploymentSpec("blue", EP, request_settings=RequestSettings(request_timeout_ms=200_000))
        ),
        "request-timeout",
    )
    refused(
        ValidationError,
        lambda: store.update_deployment(DeploymentSpec("blue", EP, instance_count=0)),
        "instance-count",
    )
    assert store.revision == revision + 2  # only "red" and the mirror went in


def test_at_most_20_deployments(store: Store) -> None:
    store.create_endpoint(EndpointSpec(EP))
    for i in range(20):
        store.create_deployment(DeploymentSpec(f"dep-{i}", EP))
    refused(
        ValidationError,
        lambda: store.create_deployment(DeploymentSpec("dep-20", EP)),
        "max-deployments",
    )
    assert len(store.deployments(EP)) == 20


def test_creating_an_endpoint_with_traffic_for_missing_deployments_is_refused(store: Store) -> None:
    refused(
        ValidationError,
        lambda: store.create_endpoint(EndpointSpec(EP, traffic={"blue": 100})),
        "traffic-unknown-deployment",
    )
    assert store.endpoints() == {} and store.revision == 0


# If-Match ---------------------------------------------------------------------------------


def test_stale_if_match_is_refused_everywhere(store: Store) -> None:
    rollout(store)
    endpoint, blue = store.endpoint(EP), store.deployment(EP, "blue")
    store.set_mirror(EP, {"green": 10}, if_match=f'"{endpoint.etag}"')  # quoted, as in HTTP
    store.update_deployment(blue.spec.with_changes(instance_count=2), if_match=blue.etag)
    stale_writes: list[Callable[[], object]] = [
        lambda: store.update_endpoint(endpoint.spec, if_match=endpoint.etag),
        lambda: store.set_traffic(EP, {"blue": 100}, if_match=endpoint.etag),
        lambda: store.set_mirror(EP, {}, if_match=endpoint.etag),
        lambda: store.delete_endpoint(EP, if_match=endpoint.etag),
        lambda: store.update_deployment(blue.spec, if_match=blue.etag),
        lambda: store.delete_deployment(EP, "blue", if_match=blue.etag),
    ]
    revision = store.revision
    for write in stale_writes:
        message = refused(PreconditionFailed, write)
        assert f'"{endpoint.etag}"' in message or f'"{blue.etag}"' in message
    assert store.revision == revision
    assert store.endpoint(EP).spec.mirror_traffic == {"green": 10}
    assert store.deployment(EP, "blue").spec.instance_count == 2


# Keys ---------------------------------------------------------------------------------------


def test_keys_are_generated_rotated_one_at_a_time_and_kept(store: Store, home: Path) -> None:
    store.create_endpoint(EndpointSpec(EP))
    store.create_endpoint(EndpointSpec("other-endpoint"))
    keys, other = store.secrets(EP), store.secrets("other-endpoint")
    values = {keys.primary_key, keys.secondary_key, other.primary_key, other.secondary_key}
    assert len(values) == 4 and all(len(v) >= 40 for v in values)
    assert keys.token_secret != other.token_secret and len(keys.token_secret) >= 32
    assert keys.primary_key not in repr(keys)
    rotated = store.regenerate_key(EP, "secondary")
    assert rotated.primary_key == keys.primary_key and rotated.secondary_key != keys.secondary_key
    rotated_again = store.regenerate_key(EP, "primary")
    assert rotated_again.primary_key != keys.primary_key
    assert rotated_again.secondary_key == rotated.secondary_key
    refused(ValidationError, lambda: store.regenerate_key(EP, "tertiary"), "key-type")
    reopened = Store(home, EXTENSIONS)
    assert reopened.secrets(EP) == rotated_again and reopened.secrets("other-endpoint") == other
    reopened.close()


# Declarative apply --------------------------------------------------------------------------


def test_apply_says_what_changed(store: Store) -> None:
    first = store.apply(
        [EndpointSpec(EP, traffic={"blue": 100})],
        [DeploymentSpec("blue", EP), DeploymentSpec("green", EP)],
    )
    assert first == [
        "created endpoint my-endpoint",
        "created deployment blue",
        "created deployment green",
    ]
    store.set_mirror(EP, {"green": 20})
    second = store.apply(
        [EndpointSpec(EP)],  # no traffic in the file: the stored one stays
        [DeploymentSpec("blue", EP, instance_count=2), DeploymentSpec("green", EP)],
    )
    assert second == [
        "unchanged endpoint my-endpoint",
        "updated deployment blue (instance_count 1 → 2)",
        "unchanged deployment green",
    ]
    assert store.endpoint(EP).spec.mirror_traffic == {"green": 20}
    refused(
        ValidationError,
        lambda: store.apply([EndpointSpec(EP, traffic={"green": 100})], []),
        "mirror-has-live-traffic",
    )  # the stored mirror stays, and green cannot carry both
    third = store.apply([EndpointSpec(EP, traffic={"green": 100}, mirror_traffic={"green": 0})], [])
    assert third == [
        "updated endpoint my-endpoint (traffic.blue 100 → 0, traffic.green 0 → 100, "
        + "mirror_traffic.green 20 → (none))"
    ]


def test_apply_is_all_or_nothing(store: Store) -> None:
    rollout(store)
    revision = store.revision
    refused(
        ValidationError,
        lambda: store.apply(
            [EndpointSpec(EP, traffic={"blue": 50, "red": 60})],
            [DeploymentSpec("blue", EP, instance_count=3), DeploymentSpec("red", EP)],
        ),
        "traffic-total",
    )
    refused(NotFound, lambda: store.apply([], [DeploymentSpec("blue", "nowhere")]))
    refused(Conflict, lambda: store.apply([EndpointSpec(EP), EndpointSpec(EP)], []))
    assert store.revision == revision
    assert store.deployment(EP, "blue").spec.instance_count == 1


def test_state_survives_reopening(store: Store, home: Path) -> None:
    rollout(store)
    store.set_mirror(EP, {"green": 10})
    reopened = Store(home, EXTENSIONS)
    assert reopened.state() == store.state()
    reopened.close()


# Concurrency --------------------------------------------------------------------------------


def increment_with_retry(store: Store, count: int, acks: list[int], stale: list[int]) -> None:
    done = 0
    while done < count:
        n, written = increment_once(store)
        if not written:
            stale.append(n)
            continue
        acks.append(n)
        done += 1


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_threads_with_if_match_lose_no_write(home: Path, shared: bool) -> None:
    setup = Store(home, EXTENSIONS)
    setup.create_endpoint(EndpointSpec("counter"))
    stores = [setup if shared else Store(home, EXTENSIONS) for _ in range(4)]
    acks: list[int] = []
    stale: list[int] = []
    threads = [
        threading.Thread(target=increment_with_retry, args=(s, 25, acks, stale)) for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    final = int(setup.endpoint("counter").spec.tags["n"])
    for opened in set(stores) | {setup}:
        opened.close()
    assert sorted(acks) == list(range(1, 101))  # every acknowledged value exactly once
    assert final == 100


def run_workers(processes: ProcessGroup, home: Path, args: list[list[str]]) -> list[Started]:
    """Starts the workers, lets them go at once (so they overlap), waits for them to finish."""
    workers = [
        processes.python(str(SUPPORT / "rmw_worker.py"), a[0], str(home), *a[1:], name="worker")
        for a in args
    ]
    wait_until(
        lambda: all("ready" in w.log() or w.proc.poll() is not None for w in workers),
        timeout=60,
        what="the workers to start",
    )
    (home / "go").touch()
    for worker in workers:
        assert worker.proc.wait(120) == 0, worker.log()
    return workers


def test_processes_with_if_match_lose_no_write(home: Path, processes: ProcessGroup) -> None:
    setup = Store(home, EXTENSIONS)
    setup.create_endpoint(EndpointSpec("counter"))
    workers = run_workers(processes, home, [["increment", "30"] for _ in range(3)])
    acks = [
        int(line.split()[1])
        for w in workers
        for line in w.log().splitlines()
        if line.startswith("ack ")
    ]
    assert sorted(acks) == list(range(1, 91))
    assert setup.endpoint("counter").spec.tags["n"] == "90"
    setup.close()


def test_processes_creating_deployments_lose_none(home: Path, processes: ProcessGroup) -> None:
    setup = Store(home, EXTENSIONS)
    setup.create_endpoint(EndpointSpec("counter"))
    run_workers(processes, home, [["create", f"dep{w}", "6"] for w in range(3)])
    names = {f"dep{w}-{i}" for w in range(3) for i in range(6)}
    assert set(setup.endpoint("counter").spec.traffic) == names
    assert {record.spec.name for record in setup.deployments("counter").values()} == names
    setup.close()


def test_a_stale_write_between_read_and_write_is_refused(store: Store) -> None:
    store.create_endpoint(EndpointSpec("counter"))
    read = store.endpoint("counter")
    store.update_endpoint(read.spec.with_changes(tags={"n": "1"}), if_match=read.etag)
    refused(
        PreconditionFailed,
        lambda: store.update_endpoint(read.spec.with_changes(tags={"n": "2"}), if_match=read.etag),
    )
    assert store.endpoint("counter").spec.tags == {"n": "1"}


# Crash safety -------------------------------------------------------------------------------


def last_ack(started: Started) -> tuple[int, int] | None:
    acks = [line.split() for line in started.log().splitlines() if line.startswith("ack ")]
    complete = [ack for ack in acks if len(ack) == 3]
    return (int(complete[-1][1]), int(complete[-1][2])) if complete else None


def acked_or_exited(started: Started) -> bool:
    return last_ack(started) is not None or started.proc.poll() is not None


def test_kill_9_during_writes_keeps_the_last_acknowledged_state(
    home: Path, processes: ProcessGroup
) -> None:
    rng = random.Random(os.getpid())
    previous_n = 0
    for round_number in range(22):
        writer = processes.python(str(SUPPORT / "writer.py"), str(home), name="writer")
        wait_until(
            functools.partial(acked_or_exited, writer),
            timeout=60,
            what="the writer's first acknowledged write",
        )
        assert writer.proc.poll() is None, writer.log()
        threading.Event().wait(rng.uniform(0, 0.06))
        processes.stop(writer, signal.SIGKILL)
        ack = last_ack(writer)
        assert ack is not None
        revision, n = ack
        store = Store(home, EXTENSIONS)
        state = store.state()
        store.close()
        endpoint = state.endpoints["crash-test"].spec
        stored_n = int(endpoint.tags["n"])
        assert stored_n in (n, n + 1), (
            round_number,
            n,
            stored_n,
        )  # the acked write or the one in flight
        assert stored_n > previous_n
        assert state.revision >= revision
        blue = state.deployments["crash-test/blue"].spec
        green = state.deployments["crash-test/green"].spec
        assert blue.environment_variables == {"N": str(stored_n)}
        assert green.tags == {"n": str(stored_n)} and green.instance_count == 1 + stored_n % 3
        assert endpoint.traffic == {"blue": stored_n % 101, "green": 100 - stored_n % 101}
        assert set(state.secrets) == {"crash-test"}
        etags = [int(r.etag) for r in [*state.endpoints.values(), *state.deployments.values()]]
        assert max(etags) == state.revision  # every commit of the writer changes the endpoint
        with sqlite3.connect(home / "state.db") as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
        previous_n = stored_n
