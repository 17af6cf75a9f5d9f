"""Autoscaling's tables: a decision commits with its count and its event, survives a reopen
(what a kill -9 leaves), and an autoscaled deployment's instance_count is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.autoscaling import SCALED, STORE_EXTENSION, rows
from control_plane.autoscaling.policy import SCALE_OUT, Decision
from control_plane.errors import ValidationError
from control_plane.specs.resources import DeploymentSpec, EndpointSpec, ScaleSettings
from control_plane.store.sqlite_store import Store

E = "my-endpoint"


def _spec(tmp_path: Path, scale: ScaleSettings | None) -> DeploymentSpec:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    return DeploymentSpec("blue", E, code_dir=str(code), scoring_script="score.py",
                          scale_settings=scale)


def test_a_decision_survives_a_reopen_with_its_event(tmp_path: Path) -> None:
    store = Store(tmp_path / "home", (STORE_EXTENSION,))
    decision = Decision(1, 3, SCALE_OUT, 150.0, 6.0, "1 -> 3 instances")
    store.feature_write(lambda conn: rows.record(conn, E, "blue", 1000.0, decision, 1000.0))
    store.close()
    reopened = Store(tmp_path / "home", (STORE_EXTENSION,))
    stored = reopened.feature_read(rows.load)[f"{E}/blue"]
    assert (stored.desired, stored.last_scale_out, stored.last_change) == (3, 1000.0, 1000.0)
    assert [r.decision for r in stored.decisions] == [decision]
    [event] = reopened.events(types=[SCALED])
    assert event.subject == f"endpoints/{E}/deployments/blue"
    assert event.data["old_instances"] == 1 and event.data["new_instances"] == 3
    assert event.data["time"] == "1970-01-01T00:16:40.000Z"
    reopened.close()


def test_old_decisions_are_pruned(tmp_path: Path) -> None:
    store = Store(tmp_path / "home", (STORE_EXTENSION,))
    for n in range(rows.KEPT_DECISIONS + 5):
        decision = Decision(n, n + 1, SCALE_OUT, None, 0.0, "")
        store.feature_write(lambda conn, d=decision, n=n: rows.record(conn, E, "blue", n, d, n))
    kept = store.feature_read(rows.load)[f"{E}/blue"].decisions
    assert len(kept) == rows.KEPT_DECISIONS and kept[-1].decision.new == rows.KEPT_DECISIONS + 5
    store.close()


def test_instance_count_of_an_autoscaled_deployment_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "home", (STORE_EXTENSION,))
    store.create_endpoint(EndpointSpec(E))
    scale = ScaleSettings(min_instances=1, max_instances=4)
    created = store.create_deployment(_spec(tmp_path, scale))
    store.finish_provisioning(E, "blue", created.etag, "Creating", None)
    with pytest.raises(ValidationError) as refused:
        store.patch_deployment(E, "blue", lambda spec: spec.with_changes(instance_count=2))
    assert refused.value.rule == "autoscaled-instance-count"
    assert "scale_settings.max_instances" in str(refused.value)
    store.patch_deployment(E, "blue", lambda spec: spec.with_changes(  # bounds: fine
        scale_settings=ScaleSettings(min_instances=2, max_instances=4)))
    store.close()
