"""The scaling decision (pure): target tracking, bounds, cooldowns, a baking rollout."""

from __future__ import annotations

from control_plane.autoscaling.policy import (
    BOUNDS,
    COLD_START,
    SCALE_IN,
    SCALE_OUT,
    History,
    Measurement,
    cold_start,
    decide,
    needed,
)
from control_plane.specs.resources import ScaleSettings

SCALE = ScaleSettings(min_instances=1, max_instances=4, target_utilization_percentage=50,
                      scale_out_cooldown=10, scale_in_cooldown=60)
NOW = 1000.0
QUIET = History(last_scale_out=None, last_change=0.0)  # long ago


def _measured(in_flight: float, ready: int) -> Measurement:
    return Measurement(in_flight, ready, max_concurrent=4)


def test_needed_instances_hold_the_target() -> None:
    assert needed(8, 4, 50) == 4  # 2 per instance at 50% of 4
    assert needed(8.01, 4, 50) == 5
    assert needed(0, 4, 50) == 0
    assert needed(2.0000000001, 4, 50) == 1  # no instance for a rounding error


def test_scale_out_follows_demand_not_the_ready_count() -> None:
    decision = decide(SCALE, 1, _measured(6, 1), QUIET, NOW)
    assert decision is not None and (decision.old, decision.new) == (1, 3)
    assert decision.reason == SCALE_OUT and decision.utilization == 150.0
    assert "utilisation 150%" in decision.message and "target 50%" in decision.message
    # two of those three still start: the same demand asks for nothing more
    assert decide(SCALE, 3, _measured(6, 1), History(None, NOW - 5), NOW) is None


def test_bounds_hold() -> None:
    high = decide(SCALE, 2, _measured(100, 2), QUIET, NOW)
    assert high is not None and high.new == 4  # max_instances
    low = decide(SCALE, 3, _measured(0, 3), QUIET, NOW)
    assert low is not None and (low.new, low.reason) == (1, SCALE_IN)  # min_instances
    narrowed = decide(ScaleSettings(min_instances=1, max_instances=2), 4, _measured(0, 4),
                      QUIET, NOW)
    assert narrowed is not None and (narrowed.new, narrowed.reason) == (2, BOUNDS)


def test_cooldowns() -> None:
    recent_out = History(last_scale_out=NOW - 5, last_change=NOW - 5)
    assert decide(SCALE, 2, _measured(8, 2), recent_out, NOW) is None  # scale-out cooldown
    assert decide(SCALE, 2, _measured(8, 2), History(NOW - 11, NOW - 11), NOW) is not None
    assert decide(SCALE, 3, _measured(0, 3), History(None, NOW - 59), NOW) is None
    assert decide(SCALE, 3, _measured(0, 3), History(None, NOW - 60), NOW) is not None


def test_a_baking_rollout_holds_scale_in_only() -> None:
    assert decide(SCALE, 3, _measured(0, 3), QUIET, NOW, baking=True) is None
    out = decide(SCALE, 1, _measured(8, 1), QUIET, NOW, baking=True)
    assert out is not None and out.reason == SCALE_OUT


def test_scale_to_zero_and_cold_start() -> None:
    zero = ScaleSettings(min_instances=0, max_instances=2, scale_in_cooldown=0)
    idle = decide(zero, 1, _measured(0, 1), QUIET, NOW)
    assert idle is not None and idle.new == 0
    woken = cold_start(zero, 3)
    assert (woken.old, woken.new, woken.reason) == (0, 1, COLD_START)
    assert woken.utilization is None and "3 request(s) waiting" in woken.message
