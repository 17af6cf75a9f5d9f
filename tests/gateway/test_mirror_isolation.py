"""A slow or dead shadow never slows the primary (ratio to a no-mirror run in the same test)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from tests.gateway.harness import (
    Reply,
    dead_url,
    deployment,
    endpoint,
    fire,
    metric,
    metrics_text,
    start_backend,
    start_gateway,
)
from tests.support.processes import ProcessGroup

SHADOW_DELAY = 2.0
ROUNDS, PER_ROUND = 5, 60


def latencies(replies: list[Reply]) -> list[float]:
    assert {r.status for r in replies} == {200}
    return [r.seconds for r in replies]


@pytest.mark.parametrize("shadow_kind", ["slow", "down"])
def test_shadow_leaves_primary_latency_unchanged(processes: ProcessGroup, tmp_path: Path,
                                                 shadow_kind: str) -> None:
    primary = start_backend(processes, tmp_path, "blue")
    shadow = (start_backend(processes, tmp_path, "green", delay=SHADOW_DELAY)
              if shadow_kind == "slow" else dead_url())
    deployments = [deployment("blue", primary), deployment("green", shadow)]
    settings = {"mirror_max_in_flight": 8, "mirror_timeout_s": 10.0}
    plain = start_gateway(processes, tmp_path,
                          [endpoint("main", deployments, {"blue": 100})], settings)
    mirrored = start_gateway(processes, tmp_path,
                             [endpoint("main", deployments, {"blue": 100}, {"green": 50})],
                             settings)
    fire(plain.url + "/score", 50, 4)  # warm both pools up
    fire(mirrored.url + "/score", 50, 4)

    base: list[float] = []
    with_mirror: list[float] = []
    for _ in range(ROUNDS):  # interleaved, so machine noise hits both alike
        base += latencies(fire(plain.url + "/score", PER_ROUND, 4))
        with_mirror += latencies(fire(mirrored.url + "/score", PER_ROUND, 4))

    base_median, mirror_median = statistics.median(base), statistics.median(with_mirror)
    assert mirror_median <= 1.5 * base_median + 0.002, (mirror_median, base_median)
    # No client ever waited for a copy (a copy of the slow shadow takes SHADOW_DELAY).
    assert max(with_mirror) < SHADOW_DELAY / 2, max(with_mirror)

    text = metrics_text(mirrored.url)
    sent = metric(text, "scoregate_mirror_copies_total", outcome="sent")
    assert sent > 0
    if shadow_kind == "slow":
        # 4 clients at a few ms each vs 2 s copies: the bound of 8 is hit at once.
        assert metric(text, "scoregate_mirror_copies_total", outcome="dropped") > sent
    else:
        assert metric(text, "scoregate_mirror_copies_total", outcome="failed") > 0
    assert metric(metrics_text(plain.url), "scoregate_mirror_copies_total") == 0
