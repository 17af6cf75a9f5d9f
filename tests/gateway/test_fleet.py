"""The pieces of `serve --workers N` that need no process: the snapshot's wire form, the
shared in-flight counts and the summing of the workers' samples."""

from __future__ import annotations

import os

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.errors import GatewayError
from gateway.fleet.samples import FleetSamples, export_families
from gateway.fleet.shared_counts import (
    SharedAdmission,
    SharedCounts,
    create_counts_fd,
    demand_slot_key,
    deployment_slot_key,
)
from gateway.fleet.wire import snapshot_from_wire, snapshot_to_wire
from gateway.snapshot import (
    AUTH_AML_TOKEN,
    DeploymentRoute,
    EndpointRoute,
    GatewaySettings,
    InstanceRoute,
    RoutingSnapshot,
    freeze,
)


def _snapshot() -> RoutingSnapshot:
    blue = DeploymentRoute("blue", "e", (InstanceRoute("blue-0", "unix:/s/0.sock"),
                                         InstanceRoute("http://x:1", "http://x:1", "/p")),
                           2.5, 1)
    green = DeploymentRoute("green", "e", (), 5.0, 3, scales_from_zero=True)
    endpoint = EndpointRoute("e", AUTH_AML_TOKEN, (b"\x00key", b"k2"), b"\xffsecret",
                             freeze({"blue": blue, "green": green}), (("blue", 90),),
                             ("green", 10))
    return RoutingSnapshot(7, freeze({"e": endpoint}), GatewaySettings(1024, 3, 0.5))


def test_a_snapshot_comes_back_from_the_wire_equal_and_frozen() -> None:
    """Equal field by field, whatever fields the route types have: every field has a value
    other than its default in some route above, so one the wire dropped would show."""
    snapshot = _snapshot()
    back = snapshot_from_wire(snapshot_to_wire(snapshot))
    assert back == snapshot
    with pytest.raises(TypeError):
        back.endpoints["e"].deployments["x"] = back.endpoints["e"].deployments["blue"]  # type: ignore[index]


def test_admission_of_two_workers_shares_in_flight_counts() -> None:
    fd = create_counts_fd(2)
    try:
        rows = [SharedCounts(fd, 2), SharedCounts(fd, 2)]  # two mappings, as two processes
        one, two = SharedAdmission(rows[0], 0), SharedAdmission(rows[1], 1)
        deployment = DeploymentRoute("blue", "e", (InstanceRoute("blue-0", "u"),), 5.0, 1)
        slots = {deployment_slot_key("e", "blue"): 0, "blue-0": 1, demand_slot_key("e", "blue"): 2}
        one.set_slots(slots)
        two.set_slots(slots)
        one.admit(deployment, ("e", "blue"))
        two.admit(deployment, ("e", "blue"))  # limit 2 x 1 x 1 instance, fleet-wide
        one.start_mirror(("e", "blue"))
        two.start_waiting(("e", "blue"))
        assert rows[0].total(2) == 4  # the autoscaler's demand: live, mirror and waiting
        one.end_mirror(("e", "blue"))
        two.end_waiting(("e", "blue"))
        with pytest.raises(GatewayError) as refused:
            one.admit(deployment, ("e", "blue"))
        assert refused.value.status == 429
        one.start_instance("blue-0")
        two.start_instance("blue-0")
        assert one.instances.get("blue-0") == two.instance("blue-0") == 2
        assert one.deployment(("e", "blue")) == 1  # its own gauge: the fleet's is the sum
        two.release(("e", "blue"))
        one.admit(deployment, ("e", "blue"))
        rows[0].clear_row(0)  # worker 0 died: its requests died with it
        assert two.instance("blue-0") == 1
        for counts in rows:
            counts.close()
    finally:
        os.close(fd)


def _export(count: float) -> list[object]:
    registry = CollectorRegistry()
    counter = Counter("scoregate_requests", "Requests.", ("endpoint",), registry=registry)
    counter.labels("e").inc(count)
    return export_families(registry)


def test_fleet_samples_sum_workers_and_keep_what_a_dead_one_counted() -> None:
    fleet = FleetSamples()
    fleet.update(0, _export(3))
    fleet.update(1, _export(4))
    assert list(fleet.samples("scoregate_requests")) == [
        ("scoregate_requests_total", {"endpoint": "e"}, 7.0)]
    fleet.retire(0)
    fleet.update(0, _export(1))  # its replacement starts from zero
    assert list(fleet.samples("scoregate_requests")) == [
        ("scoregate_requests_total", {"endpoint": "e"}, 8.0)]
