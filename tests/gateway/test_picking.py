from __future__ import annotations

import random
from collections import Counter

from gateway.picking import TrafficTable, endpoint_for, least_in_flight, mirror_due
from gateway.snapshot import EndpointRoute, InstanceRoute, RoutingSnapshot, freeze


def test_weighted_pick_follows_cumulative_bounds() -> None:
    table = TrafficTable.build((("blue", 90), ("green", 10), ("off", 0)))
    assert table.names == ("blue", "green")
    assert [table.pick(d) for d in (0.0, 0.5, 0.8999, 0.9, 0.95, 0.999999)] == \
        ["blue", "blue", "blue", "green", "green", "green"]


def test_weighted_pick_share_is_close_to_weights() -> None:
    table = TrafficTable.build((("a", 70), ("b", 20), ("c", 10)))
    draws = random.Random(7)
    counts = Counter(table.pick(draws.random()) for _ in range(20000))
    for name, weight in (("a", 0.7), ("b", 0.2), ("c", 0.1)):
        assert abs(counts[name] / 20000 - weight) < 0.015


def test_no_positive_weight_picks_nothing() -> None:
    assert TrafficTable.build(()).pick(0.3) is None
    assert TrafficTable.build((("blue", 0),)).pick(0.3) is None


def test_mirror_draw() -> None:
    assert mirror_due(None, 0.0) is None
    assert mirror_due(("green", 10), 0.099) == "green"
    assert mirror_due(("green", 10), 0.1) is None
    assert mirror_due(("green", 0), 0.0) is None


def test_least_in_flight_prefers_idle_and_spreads_ties() -> None:
    instances = tuple(InstanceRoute(f"i{n}", f"http://127.0.0.1:{n}") for n in range(3))
    assert least_in_flight(instances, {"i0": 2, "i1": 0, "i2": 1}, 0.0).id == "i1"
    assert least_in_flight(instances, {"i0": 1, "i1": 1, "i2": 1}, 0.0, exclude="i0").id == "i1"
    assert {least_in_flight(instances, {}, d).id for d in (0.0, 0.4, 0.8)} == {"i0", "i1", "i2"}
    assert least_in_flight((), {}, 0.5) is None
    assert least_in_flight(instances[:1], {}, 0.5, exclude="i0") is None


def test_endpoint_by_default_or_host() -> None:
    one = RoutingSnapshot(1, freeze({"a": EndpointRoute("a")}))
    assert endpoint_for(one, None).name == "a"  # type: ignore[union-attr]
    two = RoutingSnapshot(1, freeze({"a": EndpointRoute("a"), "b": EndpointRoute("b")}))
    assert endpoint_for(two, None) is None
    assert endpoint_for(two, "b.example.com:8080").name == "b"  # type: ignore[union-attr]
    assert endpoint_for(two, "c.example.com") is None
    assert endpoint_for(two, "b") is None
