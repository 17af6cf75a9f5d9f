"""Weighted split, header routing and mirror share, measured at real backends."""

from __future__ import annotations

import math
from pathlib import Path

from tests.gateway.harness import (
    auth,
    deployment,
    endpoint,
    fire,
    get_json,
    metric,
    metrics_text,
    post,
    start_backend,
    start_gateway,
)
from tests.support.processes import ProcessGroup, wait_until

REQUESTS = 2000


def test_split_90_10_header_routing_and_mirror_share(processes: ProcessGroup,
                                                     tmp_path: Path) -> None:
    blue = start_backend(processes, tmp_path, "blue")
    green = start_backend(processes, tmp_path, "green")
    shadow = start_backend(processes, tmp_path, "shadow")
    idle = start_backend(processes, tmp_path, "idle")
    main = endpoint("main", [deployment("blue", blue), deployment("green", green),
                             deployment("shadow", shadow), deployment("idle", idle)],
                    {"blue": 90, "green": 10, "idle": 0}, {"shadow": 20})
    gateway = start_gateway(processes, tmp_path, [main])

    replies = fire(gateway.url + "/score", REQUESTS, concurrency=8)
    assert {r.status for r in replies} == {200}
    names = [r.headers["azureml-model-deployment"] for r in replies]
    assert all(r.json()["name"] == name for r, name in zip(replies, names, strict=False))
    green_share = names.count("green") / REQUESTS
    assert abs(green_share - 0.10) <= 0.03, green_share
    assert names.count("blue") + names.count("green") == REQUESTS

    # Mirror copies are fire-and-forget: wait until every copy sent has been answered.
    def copies_done() -> bool:
        text = metrics_text(gateway.url)
        sent = metric(text, "scoregate_mirror_copies_total", outcome="sent")
        done = metric(text, "scoregate_mirror_copies_total", outcome="completed")
        return sent > 0 and sent == done
    wait_until(copies_done, timeout=30, what="mirror copies to finish")
    seen = get_json(shadow + "/stats")
    assert seen["requests"] == seen["mirror"]  # only copies reached the shadow
    expected, sigma = REQUESTS * 0.2, math.sqrt(REQUESTS * 0.2 * 0.8)
    assert abs(seen["mirror"] - expected) <= 4 * sigma, seen
    text = metrics_text(gateway.url)
    assert metric(text, "scoregate_mirror_copies_total", outcome="sent") == seen["mirror"]
    assert metric(text, "scoregate_mirror_copies_total", outcome="dropped") == 0
    assert metric(text, "scoregate_requests_total", deployment="shadow", role="mirror",
                  status_code="200") == seen["mirror"]
    assert metric(text, "scoregate_requests_total", role="live") == REQUESTS

    # The header wins: a 0% deployment and the mirror deployment, never mirrored again.
    for name in ("idle", "shadow", "green"):
        reply = post(gateway.url + "/score", headers={**auth(), "azureml-model-deployment": name})
        assert reply.status == 200 and reply.json()["name"] == name
        assert reply.json()["mirror"] is False
    direct = fire(gateway.url + "/score", 50, 4,
                  headers={**auth(), "azureml-model-deployment": "blue"})
    assert {r.json()["name"] for r in direct} == {"blue"}
    text = metrics_text(gateway.url)
    assert metric(text, "scoregate_mirror_copies_total", outcome="sent") == seen["mirror"]
    assert metric(text, "scoregate_requests_total", role="direct") == 53

    log = gateway.log_lines()
    mirrored = [line for line in log if line.get("role") == "mirror"]
    assert len(mirrored) == seen["mirror"]
    assert all(line["deployment"] == "shadow" for line in mirrored)
    assert not any("test-key" in str(line) for line in log)
