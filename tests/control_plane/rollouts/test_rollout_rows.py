"""`baking_on`: what autoscaling asks before a scale-in (docs/autoscaling.md)."""

from __future__ import annotations

from pathlib import Path

from control_plane.rollouts import rows
from control_plane.specs.rollout import (
    PAUSED,
    PHASE_TRAFFIC,
    RUNNING,
    STEP_BAKING,
    STEP_PENDING,
    Guardrails,
    Rollout,
    Step,
)
from control_plane.store.sqlite_store import Store

E = "my-endpoint"


def _rollout(state: str, status: str) -> Rollout:
    step = Step(PHASE_TRAFFIC, 10, 60.0, status, 1.0, {"blue": 90, "green": 10})
    return Rollout("r1", E, "green", "canary", state, 0, (step,), {"blue": 100}, {},
                   Guardrails(), None, 1.0, 1.0)


def test_a_baking_step_holds_the_deployments_it_compares(tmp_path: Path) -> None:
    store = Store(tmp_path / "home", (rows.STORE_EXTENSION,))

    def baking(deployment: str) -> bool:
        return store.feature_read(lambda conn: rows.baking_on(conn, E, deployment))

    assert not baking("green")
    store.feature_write(lambda conn: rows.save(conn, _rollout(RUNNING, STEP_BAKING)))
    assert baking("green") and baking("blue") and not baking("other")
    assert not store.feature_read(lambda conn: rows.baking_on(conn, "other-endpoint", "green"))
    for state, status in ((PAUSED, STEP_BAKING), (RUNNING, STEP_PENDING)):
        rollout = _rollout(state, status)
        store.feature_write(lambda conn, r=rollout: rows.save(conn, r))
        assert not baking("green")
    store.close()
