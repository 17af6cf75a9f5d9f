"""Rollout traffic math: totals, integers, monotone steps, exact rollback inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.errors import ValidationError
from control_plane.rollouts.plan import (
    apportion,
    plan_percents,
    plan_steps,
    promoted,
    traffic_at,
)
from control_plane.specs.rollout import RolloutRequest

NAMES = st.sampled_from(["blue", "red", "teal", "gold", "aqua"])


@st.composite
def starts(draw: st.DrawFn) -> dict[str, int]:
    """A valid starting split (total 100) over 1..5 stable deployments, plus green at 0."""
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=len(names) - 1,
                                max_size=len(names) - 1)))
    bounds = [0, *cuts, 100]
    start = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(names)}
    if not any(start.values()):
        start[names[0]] = 100
    return {**start, "green": 0}


@given(starts(), st.integers(1, 100))
def test_every_step_totals_100_in_whole_percents(start: dict[str, int], percent: int) -> None:
    traffic = traffic_at(start, "green", percent)
    assert sum(traffic.values()) == 100
    assert all(isinstance(v, int) and v >= 0 for v in traffic.values())
    assert traffic["green"] == percent
    assert set(traffic) == set(start)
    assert all(traffic[n] == 0 for n, weight in start.items() if weight == 0 and n != "green")


@given(starts(), st.integers(1, 99))
def test_stable_shares_never_grow_as_the_target_grows(start: dict[str, int], p: int) -> None:
    lower, higher = traffic_at(start, "green", p), traffic_at(start, "green", p + 1)
    for name in start:
        if name != "green":
            assert higher[name] <= lower[name], (name, lower, higher)


@given(st.dictionaries(NAMES, st.integers(1, 100), min_size=1), st.integers(0, 100))
def test_apportion_is_sainte_lague(weights: dict[str, int], seats: int) -> None:
    """Webster/Sainte-Laguë's defining property: no share could move to another deployment and
    leave both closer to proportional, i.e. max((s - 1/2) / w) <= min((s + 1/2) / w).
    (A divisor method keeps shares monotone as the seats change; it may stray more than one
    from the exact quota, which is why quota is not the property tested.)"""
    shares = apportion(weights, seats)
    assert sum(shares.values()) == seats
    assert all(share >= 0 for share in shares.values())
    if seats:
        highest_floor = max((shares[n] - 0.5) / w for n, w in weights.items())
        lowest_ceiling = min((shares[n] + 0.5) / w for n, w in weights.items())
        assert highest_floor <= lowest_ceiling + 1e-9, shares


def test_apportion_example_that_strays_from_quota() -> None:
    weights = {"blue": 1, "red": 1, "teal": 1, "gold": 5, "aqua": 5}
    shares = apportion(weights, 5)
    # Quotas are 1.92 for gold and aqua and 0.38 for the rest: gold and aqua share all five
    # (ties go to the earlier name), one of them 1.08 above its quota.
    assert shares == {"aqua": 3, "gold": 2, "blue": 0, "red": 0, "teal": 0}


def test_proportional_split_example() -> None:
    assert traffic_at({"blue": 70, "red": 30, "green": 0}, "green", 10) == \
        {"blue": 63, "red": 27, "green": 10}
    assert traffic_at({"blue": 100, "green": 0}, "green", 100) == {"blue": 0, "green": 100}


@pytest.mark.parametrize(("request_", "expected"), [
    (RolloutRequest("e", "green", "all-at-once"), (100,)),
    (RolloutRequest("e", "green", "canary", canary_percent=20), (20, 100)),
    (RolloutRequest("e", "green", "linear", step=25), (25, 50, 75, 100)),
    (RolloutRequest("e", "green", "linear", step=30), (30, 60, 90, 100)),
    (RolloutRequest("e", "green", "canary", steps=(5, 25, 50)), (5, 25, 50, 100)),
])
def test_strategies_give_their_steps(request_: RolloutRequest,
                                     expected: tuple[int, ...]) -> None:
    assert plan_percents(request_) == expected


@pytest.mark.parametrize(("request_", "rule"), [
    (RolloutRequest("e", "green", "canary", canary_percent=60), "rollout-canary-percent"),
    (RolloutRequest("e", "green", "linear", step=5), "rollout-step"),
    (RolloutRequest("e", "green", "canary", steps=(50, 20)), "rollout-steps"),
    (RolloutRequest("e", "green", "canary", steps=(0, 100)), "rollout-steps"),
    (RolloutRequest("e", "green", "blue-green"), "rollout-strategy"),
])
def test_bad_plans_are_refused_with_a_rule(request_: RolloutRequest, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        plan_percents(request_)
    assert caught.value.rule == rule


def test_mirror_phase_comes_first_and_the_start_mirror_returns_without_the_target() -> None:
    request = RolloutRequest("e", "green", "canary", canary_percent=10, mirror_percent=20)
    steps = plan_steps(request, {"blue": 100, "green": 0}, {})
    assert [(s.phase, s.percent) for s in steps] == [("mirror", 20), ("traffic", 10),
                                                      ("traffic", 100)]
    assert steps[0].traffic == {"blue": 100, "green": 0} and steps[0].mirror == {"green": 20}
    assert steps[1].mirror == {}
    assert promoted({"blue": 100, "green": 0}, {"green": 10}, "green") == \
        ({"blue": 0, "green": 100}, {})
    assert promoted({"blue": 90, "red": 10, "green": 0}, {"teal": 5}, "green")[1] == {"teal": 5}


def test_no_stable_deployment_is_refused() -> None:
    with pytest.raises(ValidationError):
        traffic_at({"green": 100}, "green", 50)
