"""Rolling updates' pure parts: batches from max_surge / max_unavailable, the YAML block and its
errors (file, key, line), and the verdict on a batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import ConfigError, ValidationError
from control_plane.rollouts.rolling import judge_batch, plan
from control_plane.rollouts.window import WindowSample
from control_plane.specs.loader import load_file
from control_plane.specs.resources import DeploymentSpec, RollingUpdate
from control_plane.specs.validation import check_rolling_update, rolling_counts

ONE_MS = ((0.001, 0.0), (0.002, 10.0), (float("inf"), 10.0))


@pytest.mark.parametrize(("count", "surge", "unavailable", "targets", "down"), [
    (3, 1, 0, (1, 2, 3), 0),  # the default: one at a time, never below capacity
    (4, "50%", 0, (2, 4), 0),
    (5, "25%", "25%", (3, 5), 1),  # surge rounds up (2), unavailable down (1)
    (3, 0, 1, (1, 2, 3), 1),
    (1, 1, 0, (1,), 0),
    (3, "10%", "10%", (1, 2, 3), 0),  # 1 surge (up), 0 down
])
def test_batches(count: int, surge: int | str, unavailable: int | str,
                 targets: tuple[int, ...], down: int) -> None:
    batches = plan(count, RollingUpdate(max_surge=surge, max_unavailable=unavailable))
    assert (batches.targets, batches.unavailable) == (targets, down)


def test_counts_are_bounded_by_instance_count() -> None:
    assert rolling_counts(RollingUpdate(max_surge=0, max_unavailable=9), 3) == (0, 3)


@pytest.mark.parametrize(("update", "words"), [
    (RollingUpdate(max_surge="x"), "max_surge"),
    (RollingUpdate(max_surge="101%"), "max_surge"),
    (RollingUpdate(max_unavailable=-1), "max_unavailable"),
    (RollingUpdate(max_surge=0, max_unavailable="0%"), "cannot both be 0"),
    (RollingUpdate(bake_s=-1), "bake_s"),
    (RollingUpdate(max_error_rate=2), "max_error_rate"),
    (RollingUpdate(max_latency_factor=0.5), "max_latency_factor"),
])
def test_bad_settings_are_refused(update: RollingUpdate, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as caught:
        check_rolling_update(update, "deployment blue")
    assert caught.value.rule == "rolling-update"


def _yaml(tmp_path: Path, block: str) -> Path:
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    path = tmp_path / "blue.yml"
    path.write_text("name: blue\nendpoint_name: my-endpoint\ninstance_count: 3\n"
                    "code_configuration: {code: ., scoring_script: score.py}\n" + block)
    return path


def test_yaml_block_is_read(tmp_path: Path) -> None:
    spec = load_file(_yaml(tmp_path, "rolling_update:\n  max_surge: 50%\n  bake_s: 30\n"))
    assert isinstance(spec, DeploymentSpec)
    assert spec.rolling_update == RollingUpdate(max_surge="50%", bake_s=30)
    assert DeploymentSpec.from_dict(spec.to_dict()) == spec  # stored and shown as is


def test_yaml_errors_name_file_key_and_line(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "rolling_update:\n  max_surge: 1\n  max_unavailable: two\n")
    with pytest.raises(ConfigError, match=r"blue.yml:7: key 'rolling_update.max_unavailable'"):
        load_file(path)
    with pytest.raises(ConfigError, match=r"rolling_update.max_surgee'.*did you mean"):
        load_file(_yaml(tmp_path, "rolling_update: {max_surgee: 1}\n"))


def test_a_batch_with_failing_requests_trips_the_error_rate() -> None:
    update = RollingUpdate(max_error_rate=0.05, min_requests=5)
    verdict = judge_batch(update, 2.0, WindowSample(10, 10, ONE_MS), WindowSample(20, 0, ONE_MS))
    assert verdict.outcome == "tripped" and "error-rate 1 > 0.05" in verdict.message
    healthy = judge_batch(update, 2.0, WindowSample(10, 0, ONE_MS), WindowSample(20, 0, ONE_MS))
    assert healthy.outcome == "passed"
