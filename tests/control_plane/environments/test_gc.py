from __future__ import annotations

import time

from control_plane.environments import gc
from control_plane.environments.builder import Builder
from control_plane.environments.interpreters import Interpreter


def test_unused_environments_go_after_the_grace_period(builder: Builder,
                                                       gateway_python: Interpreter) -> None:
    kept = builder.build(gateway_python, ["six==1.16.0"])
    dropped = builder.build(gateway_python, ["six==1.17.0"])
    in_use = {kept.key}
    now = time.time()
    listed = {u.key: u for u in gc.usage(builder, lambda: in_use)}
    assert listed[kept.key].in_use and not listed[dropped.key].in_use
    assert listed[kept.key].size_bytes > 0

    assert gc.collect(builder, lambda: in_use, grace_s=3600, now=now) == []
    assert gc.collect(builder, lambda: in_use, grace_s=3600, now=now + 7200) == [dropped.key]
    assert builder.find(dropped.key) is None and not dropped.path.exists()
    assert builder.find(kept.key) is not None
    assert not builder.log_path(dropped.key).exists()

    # seen in use just now: a later pass keeps it for the grace period after that
    in_use.clear()
    assert gc.collect(builder, lambda: in_use, grace_s=3600, now=now + 7200 + 60) == []
    assert gc.collect(builder, lambda: in_use, grace_s=0, now=now + 7200 + 60) == [kept.key]
    assert gc.ready_keys(builder) == []


def test_a_removed_environment_builds_again(builder: Builder,
                                            gateway_python: Interpreter) -> None:
    env = builder.build(gateway_python, ["six==1.16.0"])
    assert gc.remove(builder, env.key)
    assert not gc.remove(builder, env.key)
    assert builder.build(gateway_python, ["six==1.16.0"]).built_now
